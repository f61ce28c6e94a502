package registrar

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"ddt/relay/internal/relaytest"
	"ddt/relay/internal/stack"
	"ddt/relay/zone"
	"ddt/relay/zoneledger"
	"ddt/shared/clock"
	"ddt/shared/identity"
	"ddt/shared/names"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// newClockRelay is newTestRelay on a virtual clock: rate limits are
// exact, and forwarded requests wait until the test moves the clock.
func newClockRelay(t testing.TB) (*testRelay, *clock.Virtual) {
	t.Helper()
	clk := clock.NewVirtual(time.Now())
	r := stack.NewClock(t, clk)
	lg, err := zoneledger.New(zoneledger.Config{Zone: "zone-a", Key: r.Key, Store: r.Store, Federation: r.Fed})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(Config{Zone: r.Zone, Federation: r.Fed, Ledger: lg, Store: r.Store, Wait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(reg.Close)
	return &testRelay{t: t, zone: r.Zone, fed: r.Fed, reg: reg}, clk
}

// homedAt returns n names starting with prefix whose home among keys is at.
func homedAt(n int, prefix string, at [32]byte, keys ...[32]byte) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		if home, _ := names.Home(names.Hash(name), keys); home == at {
			out = append(out, name)
		}
	}
	return out
}

// wantCode checks that res refuses with code, saying says.
func wantCode(t testing.TB, res *wire.NameResult, code wire.Code, says string) {
	t.Helper()
	if res.Code != code || res.Record != nil || !strings.Contains(res.Message, says) {
		t.Fatalf("answer %d %q (record %v), want %d saying %q", res.Code, res.Message, res.Record != nil, code, says)
	}
}

// linkResult reads a fake relay's link until the NameResult for id.
func linkResult(e *relaytest.End, id uint32) *wire.NameResult {
	e.T.Helper()
	return e.Until(fmt.Sprintf("name result %d", id), func(m wire.Message) bool { r, ok := m.(*wire.NameResult); return ok && r.ID == id }).(*wire.NameResult)
}

// A relay this one does not trust (linked in -federation=open mode) is
// no name's home whatever its key, decides nothing for its members, and
// hears nothing of names; an answer from a relay no longer trusted never
// reaches the node that asked.
func TestUntrustedRelayDecidesNoName(t *testing.T) {
	r := newTestRelayOn(t, stack.NewOpen(t))
	uid, _ := identity.New()
	u := relaytest.LinkAs(t, r.fed, uid, "zone-u", wire.Features{wire.FeatureNames}) // nobody named it
	if k, _ := r.fed.Lookup(uid.SignKey()); k.Link == nil || k.Trusted {
		t.Fatalf("the relay nobody named is not linked as untrusted: %+v", k)
	}
	a, uk := r.zone.Key(), uid.SignKey()
	atU := homedAt(2, "u", uk, a, uk) // by key, u would be their home

	n := r.node()
	res := n.claim(atU[0])
	if res.Record == nil || res.Record.RelayKey != a {
		t.Fatalf("a name whose home by key is an untrusted relay: %v %+v", res.Err(), res.Record)
	}
	n.last++
	n.Send(&wire.NameLookup{ID: n.last, Hash: names.Hash(atU[1])})
	wantCode(t, n.result(n.last), wire.CodeNotFound, "no such name")

	// Its members' claims and its lookups are refused, and it was
	// forwarded nothing.
	member, _ := identity.New()
	lease := uid.IssueLease(member.SignKey(), member.AgreeKey(), [16]byte{7}, "zone-u", time.Now(), zone.LeaseTTL)
	atA := homedAt(1, "a", a, a, uk)[0]
	c, _ := names.NewClaim(member, &lease, atA, 1)
	u.Send(&wire.RelayNameClaim{ID: 1, Lease: lease, Claim: *c})
	u.Send(&wire.NameLookup{ID: 2, Hash: names.Hash(atU[0])})
	got := map[uint32]*wire.NameResult{}
	u.Until("two answers", func(m wire.Message) bool {
		switch m := m.(type) {
		case *wire.RelayNameClaim, *wire.NameLookup:
			t.Fatalf("an untrusted relay was forwarded a %T", m)
		case *wire.NameResult:
			got[m.ID] = m
		}
		return len(got) == 2
	})
	for id := uint32(1); id <= 2; id++ {
		wantCode(t, got[id], wire.CodeUnsupported, "does not trust yours for names")
	}
	if s := r.reg.Stats(); s.Untrusted != 2 || s.Sequenced != 1 {
		t.Fatalf("names stats %+v", s)
	}

	// A trusted relay is asked; by the time it answers it is trusted no
	// longer: its answer reaches nobody.
	v, vid := r.fake("zone-v", wire.Features{wire.FeatureNames})
	atV := homedAt(1, "v", vid.SignKey(), a, vid.SignKey())[0]
	other := r.node()
	c2, _ := names.NewClaim(other.id, &other.lease, atV, 1)
	other.last++
	other.Send(&wire.NameClaim{ID: other.last, Claim: *c2})
	fwd := relaytest.Next[*wire.RelayNameClaim](v, "the claim forwarded to v")
	r.reg.Distrust(vid.SignKey())
	v.Send(&wire.NameResult{ID: fwd.ID, Code: wire.CodeNameTaken, Message: "taken at v"})
	wantCode(t, other.result(other.last), wire.CodeUnavailable, "not trusted for names")
	if s := r.reg.Stats(); s.Untrusted != 3 {
		t.Fatalf("names stats %+v", s)
	}
}

