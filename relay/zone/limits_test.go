package zone

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddt/relay/internal/relaytest"
	"ddt/relay/link"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// A flood of fresh keys against a full zone writes nothing: every one is
// refused before the relay records a lease for it, so relay.db does not
// grow (and a later sweep has nothing of theirs to delete).
func TestFullZoneWritesNoLease(t *testing.T) {
	st := relaytest.OpenBolt(t, filepath.Join(t.TempDir(), "relay.db"))
	z := newTestZone(t, st, Config{MaxNodes: 1})
	member, _ := admit(t, z, nil)
	before, err := st.Keys(storeLeasePrefix)
	if err != nil || len(before) != 1 {
		t.Fatalf("lease records after one admission: %v %v", before, err)
	}
	for i := 0; i < 20; i++ {
		r := dial(t, z)
		if _, m := r.Join(r.id, true); m.Type() != wire.TypeRefused {
			t.Fatalf("join %d to a full zone: %T %+v", i, m, m)
		}
		r.ExpectClosed()
		if _, err := st.Get(leaseKey(r.id.SignKey())); err == nil {
			t.Fatalf("join %d: the refused key has a lease record", i)
		}
	}
	after, err := st.Keys(storeLeasePrefix)
	if err != nil || len(after) != 1 || after[0] != before[0] {
		t.Fatalf("lease records after 20 refused joins: %v %v (before: %v)", after, err, before)
	}
	// The member itself reconnecting is not refused: it replaces its link.
	again := dial(t, z)
	if _, m := again.Join(member.id, true); m.Type() != wire.TypeAdmitted {
		t.Fatalf("the member reconnecting: %T %+v", m, m)
	}
}

// signalTo sends n signals of kind from x to addr, numbered from first.
func signalTo(x *rawNode, addr id.Address, kind wire.SignalKind, first, n int) {
	for i := range n {
		x.Send(&wire.Signal{Peer: addr, Session: uint64(first + i), Kind: kind, Data: "c"})
	}
}

// nextSession reads y's next signal and returns its session.
func nextSession(y *rawNode) uint64 { return y.Until("a signal", isSignal).(*wire.Signal).Session }

// pass sends n signals from x to y, numbered from first, in batches
// that y reads before the next (so y's queue never fills and none is
// dropped as congested), and checks y gets each in order.
func pass(t *testing.T, x, y *rawNode, to id.Address, kind wire.SignalKind, first, n int) {
	t.Helper()
	for sent := 0; sent < n; {
		batch := min(50, n-sent)
		signalTo(x, to, kind, first+sent, batch)
		for i := range batch {
			if got, want := nextSession(y), uint64(first+sent+i); got != want {
				t.Fatalf("signal %d arrived as %d", want, got)
			}
		}
		sent += batch
	}
}

// The README's numbers, exactly: a node may signal SignalBurst times at
// once, then SignalRate times a second; the zone's clock meters it.
func TestSignalRateExact(t *testing.T) {
	vc := newFakeClock()
	z := newTestZone(t, store.NewMemory(), onClock(vc))
	x, _ := admit(t, z, nil)
	y, admY := admit(t, z, nil)
	to := admY.Lease.Address
	pass(t, x, y, to, wire.SignalCandidate, 1, SignalBurst)
	signalTo(x, to, wire.SignalCandidate, SignalBurst+1, 1)
	if e := x.ExpectError(wire.CodeRateLimited); !strings.Contains(e.Message, "100 signals a second, in bursts of 400") {
		t.Fatalf("refusal %q", e.Message)
	}
	// One token comes back every 10 ms of the zone's clock: signal 401
	// was refused, and of the next two, one goes through.
	vc.Advance(time.Second / SignalRate)
	signalTo(x, to, wire.SignalCandidate, 1000, 2)
	x.ExpectError(wire.CodeRateLimited)
	if got := nextSession(y); got != 1000 {
		t.Fatalf("after 10 ms the next signal to arrive is %d, want 1000", got)
	}
	// A second refills SignalRate of them, no more.
	vc.Advance(time.Second)
	pass(t, x, y, to, wire.SignalCandidate, 2000, SignalRate)
	x.Send(&wire.Signal{Peer: to, Session: 3000, Kind: wire.SignalBye})
	x.ExpectError(wire.CodeRateLimited)
	vc.Advance(time.Second / SignalRate)
	x.Send(&wire.Signal{Peer: to, Session: 3001, Kind: wire.SignalBye})
	if got := nextSession(y); got != 3001 {
		t.Fatalf("next signal %d, want 3001 (3000 was refused)", got)
	}
	if l := z.Stats().Limits; l.RateLimited != 3 || l.Cut != 0 || l.Congested != 0 {
		t.Fatalf("limits %+v, want 3 signals rate-limited and no cut", l)
	}
}

