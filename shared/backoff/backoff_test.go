package backoff

import (
	"testing"
	"time"
)

func TestJitter(t *testing.T) {
	for i := 0; i < 1000; i++ {
		d := Jitter(8 * time.Second)
		if d < 7*time.Second || d > 9*time.Second {
			t.Fatalf("Jitter(8s) = %v, outside 7–9 s", d)
		}
	}
	if Jitter(0) != 0 {
		t.Fatal("Jitter(0) is not 0")
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 8 * time.Second}
	want := []time.Duration{1, 2, 4, 8, 8} // seconds, before jitter
	for i, w := range want {
		d := b.Next()
		lo, hi := w*time.Second*7/8, w*time.Second*9/8
		if d < lo || d > hi {
			t.Fatalf("attempt %d waits %v, want %v ± 1/8", i, d, w*time.Second)
		}
	}
	b.Reset()
	if d := b.Next(); d > time.Second*9/8 {
		t.Fatalf("after Reset the wait is %v", d)
	}
}
