package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/relay/federation"
	"ddt/relay/internal/relaytest"
	"ddt/relay/registrar"
	"ddt/relay/zone"
	"ddt/relay/zoneledger"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// nameNode is a raw node that claims and looks up usernames.
type nameNode struct {
	*rawClient
	lease wire.Lease
	last  uint32 // the last request ID used
}

func joinNamed(t testing.TB, z *testZone) *nameNode {
	t.Helper()
	r, adm := admit(t, z, nil)
	return &nameNode{rawClient: r, lease: adm.Lease}
}

// claimOf signs a claim of name by n for its lease.
func (n *nameNode) claimOf(name string, version uint64) *wire.UserClaim {
	n.t.Helper()
	c, err := names.NewClaim(n.id, &n.lease, name, version)
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

// result reads until the NameResult for request id.
func (n *nameNode) result(id uint32) *wire.NameResult {
	n.t.Helper()
	return n.until(fmt.Sprintf("name result %d", id), func(m wire.Message) bool {
		r, ok := m.(*wire.NameResult)
		return ok && r.ID == id
	}).(*wire.NameResult)
}

// claim sends c and returns the relay's answer.
func (n *nameNode) claim(c *wire.UserClaim) *wire.NameResult {
	n.t.Helper()
	n.last++
	n.send(&wire.NameClaim{ID: n.last, Claim: *c})
	return n.result(n.last)
}

// lookup asks for the record of name.
func (n *nameNode) lookup(name string) *wire.NameResult {
	n.t.Helper()
	n.last++
	n.send(&wire.NameLookup{ID: n.last, Hash: names.Hash(name)})
	return n.result(n.last)
}

// zonesOf knows the relays of hubs, as a node admitted to any of them would.
func zonesOf(hubs ...*Relay) names.ZoneOf {
	return func(k [32]byte) (string, bool) {
		for _, h := range hubs {
			if h.Key() == k {
				return h.cfg.Zone, true
			}
		}
		return "", false
	}
}

// wantRecord checks that res carries a record of name that verifies.
func wantRecord(t testing.TB, res *wire.NameResult, name string, zoneOf names.ZoneOf) *wire.UserRecord {
	t.Helper()
	if res.Code != wire.CodeNone || res.Record == nil {
		t.Fatalf("no record of %q: %v", name, res.Err())
	}
	if _, err := names.Verify(res.Record, name, zoneOf); err != nil {
		t.Fatalf("the record of %q does not verify: %v", name, err)
	}
	return res.Record
}

// wantRefused checks that res refuses with code and a message holding says.
func wantRefused(t testing.TB, res *wire.NameResult, code wire.Code, says string) {
	t.Helper()
	if res.Code != code || !strings.Contains(res.Message, says) || res.Record != nil {
		t.Fatalf("result %d %q (record %v); want code %d saying %q", res.Code, res.Message, res.Record != nil, code, says)
	}
}

func TestNameClaims(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-n"})
	zoneOf := zonesOf(z.relay)
	a, b := joinNamed(t, z), joinNamed(t, z)

	first := a.claimOf("Alice", 1)
	rec := wantRecord(t, a.claim(first), "alice", zoneOf)
	if rec.Zone != "zone-n" || rec.RelayKey != z.relay.Key() || !names.Same(&rec.Claim, first) {
		t.Fatalf("record %+v", rec)
	}
	wantRefused(t, b.claim(b.claimOf("ALICE", 1)), wire.CodeNameTaken, `"alice" is taken`)

	// The owner's retry gets the same record; a newer version updates it.
	again := wantRecord(t, a.claim(first), "alice", zoneOf)
	if again.Index != rec.Index || !names.Same(&again.Claim, first) {
		t.Fatalf("a retry got index %d, was %d", again.Index, rec.Index)
	}
	v2 := wantRecord(t, a.claim(a.claimOf("alice", 2)), "alice", zoneOf)
	if v2.Index <= rec.Index || v2.Claim.Version != 2 {
		t.Fatalf("update at index %d version %d", v2.Index, v2.Claim.Version)
	}
	wantRefused(t, a.claim(first), wire.CodeBadName, "version 1 is not newer than 2")
	wantRefused(t, b.claim(b.claimOf("alice", 9)), wire.CodeNameTaken, `"alice" is taken`)

	// Claims that do not verify, or are not for the sender's lease.
	forged := *b.claimOf("bob", 1)
	forged.Sig[3] ^= 1
	wantRefused(t, b.claim(&forged), wire.CodeBadName, "signature does not verify")
	wantRefused(t, b.claim(a.claimOf("carol", 1)), wire.CodeBadName, "sign key is not the one in your lease")
	elsewhere := *b.claimOf("dave", 1)
	elsewhere.Zone = "zone-x"
	elsewhere.Sig = b.id.Sign(elsewhere.SignedBytes())
	wantRefused(t, b.claim(&elsewhere), wire.CodeBadName, "zone is not the one in your lease")
	upper := *b.claimOf("erin", 1)
	upper.Name = "Erin"
	upper.Sig = b.id.Sign(upper.SignedBytes())
	wantRefused(t, b.claim(&upper), wire.CodeBadName, "not in canonical form")
	spaced := *b.claimOf("erin", 1)
	spaced.Name = "er in"
	spaced.Sig = b.id.Sign(spaced.SignedBytes())
	wantRefused(t, b.claim(&spaced), wire.CodeBadName, "only letters and digits")

	// A name longer than the wire allows, in raw bytes: refused as a bad
	// name, and the node stays connected.
	long := *b.claimOf(strings.Repeat("x", names.MaxLen), 1)
	frame, err := wire.Marshal(&wire.NameClaim{ID: 77, Claim: long})
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(frame, []byte(long.Name)) - 1
	if frame[at] != names.MaxLen {
		t.Fatalf("the name's length is not at %d", at)
	}
	frame = append(frame[:at:at], append([]byte{names.MaxLen + 1, 'x'}, frame[at+1:]...)...)
	if err := b.write(frame); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, b.result(77), wire.CodeBadName, "too long: 17 characters, at most 16")

	// Lookups: by anyone, of the latest version; an unknown name is not found.
	got := wantRecord(t, b.lookup("alice"), "alice", zoneOf)
	if got.Index != v2.Index || got.Claim.Version != 2 {
		t.Fatalf("lookup found index %d version %d", got.Index, got.Claim.Version)
	}
	wantRefused(t, b.lookup("nobody"), wire.CodeNotFound, "no such name")

	bob := wantRecord(t, b.claim(b.claimOf("bob", 1)), "bob", zoneOf)
	if bob.Claim.SignKey != b.id.SignKey() {
		t.Fatal("bob's record is not b's")
	}
	var stats Stats
	getJSON(t, z.url+"/healthz", &stats)
	if stats.Names.Sequenced != 2 || stats.Names.Claims < 12 || stats.Names.Lookups != 2 {
		t.Fatalf("/healthz names %+v", stats.Names)
	}

	// The audit counts the username entries.
	var out strings.Builder
	if err := runAudit([]string{"-relay", z.url, "-names"}, &out); err != nil {
		t.Fatal(err)
	}
	want := "3 username entries\nnames: 3 username entries: 2 names, 1 update, 0 claims of a name another key held first\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Fatalf("audit said %q, want it to end %q", out.String(), want)
	}
	// A username entry that does not parse fails the audit.
	if _, _, err := z.relay.Sequence([]byte{names.KindUser, 1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := runAudit([]string{"-relay", z.url}, io.Discard); err == nil || !strings.Contains(err.Error(), "entry 3: wire: malformed message: username entry of 3 bytes") {
		t.Fatalf("audit of a malformed username entry: %v", err)
	}
}

func TestNameRateLimit(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	n := joinNamed(t, z)
	c := n.claimOf("flood", 1)
	frames := registrar.ClaimBurst + 10
	for i := 1; i <= frames; i++ {
		n.send(&wire.NameClaim{ID: uint32(i), Claim: *c})
	}
	// Answers come as claims are decided, not necessarily in order.
	codes := map[uint32]wire.Code{}
	for len(codes) < frames {
		r := n.until("name results", func(m wire.Message) bool { _, ok := m.(*wire.NameResult); return ok }).(*wire.NameResult)
		codes[r.ID] = r.Code
	}
	limited := 0
	for _, c := range codes {
		switch c {
		case wire.CodeRateLimited:
			limited++
		case wire.CodeNone:
		default:
			t.Fatalf("code %d", c)
		}
	}
	if limited == 0 || limited > frames-registrar.ClaimBurst+2 {
		t.Fatalf("%d of %d claims rate limited, burst %d", limited, frames, registrar.ClaimBurst)
	}
}

func TestNamesSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	st := relaytest.OpenBolt(t, path)
	z := newZone(t, st, Config{Zone: "zone-r"})
	a := joinNamed(t, z)
	rec := wantRecord(t, a.claim(a.claimOf("alice", 1)), "alice", zonesOf(z.relay))
	z.stop()
	st.Close()

	st = relaytest.OpenBolt(t, path)
	z = newZone(t, st, Config{Zone: "zone-r"})
	zoneOf := zonesOf(z.relay)
	b := joinNamed(t, z)
	got := wantRecord(t, b.lookup("alice"), "alice", zoneOf)
	if got.Index != rec.Index || !names.Same(&got.Claim, &rec.Claim) {
		t.Fatalf("after restart the lookup found %+v", got)
	}
	wantRefused(t, b.claim(b.claimOf("alice", 1)), wire.CodeNameTaken, `"alice" is taken`)
	if s := z.relay.Stats().Names; s.Sequenced != 1 {
		t.Fatalf("names after restart %+v", s)
	}
}