// Offers have their own, lower budget on top: OfferBurst at once, then
// OfferRate a second.
func TestOfferRateExact(t *testing.T) {
	vc := newFakeClock()
	z := newTestZone(t, store.NewMemory(), onClock(vc))
	x, _ := admit(t, z, nil)
	y, admY := admit(t, z, nil)
	to := admY.Lease.Address
	signalTo(x, to, wire.SignalOffer, 1, OfferBurst+1)
	if e := x.ExpectError(wire.CodeRateLimited); !strings.Contains(e.Message, "at most 4 offers a second, in bursts of 64") {
		t.Fatalf("refusal %q", e.Message)
	}
	// Candidates still go: only offers are spent.
	signalTo(x, to, wire.SignalCandidate, 100, 1)
	for want := uint64(1); want <= OfferBurst; want++ {
		if got := nextSession(y); got != want {
			t.Fatalf("offer %d arrived as %d", want, got)
		}
	}
	if got := nextSession(y); got != 100 {
		t.Fatalf("after the burst of offers came %d, want the candidate 100", got)
	}
	vc.Advance(time.Second / OfferRate)
	signalTo(x, to, wire.SignalOffer, 200, 2)
	x.ExpectError(wire.CodeRateLimited)
	signalTo(x, to, wire.SignalCandidate, 300, 1)
	if a, b := nextSession(y), nextSession(y); a != 200 || b != 300 {
		t.Fatalf("after 250 ms: %d then %d, want the offer 200 then the candidate 300", a, b)
	}
	if l := z.Stats().Limits; l.OffersLimited != 2 || l.RateLimited != 0 {
		t.Fatalf("limits %+v", l)
	}
}

// The link.MaxViolations-th refused frame cuts the link: the node hears
// every refusal, the last one too, and then the close.
func TestRefusalsCutAtExactlyFifty(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{})
	x, _ := admit(t, z, nil)
	y, admY := admit(t, z, nil)
	for i := 1; i < link.MaxViolations; i++ {
		x.Send(&wire.Hello{})
		x.ExpectError(wire.CodeProtocol)
	}
	// 49 refused: still a member, still heard.
	x.Send(&wire.Signal{Peer: admY.Lease.Address, Session: 49, Kind: wire.SignalBye})
	if got := nextSession(y); got != 49 {
		t.Fatalf("signal %d", got)
	}
	if l := z.Stats().Limits; l.Cut != 0 {
		t.Fatalf("cut after %d refusals: %+v", link.MaxViolations-1, l)
	}
	x.Send(&wire.Hello{})
	x.ExpectError(wire.CodeProtocol)
	x.ExpectClosed()
	wait.Until(t, wait.Default, "x is gone", func() bool { return z.Member(x.lease.Address) == nil })
	if l := z.Stats().Limits; l.Cut != 1 {
		t.Fatalf("limits %+v, want one cut", l)
	}
}

// The lease store keeps at most MaxLeases records however many keys
// come: a new key past it evicts the records of the nodes seen longest
// ago, never a member's, and those come back at a fresh address.
func TestLeaseStoreBounded(t *testing.T) {
	vc := newFakeClock()
	st := relaytest.OpenBolt(t, filepath.Join(t.TempDir(), "relay.db"))
	cfg := onClock(vc)
	cfg.MaxLeases, cfg.MaxNodes = 16, 4
	z := newTestZone(t, st, cfg)
	stay, _ := admit(t, z, nil) // a member all along, seen first
	oldest, _ := identity.New()
	oldAddr := visit(t, z, vc, oldest)
	for i := 0; i < 40; i++ {
		vc.Advance(time.Minute)
		fresh, _ := identity.New()
		visit(t, z, vc, fresh)
		keys, err := st.Keys(storeLeasePrefix)
		if err != nil || len(keys) > cfg.MaxLeases {
			t.Fatalf("after %d fresh keys: %d lease records (limit %d), %v", i+1, len(keys), cfg.MaxLeases, err)
		}
		if l := z.Stats().Limits; l.LeaseRecords != int64(len(keys)) {
			t.Fatalf("healthz says %d lease records, the store holds %d", l.LeaseRecords, len(keys))
		}
	}
	l := z.Stats().Limits
	if l.LeasesEvicted == 0 || l.MaxLeases != cfg.MaxLeases {
		t.Fatalf("limits %+v", l)
	}
	if _, err := st.Get(leaseKey(stay.id.SignKey())); err != nil {
		t.Fatalf("the member's record was evicted: %v", err)
	}
	if again := visit(t, z, vc, oldest); again == oldAddr {
		t.Fatal("the node seen longest ago kept its address: its record was not the one evicted")
	}
}

