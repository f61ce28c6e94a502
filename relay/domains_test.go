package main

import (
	"fmt"
	"testing"

	"ddt/shared/identity"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// domainNode is a raw node that claims and looks up domains.
type domainNode struct{ *nameNode }

func joinDomains(t testing.TB, z *testZone) *domainNode { return &domainNode{joinNamed(t, z)} }

// domainClaim signs a claim of label by key for site at version.
func domainClaim(t testing.TB, key *identity.Identity, label string, site byte, version uint64) *wire.DomainClaim {
	t.Helper()
	c, err := names.NewDomainClaim(key, label, [32]byte{site}, version)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (n *domainNode) result(id uint32) *wire.DomainResult {
	n.t.Helper()
	return n.until(fmt.Sprintf("domain result %d", id), func(m wire.Message) bool {
		r, ok := m.(*wire.DomainResult)
		return ok && r.ID == id
	}).(*wire.DomainResult)
}

func (n *domainNode) claim(c *wire.DomainClaim) *wire.DomainResult {
	n.t.Helper()
	n.last++
	n.send(&wire.ClaimDomain{ID: n.last, Claim: *c})
	return n.result(n.last)
}

func (n *domainNode) lookup(label string) *wire.DomainResult {
	n.t.Helper()
	n.last++
	n.send(&wire.DomainLookup{ID: n.last, Hash: names.DomainHash(label)})
	return n.result(n.last)
}

// wantDomain checks that res carries a record of label that verifies,
// sequenced by the relay with key home.
func wantDomain(t testing.TB, res *wire.DomainResult, label string, home [32]byte, zoneOf names.ZoneOf) *wire.DomainRecord {
	t.Helper()
	if res.Code != wire.CodeNone || res.Record == nil {
		t.Fatalf("no record of %s: %v", label, res.Err())
	}
	if _, err := names.VerifyDomain(res.Record, zoneOf); err != nil || res.Record.Claim.Domain != label {
		t.Fatalf("the record of %s (%s) does not verify: %v", label, res.Record.Claim.Domain, err)
	}
	if res.Record.RelayKey != home {
		t.Fatalf("%s was sequenced by zone %s, not its home", label, res.Record.Zone)
	}
	return res.Record
}

func wantDomainRefused(t testing.TB, res *wire.DomainResult, code wire.Code, says string) {
	t.Helper()
	wantRefused(t, &wire.NameResult{Code: res.Code, Message: res.Message, Record: nil}, code, says)
	if res.Record != nil {
		t.Fatalf("a refusal (%q) with a record", res.Message)
	}
}

// domainHomedAt returns a label whose home, among hubs' keys, is home.
func domainHomedAt(t testing.TB, home *Relay, hubs ...*Relay) string {
	t.Helper()
	keys := make([][32]byte, len(hubs))
	for i, h := range hubs {
		keys[i] = h.Key()
	}
	for i := 0; i < 1000; i++ {
		label := fmt.Sprintf("site-%d", i)
		if k, _ := names.Home(names.DomainHash(label), keys); k == home.Key() {
			return label
		}
	}
	t.Fatal("no domain homed at the relay")
	return ""
}

// Domains across two zones: a node of zone a claims a domain whose home
// is zone b's relay; the claim is sequenced there, first come wins, only
// the owner's higher versions update it, and either zone's nodes look it
// up.
func TestDomainsAcrossZones(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a, b := zs[0], zs[1]
	zoneOf := zonesOf(a.relay, b.relay)
	label := domainHomedAt(t, b.relay, a.relay, b.relay)
	owner, rival := joinDomains(t, a), joinDomains(t, b)
	home := b.relay.Key()

	v1 := domainClaim(t, owner.id, label, 1, 1)
	rec := wantDomain(t, owner.claim(v1), label, home, zoneOf)
	if !names.SameDomainClaim(&rec.Claim, v1) || rec.Zone != "zone-b" {
		t.Fatalf("the record is of another claim or zone: %+v", rec)
	}
	// The same claim again is the same record.
	again := wantDomain(t, owner.claim(v1), label, home, zoneOf)
	if again.Index != rec.Index {
		t.Fatalf("the same claim was sequenced again at %d (first at %d)", again.Index, rec.Index)
	}
	// Another key, from either zone, at any version: taken.
	wantDomainRefused(t, rival.claim(domainClaim(t, rival.id, label, 9, 1)), wire.CodeNameTaken, fmt.Sprintf("%q is taken", label+".ddt"))
	wantDomainRefused(t, rival.claim(domainClaim(t, rival.id, label, 9, 50)), wire.CodeNameTaken, "is taken")
	// The owner's update at a higher version is sequenced and found by
	// lookups from both zones; an equal or lower version is refused.
	v3 := domainClaim(t, owner.id, label, 3, 3)
	r3 := wantDomain(t, owner.claim(v3), label, home, zoneOf)
	if r3.Index <= rec.Index {
		t.Fatalf("the update is at index %d, the first claim at %d", r3.Index, rec.Index)
	}
	wantDomainRefused(t, owner.claim(domainClaim(t, owner.id, label, 2, 2)), wire.CodeStale, "version 2 is not newer than 3")
	wantDomainRefused(t, owner.claim(domainClaim(t, owner.id, label, 4, 3)), wire.CodeStale, "version 3 is not newer than 3")
	for _, n := range []*domainNode{owner, rival} {
		got := wantDomain(t, n.lookup(label), label, home, zoneOf)
		if !names.SameDomainClaim(&got.Claim, v3) {
			t.Fatalf("a lookup found version %d, not 3", got.Claim.Version)
		}
	}
	// A forged claim: the site changed after signing.
	forged := domainClaim(t, owner.id, label, 5, 5)
	forged.Site[0] = 6
	wantDomainRefused(t, owner.claim(forged), wire.CodeBadName, "does not verify")
	// A claim signed by a key that is not the node's.
	other, _ := identity.New()
	wantDomainRefused(t, owner.claim(domainClaim(t, other, "mine", 1, 1)), wire.CodeBadName, "signed by another key")
	// Nobody holds it.
	for _, n := range []*domainNode{owner, rival} {
		wantDomainRefused(t, n.lookup(domainHomedAt(t, a.relay, a.relay, b.relay)+"-x"), wire.CodeNotFound, "no such domain")
	}
	wantDomainRefused(t, rival.lookup("nobody"), wire.CodeNotFound, "no such domain")
	// One key holds many domains (no one-per-key rule), and a username
	// beside them.
	// (Zone a's relay may still be mirroring zone b's ledger, which just
	// grew: that is "try again".)
	second := domainHomedAt(t, a.relay, a.relay, b.relay)
	var dres *wire.DomainResult
	wait.Until(t, wait.Default, "a second domain for one key", func() bool {
		dres = owner.claim(domainClaim(t, owner.id, second, 1, 1))
		return dres.Code != wire.CodeUnavailable
	})
	wantDomain(t, dres, second, a.relay.Key(), zoneOf)
	// (The username's home may still be mirroring the other zone's
	// ledger, which just grew: that is "try again".)
	var res *wire.NameResult
	wait.Until(t, wait.Default, "a username for the domains' owner", func() bool {
		res = owner.nameNode.claim(owner.claimOf(label[:4]+"x", 1))
		return res.Code != wire.CodeUnavailable
	})
	wantRecord(t, res, label[:4]+"x", zoneOf)
	if sb := b.relay.Stats().Names; sb.Domains != 1 {
		t.Fatalf("zone b's relay holds %d domains; want 1", sb.Domains)
	}
	if sa := a.relay.Stats().Names; sa.Domains != 1 {
		t.Fatalf("zone a's relay holds %d domains; want 1", sa.Domains)
	}
}

// A domain and a username of one label are different things: a ledger's
// username entries count for nothing in deciding a domain, and the
// domain's entries for nothing in the username audit.
func TestDomainBesideUsername(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-d"})
	zoneOf := zonesOf(z.relay)
	x, y := joinDomains(t, z), joinDomains(t, z)
	wantRecord(t, x.nameNode.claim(x.claimOf("alice", 1)), "alice", zoneOf)
	rec := wantDomain(t, y.claim(domainClaim(t, y.id, "alice", 1, 1)), "alice", z.relay.Key(), zoneOf)
	if rec.Claim.SignKey != y.id.SignKey() {
		t.Fatal("the domain went to the username's owner")
	}
	wantRefused(t, y.nameNode.claim(y.claimOf("alice", 1)), wire.CodeNameTaken, `"alice" is taken`)
	es, err := z.relay.Ledger.Log().Entries(0, z.relay.Ledger.Log().Size())
	if err != nil {
		t.Fatal(err)
	}
	a, err := auditNames(es)
	if err != nil || a.entries != 1 || a.names != 1 {
		t.Fatalf("audit of a ledger with a username and a domain: %+v, %v", a, err)
	}
}
