package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/federation"
	"ddt/relay/internal/relaytest"
	"ddt/relay/zone"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// federate starts one relay per config, each naming all the others with
// -peer URL#KEY (the first also as its fallback redirect, as main does),
// and waits until every pair is linked. The keys are made first, in each
// relay's store, as `ddt-relay key` makes them.
func federate(t testing.TB, cfgs ...Config) []*testZone {
	t.Helper()
	lns := make([]string, len(cfgs))
	listeners := make([]net.Listener, len(cfgs))
	stores := make([]store.Store, len(cfgs))
	keys := make([][32]byte, len(cfgs))
	for i := range cfgs {
		listeners[i] = listen(t, "127.0.0.1:0")
		lns[i] = "http://" + listeners[i].Addr().String()
		if stores[i] = cfgs[i].Store; stores[i] == nil {
			stores[i] = store.NewMemory()
		}
		var err error
		if keys[i], err = LoadKey(stores[i]); err != nil {
			t.Fatal(err)
		}
	}
	zs := make([]*testZone, len(cfgs))
	for i := range cfgs {
		if cfgs[i].Zone == "" {
			cfgs[i].Zone = fmt.Sprintf("zone-%c", 'a'+i)
		}
		for j := range cfgs {
			if i != j {
				cfgs[i].Peers = append(cfgs[i].Peers, federation.Peer{URL: lns[j], Key: keys[j]})
			}
		}
		if len(cfgs[i].Peers) > 0 {
			cfgs[i].Redirect = cfgs[i].Peers[0].URL
		}
		zs[i] = startZone(t, stores[i], cfgs[i], listeners[i])
	}
	for _, z := range zs {
		linked(t, z, len(zs)-1)
	}
	return zs
}

// linked waits until z has n relay links up.
func linked(t testing.TB, z *testZone, n int) {
	t.Helper()
	wait.Until(t, wait.Default, fmt.Sprintf("%s linked to %d relays", z.relay.cfg.Zone, n), func() bool { return z.relay.Stats().Federated.Links == n })
}

// knows reports whether h holds addr as a member of a federated zone.
func knows(r *Relay, addr id.Address) bool { return r.Federation.Knows(addr) }

func remoteCount(h *Relay) int { return h.Stats().Federated.Members }

// admit joins a raw node (a fresh identity unless one is given) and
// returns it with its admission.
func admit(t testing.TB, z *testZone, ident *identity.Identity) (*rawClient, *wire.Admitted) {
	t.Helper()
	r := dialRaw(t, z)
	if ident != nil {
		r.id = ident
	}
	r.hello(true)
	m := r.read()
	adm, ok := m.(*wire.Admitted)
	if !ok {
		t.Fatalf("not admitted: %T %+v", m, m)
	}
	return r, adm
}

// until reads until f accepts a message.
func (r *rawClient) until(what string, f func(wire.Message) bool) wire.Message {
	r.t.Helper()
	for {
		m, err := r.tryRead()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", what, err)
		}
		if f(m) {
			return m
		}
	}
}

func getJSON(t testing.TB, url string, v any) http.Header {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.Header
}

func TestFederatedMembership(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a, b := zs[0], zs[1]
	xa, _ := admit(t, a, nil)
	ya, _ := admit(t, a, nil)
	xb, admB := admit(t, b, nil)
	wait.Until(t, wait.Default, "each relay knows the other's members", func() bool {
		return knows(a.relay, admB.Lease.Address) && remoteCount(a.relay) == 1 && remoteCount(b.relay) == 2
	})
	_ = xa
	_ = ya

	// A member that leaves is forgotten by the other zone.
	xb.c.Close(websocket.StatusNormalClosure, "")
	wait.Until(t, wait.Default, "a leaving member is forgotten", func() bool { return remoteCount(a.relay) == 0 })

	var relays []federation.RelayJSON
	hdr := getJSON(t, a.url+"/relays", &relays)
	if hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("/relays lacks Access-Control-Allow-Origin: *")
	}
	bKey := b.relay.Key()
	if len(relays) != 2 || !relays[0].Self || relays[0].Zone != "zone-a" || relays[0].URL != a.url ||
		relays[1].Zone != "zone-b" || relays[1].URL != b.url || relays[1].Key != hex.EncodeToString(bKey[:]) || !relays[1].Up || relays[1].MaxNodes != 16 {
		t.Fatalf("/relays = %+v", relays)
	}
	var stats Stats
	hdr = getJSON(t, a.url+"/healthz", &stats)
	if hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("/healthz lacks Access-Control-Allow-Origin: *")
	}
	if stats.Nodes != 2 || stats.Federated.Links != 1 || stats.Federated.Relays != 1 || stats.URL != a.url {
		t.Fatalf("/healthz = %+v", stats)
	}

	// A page served by another origin may join.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(a.url, "http", "ws", 1)+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {b.url}}})
	if err != nil {
		t.Fatalf("cross-origin node refused: %v", err)
	}
	c.CloseNow()
}

