package zone

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"ddt/relay/internal/relaytest"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/wire"
)

func newFakeClock() *clock.Virtual {
	return clock.NewVirtual(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

const week = 7 * 24 * time.Hour

// onClock runs the zone on vc. The virtual clock also drives the zone's
// sweep, which these tests call themselves: a sweep interval of a
// hundred weeks keeps it from running on its own within them.
func onClock(vc *clock.Virtual) Config { return Config{Clock: vc, SweepEvery: 100 * week} }

// visit admits ident, checks its lease is issued on the zone's clock, and
// leaves again; it returns the address the node had.
func visit(t *testing.T, z *Zone, clock *clock.Virtual, ident *identity.Identity) id.Address {
	t.Helper()
	r, adm := admit(t, z, ident)
	if adm.Lease.Issued != clock.Now().Unix() || adm.Lease.Expires != clock.Now().Add(LeaseTTL).Unix() {
		t.Fatalf("lease issued %d, expires %d; the clock says %d", adm.Lease.Issued, adm.Lease.Expires, clock.Now().Unix())
	}
	r.leave(z)
	return adm.Lease.Address
}

func TestLeaseLiveness(t *testing.T) {
	dir := t.TempDir()
	open := func() store.Store {
		st := relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
		return st
	}
	clock := newFakeClock()
	st := open()
	z := newTestZone(t, st, onClock(clock))
	ident, _ := identity.New()
	first := visit(t, z, clock, ident)

	// Back just within the lapse, after a relay restart: same address.
	z.Close()
	st.Close()
	z = newTestZone(t, open(), onClock(clock))
	clock.Advance(week - time.Minute)
	if again := visit(t, z, clock, ident); again != first {
		t.Fatalf("back after 7 days - 1 minute at %s, was %s", again.Short(), first.Short())
	}
	// The lapse counts from the last sighting: away 7 days + 1 minute
	// since then, the node gets a fresh address.
	clock.Advance(week + time.Minute)
	third := visit(t, z, clock, ident)
	if third == first {
		t.Fatal("a lapsed lease kept its address")
	}
	clock.Advance(week - time.Minute)
	if again := visit(t, z, clock, ident); again != third {
		t.Fatalf("the new address did not stick: %s, then %s", third.Short(), again.Short())
	}
}

func TestLeaseSweep(t *testing.T) {
	clock := newFakeClock()
	st := store.NewMemory()
	z := newTestZone(t, st, onClock(clock))
	idle, _ := identity.New()
	stays, _ := identity.New()
	idleAddr := visit(t, z, clock, idle)
	r, adm := admit(t, z, stays)

	// A record from before liveness was tracked: a bare lease, seen when issued.
	legacy, _ := identity.New()
	old := z.key.IssueLease(legacy.SignKey(), legacy.AgreeKey(), [16]byte{5}, "test", clock.Now(), LeaseTTL)
	b, _ := wire.Marshal(&old)
	st.Put(leaseKey(legacy.SignKey()), b)

	clock.Advance(week - 2*time.Minute)
	if n, err := z.Sweep(); n != 0 || err != nil {
		t.Fatalf("swept %d (%v) before any lease lapsed", n, err)
	}
	clock.Advance(3 * time.Minute) // idle: 7 days + 1 minute away
	if n, err := z.Sweep(); n != 2 || err != nil {
		t.Fatalf("swept %d (%v), want the idle node's and the legacy record", n, err)
	}
	if _, err := st.Get(leaseKey(idle.SignKey())); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the idle node's record is still there: %v", err)
	}
	// The connected node is never swept, however long it stays.
	clock.Advance(3 * week)
	if n, _ := z.Sweep(); n != 0 {
		t.Fatalf("swept %d with only a connected node", n)
	}
	if _, err := st.Get(leaseKey(stays.SignKey())); err != nil {
		t.Fatalf("the connected node's record: %v", err)
	}
	r.leave(z)
	clock.Advance(time.Hour)
	if again := visit(t, z, clock, stays); again != adm.Lease.Address {
		t.Fatal("a node connected for weeks lost its address when it reconnected")
	}
	if again := visit(t, z, clock, idle); again == idleAddr {
		t.Fatal("the swept node got its old address back")
	}
}

func TestLeaseRecordFormat(t *testing.T) {
	relay, _ := identity.New()
	node, _ := identity.New()
	l := relay.IssueLease(node.SignKey(), node.AgreeKey(), [16]byte{1}, "z", time.Unix(1_800_000_000, 0), LeaseTTL)
	seen := time.UnixMilli(1_800_000_123_456)
	b, err := (&leaseRecord{lease: l, seen: seen}).marshal()
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseLeaseRecord(b)
	if err != nil || r.lease != l || !r.seen.Equal(seen) {
		t.Fatalf("round trip: %+v %v", r, err)
	}
	bare, _ := wire.Marshal(&l)
	if r, err = parseLeaseRecord(bare); err != nil || r.lease != l || r.seen.Unix() != l.Issued {
		t.Fatalf("legacy record: %+v %v", r, err)
	}
	for _, bad := range [][]byte{nil, {recordTag}, {recordTag, 1, 2, 3, 4, 5, 6, 7, 8}, append([]byte{recordTag, 0, 0, 0, 0, 0, 0, 0, 0}, 1, 2)} {
		if _, err := parseLeaseRecord(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
}