// homedAt returns names whose home among the relays' keys is each relay, at
// least per of each.
func homedAt(t testing.TB, per int, hubs ...*Relay) map[*Relay][]string {
	t.Helper()
	keys := make([][32]byte, len(hubs))
	for i, h := range hubs {
		keys[i] = h.Key()
	}
	out := map[*Relay][]string{}
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("race%d", i)
		home, _ := names.Home(names.Hash(name), keys)
		for _, h := range hubs {
			if h.Key() == home && len(out[h]) < per {
				out[h] = append(out[h], name)
			}
		}
		done := true
		for _, h := range hubs {
			done = done && len(out[h]) == per
		}
		if done {
			return out
		}
	}
	t.Fatal("no names for every relay")
	return nil
}

func TestFederatedNameRace(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a, b := zs[0], zs[1]
	zoneOf := zonesOf(a.relay, b.relay)
	homes := homedAt(t, 3, a.relay, b.relay)
	var all []string
	for _, h := range []*Relay{a.relay, b.relay} {
		all = append(all, homes[h]...)
	}
	wins := map[int]int{}
	for _, name := range all {
		// A key holds one name: each race has its own two nodes.
		x, y := joinNamed(t, a), joinNamed(t, b)
		// Both claims are on the wire before either relay decides.
		cx, cy := x.claimOf(name, 1), y.claimOf(name, 1)
		x.last++
		y.last++
		fx, _ := wire.Marshal(&wire.NameClaim{ID: x.last, Claim: *cx})
		fy, _ := wire.Marshal(&wire.NameClaim{ID: y.last, Claim: *cy})
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for _, s := range []struct {
			n *nameNode
			f []byte
		}{{x, fx}, {y, fy}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs <- s.n.write(s.f)
			}()
		}
		close(start)
		wg.Wait()
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		rx, ry := x.result(x.last), y.result(y.last)
		var winner *nameNode
		var rec *wire.UserRecord
		switch {
		case rx.Code == wire.CodeNone && ry.Code == wire.CodeNameTaken:
			winner, rec = x, wantRecord(t, rx, name, zoneOf)
			wantRefused(t, ry, wire.CodeNameTaken, fmt.Sprintf("%q is taken", name))
		case ry.Code == wire.CodeNone && rx.Code == wire.CodeNameTaken:
			winner, rec = y, wantRecord(t, ry, name, zoneOf)
			wantRefused(t, rx, wire.CodeNameTaken, fmt.Sprintf("%q is taken", name))
		default:
			t.Fatalf("%s: x got %d %q, y got %d %q; want exactly one record", name, rx.Code, rx.Message, ry.Code, ry.Message)
		}
		if winner == x {
			wins[0]++
		} else {
			wins[1]++
		}
		home := a.relay
		if !contains(homes[a.relay], name) {
			home = b.relay
		}
		if rec.RelayKey != home.Key() {
			t.Fatalf("%s was sequenced by zone %s, not its home", name, rec.Zone)
		}
		// Either zone finds the winner.
		for _, n := range []*nameNode{x, y} {
			got := wantRecord(t, n.lookup(name), name, zoneOf)
			if !names.Same(&got.Claim, &rec.Claim) {
				t.Fatalf("%s: a lookup found another claim", name)
			}
		}
	}
	t.Logf("wins: zone a's node %d, zone b's node %d", wins[0], wins[1])
	y := joinNamed(t, b)
	sa, sb := a.relay.Stats().Names, b.relay.Stats().Names
	if sa.Sequenced != 3 || sb.Sequenced != 3 {
		t.Fatalf("sequenced: a %d, b %d; want 3 each", sa.Sequenced, sb.Sequenced)
	}
	// Once b mirrors a's ledger, b knows which of a's names are held
	// without asking; the lookups still find them.
	wait.Until(t, wait.Default, "b mirrors a's names", func() bool { return b.relay.Stats().Ledger.Mirrors["zone-a"] >= 3 })
	for _, name := range homes[a.relay] {
		wantRecord(t, y.lookup(name), name, zoneOf)
	}
	wantRefused(t, y.lookup("nobody"), wire.CodeNotFound, "no such name")
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestNameHomeDown(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a, b := zs[0], zs[1]
	homes := homedAt(t, 1, a.relay, b.relay)
	x := joinNamed(t, a)
	b.stop()
	linked(t, a, 0)
	atB := homes[b.relay][0]
	wantRefused(t, x.claim(x.claimOf(atB, 1)), wire.CodeUnavailable, "the relay that decides this name (zone zone-b) is unreachable; try again")
	wantRefused(t, x.lookup(atB), wire.CodeUnavailable, "(zone zone-b) is unreachable")
	// Names a decides itself still work.
	atA := homes[a.relay][0]
	wantRecord(t, x.claim(x.claimOf(atA, 1)), atA, zonesOf(a.relay))
	if n := a.relay.Stats().Names.Sequenced; n != 1 {
		t.Fatalf("zone a sequenced %d names", n)
	}
}