func TestFederatedAdmission(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a, b := zs[0], zs[1]
	var all []id.Address
	for i := 0; i < 12; i++ {
		_, adm := admit(t, b, nil)
		all = append(all, adm.Lease.Address)
	}
	for i := 0; i < 8; i++ {
		_, adm := admit(t, a, nil)
		all = append(all, adm.Lease.Address)
	}
	wait.Until(t, wait.Default, "zone a knows zone b's members", func() bool { return remoteCount(a.relay) == 12 })

	_, adm := admit(t, a, nil)
	aKey, bKey := a.relay.Key(), b.relay.Key()
	if len(adm.Relays) != 2 || adm.Relays[0].Key != aKey || adm.Relays[0].Zone != "zone-a" || adm.Relays[0].URL != a.url ||
		adm.Relays[1].Key != bKey || adm.Relays[1].Zone != "zone-b" || adm.Relays[1].URL != b.url || adm.Relays[1].MaxNodes != 16 {
		t.Fatalf("Admitted.Relays = %+v", adm.Relays)
	}
	if len(adm.Peers) != zone.ClosestPeers+zone.RandomPeers || len(adm.Natives) != len(adm.Peers) {
		t.Fatalf("%d peers, %d native flags", len(adm.Peers), len(adm.Natives))
	}
	trusted := map[[32]byte]string{}
	for _, r := range adm.Relays {
		trusted[r.Key] = r.Zone
	}
	got := map[id.Address]bool{}
	fromB := 0
	for i := range adm.Peers {
		p := &adm.Peers[i]
		zone, ok := trusted[p.RelayKey]
		if !ok {
			t.Fatalf("peer %s is signed by a relay not in Admitted.Relays", p.Address.Short())
		}
		if err := identity.VerifyLease(p, p.RelayKey, time.Now()); err != nil || p.Zone != zone {
			t.Fatalf("peer %s: %v (zone %q, relay's %q)", p.Address.Short(), err, p.Zone, zone)
		}
		if p.RelayKey == bKey {
			fromB++
		}
		got[p.Address] = true
	}
	if fromB == 0 {
		t.Fatal("no peer from zone b")
	}
	// The closest are the closest across both zones.
	sort.Slice(all, func(i, j int) bool { return id.Closer(adm.Lease.Address, all[i], all[j]) })
	for _, addr := range all[:zone.ClosestPeers] {
		if !got[addr] {
			t.Fatalf("one of the %d closest (%s) is missing", zone.ClosestPeers, addr.Short())
		}
	}
}

func TestCrossZoneSignal(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a, b := zs[0], zs[1]
	x, admX := admit(t, a, nil)
	y, admY := admit(t, b, nil)
	wait.Until(t, wait.Default, "the zones know each other's member", func() bool {
		return knows(a.relay, admY.Lease.Address) && knows(b.relay, admX.Lease.Address)
	})
	isSignal := func(m wire.Message) bool { _, ok := m.(*wire.Signal); return ok }

	x.send(&wire.Signal{Peer: admY.Lease.Address, Session: 5, Kind: wire.SignalOffer, Data: "v=0 offer"})
	got := y.until("the offer", isSignal).(*wire.Signal)
	if got.Peer != admX.Lease.Address || got.Session != 5 || got.Kind != wire.SignalOffer || got.Data != "v=0 offer" {
		t.Fatalf("y got %+v", got)
	}
	y.send(&wire.Signal{Peer: admX.Lease.Address, Session: 5, Kind: wire.SignalAnswer, Data: "v=0 answer"})
	got = x.until("the answer", isSignal).(*wire.Signal)
	if got.Peer != admY.Lease.Address || got.Kind != wire.SignalAnswer || got.Data != "v=0 answer" {
		t.Fatalf("x got %+v", got)
	}
	sa, sb := a.relay.Stats(), b.relay.Stats()
	if sa.Signals != 2 || sa.Federated.SignalsOut != 1 || sa.Federated.SignalsIn != 1 ||
		sb.Signals != 2 || sb.Federated.SignalsOut != 1 || sb.Federated.SignalsIn != 1 {
		t.Fatalf("counters a %+v, b %+v", sa, sb)
	}
	var stats Stats
	getJSON(t, a.url+"/healthz", &stats)
	if stats.Federated.SignalsOut != 1 || stats.Signals != 2 {
		t.Fatalf("/healthz %+v", stats)
	}

	// An address no zone knows is still an unknown peer.
	x.send(&wire.Signal{Peer: id.Address{7}, Kind: wire.SignalOffer, Data: "x"})
	x.expectError(wire.CodeUnknownPeer)
}