// The home refuses a key a second name, whether its own node sends the
// claim past the node's own check or another relay forwards it; the
// name the key holds it may still update.
func TestOneNamePerKey(t *testing.T) {
	r := newTestRelay(t)
	n := r.node()
	if res := n.claim("alice"); res.Record == nil {
		t.Fatalf("first name: %v", res.Err())
	}
	wantCode(t, n.claim("bob"), wire.CodeAlreadyRegistered, `this node is already registered as "alice"`)
	c, _ := names.NewClaim(n.id, &n.lease, "alice", 2)
	n.last++
	n.Send(&wire.NameClaim{ID: n.last, Claim: *c})
	if res := n.result(n.last); res.Record == nil || res.Record.Claim.Version != 2 {
		t.Fatalf("updating the name it holds: %v", res.Err())
	}
	// bob is still free for another key.
	if res := r.node().claim("bob"); res.Record == nil {
		t.Fatalf("bob for another key: %v", res.Err())
	}

	// A member of a federated zone, through its relay.
	y, yid := r.fake("zone-y", wire.Features{wire.FeatureNames})
	a := r.zone.Key()
	atA := homedAt(2, "m", a, a, yid.SignKey())
	member, _ := identity.New()
	lease := yid.IssueLease(member.SignKey(), member.AgreeKey(), [16]byte{3}, "zone-y", time.Now(), zone.LeaseTTL)
	c1, _ := names.NewClaim(member, &lease, atA[0], 1)
	y.Send(&wire.RelayNameClaim{ID: 10, Lease: lease, Claim: *c1})
	if res := linkResult(y, 10); res.Record == nil {
		t.Fatalf("the member's first name: %v", res.Err())
	}
	c2, _ := names.NewClaim(member, &lease, atA[1], 1)
	y.Send(&wire.RelayNameClaim{ID: 11, Lease: lease, Claim: *c2})
	wantCode(t, linkResult(y, 11), wire.CodeAlreadyRegistered, fmt.Sprintf("already registered as %q", atA[0]))
	if s := r.reg.Stats(); s.SecondNames != 2 || s.Sequenced != 3 {
		t.Fatalf("names stats %+v", s)
	}
}