// A relay whose -peer it has never reached might not be the home it
// thinks it is: it decides nothing until that relay is linked, here by
// linking to it first (fedLink's relay names http://127.0.0.1:1 as its
// URL, where nothing listens).
func TestNamesWhileJoining(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Peers: []federation.Peer{{URL: "http://127.0.0.1:1"}}})
	n := joinNamed(t, z)
	wantRefused(t, n.claim(n.claimOf("alice", 1)), wire.CodeUnavailable, "still joining the federation")
	ident, _ := identity.New()
	fedLink(t, z, ident, "zone-x")
	name := ""
	for i := 0; name == ""; i++ {
		c := fmt.Sprintf("j%d", i)
		if home, _ := names.Home(names.Hash(c), [][32]byte{z.relay.Key(), ident.SignKey()}); home == z.relay.Key() {
			name = c
		}
	}
	wantRecord(t, n.claim(n.claimOf(name, 1)), name, zonesOf(z.relay))
}

// fakeNode is a node of a fake relay's zone: an identity and a lease the
// fake relay signed.
func (r *rawRelay) fakeNode() (*identity.Identity, wire.Lease) {
	n, _ := identity.New()
	return n, r.id.IssueLease(n.SignKey(), n.AgreeKey(), [16]byte{9}, r.info.Zone, time.Now(), zone.LeaseTTL)
}

// nameResult reads until the NameResult for id on a relay link.
func (r *rawRelay) nameResult(id uint32) *wire.NameResult {
	r.t.Helper()
	return r.until("name result", func(m wire.Message) bool { res, ok := m.(*wire.NameResult); return ok && res.ID == id }).(*wire.NameResult)
}

