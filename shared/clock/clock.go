// Package clock is the time DDT waits on. Everything that waits on the
// calendar or on an interval — contact liveness, record expiry, lease
// lapse, keepalives, maintenance rounds, backoff, request deadlines that
// are timers rather than I/O — takes a Clock, so tests and simulations
// hand it a Virtual and cover days in milliseconds.
//
// System is the real clock. A Virtual stands still until Advance, which
// fires its timers and tickers in deadline order. As with the time
// package, a ticker whose receiver is behind drops ticks: one Advance
// across many periods delivers one tick, so a week of virtual time costs
// no more than a minute of it.
package clock

import (
	"container/heap"
	"sync"
	"sync/atomic"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that sends the time on C once d has passed.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that sends the time on C every d (d > 0).
	NewTicker(d time.Duration) Ticker
	// AfterFunc calls f in its own goroutine once d has passed.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a single event; Stop and Reset behave as time.Timer's.
type Timer interface {
	C() <-chan time.Time // nil for an AfterFunc timer
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker delivers ticks at intervals until stopped.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// After waits for d on c, as time.After does on the real clock.
func After(c Clock, d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// Since is c.Now().Sub(t).
func Since(c Clock, t time.Time) time.Duration { return c.Now().Sub(t) }

// Sleep waits for d on c, or until done is closed; it reports whether the
// whole of d passed.
func Sleep(c Clock, d time.Duration, done <-chan struct{}) bool {
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-done:
		return false
	}
}

// System is the real clock.
var System Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time                   { return time.Now() }
func (systemClock) NewTimer(d time.Duration) Timer   { return sysTimer{time.NewTimer(d)} }
func (systemClock) NewTicker(d time.Duration) Ticker { return sysTicker{time.NewTicker(d)} }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer {
	return sysTimer{time.AfterFunc(d, f)}
}

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time        { return t.t.C }
func (t sysTimer) Stop() bool                 { return t.t.Stop() }
func (t sysTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type sysTicker struct{ t *time.Ticker }

func (t sysTicker) C() <-chan time.Time   { return t.t.C }
func (t sysTicker) Stop()                 { t.t.Stop() }
func (t sysTicker) Reset(d time.Duration) { t.t.Reset(d) }

// Virtual is a clock that stands still until Advance. It is safe for
// concurrent use; the zero value reads the Unix epoch.
type Virtual struct {
	ns atomic.Int64

	mu     sync.Mutex
	events eventHeap
	seq    uint64 // orders events due at the same instant
}

var _ Clock = (*Virtual)(nil)

// NewVirtual returns a clock set to start.
func NewVirtual(start time.Time) *Virtual {
	c := &Virtual{}
	c.ns.Store(start.UnixNano())
	return c
}

// Now returns the clock's time, in UTC.
func (c *Virtual) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward by d, firing every timer and ticker
// that falls due on the way, in deadline order, each at its deadline.
func (c *Virtual) Advance(d time.Duration) {
	end := c.ns.Load() + int64(d)
	for {
		c.mu.Lock()
		if len(c.events) == 0 || c.events[0].at > end {
			c.ns.Store(end)
			c.mu.Unlock()
			return
		}
		e := heap.Pop(&c.events).(*event)
		if e.at > c.ns.Load() {
			c.ns.Store(e.at)
		}
		e.queued = false
		if e.period > 0 {
			// A ticker delivers one tick however many periods passed,
			// and is due again at its first deadline after end.
			e.at += e.period
			if e.at <= end {
				e.at += (end - e.at) / e.period * e.period
				if e.at <= end {
					e.at += e.period
				}
			}
			c.pushLocked(e)
		}
		c.mu.Unlock()
		e.fire(c.Now())
	}
}

// Pending is how many timers and tickers wait to fire (for tests that
// must know a waiter is in place before they Advance).
func (c *Virtual) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// NewTimer implements Clock.
func (c *Virtual) NewTimer(d time.Duration) Timer {
	e := &event{clock: c, ch: make(chan time.Time, 1)}
	c.schedule(e, d, 0)
	return e
}

// AfterFunc implements Clock.
func (c *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	e := &event{clock: c, f: f}
	c.schedule(e, d, 0)
	return e
}

// NewTicker implements Clock.
func (c *Virtual) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	e := &event{clock: c, ch: make(chan time.Time, 1)}
	c.schedule(e, d, d)
	return ticker{e}
}

// schedule (re)queues e to fire after d, then every period if period > 0;
// it reports whether e was queued before.
func (c *Virtual) schedule(e *event, d, period time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.removeLocked(e)
	e.at = c.ns.Load() + int64(max(d, 0))
	e.period = int64(period)
	if d <= 0 && period == 0 {
		// Due now: fire at once, as the time package does.
		go e.fire(c.Now())
		return was
	}
	c.pushLocked(e)
	return was
}

func (c *Virtual) pushLocked(e *event) {
	c.seq++
	e.seq = c.seq
	e.queued = true
	heap.Push(&c.events, e)
}

func (c *Virtual) removeLocked(e *event) bool {
	if !e.queued {
		return false
	}
	heap.Remove(&c.events, e.index)
	e.queued = false
	return true
}

// event is a Virtual timer or ticker.
type event struct {
	clock  *Virtual
	at     int64 // Unix nanoseconds
	period int64 // ticker interval; 0 for a timer
	seq    uint64
	index  int  // in the heap
	queued bool // in the heap
	ch     chan time.Time
	f      func()
}

func (e *event) fire(now time.Time) {
	if e.f != nil {
		go e.f()
		return
	}
	select {
	case e.ch <- now:
	default: // the receiver has not taken the last one: drop, as time does
	}
}

func (e *event) C() <-chan time.Time { return e.ch }

func (e *event) Stop() bool {
	e.clock.mu.Lock()
	defer e.clock.mu.Unlock()
	return e.clock.removeLocked(e)
}

func (e *event) Reset(d time.Duration) bool { return e.clock.schedule(e, d, 0) }

type ticker struct{ e *event }

func (t ticker) C() <-chan time.Time { return t.e.ch }
func (t ticker) Stop()               { t.e.Stop() }
func (t ticker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	t.e.clock.schedule(t.e, d, d)
}

type eventHeap []*event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *eventHeap) Push(x any) {
	e := x.(*event)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
