// Package clock is a virtual clock: time that moves only when told to.
// Everything in DDT that waits on the calendar (contact liveness, record
// expiry, lease lapse) takes a Now func, so tests and simulations hand it
// a Virtual's Now and cover days in milliseconds.
package clock

import (
	"sync/atomic"
	"time"
)

// Virtual is a clock that stands still until Advance. It is safe for
// concurrent use; the zero value reads the Unix epoch.
type Virtual struct{ ns atomic.Int64 }

// NewVirtual returns a clock set to start.
func NewVirtual(start time.Time) *Virtual {
	c := &Virtual{}
	c.ns.Store(start.UnixNano())
	return c
}

// Now returns the clock's time, in UTC.
func (c *Virtual) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward by d.
func (c *Virtual) Advance(d time.Duration) { c.ns.Add(int64(d)) }
