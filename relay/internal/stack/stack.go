// Package stack builds the engines of one relay in memory for the tests
// of the services that sit on them (the zone ledger, the registrar): a
// zone and its federation sharing a key and a store, closed when the
// test ends.
package stack

import (
	"testing"
	"time"

	"ddt/relay/federation"
	"ddt/relay/zone"
	"ddt/shared/clock"
	"ddt/shared/identity"
	"ddt/shared/store"
)

// Relay is a zone and its federation.
type Relay struct {
	Key   *identity.Identity
	Store store.Store
	Zone  *zone.Zone
	Fed   *federation.Federation
}

// New makes the zone "zone-a" (at most 8 nodes) and its federation, with
// summaries every 20 ms. Services are made on it before Start.
func New(t testing.TB) *Relay { return NewClock(t, nil) }

// NewClock is New on clk (the system clock if nil): a virtual clock
// makes rate limits and waits exact, and sends no summaries until it is
// advanced.
func NewClock(t testing.TB, clk clock.Clock) *Relay { return NewWith(t, clk, nil) }

// NewOpen is New in open federation (-federation=open): relays it does
// not trust link as untrusted.
func NewOpen(t testing.TB) *Relay {
	return NewWith(t, nil, func(c *federation.Config) { c.Open = true })
}

// NewWith is NewClock with the federation's configuration changed by
// with (if not nil).
func NewWith(t testing.TB, clk clock.Clock, with func(*federation.Config)) *Relay {
	t.Helper()
	key, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	z, err := zone.New(zone.Config{Name: "zone-a", URL: "http://a.example", MaxNodes: 8, Key: key, Store: st, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	fc := federation.Config{Zone: z, Key: key, SummaryEvery: 20 * time.Millisecond, Clock: clk}
	if with != nil {
		with(&fc)
	}
	f, err := federation.New(fc)
	if err != nil {
		z.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { z.Close(); f.Close() })
	return &Relay{Key: key, Store: st, Zone: z, Fed: f}
}

// Start starts the federation, once the services are registered.
func (r *Relay) Start() { r.Fed.Start() }
