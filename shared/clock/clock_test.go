package clock

import (
	"sync/atomic"
	"testing"
	"time"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestVirtual(t *testing.T) {
	c := NewVirtual(start)
	if !c.Now().Equal(start) {
		t.Fatalf("starts at %v", c.Now())
	}
	c.Advance(7 * 24 * time.Hour)
	if got := c.Now().Sub(start); got != 7*24*time.Hour {
		t.Fatalf("moved %v", got)
	}
}

func received(ch <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-ch:
		return v, true
	case <-time.After(time.Second):
		return time.Time{}, false
	}
}

func quiet(t *testing.T, ch <-chan time.Time, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s fired at %v", what, v)
	default:
	}
}

func TestVirtualTimer(t *testing.T) {
	c := NewVirtual(start)
	tm := c.NewTimer(time.Hour)
	c.Advance(59 * time.Minute)
	quiet(t, tm.C(), "timer before its hour")
	c.Advance(2 * time.Minute)
	at, ok := received(tm.C())
	if !ok || !at.Equal(start.Add(time.Hour)) {
		t.Fatalf("timer fired %v at %v; want at %v", ok, at, start.Add(time.Hour))
	}
	if tm.Stop() {
		t.Fatal("Stop of a fired timer reported true")
	}
	if tm.Reset(time.Minute) {
		t.Fatal("Reset of a fired timer reported it was pending")
	}
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	c.Advance(time.Hour)
	quiet(t, tm.C(), "stopped timer")
	if c.Pending() != 0 {
		t.Fatalf("%d events pending", c.Pending())
	}
}

func TestVirtualOrderAndAfterFunc(t *testing.T) {
	c := NewVirtual(start)
	var order []string
	done := make(chan string, 3)
	c.AfterFunc(3*time.Second, func() { done <- "c" })
	c.AfterFunc(time.Second, func() { done <- "a" })
	c.AfterFunc(2*time.Second, func() { done <- "b" })
	for i := 0; i < 3; i++ {
		c.Advance(time.Second)
		order = append(order, <-done)
	}
	if got := order[0] + order[1] + order[2]; got != "abc" {
		t.Fatalf("fired in order %q", got)
	}
}

func TestVirtualTickerDropsTicks(t *testing.T) {
	c := NewVirtual(start)
	tk := c.NewTicker(10 * time.Second)
	defer tk.Stop()
	// A week at once: one tick, not 60,480, and the next is due 10 s on.
	c.Advance(7 * 24 * time.Hour)
	if _, ok := received(tk.C()); !ok {
		t.Fatal("no tick after a week")
	}
	quiet(t, tk.C(), "second tick in one Advance")
	c.Advance(9 * time.Second)
	quiet(t, tk.C(), "tick before its period")
	c.Advance(time.Second)
	if _, ok := received(tk.C()); !ok {
		t.Fatal("no tick one period after the jump")
	}
	tk.Reset(time.Minute)
	c.Advance(30 * time.Second)
	quiet(t, tk.C(), "reset ticker")
	c.Advance(30 * time.Second)
	if _, ok := received(tk.C()); !ok {
		t.Fatal("no tick after Reset's period")
	}
}

func TestSleep(t *testing.T) {
	c := NewVirtual(start)
	var slept atomic.Bool
	done := make(chan struct{})
	go func() { slept.Store(Sleep(c, time.Minute, nil)); close(done) }()
	for c.Pending() == 0 {
		time.Sleep(time.Millisecond)
	}
	c.Advance(time.Minute)
	<-done
	if !slept.Load() {
		t.Fatal("Sleep cut short")
	}
	stop := make(chan struct{})
	close(stop)
	if Sleep(c, time.Hour, stop) {
		t.Fatal("Sleep ignored done")
	}
	if Since(c, start) != time.Minute {
		t.Fatalf("Since = %v", Since(c, start))
	}
}

func TestSystem(t *testing.T) {
	tm := System.NewTimer(time.Millisecond)
	if _, ok := received(tm.C()); !ok {
		t.Fatal("system timer did not fire")
	}
	fired := make(chan struct{})
	System.AfterFunc(time.Millisecond, func() { close(fired) })
	select {
	case <-fired:
	case <-time.After(time.Second):
		t.Fatal("system AfterFunc did not run")
	}
	if d := Since(System, time.Now().Add(-time.Hour)); d < time.Hour {
		t.Fatalf("Since = %v", d)
	}
}