func TestFullZoneRedirects(t *testing.T) {
	zs := federate(t, Config{MaxNodes: 1}, Config{MaxNodes: 1}, Config{MaxNodes: 4})
	a, b, c := zs[0], zs[1], zs[2]
	admit(t, a, nil)
	admit(t, b, nil)
	wait.Until(t, wait.Default, "zone a hears zone b is full", func() bool {
		for _, r := range a.relay.Federation.Relays() {
			if r.URL == b.url && r.Nodes == 1 {
				return true
			}
		}
		return false
	})
	refusal := func() *wire.Refused {
		r := dialRaw(t, a)
		r.hello(true)
		m := r.read()
		ref, ok := m.(*wire.Refused)
		if !ok {
			t.Fatalf("not refused: %T", m)
		}
		return ref
	}
	if ref := refusal(); ref.Code != wire.CodeZoneFull || ref.Redirect != c.url {
		t.Fatalf("refusal %+v, want redirect to %s", ref, c.url)
	}
	// With no relay with room linked, the first -peer is named.
	c.stop()
	linked(t, a, 1)
	if ref := refusal(); ref.Redirect != b.url {
		t.Fatalf("refusal %+v, want redirect to %s", ref, b.url)
	}
}

func TestFederationHeals(t *testing.T) {
	dir := t.TempDir()
	bStore := relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
	zs := federate(t, Config{}, Config{Store: bStore})
	a, b := zs[0], zs[1]
	nodeB, _ := identity.New()
	x, admX := admit(t, a, nil)
	y, admY := admit(t, b, nodeB)
	wait.Until(t, wait.Default, "members known", func() bool { return knows(a.relay, admY.Lease.Address) && knows(b.relay, admX.Lease.Address) })
	bKey := b.relay.Key()

	// Relay b dies: a notices and forgets b's members.
	b.stop()
	bStore.Close()
	y.expectClosed()
	linked(t, a, 0)
	wait.Until(t, wait.Default, "b's members forgotten", func() bool { return remoteCount(a.relay) == 0 })

	// b comes back on its address with its data: the link heals by
	// itself, and b's returning node has its address and is known to a.
	bStore = relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
	b2 := startZone(t, bStore, b.cfg, listen(t, b.addr))
	if b2.relay.Key() != bKey {
		t.Fatal("relay b's key changed across its restart")
	}
	linked(t, a, 1)
	linked(t, b2, 1)
	_, again := admit(t, b2, nodeB)
	if again.Lease.Address != admY.Lease.Address {
		t.Fatalf("b's node came back at %s, was %s", again.Lease.Address.Short(), admY.Lease.Address.Short())
	}
	wait.Until(t, wait.Default, "membership healed", func() bool { return knows(a.relay, again.Lease.Address) && knows(b2.relay, admX.Lease.Address) })

	// Signals cross again.
	x.send(&wire.Signal{Peer: again.Lease.Address, Session: 9, Kind: wire.SignalBye})
	wait.Until(t, wait.Default, "the signal crosses", func() bool {
		return a.relay.Stats().Federated.SignalsOut == 1 && b2.relay.Stats().Federated.SignalsIn == 1
	})
}

// rawRelay speaks the federation protocol by hand, to misbehave.
type rawRelay struct {
	*rawClient
	info wire.RelayInfo
}