func TestRelayNameClaims(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-a"})
	ident, _ := identity.New()
	r := fedLink(t, z, ident, "zone-x")
	zoneOf := zonesOf(z.relay)
	homes := map[bool][]string{}
	for i := 0; len(homes[true]) < 2 || len(homes[false]) < 1; i++ {
		name := fmt.Sprintf("n%d", i)
		home, _ := names.Home(names.Hash(name), [][32]byte{z.relay.Key(), ident.SignKey()})
		homes[home == z.relay.Key()] = append(homes[home == z.relay.Key()], name)
	}
	atA, atX := homes[true][0], homes[false][0]

	// A member of the fake zone claims a name homed at a, through its relay.
	me, lease := r.fakeNode()
	c, _ := names.NewClaim(me, &lease, atA, 1)
	r.send(&wire.RelayNameClaim{ID: 1, Lease: lease, Claim: *c})
	wantRecord(t, r.nameResult(1), atA, zoneOf)
	r.send(&wire.NameLookup{ID: 2, Hash: names.Hash(atA)})
	if got := wantRecord(t, r.nameResult(2), atA, zoneOf); !names.Same(&got.Claim, c) {
		t.Fatal("a relay's lookup found another claim")
	}
	r.send(&wire.NameLookup{ID: 3, Hash: names.Hash("nobody")})
	wantRefused(t, r.nameResult(3), wire.CodeNotFound, "no such name")

	before := z.relay.Stats().Federated.Dropped
	// A lease the fake relay did not sign.
	other, _ := identity.New()
	stolen := other.IssueLease(me.SignKey(), me.AgreeKey(), [16]byte{9}, "zone-x", time.Now(), zone.LeaseTTL)
	c2, _ := names.NewClaim(me, &stolen, homes[true][1], 1)
	r.send(&wire.RelayNameClaim{ID: 4, Lease: stolen, Claim: *c2})
	wantRefused(t, r.nameResult(4), wire.CodeBadName, "lease does not verify")
	// A lease for another zone.
	them, elsewhere := r.fakeNode()
	elsewhere.Zone = "zone-y"
	elsewhere.Sig = ident.Sign(elsewhere.SignedBytes())
	c3, _ := names.NewClaim(them, &elsewhere, homes[true][1], 1)
	r.send(&wire.RelayNameClaim{ID: 5, Lease: elsewhere, Claim: *c3})
	wantRefused(t, r.nameResult(5), wire.CodeBadName, `not "zone-x"`)
	// A claim by one member with another member's lease.
	_, lease2 := r.fakeNode()
	r.send(&wire.RelayNameClaim{ID: 6, Lease: lease2, Claim: *c})
	wantRefused(t, r.nameResult(6), wire.CodeBadName, "not the one in your lease")
	// A name whose home, by a's view, is the fake relay itself.
	cx, _ := names.NewClaim(me, &lease, atX, 1)
	r.send(&wire.RelayNameClaim{ID: 7, Lease: lease, Claim: *cx})
	wantRefused(t, r.nameResult(7), wire.CodeUnavailable, "not the home of this name")
	// An answer to nothing is dropped; the link stays.
	r.send(&wire.NameResult{ID: 12345, Code: wire.CodeNameTaken, Message: "boo"})
	r.send(&wire.NameLookup{ID: 8, Hash: names.Hash(atA)})
	wantRecord(t, r.nameResult(8), atA, zoneOf)
	if d := z.relay.Stats().Federated.Dropped - before; d != 4 {
		t.Fatalf("%d frames dropped, want 4", d)
	}
}

// Claims forwarded to a home that stalls, lies, refuses or goes away.
func TestNameForwarding(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-a", NameWait: 200 * time.Millisecond})
	ident, _ := identity.New()
	r := fedLink(t, z, ident, "zone-x")
	var atX []string
	for i := 0; len(atX) < 5; i++ {
		name := fmt.Sprintf("n%d", i)
		if home, _ := names.Home(names.Hash(name), [][32]byte{z.relay.Key(), ident.SignKey()}); home == ident.SignKey() {
			atX = append(atX, name)
		}
	}
	n := joinNamed(t, z)
	forwarded := func() *wire.RelayNameClaim {
		return r.until("a forwarded claim", func(m wire.Message) bool { _, ok := m.(*wire.RelayNameClaim); return ok }).(*wire.RelayNameClaim)
	}
	claim := func(name string) (uint32, *wire.UserClaim) {
		c := n.claimOf(name, 1)
		n.last++
		n.send(&wire.NameClaim{ID: n.last, Claim: *c})
		return n.last, c
	}

	// The home never answers.
	id, c := claim(atX[0])
	fwd := forwarded()
	if !names.Same(&fwd.Claim, c) || fwd.Lease != n.lease || identity.VerifyLease(&fwd.Lease, z.relay.Key(), time.Now()) != nil {
		t.Fatalf("forwarded %+v", fwd)
	}
	start := time.Now()
	wantRefused(t, n.result(id), wire.CodeUnavailable, "the relay that decides this name (zone zone-x) is unreachable; try again")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the wait ran %v", d)
	}
	// A late answer is dropped.
	r.send(&wire.NameResult{ID: fwd.ID, Code: wire.CodeNameTaken})

	// It answers with a record that does not verify.
	id, _ = claim(atX[1])
	fwd = forwarded()
	r.send(&wire.NameResult{ID: fwd.ID, Record: &wire.UserRecord{Claim: fwd.Claim, RelayKey: ident.SignKey(), Zone: "zone-x"}})
	wantRefused(t, n.result(id), wire.CodeUnavailable, "does not verify")

	// It refuses: the refusal reaches the node.
	id, _ = claim(atX[2])
	fwd = forwarded()
	r.send(&wire.NameResult{ID: fwd.ID, Code: wire.CodeNameTaken, Message: fmt.Sprintf("%q is taken", atX[2])})
	wantRefused(t, n.result(id), wire.CodeNameTaken, fmt.Sprintf("%q is taken", atX[2]))

	// Lookups of names homed there go there too.
	n.last++
	n.send(&wire.NameLookup{ID: n.last, Hash: names.Hash(atX[3])})
	lk := r.until("a forwarded lookup", func(m wire.Message) bool { _, ok := m.(*wire.NameLookup); return ok }).(*wire.NameLookup)
	if lk.Hash != names.Hash(atX[3]) {
		t.Fatal("the lookup forwarded another hash")
	}
	r.send(&wire.NameResult{ID: lk.ID, Code: wire.CodeNotFound, Message: "no such name"})
	wantRefused(t, n.result(n.last), wire.CodeNotFound, "no such name")

	// The link goes while a claim waits: the node hears at once.
	id, _ = claim(atX[4])
	forwarded()
	r.c.CloseNow()
	wantRefused(t, n.result(id), wire.CodeUnavailable, "(zone zone-x) is unreachable")
	wait.Until(t, wait.Default, "nothing left waiting", func() bool {
		return z.relay.Names.Pending() == 0
	})
}