// One node cannot fill the table of requests waiting for other relays:
// past MaxPendingPerNode it is told to wait, and other nodes' requests
// still go out.
func TestPendingPerNode(t *testing.T) {
	r, _ := newClockRelay(t)
	y, yid := r.fake("zone-y", wire.Features{wire.FeatureNames})
	a := r.zone.Key()
	atY := homedAt(MaxPendingPerNode+6, "p", yid.SignKey(), a, yid.SignKey())
	n := r.node()
	for _, name := range atY[:MaxPendingPerNode+5] {
		n.last++
		n.Send(&wire.NameLookup{ID: n.last, Hash: names.Hash(name)})
	}
	// The requests over the quota are answered at once, the others wait.
	for range 5 {
		res := relaytest.Next[*wire.NameResult](n.End, "a refusal")
		wantCode(t, res, wire.CodeRateLimited, fmt.Sprintf("%d of your name requests already wait", MaxPendingPerNode))
	}
	wait.Until(t, wait.Default, "the node's requests wait", func() bool { return r.reg.Pending() == MaxPendingPerNode })
	other := r.node()
	other.last++
	other.Send(&wire.NameLookup{ID: other.last, Hash: names.Hash(atY[len(atY)-1])})
	wait.Until(t, wait.Default, "another node's request waits too", func() bool { return r.reg.Pending() == MaxPendingPerNode+1 })
	seen := 0
	y.Until("every lookup that went out", func(m wire.Message) bool {
		if _, ok := m.(*wire.NameLookup); ok {
			seen++
		}
		return seen == MaxPendingPerNode+1
	})
	if s := r.reg.Stats(); s.PendingRefused != 5 {
		t.Fatalf("names stats %+v", s)
	}
	// A node that leaves takes its waiting requests with it.
	n.Conn.Close()
	wait.Until(t, wait.Default, "the node's requests are gone", func() bool { return r.reg.Pending() == 1 })
}

// The limits the README states: per node 5 claims/s (bursts of 20) and
// 20 lookups/s (bursts of 50); per federation link 500 claims and
// lookups a second (bursts of 1000).
func TestExactNameRates(t *testing.T) {
	r, clk := newClockRelay(t)
	if ClaimRate != 5 || ClaimBurst != 20 || LookupRate != 20 || LookupBurst != 50 || LinkRate != 500 || LinkBurst != 1000 {
		t.Fatalf("the limits are not the README's: %d/%d %d/%d %d/%d", ClaimRate, ClaimBurst, LookupRate, LookupBurst, LinkRate, LinkBurst)
	}
	// allowed sends count frames made by frame and reports how many were
	// not rate limited. The clock stands still, so the frames may go in
	// batches, each answered (in any order) before the next: the relay's
	// queue to us is bounded, and drops what does not fit.
	allowed := func(e *relaytest.End, count int, frame func(id uint32) wire.Message) int {
		t.Helper()
		ok := 0
		for from := 0; from < count; from += 100 {
			batch := min(100, count-from)
			for i := range batch {
				e.Send(frame(uint32(1_000_000 + from + i)))
			}
			codes := map[uint32]wire.Code{}
			e.Until(fmt.Sprintf("%d answers", batch), func(m wire.Message) bool {
				if res, ok := m.(*wire.NameResult); ok && res.ID >= 1_000_000 {
					codes[res.ID] = res.Code
				}
				return len(codes) == batch
			})
			for _, c := range codes {
				if c != wire.CodeRateLimited {
					ok++
				}
			}
		}
		return ok
	}
	n := r.node()
	claim, _ := names.NewClaim(n.id, &n.lease, "alice", 1)
	claims := func(count int) int {
		return allowed(n.End, count, func(id uint32) wire.Message { return &wire.NameClaim{ID: id, Claim: *claim} })
	}
	lookups := func(count int) int {
		return allowed(n.End, count, func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: names.Hash("nobody")} })
	}
	if got := claims(ClaimBurst + 3); got != ClaimBurst {
		t.Fatalf("%d claims at once allowed, want the burst of %d", got, ClaimBurst)
	}
	if got := lookups(LookupBurst + 3); got != LookupBurst {
		t.Fatalf("%d lookups at once allowed, want the burst of %d", got, LookupBurst)
	}
	clk.Advance(time.Second)
	if got := claims(ClaimRate + 3); got != ClaimRate {
		t.Fatalf("%d claims allowed a second later, want %d", got, ClaimRate)
	}
	if got := lookups(LookupRate + 3); got != LookupRate {
		t.Fatalf("%d lookups allowed a second later, want %d", got, LookupRate)
	}

	y, _ := r.fake("zone-y", wire.Features{wire.FeatureNames})
	links := func(count int) int {
		return allowed(y, count, func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: names.Hash("nobody")} })
	}
	if got := links(LinkBurst + 3); got != LinkBurst {
		t.Fatalf("%d lookups from a relay at once allowed, want the burst of %d", got, LinkBurst)
	}
	clk.Advance(time.Second)
	if got := links(LinkRate + 3); got != LinkRate {
		t.Fatalf("%d lookups from a relay allowed a second later, want %d", got, LinkRate)
	}
}