// dialFed opens a raw connection to z's /federate.
func dialFed(t testing.TB, z *testZone) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(z.url, "http", "ws", 1)+"/federate", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &rawClient{t: t, c: c}
}

// fedLink authenticates a fake relay with key ident to z, as the dialer,
// announcing the link services a relay runs (ledger, names).
func fedLink(t testing.TB, z *testZone, ident *identity.Identity, zone string) *rawRelay {
	t.Helper()
	return fedLinkWith(t, z, ident, zone, wire.NewFeatures(wire.FeatureLedger, wire.FeatureNames))
}

// fedLinkWith is fedLink announcing features. z trusts ident from now on.
func fedLinkWith(t testing.TB, z *testZone, ident *identity.Identity, zone string, features wire.Features) *rawRelay {
	t.Helper()
	z.relay.Federation.Trust(ident.SignKey())
	r := &rawRelay{rawClient: dialFed(t, z), info: wire.RelayInfo{Zone: zone, URL: "http://127.0.0.1:1", Key: ident.SignKey(), MaxNodes: 8}}
	r.id = ident
	theirs, ok := r.read().(*wire.RelayChallenge)
	if !ok {
		t.Fatal("no relay challenge")
	}
	ours := &wire.RelayChallenge{Nonce: [32]byte{1, 2, 3}, Key: ident.SignKey()}
	r.send(ours)
	hello, ok := r.read().(*wire.RelayHello)
	if !ok || !identity.Verify(hello.Relay.Key, wire.RelayHelloSignedBytes(false, theirs.Nonce, ours.Nonce, &hello.Relay, ident.SignKey()), hello.Sig) {
		t.Fatal("relay hello does not verify")
	}
	r.send(&wire.RelayHello{Relay: r.info, Sig: ident.Sign(wire.RelayHelloSignedBytes(true, ours.Nonce, theirs.Nonce, &r.info, theirs.Key)), Features: features})
	// The relay's snapshot ends with Last, then its summary.
	r.until("snapshot", func(m wire.Message) bool { zm, ok := m.(*wire.ZoneMembers); return ok && zm.Last })
	if features.Has(wire.FeatureLedger) {
		// As a relay does when a link comes up, it announces its ledger,
		// empty so far: until then z would not decide names it is home
		// for (the ledger might hold them).
		empty, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin(zone, ident.SignKey()), ident.SigningKey())
		if err != nil {
			t.Fatal(err)
		}
		r.announce(empty)
		wait.Until(t, wait.Default, "the fake relay's ledger mirrored", func() bool { ok, _ := z.relay.Ledger.Settled(""); return ok })
	}
	return r
}

// lease signs a lease for a fresh node in the fake relay's zone.
func (r *rawRelay) lease() wire.Lease {
	n, _ := identity.New()
	return r.id.IssueLease(n.SignKey(), n.AgreeKey(), [16]byte{9}, r.info.Zone, time.Now(), zone.LeaseTTL)
}