// nextResult reads until the NameResult for id, without failing the test
// (for other goroutines).
func nextResult(n *nameNode, id uint32) (*wire.NameResult, error) {
	for {
		m, err := n.tryRead()
		if err != nil {
			return nil, err
		}
		if r, ok := m.(*wire.NameResult); ok && r.ID == id {
			return r, nil
		}
	}
}

func medianDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = append([]time.Duration(nil), d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func medianFloat(f []float64) float64 {
	if len(f) == 0 {
		return 0
	}
	f = append([]float64(nil), f...)
	sort.Float64s(f)
	return f[len(f)/2]
}

// TestBenchNames prints the username benchmark table (make bench sets
// DDT_BENCH=1): claims per second through one relay on bbolt, end to end
// from a node's NameClaim on its WebSocket to the NameResult with its
// record, one claim at a time and from 8 nodes at once.
func TestBenchNames(t *testing.T) {
	if os.Getenv("DDT_BENCH") == "" {
		t.Skip("set DDT_BENCH=1 to run the username benchmark")
	}
	st := relaytest.OpenBolt(t, filepath.Join(t.TempDir(), "relay.db"))
	z := newZone(t, st, Config{Zone: "bench", MaxNodes: 256})
	zoneOf := zonesOf(z.relay)
	const rounds, perNode = 5, registrar.ClaimBurst
	seq := 0
	// run has nodes claimants claim perNode fresh names each (a node of
	// its own for each name: a key holds one name), all of them at once
	// or one claimant after another, and returns claims/s and the median
	// latency of one claim.
	run := func(nodes int, together bool) (float64, time.Duration) {
		ns := make([][]*nameNode, nodes)
		claims := make([][]*wire.UserClaim, nodes)
		for i := range ns {
			for range perNode {
				seq++
				n := joinNamed(t, z)
				ns[i] = append(ns[i], n)
				claims[i] = append(claims[i], n.claimOf(fmt.Sprintf("b%d", seq), 1))
			}
		}
		lat := make([][]time.Duration, nodes)
		claimAll := func(i int) {
			for k, c := range claims[i] {
				n := ns[i][k]
				t0 := time.Now()
				n.last++
				b, _ := wire.Marshal(&wire.NameClaim{ID: n.last, Claim: *c})
				if err := n.write(b); err != nil {
					t.Error(err)
					return
				}
				res, err := nextResult(n, n.last)
				if err != nil || res.Code != wire.CodeNone {
					t.Errorf("claim %s: %v %v", c.Name, err, res.Err())
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}
		start := time.Now()
		var wg sync.WaitGroup
		for i := range ns {
			if !together {
				claimAll(i)
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); claimAll(i) }()
		}
		wg.Wait()
		el := time.Since(start)
		var all []time.Duration
		for i := range ns {
			all = append(all, lat[i]...)
			for _, n := range ns[i] {
				n.c.CloseNow()
			}
		}
		return float64(nodes*perNode) / el.Seconds(), medianDur(all)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Usernames (one relay, bbolt file under %s, one fsync per Put; NameClaim on a node's WebSocket → NameResult with the record; median of %d rounds; %d CPUs):\n\n", os.TempDir(), rounds, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "| claims | per round | claims/s | latency of one claim |\n|---|---|---|---|\n")
	for _, c := range []struct {
		what     string
		nodes    int
		together bool
	}{{"one at a time (4 claimants in turn)", 4, false}, {"8 claimants at once", 8, true}} {
		var rates []float64
		var lats []time.Duration
		for range rounds {
			r, l := run(c.nodes, c.together)
			rates = append(rates, r)
			lats = append(lats, l)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %v |\n", c.what, c.nodes*perNode, medianFloat(rates), medianDur(lats).Round(10*time.Microsecond))
	}
	// Every record the relay sequenced verifies and is found.
	n := joinNamed(t, z)
	for i := 1; i <= seq; i += seq / 10 {
		name := fmt.Sprintf("b%d", i)
		wantRecord(t, n.lookup(name), name, zoneOf)
	}
	fmt.Fprintf(&b, "\n%d names in the relay's ledger.\n", z.relay.Stats().Names.Sequenced)
	fmt.Print(b.String())
}

// A name another relay's ledger holds is taken even where it is homed
// now (the federation changed since), and lookups go to that relay.
// heldAt is a fake relay of zone x linked to a relay, whose ledger holds
// a name that relay is the home of, for one of the fake relay's members.
type heldAt struct {
	r     *rawRelay
	ident *identity.Identity // the fake relay's key
	lg    *ledger.Log        // its ledger
	name  string
	claim *wire.UserClaim
	owner *identity.Identity // the member that holds the name
	lease wire.Lease
}

// heldAtX links a fake relay of zone x to z and finds a name whose home
// is z; the fake relay's ledger (after the events given) took that name
// for one of its members.
func heldAtX(t testing.TB, z *testZone, before ...[]byte) heldAt {
	t.Helper()
	h := heldAt{}
	h.ident, _ = identity.New()
	h.r = fedLink(t, z, h.ident, "zone-x")
	for i := 0; h.name == ""; i++ {
		n := fmt.Sprintf("m%d", i)
		if home, _ := names.Home(names.Hash(n), [][32]byte{z.relay.Key(), h.ident.SignKey()}); home == z.relay.Key() {
			h.name = n
		}
	}
	var err error
	if h.lg, err = ledger.Open(store.NewMemory(), ledger.ZoneOrigin("zone-x", h.ident.SignKey()), h.ident.SigningKey()); err != nil {
		t.Fatal(err)
	}
	h.owner, h.lease = h.r.fakeNode()
	h.claim, _ = names.NewClaim(h.owner, &h.lease, h.name, 1)
	entry, _ := names.EntryFor(h.claim)
	if _, err := h.lg.Append(append(before, entry)...); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestNameHeldInMirror(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-a"})
	h := heldAtX(t, z, []byte("another event"))
	r, ident, lg, name, c, owner, lease := h.r, h.ident, h.lg, h.name, h.claim, h.owner, h.lease
	r.announce(lg)
	r.serveLedger(lg)
	wait.Until(t, wait.Default, "zone a mirrors zone x", func() bool { return z.relay.Stats().Ledger.Mirrors["zone-x"] == 2 })

	n := joinNamed(t, z)
	wantRefused(t, n.claim(n.claimOf(name, 1)), wire.CodeNameTaken, fmt.Sprintf("%q is taken", name))

	// A lookup goes to the relay whose ledger holds the name, and its
	// record reaches the node once it verifies.
	n.last++
	n.send(&wire.NameLookup{ID: n.last, Hash: names.Hash(name)})
	lk := r.until("a forwarded lookup", func(m wire.Message) bool { _, ok := m.(*wire.NameLookup); return ok }).(*wire.NameLookup)
	note, cp := lg.Checkpoint()
	p, err := lg.InclusionProof(1, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	rec := &wire.UserRecord{Claim: *c, RelayKey: ident.SignKey(), Zone: "zone-x", Index: 1, Checkpoint: note}
	for _, h := range p {
		rec.Proof = append(rec.Proof, h)
	}
	r.send(&wire.NameResult{ID: lk.ID, Record: rec})
	zoneOf := func(k [32]byte) (string, bool) {
		if k == ident.SignKey() {
			return "zone-x", true
		}
		return zonesOf(z.relay)(k)
	}
	got := wantRecord(t, n.result(n.last), name, zoneOf)
	if !names.Same(&got.Claim, c) {
		t.Fatal("the lookup found another claim")
	}

	// Another relay asks zone a (say, the name's home since the
	// federation grew): zone a asks the relay whose ledger holds it, once,
	// and passes its record on.
	qid, _ := identity.New()
	q := fedLink(t, z, qid, "zone-q")
	q.send(&wire.NameLookup{ID: 9, Hash: names.Hash(name)})
	lk = r.until("the lookup passed on", func(m wire.Message) bool { _, ok := m.(*wire.NameLookup); return ok }).(*wire.NameLookup)
	r.send(&wire.NameResult{ID: lk.ID, Record: rec})
	if got := wantRecord(t, q.nameResult(9), name, zoneOf); !names.Same(&got.Claim, c) {
		t.Fatal("the relay's lookup found another claim")
	}
	q.c.CloseNow()
	linked(t, z, 1)

	// Its owner updates it at its home: the same key, so it is theirs.
	c2, _ := names.NewClaim(owner, &lease, name, 2)
	r.send(&wire.RelayNameClaim{ID: 1, Lease: lease, Claim: *c2})
	if up := wantRecord(t, r.nameResult(1), name, zoneOf); up.RelayKey != z.relay.Key() || up.Claim.Version != 2 {
		t.Fatalf("the update is %+v", up)
	}
}

// A relay whose key was ground to be the home of "alice" links with a
// federation in which alice is already held, its ledger holding a claim
// of alice by another key (its own member's, decided while it was
// alone). The mirrored claim displaces nothing: the original owner still
// resolves, can update its name where it is held, keeps it against other
// claims, and the relay counts the conflict as evidence.
func TestGroundKeyRelayCannotTakeAHeldName(t *testing.T) {
	a := newZone(t, store.NewMemory(), Config{Zone: "zone-a"})
	zoneA := zonesOf(a.relay)
	owner := joinNamed(t, a)
	orig := wantRecord(t, owner.claim(owner.claimOf("alice", 1)), "alice", zoneA)

	// Grind a key that is alice's home between the two relays.
	gst := relaytest.OpenBolt(t, filepath.Join(t.TempDir(), "g.db"))
	for {
		k, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		if home, _ := names.Home(names.Hash("alice"), [][32]byte{a.relay.Key(), k.SignKey()}); home == k.SignKey() {
			if err := gst.Put(storeKeyRelay, k.Marshal()); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	// Alone, the ground-key relay sequences alice for its own member.
	g := newZone(t, gst, Config{Zone: "zone-g"})
	thief := joinNamed(t, g)
	stolen := wantRecord(t, thief.claim(thief.claimOf("alice", 1)), "alice", zonesOf(g.relay))
	g.stop()
	// Then it joins the federation; each relay mirrors the other's ledger.
	gkey, err := identity.LoadOrCreate(gst, storeKeyRelay)
	if err != nil {
		t.Fatal(err)
	}
	a.relay.Federation.Trust(gkey.SignKey()) // its operator names it: a trusted relay with a ground key
	g = newZone(t, gst, Config{Zone: "zone-g", Peers: []federation.Peer{{URL: a.url, Key: a.relay.Key()}}})
	linked(t, a, 1)
	wait.Until(t, wait.Default, "zone a mirrors zone g's ledger", func() bool {
		return a.relay.Stats().Ledger.Mirrors["zone-g"] >= int64(stolen.Index)+1
	})
	wait.Until(t, wait.Default, "zone a counts the conflict", func() bool { return a.relay.Stats().Names.Conflicts == 1 })
	both := zonesOf(a.relay, g.relay)

	// The original owner and anyone in its zone still find the original.
	for _, n := range []*nameNode{owner, joinNamed(t, a)} {
		got := wantRecord(t, n.lookup("alice"), "alice", both)
		if !names.Same(&got.Claim, &orig.Claim) || got.RelayKey != a.relay.Key() {
			t.Fatalf("a lookup in zone a found %x's claim sequenced by zone %s, not the original", got.Claim.SignKey[:4], got.Zone)
		}
	}
	// Its owner updates it where it is held.
	v2 := wantRecord(t, owner.claim(owner.claimOf("alice", 2)), "alice", both)
	if v2.RelayKey != a.relay.Key() || v2.Claim.Version != 2 || v2.Claim.SignKey != orig.Claim.SignKey {
		t.Fatalf("the owner's update: version %d by zone %s", v2.Claim.Version, v2.Zone)
	}
	got := wantRecord(t, joinNamed(t, a).lookup("alice"), "alice", both)
	if got.Claim.Version != 2 || got.Claim.SignKey != orig.Claim.SignKey {
		t.Fatalf("after the update a lookup found version %d of key %x", got.Claim.Version, got.Claim.SignKey[:4])
	}
	// Nobody else takes it in zone a, the thief's relay notwithstanding.
	other := joinNamed(t, a)
	wantRefused(t, other.claim(other.claimOf("alice", 1)), wire.CodeNameTaken, `"alice" is taken`)
	var stats Stats
	getJSON(t, a.url+"/healthz", &stats)
	if stats.Names.Conflicts != 1 {
		t.Fatalf("/healthz names %+v, want 1 conflict", stats.Names)
	}
}

// Another relay cannot fill the table of requests waiting for answers by
// asking for names a third relay's ledger holds: past MaxPendingPerLink
// it is told to try again, and a node's lookups still go out.
func TestPendingPerLink(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-a"})
	ident, _ := identity.New()
	x := fedLink(t, z, ident, "zone-x")
	lg, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin("zone-x", ident.SignKey()), ident.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	const count = registrar.MaxPendingPerLink + 2
	var held []string
	for i := 0; len(held) < count+1; i++ {
		name := fmt.Sprintf("p%d", i)
		owner, lease := x.fakeNode()
		c, _ := names.NewClaim(owner, &lease, name, 1)
		entry, _ := names.EntryFor(c)
		if _, err := lg.Append(entry); err != nil {
			t.Fatal(err)
		}
		held = append(held, name)
	}
	x.announce(lg)
	x.serveLedger(lg)
	wait.Until(t, wait.Default, "zone a mirrors zone x", func() bool { return z.relay.Stats().Ledger.Mirrors["zone-x"] == int64(count+1) })

	qid, _ := identity.New()
	q := fedLink(t, z, qid, "zone-q")
	for i, name := range held[:count] {
		q.send(&wire.NameLookup{ID: uint32(i + 1), Hash: names.Hash(name)})
	}
	for range count - registrar.MaxPendingPerLink {
		res := q.until("a refusal", func(m wire.Message) bool { _, ok := m.(*wire.NameResult); return ok }).(*wire.NameResult)
		wantRefused(t, res, wire.CodeRateLimited, "already wait for another relay")
	}
	seen := 0
	x.until("the lookups passed on", func(m wire.Message) bool {
		if _, ok := m.(*wire.NameLookup); ok {
			seen++
		}
		return seen == registrar.MaxPendingPerLink
	})
	n := joinNamed(t, z)
	n.last++
	n.send(&wire.NameLookup{ID: n.last, Hash: names.Hash(held[count])})
	x.until("the node's lookup", func(m wire.Message) bool {
		lk, ok := m.(*wire.NameLookup)
		return ok && lk.Hash == names.Hash(held[count])
	})
	if s := z.relay.Stats().Names; s.PendingRefused != count-registrar.MaxPendingPerLink || z.relay.Names.Pending() != registrar.MaxPendingPerLink+1 {
		t.Fatalf("names %+v, %d pending", s, z.relay.Names.Pending())
	}
	// The asking relay goes: its requests are forgotten.
	q.c.CloseNow()
	wait.Until(t, wait.Default, "q's requests forgotten", func() bool { return z.relay.Names.Pending() == 1 })
}

// In open federation a relay nobody named links, but even with a key
// ground to be a name's home it decides nothing: the name is decided by
// the trusted relay, the admission tells nodes the relay is not trusted,
// and its ledger, where it sequenced the name for its own member, is not
// mirrored and holds nothing for zone a.
func TestOpenFederationGroundKeyDecidesNothing(t *testing.T) {
	a := newZone(t, store.NewMemory(), Config{Zone: "zone-a", Open: true})
	gst := store.NewMemory()
	var gkey *identity.Identity
	for gkey == nil {
		k, err := identity.New()
		if err != nil {
			t.Fatal(err)
		}
		if home, _ := names.Home(names.Hash("bob"), [][32]byte{a.relay.Key(), k.SignKey()}); home == k.SignKey() {
			if err := gst.Put(storeKeyRelay, k.Marshal()); err != nil {
				t.Fatal(err)
			}
			gkey = k
		}
	}
	g := newZone(t, gst, Config{Zone: "zone-g", Peers: []federation.Peer{{URL: a.url, Key: a.relay.Key()}}})
	linked(t, a, 1)
	if a.relay.Federation.Trusts(gkey.SignKey()) {
		t.Fatal("zone a trusts a relay nobody named")
	}

	// The ground-key relay sequences bob for its own member…
	thief := joinNamed(t, g)
	wantRecord(t, thief.claim(thief.claimOf("bob", 1)), "bob", zonesOf(g.relay))

	// …but zone a's nodes see it flagged untrusted, and bob is decided
	// by zone a, for the first of zone a's nodes to claim it.
	_, adm := admit(t, a, nil)
	var listed bool
	for i, r := range adm.Relays {
		if r.Key == gkey.SignKey() {
			listed = true
			if adm.Flags[i].Has(wire.RelayTrusted) {
				t.Fatalf("the admission flags the untrusted relay %v", adm.Flags[i])
			}
		}
	}
	if !listed {
		t.Fatal("the admission does not list the linked relay at all")
	}
	owner := joinNamed(t, a)
	rec := wantRecord(t, owner.claim(owner.claimOf("bob", 1)), "bob", zonesOf(a.relay))
	if rec.RelayKey != a.relay.Key() || rec.Claim.SignKey != owner.id.SignKey() {
		t.Fatalf("bob sequenced by %x for %x", rec.RelayKey[:4], rec.Claim.SignKey[:4])
	}
	got := wantRecord(t, joinNamed(t, a).lookup("bob"), "bob", zonesOf(a.relay))
	if !names.Same(&got.Claim, &rec.Claim) {
		t.Fatalf("a lookup in zone a found %x's claim", got.Claim.SignKey[:4])
	}
	if m := a.relay.Stats().Ledger.Mirrors; m["zone-g"] != 0 {
		t.Fatalf("zone a mirrors the untrusted relay's ledger: %v", m)
	}
}

// A relay that became the home of a name another trusted relay's ledger
// holds (the federation grew: the name was sequenced there before) does
// not decide a claim of it before it has mirrored that ledger: it
// answers "try again", then, once mirrored, "taken". (Before, it
// sequenced the name at once for the first claimant: two owners, one in
// each ledger.)
func TestNewHomeWaitsForTheLedgers(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-a"})
	h := heldAtX(t, z)
	r, lg, name := h.r, h.lg, h.name
	r.announce(lg)
	wait.Until(t, wait.Default, "zone a catching up with zone x", func() bool { ok, _ := z.relay.Ledger.Settled(""); return !ok })

	n := joinNamed(t, z)
	wantRefused(t, n.claim(n.claimOf(name, 1)), wire.CodeUnavailable, "still mirroring the ledger of zone zone-x")
	r.serveLedger(lg)
	wait.Until(t, wait.Default, "zone a mirrors zone x", func() bool { return z.relay.Stats().Ledger.Mirrors["zone-x"] == 1 })
	wantRefused(t, n.claim(n.claimOf(name, 1)), wire.CodeNameTaken, fmt.Sprintf("%q is taken", name))
	if s := z.relay.Stats().Names; s.Unsettled != 1 || s.Sequenced != 0 {
		t.Fatalf("names stats %+v", s)
	}
}

// A name's home that cannot mirror a trusted relay's ledger in full
// (here: too far ahead for one catch-up) asks that relay before it
// decides a claim: a name held there for another key is taken, a name
// held nowhere is decided as usual. (Before, it decided at once: a second
// owner for a name the other ledger held.)
func TestHomeAsksTheLedgerItCannotMirror(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-a"})
	h := heldAtX(t, z)
	h.r.send(&wire.LedgerCheckpoint{Note: relaytest.FakeCheckpoint(t, h.ident, "zone-x", 2+zoneledger.MaxCatchUp)})
	wait.Until(t, wait.Default, "zone x's ledger out of reach", func() bool { return len(z.relay.Ledger.Unmirrorable("")) == 1 })

	n := joinNamed(t, z)
	n.last++
	n.send(&wire.NameClaim{ID: n.last, Claim: *n.claimOf(h.name, 1)})
	lk := h.r.until("the lookup asked of zone x", func(m wire.Message) bool { _, ok := m.(*wire.NameLookup); return ok }).(*wire.NameLookup)
	if lk.Hash != names.Hash(h.name) {
		t.Fatalf("zone x was asked for another name")
	}
	note, cp := h.lg.Checkpoint()
	p, err := h.lg.InclusionProof(0, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	rec := &wire.UserRecord{Claim: *h.claim, RelayKey: h.ident.SignKey(), Zone: "zone-x", Index: 0, Checkpoint: note}
	for _, x := range p {
		rec.Proof = append(rec.Proof, x)
	}
	h.r.send(&wire.NameResult{ID: lk.ID, Record: rec})
	wantRefused(t, n.result(n.last), wire.CodeNameTaken, fmt.Sprintf("%q is taken", h.name))

	// A name zone x does not hold is decided here, once zone x says so.
	other := ""
	for i := 0; other == ""; i++ {
		c := fmt.Sprintf("q%d", i)
		if home, _ := names.Home(names.Hash(c), [][32]byte{z.relay.Key(), h.ident.SignKey()}); home == z.relay.Key() {
			other = c
		}
	}
	n2 := joinNamed(t, z)
	n2.last++
	n2.send(&wire.NameClaim{ID: n2.last, Claim: *n2.claimOf(other, 1)})
	lk = h.r.until("the second lookup", func(m wire.Message) bool { _, ok := m.(*wire.NameLookup); return ok }).(*wire.NameLookup)
	h.r.send(&wire.NameResult{ID: lk.ID, Code: wire.CodeNotFound, Message: "no such name"})
	wantRecord(t, n2.result(n2.last), other, zonesOf(z.relay))
	if s := z.relay.Stats().Names; s.AskedUnmirrorable != 2 || s.Sequenced != 1 {
		t.Fatalf("names stats %+v", s)
	}
}
