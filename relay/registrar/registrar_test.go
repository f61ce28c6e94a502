package registrar

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"ddt/relay/federation"
	"ddt/relay/internal/relaytest"
	"ddt/relay/internal/stack"
	"ddt/relay/zone"
	"ddt/relay/zoneledger"
	"ddt/shared/identity"
	"ddt/shared/names"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// testRelay is a relay with the username service, in memory.
type testRelay struct {
	t    testing.TB
	zone *zone.Zone
	fed  *federation.Federation
	reg  *Registrar
}

func newTestRelay(t testing.TB) *testRelay { return newTestRelayOn(t, stack.New(t)) }

// newTestRelayOn runs the registrar on r.
func newTestRelayOn(t testing.TB, r *stack.Relay) *testRelay {
	t.Helper()
	lg, err := zoneledger.New(zoneledger.Config{Zone: "zone-a", Key: r.Key, Store: r.Store, Federation: r.Fed})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(Config{Zone: r.Zone, Federation: r.Fed, Ledger: lg, Store: r.Store, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(reg.Close)
	return &testRelay{t: t, zone: r.Zone, fed: r.Fed, reg: reg}
}

// node is a raw node of the relay's zone.
type node struct {
	*relaytest.End
	id    *identity.Identity
	ch    *wire.Challenge
	lease wire.Lease
	last  uint32
}

func (r *testRelay) node() *node {
	r.t.Helper()
	if !r.zone.JoinSlot() {
		r.t.Fatal("no join slot")
	}
	n := &node{End: relaytest.Serve(r.t, func(c transport.Conn) { r.zone.Serve(context.Background(), c, "pipe") })}
	n.id, _ = identity.New()
	ch, adm := n.Admit(n.id)
	n.ch, n.lease = ch, adm.Lease
	return n
}

// claim claims name and returns the answer.
func (n *node) claim(name string) *wire.NameResult {
	n.T.Helper()
	c, err := names.NewClaim(n.id, &n.lease, name, 1)
	if err != nil {
		n.T.Fatal(err)
	}
	n.last++
	n.Send(&wire.NameClaim{ID: n.last, Claim: *c})
	return n.result(n.last)
}

func (n *node) result(id uint32) *wire.NameResult {
	n.T.Helper()
	return n.Until(fmt.Sprintf("name result %d", id), func(m wire.Message) bool { r, ok := m.(*wire.NameResult); return ok && r.ID == id }).(*wire.NameResult)
}

// fake links a fake relay of zone name, announcing features.
func (r *testRelay) fake(name string, features wire.Features) (*relaytest.End, *identity.Identity) {
	r.t.Helper()
	return relaytest.FakeRelay(r.t, r.fed, name, features)
}

func (r *testRelay) zoneOf(k [32]byte) (string, bool) {
	if k == r.zone.Key() {
		return "zone-a", true
	}
	return "", false
}

// A node that sends message types it invented keeps its link and can
// still claim a name; the relay lists the username and the sites
// service to nodes.
func TestNodeUnknownTypesThenClaim(t *testing.T) {
	r := newTestRelay(t)
	n := r.node()
	if !slices.Equal(n.ch.Features, wire.NewFeatures(wire.FeatureNames, wire.FeatureSites)) {
		t.Fatalf("challenge features %v", n.ch.Features)
	}
	n.SendRaw([]byte{wire.Version, 250, 1, 2, 3})
	n.SendRaw([]byte{wire.Version, 15}) // the usernames range, not a type yet
	res := n.claim("alice")
	if res.Record == nil {
		t.Fatalf("claim: %v", res.Err())
	}
	if _, err := names.Verify(res.Record, "alice", r.zoneOf); err != nil {
		t.Fatal(err)
	}
	if s := r.zone.Stats(); s.Unknown != 2 || s.Dropped != 0 {
		t.Fatalf("zone stats %+v", s)
	}
	if s := r.reg.Stats(); s.Sequenced != 1 || s.Claims != 1 {
		t.Fatalf("names stats %+v", s)
	}
}

// A name's home is chosen among the relays that run the username
// service: a linked relay that did not announce it is never a home and
// never gets a name frame; its name frames are refused.
func TestHomeAmongRelaysWithTheService(t *testing.T) {
	r := newTestRelay(t)
	x, xid := r.fake("zone-x", wire.Features{wire.FeatureLedger})
	a, xk := r.zone.Key(), xid.SignKey()
	used := map[string]bool{}
	homedAt := func(at [32]byte, keys ...[32]byte) string {
		for i := 0; ; i++ {
			name := fmt.Sprintf("h%d", i)
			if home, _ := names.Home(names.Hash(name), keys); home == at && !used[name] {
				used[name] = true
				return name
			}
		}
	}
	// By key, x would be this name's home; it does not run the service.
	here := homedAt(xk, a, xk)
	n := r.node()
	if res := n.claim(here); res.Record == nil || res.Record.RelayKey != a {
		t.Fatalf("a name whose home by key is a relay without the service: %v %+v", res.Err(), res.Record)
	}
	// A relay with the service is a home: its names go there.
	y, yid := r.fake("zone-y", wire.Features{wire.FeatureLedger, wire.FeatureNames})
	there := homedAt(yid.SignKey(), a, yid.SignKey())
	c, _ := names.NewClaim(n.id, &n.lease, there, 1)
	n.last++
	n.Send(&wire.NameClaim{ID: n.last, Claim: *c})
	fwd := relaytest.Next[*wire.RelayNameClaim](y, "the claim forwarded to y")
	if fwd.Claim.Name != there {
		t.Fatalf("forwarded %q", fwd.Claim.Name)
	}
	y.Send(&wire.NameResult{ID: fwd.ID, Code: wire.CodeNameTaken, Message: "taken at y"})
	if res := n.result(n.last); res.Code != wire.CodeNameTaken {
		t.Fatalf("answer %+v", res)
	}
	// Lookups of names nobody holds go to their home among y and a, never x.
	for i := range 10 {
		n.last++
		n.Send(&wire.NameLookup{ID: n.last, Hash: names.Hash(fmt.Sprintf("nobody%d", i))})
	}
	// x heard nothing of names, and its name frames are refused.
	summaries := 0
	x.Until("three summaries", func(m wire.Message) bool {
		switch m.(type) {
		case *wire.RelayNameClaim, *wire.NameLookup, *wire.NameResult:
			t.Fatalf("a relay without the username service got %T", m)
		case *wire.ZoneSummary:
			summaries++
		}
		return summaries == 3
	})
	x.Send(&wire.NameLookup{ID: 1, Hash: names.Hash(here)})
	x.ExpectError(wire.CodeUnsupported)
}

// A relay that sends frame types it invented keeps its link and is
// answered afterwards.
func TestLinkUnknownTypesThenLookup(t *testing.T) {
	r := newTestRelay(t)
	n := r.node()
	if res := n.claim("bob"); res.Record == nil {
		t.Fatalf("claim: %v", res.Err())
	}
	y, _ := r.fake("zone-y", wire.Features{wire.FeatureNames})
	y.SendRaw([]byte{wire.Version, 78, 1})
	y.SendRaw([]byte{wire.Version, 90})
	y.Send(&wire.NameLookup{ID: 5, Hash: names.Hash("bob")})
	res := y.Until("the answer", func(m wire.Message) bool { r, ok := m.(*wire.NameResult); return ok && r.ID == 5 }).(*wire.NameResult)
	if res.Record == nil || res.Record.Claim.Name != "bob" {
		t.Fatalf("lookup: %v", res.Err())
	}
	if s := r.fed.Stats(); s.Unknown != 2 || s.Dropped != 0 || s.Links != 1 {
		t.Fatalf("federation stats %+v", s)
	}
	// A request forwarded to y waits on the relay's clock, and y going
	// away answers it at once.
	var homedAtY string
	for i := 0; homedAtY == ""; i++ {
		name := fmt.Sprintf("w%d", i)
		if home, _ := names.Home(names.Hash(name), [][32]byte{r.zone.Key(), r.fed.Known()[0].Info.Key}); home != r.zone.Key() {
			homedAtY = name
		}
	}
	c, _ := names.NewClaim(n.id, &n.lease, homedAtY, 1)
	n.last++
	n.Send(&wire.NameClaim{ID: n.last, Claim: *c})
	relaytest.Next[*wire.RelayNameClaim](y, "the forwarded claim")
	if r.reg.Pending() != 1 {
		t.Fatalf("%d pending", r.reg.Pending())
	}
	y.Conn.Close()
	if res := n.result(n.last); res.Code != wire.CodeUnavailable {
		t.Fatalf("answer %+v", res)
	}
	wait.Until(t, wait.Default, "nothing pending", func() bool { return r.reg.Pending() == 0 })
}

// A key holds at most MaxDomainsPerKey domains at a relay (claims cost
// nothing yet, and each is an entry every trusted relay mirrors for
// good); its updates of those it holds still go through, and another
// key's claims are not counted against it.
func TestDomainsPerKey(t *testing.T) {
	r := newTestRelay(t)
	key, _ := identity.New()
	claim := func(label string, version uint64) *result {
		c, err := names.NewDomainClaim(key, label, [32]byte{byte(version)}, version)
		if err != nil {
			t.Fatal(err)
		}
		return r.reg.decide(r.reg.domain, domainClaim{c})
	}
	for i := range MaxDomainsPerKey {
		if res := claim(fmt.Sprintf("site%d", i), 1); res.code != wire.CodeNone {
			t.Fatalf("domain %d: %s", i, res.msg)
		}
	}
	res := claim("one-too-many", 1)
	if res.code != wire.CodeRateLimited || res.msg == "" {
		t.Fatalf("domain %d of one key: code %d %q, want refused as rate-limited", MaxDomainsPerKey+1, res.code, res.msg)
	}
	if res := claim("site0", 2); res.code != wire.CodeNone {
		t.Errorf("an update of a domain the key holds: %s", res.msg)
	}
	other, _ := identity.New()
	c, _ := names.NewDomainClaim(other, "one-too-many", [32]byte{1}, 1)
	if res := r.reg.decide(r.reg.domain, domainClaim{c}); res.code != wire.CodeNone {
		t.Errorf("another key's first domain: %s", res.msg)
	}
}