func TestFederationBadFrames(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a, b := zs[0], zs[1]
	_, admB := admit(t, b, nil)
	local, admA := admit(t, a, nil)
	wait.Until(t, wait.Default, "members known", func() bool { return knows(a.relay, admB.Lease.Address) })

	t.Run("garbage instead of a challenge", func(t *testing.T) {
		r := dialFed(t, a)
		r.read()
		r.write([]byte{wire.Version, 250, 1})
		r.expectError(wire.CodeMalformed)
		r.expectClosed()
	})
	t.Run("text frame", func(t *testing.T) {
		r := dialFed(t, a)
		r.read()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r.c.Write(ctx, websocket.MessageText, []byte("hello"))
		r.expectError(wire.CodeMalformed)
		r.expectClosed()
	})
	t.Run("oversized before authentication", func(t *testing.T) {
		r := dialFed(t, a)
		r.read()
		r.write(make([]byte, wire.MaxFrame+1))
		r.expectClosed()
	})
	t.Run("untrusted relay", func(t *testing.T) {
		stranger, _ := identity.New()
		r := dialFed(t, a)
		r.read()
		r.send(&wire.RelayChallenge{Key: stranger.SignKey()})
		r.expectError(wire.CodeNotAdmitted)
		r.expectClosed()
	})
	t.Run("node hello on the federation endpoint", func(t *testing.T) {
		r := dialFed(t, a)
		r.read()
		r.send(&wire.RelayChallenge{Key: b.relay.Key()})
		r.read() // its hello
		r.send(&wire.Hello{})
		r.expectError(wire.CodeProtocol)
		r.expectClosed()
	})
	t.Run("unsigned hello", func(t *testing.T) {
		r := dialFed(t, a)
		r.read()
		r.send(&wire.RelayChallenge{Key: b.relay.Key()})
		r.read()
		r.send(&wire.RelayHello{Relay: wire.RelayInfo{Zone: "evil", Key: b.relay.Key()}})
		r.expectError(wire.CodeBadSignature)
		r.expectClosed()
	})
	t.Run("a hello signed for another challenge", func(t *testing.T) {
		ident, _ := identity.New()
		a.relay.Federation.Trust(ident.SignKey())
		r := dialFed(t, a)
		theirs := r.read().(*wire.RelayChallenge)
		r.send(&wire.RelayChallenge{Key: ident.SignKey()})
		r.read()
		info := wire.RelayInfo{Zone: "evil", Key: ident.SignKey()}
		r.send(&wire.RelayHello{Relay: info, Sig: ident.Sign(wire.RelayHelloSignedBytes(true, [32]byte{}, [32]byte{1}, &info, theirs.Key))})
		r.expectError(wire.CodeBadSignature)
		r.expectClosed()
	})

	// Each refusal above counts once, but a socket closed for an oversized
	// frame can close before the relay counts it: wait for all seven.
	wait.Until(t, wait.Default, "the refused links are counted", func() bool { return a.relay.Stats().Federated.Dropped >= 7 })
	if s := a.relay.Stats().Federated; s.Untrusted != 1 {
		t.Fatalf("%d untrusted links counted", s.Untrusted)
	}

	ident, _ := identity.New()
	t.Run("authenticated, then misbehaving", func(t *testing.T) {
		r := fedLink(t, a, ident, "zone-x")
		wait.Until(t, wait.Default, "the fake relay is linked", func() bool { return a.relay.Stats().Federated.Links == 2 })
		// It hears of zone a's newcomers.
		_, late := admit(t, a, nil)
		r.until("the newcomer", func(m wire.Message) bool {
			j, ok := m.(*wire.MemberJoined)
			return ok && j.Lease.Address == late.Lease.Address
		})
		before := a.relay.Stats().Federated.Dropped
		// A lease the fake relay did not sign, one for another zone: dropped.
		forged := r.lease()
		forged.Sig[0] ^= 1
		other := r.lease()
		other.Zone = "zone-y"
		other.Sig = ident.Sign(other.SignedBytes())
		good := r.lease()
		r.send(&wire.ZoneMembers{Leases: []wire.Lease{forged, other, good}, Natives: []bool{true, false, true}, Last: true})
		wait.Until(t, wait.Default, "the good member is known", func() bool { return knows(a.relay, good.Address) })
		if knows(a.relay, forged.Address) || knows(a.relay, other.Address) {
			t.Fatal("a bad lease was accepted")
		}
		// A signal from a node not in its zone, and one for a node not here: dropped.
		r.send(&wire.RelaySignal{From: admB.Lease.Address, To: admA.Lease.Address, Kind: wire.SignalOffer})
		r.send(&wire.RelaySignal{From: good.Address, To: id.Address{3}, Kind: wire.SignalOffer})
		// A proper one arrives.
		r.send(&wire.RelaySignal{From: good.Address, To: admA.Lease.Address, Session: 3, Kind: wire.SignalOffer, Data: "hi"})
		s := local.until("the signal", func(m wire.Message) bool { _, ok := m.(*wire.Signal); return ok }).(*wire.Signal)
		if s.Peer != good.Address || s.Data != "hi" {
			t.Fatalf("signal %+v", s)
		}
		if d := a.relay.Stats().Federated.Dropped - before; d != 4 {
			t.Fatalf("%d frames dropped, want 4", d)
		}
		// A node message is refused, the link stays.
		r.send(&wire.Hello{})
		r.expectError(wire.CodeProtocol)
		// A malformed frame closes the link, and its members are forgotten.
		r.write([]byte{wire.Version, byte(wire.TypeRelaySignal), 0xff})
		r.expectError(wire.CodeMalformed)
		r.expectClosed()
		wait.Until(t, wait.Default, "its members forgotten", func() bool { return !knows(a.relay, good.Address) })
	})
	t.Run("oversized after authentication", func(t *testing.T) {
		r := fedLink(t, a, ident, "zone-x")
		r.write(make([]byte, wire.MaxFrame+100))
		r.expectClosed()
	})

	// Zone a still works: b's link and members are intact, nodes signal.
	linked(t, a, 1)
	if !knows(a.relay, admB.Lease.Address) {
		t.Fatal("zone b's member was lost")
	}
	local.send(&wire.Signal{Peer: admB.Lease.Address, Kind: wire.SignalBye})
	wait.Until(t, wait.Default, "a signal crosses", func() bool { return b.relay.Stats().Federated.SignalsIn == 1 })
}

