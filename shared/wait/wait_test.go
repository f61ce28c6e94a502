package wait

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	var n atomic.Int32
	For(t, time.Second, "the third poll", func() error {
		if n.Add(1) < 3 {
			return errors.New("too early")
		}
		return nil
	})
	if n.Load() != 3 {
		t.Fatalf("polled %d times", n.Load())
	}
}

// recorder stands in for a test to see that a wait that runs out fails.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = format
	panic(r)
}

func TestUntilFails(t *testing.T) {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != any(r) {
				panic(p)
			}
		}()
		Until(r, 30*time.Millisecond, "never", func() bool { return false })
	}()
	if r.failed == "" {
		t.Fatal("a condition that never held did not fail the test")
	}
}