// Reconnecting does not refill a node's signaling budget: the burst
// spent on one link is spent on the next, whether the new link replaces
// the old or comes after it has gone.
func TestReconnectKeepsSignalBudget(t *testing.T) {
	vc := newFakeClock()
	z := newTestZone(t, store.NewMemory(), onClock(vc))
	ident, _ := identity.New()
	x, _ := admit(t, z, ident)
	y, admY := admit(t, z, nil)
	to := admY.Lease.Address
	pass(t, x, y, to, wire.SignalCandidate, 1, SignalBurst)
	// A new link while the old one is up replaces it, budget and all.
	x2, _ := admit(t, z, ident)
	x2.Send(&wire.Signal{Peer: to, Session: 500, Kind: wire.SignalBye})
	x2.ExpectError(wire.CodeRateLimited)
	// Gone and back: still spent.
	x2.leave(z)
	x3, _ := admit(t, z, ident)
	x3.Send(&wire.Signal{Peer: to, Session: 501, Kind: wire.SignalBye})
	x3.ExpectError(wire.CodeRateLimited)
	if l := z.Stats().Limits; l.BudgetsKept != 0 {
		t.Fatalf("limits %+v: a budget kept for a node that is back", l)
	}
	// Time refills it, as for a node that stayed.
	vc.Advance(time.Second / SignalRate)
	x3.Send(&wire.Signal{Peer: to, Session: 502, Kind: wire.SignalBye})
	if got := nextSession(y); got != 502 {
		t.Fatalf("signal %d, want 502", got)
	}
	// Away longer than the refill time, a node is not remembered at all.
	x3.leave(z)
	vc.Advance(refillTime)
	_, adm := admit(t, z, nil) // a departure that prunes the table
	z.Member(adm.Lease.Address).link.Stop("test")
	wait.Until(t, wait.Default, "pruned", func() bool {
		z.mu.Lock()
		defer z.mu.Unlock()
		_, kept := z.recent[ident.SignKey()]
		return !kept
	})
}

// deafConn is the relay's end of a node's link that stops taking frames
// once deaf is set: a node that stopped reading, with no buffer between.
type deafConn struct {
	transport.Conn
	deaf   atomic.Bool
	closed chan struct{}
	once   sync.Once
}

func (c *deafConn) Send(b []byte) error {
	if c.deaf.Load() {
		<-c.closed
		return transport.ErrClosed
	}
	return c.Conn.Send(b)
}

func (c *deafConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// Others coming and going cannot get a node that stopped reading cut:
// once its queue is half full, their joins and leaves are not announced
// to it (counted as unannounced), and it stays a member.
func TestChurnCannotCutASlowNode(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{})
	if !z.JoinSlot() {
		t.Fatal("no join slot")
	}
	var deaf *deafConn
	victim := &rawNode{End: relaytest.Serve(t, func(c transport.Conn) {
		deaf = &deafConn{Conn: c, closed: make(chan struct{})}
		z.Serve(context.Background(), deaf, "pipe")
	})}
	victim.id, _ = identity.New()
	_, adm := victim.Admit(victim.id)
	deaf.deaf.Store(true)

	churner, _ := identity.New()
	for i := 0; i < OutQueue+64; i++ {
		x, _ := admit(t, z, churner)
		x.leave(z)
	}
	l := z.Stats().Limits
	if z.Member(adm.Lease.Address) == nil || l.Stuck != 0 {
		t.Fatalf("the slow node was cut by others' churn: %+v", l)
	}
	if l.Unannounced == 0 {
		t.Fatalf("nothing counted as unannounced: %+v", l)
	}
}
