package clock

import (
	"testing"
	"time"
)

func TestVirtual(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := NewVirtual(start)
	if !c.Now().Equal(start) {
		t.Fatalf("starts at %v", c.Now())
	}
	c.Advance(7 * 24 * time.Hour)
	if got := c.Now().Sub(start); got != 7*24*time.Hour {
		t.Fatalf("moved %v", got)
	}
}