// FuzzFederationFrame sends one arbitrary frame from an authenticated
// relay: the relay refuses it, applies it, or closes that one link, and
// keeps serving its zone and its other links.
func FuzzFederationFrame(f *testing.F) {
	zs := federate(f, Config{}, Config{})
	a, b := zs[0], zs[1]
	member := b.join(store.NewMemory()).Address() // a real node: it answers the relay's pings for as long as fuzzing runs
	wait.Until(f, wait.Default, "zone a knows zone b's node", func() bool { return knows(a.relay, member) })
	ident, _ := identity.New()
	fake := wire.RelayInfo{Zone: "zone-x", Key: ident.SignKey()}
	l := ident.IssueLease([32]byte{1}, [32]byte{2}, [16]byte{3}, fake.Zone, time.Now(), zone.LeaseTTL)
	claimant, _ := identity.New()
	cl := ident.IssueLease(claimant.SignKey(), claimant.AgreeKey(), [16]byte{4}, fake.Zone, time.Now(), zone.LeaseTTL)
	claim, _ := names.NewClaim(claimant, &cl, "alice", 1)
	for _, m := range []wire.Message{
		&wire.ZoneMembers{Leases: []wire.Lease{l}, Natives: []bool{true}, Last: true},
		&wire.MemberJoined{Lease: l},
		&wire.MemberLeft{Address: l.Address},
		&wire.ZoneSummary{Nodes: 1, MaxNodes: 2},
		&wire.RelaySignal{From: l.Address, To: member, Kind: wire.SignalBye},
		&wire.RelayHello{},
		&wire.Error{Code: wire.CodeProtocol},
		&wire.LedgerCheckpoint{Note: []byte("ddt.zone/zone-x/00000000\n1\nAAAA\n")},
		&wire.LedgerGetEntries{From: 0, To: 1 << 40},
		&wire.LedgerEntries{From: 0, Entries: [][]byte{[]byte("unasked")}},
		&wire.LedgerGetProof{Old: 0, New: 1 << 62},
		&wire.LedgerProof{Old: 0, New: 2, Hashes: [][32]byte{{1}}},
		&wire.RelayNameClaim{ID: 1, Lease: cl, Claim: *claim},
		&wire.RelayNameClaim{ID: 2, Lease: l, Claim: *claim},
		&wire.NameLookup{ID: 3, Hash: names.Hash("alice")},
		&wire.NameResult{ID: 4, Code: wire.CodeNameTaken, Message: "answer to nothing"},
		&wire.NameResult{ID: 5, Record: &wire.UserRecord{Claim: *claim}},
		&wire.NameClaim{ID: 6, Claim: *claim},
	} {
		bs, _ := wire.Marshal(m)
		f.Add(bs)
	}
	f.Add([]byte{wire.Version, byte(wire.TypeZoneMembers), 0xff, 0xff})
	f.Add([]byte{wire.Version, byte(wire.TypeLedgerEntries), 0, 0xff, 0xff})
	f.Add([]byte{wire.Version, byte(wire.TypeLedgerProof), 0, 0, 0x80, 0x01})
	f.Add([]byte{wire.Version, byte(wire.TypeLedgerGetEntries), 5, 4})
	f.Fuzz(func(t *testing.T, frame []byte) {
		r := fedLink(t, a, ident, fake.Zone)
		if err := r.write(frame); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		for {
			if _, _, err := r.c.Read(ctx); err != nil {
				break
			}
		}
	})
	if !knows(a.relay, member) || a.relay.Stats().Federated.Links < 1 {
		f.Fatal("zone a lost zone b")
	}
}
