package federation

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"ddt/relay/internal/relaytest"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// In trusted mode (the default) a relay that proves a key nobody named is
// refused with a clear error, counted, and links once its key is named.
func TestUntrustedRelayRefused(t *testing.T) {
	a := newRelay(t, "zone-a", Config{}, nil)
	x := a.dial("zone-x")
	_, err := x.TryFederate(x.id, x.info, nil)
	var re *wire.RemoteError
	if !errors.As(err, &re) || re.Code != wire.CodeNotAdmitted || !strings.Contains(err.Error(), fmt.Sprintf("%x", x.id.SignKey())) ||
		!strings.Contains(err.Error(), "-peer URL#KEY") {
		t.Fatalf("refusal %v", err)
	}
	x.ExpectClosed()
	if s := a.fed.Stats(); s.Untrusted != 1 || s.Links != 0 || a.fed.Trusts(x.id.SignKey()) {
		t.Fatalf("stats %+v", s)
	}
	// Named, the same relay links, and is trusted.
	a.fed.Trust(x.id.SignKey())
	y := a.dial("zone-x")
	y.id, y.info = x.id, x.info
	y.Federate(y.id, y.info, nil)
	r, ok := a.fed.Lookup(x.id.SignKey())
	if !ok || !r.Trusted || r.Link == nil || !r.Link.Trusted() || a.fed.Stats().Links != 1 {
		t.Fatalf("relay %+v", r)
	}
}

// In open mode an untrusted relay links but is never trusted: its flags
// in an admission say so, newcomers are never redirected to it, and its
// links and members have limits of their own, apart from the trusted
// relays'. The README's limits, exactly: MaxLinks trusted links,
// MaxOpenLinks untrusted ones beside them.
func TestOpenFederationLimits(t *testing.T) {
	a := newRelay(t, "zone-a", Config{Open: true}, nil)
	var open []*fake
	for i := range MaxOpenLinks {
		f := a.dial(fmt.Sprintf("open-%d", i))
		f.Federate(f.id, f.info, nil)
		f.Send(&wire.ZoneSummary{Nodes: 0, MaxNodes: 1000})
		open = append(open, f)
	}
	wait.Until(t, wait.Default, "the untrusted relays' summaries", func() bool {
		r, _ := a.fed.Lookup(open[MaxOpenLinks-1].id.SignKey())
		return r.Info.MaxNodes == 1000
	})
	if s := a.fed.Stats(); s.Links != MaxOpenLinks || s.OpenLinks != MaxOpenLinks {
		t.Fatalf("stats %+v", s)
	}
	if got := a.fed.RoomiestLocked(); got != "" {
		t.Fatalf("a full zone would redirect to an untrusted relay: %q", got)
	}
	// An admission names them, not flagged trusted; /relays says the same.
	_, adm := a.admit()
	if len(adm.Relays) != 1+MaxOpenLinks || adm.Flags[0]&wire.RelayTrusted == 0 {
		t.Fatalf("admission names %d relays, flags %v", len(adm.Relays), adm.Flags)
	}
	for i, r := range adm.Relays[1:] {
		if adm.Flags[i+1]&wire.RelayTrusted != 0 {
			t.Fatalf("untrusted relay %s flagged trusted", r.Zone)
		}
	}
	for _, r := range a.fed.Relays()[1:] {
		if r.Trusted {
			t.Fatalf("/relays says %s is trusted", r.Zone)
		}
	}
	for _, r := range a.fed.Known() {
		if r.Trusted || a.fed.Trusts(r.Info.Key) {
			t.Fatalf("relay %s is trusted", r.Info.Zone)
		}
	}
	// One more untrusted relay is refused, as too many.
	extra := a.dial("open-extra")
	_, err := extra.TryFederate(extra.id, extra.info, nil)
	var re *wire.RemoteError
	if !errors.As(err, &re) || re.Code != wire.CodeUnavailable {
		t.Fatalf("refusal %v", err)
	}
	if s := a.fed.Stats(); s.LinksFull != 1 || s.Links != MaxOpenLinks {
		t.Fatalf("stats %+v", s)
	}
	// Trusted relays still link, MaxLinks of them, beside the untrusted.
	var trusted []*fake
	for i := range MaxLinks {
		trusted = append(trusted, a.link(fmt.Sprintf("trusted-%d", i), nil))
	}
	trusted[0].Send(&wire.ZoneSummary{Nodes: 0, MaxNodes: 10})
	wait.Until(t, wait.Default, "a redirect to the trusted relay with room", func() bool { return a.fed.RoomiestLocked() == trusted[0].info.URL })
	more := a.dial("trusted-extra")
	a.fed.Trust(more.id.SignKey())
	if _, err := more.TryFederate(more.id, more.info, nil); !errors.As(err, &re) || re.Code != wire.CodeUnavailable {
		t.Fatalf("refusal %v", err)
	}
	if s := a.fed.Stats(); s.LinksFull != 2 || s.Links != MaxLinks+MaxOpenLinks || s.OpenLinks != MaxOpenLinks {
		t.Fatalf("stats %+v", s)
	}
	// With more relays than an admission names, it names the trusted.
	_, adm = a.admit()
	if len(adm.Relays) != wire.MaxRelays {
		t.Fatalf("%d relays named", len(adm.Relays))
	}
	for i, r := range adm.Relays {
		if strings.HasPrefix(r.Zone, "open-") || adm.Flags[i]&wire.RelayTrusted == 0 {
			t.Fatalf("relay %s flagged %b", r.Zone, adm.Flags[i])
		}
	}
	// A trusted link that ends frees its place for another.
	trusted[1].Conn.Close()
	wait.Until(t, wait.Default, "the link gone", func() bool { return a.fed.Stats().Links == MaxLinks+MaxOpenLinks-1 })
	a.link("trusted-late", nil)
}

// admit admits a node and returns its end and admission.
func (r *relay) admit() (*relaytest.End, *wire.Admitted) {
	r.t.Helper()
	if !r.zone.JoinSlot() {
		r.t.Fatal("no join slot")
	}
	e := relaytest.Serve(r.t, func(c transport.Conn) { r.zone.Serve(context.Background(), c, "pipe") })
	id := newIdentity(r.t)
	_, adm := e.Admit(id)
	return e, adm
}

// MaxJoining relay connections may authenticate at once; the next is
// refused and counted until one is done.
func TestJoiningLimit(t *testing.T) {
	a := newRelay(t, "zone-a", Config{}, nil)
	for range MaxJoining {
		if !a.fed.Slot() {
			t.Fatal("fewer slots than MaxJoining")
		}
	}
	if a.fed.Slot() {
		t.Fatal("a slot beyond MaxJoining")
	}
	if s := a.fed.Stats(); s.JoiningFull != 1 {
		t.Fatalf("stats %+v", s)
	}
	a.fed.ReleaseSlot()
	if !a.fed.Slot() {
		t.Fatal("a released slot is not free")
	}
	for range MaxJoining {
		a.fed.ReleaseSlot()
	}
}

// A relay M between A and B hands A's handshake to B, and B's to A, so
// that B would believe itself linked to A (and A to B) while M reads and
// writes everything. A trusts M (it dialed M by M's key) and B trusts A.
// The hellos name the key their signer believes it talks to, so B sees a
// hello of A's meant for M, and refuses it.
func TestProxiedHandshakeRefused(t *testing.T) {
	b := newRelay(t, "zone-b", Config{}, nil)
	mKey := newIdentity(t)
	mA, aM := transport.Pipe()
	a := newRelay(t, "zone-a", Config{Peers: []Peer{{URL: "pipe://m", Key: mKey.SignKey()}}, Dial: func(ctx context.Context, peer string) (transport.Conn, error) {
		return aM, nil
	}}, nil)
	b.fed.Trust(a.key.SignKey())
	mB, bM := transport.Pipe()
	b.fed.Slot()
	go b.fed.Serve(context.Background(), bM, "pipe")
	read := func(c transport.Conn) wire.Message {
		t.Helper()
		bs, err := c.Recv()
		if err != nil {
			t.Fatal(err)
		}
		m, err := wire.Unmarshal(bs)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	send := func(c transport.Conn, m wire.Message) {
		bs, _ := wire.Marshal(m)
		c.Send(bs)
	}
	chA := read(mA).(*wire.RelayChallenge) // A dialed M
	chB := read(mB).(*wire.RelayChallenge) // M dialed B
	if chA.Key != a.key.SignKey() || chB.Key != b.key.SignKey() {
		t.Fatal("the challenges do not name their senders' keys")
	}
	// To A, M is M (A would refuse another key); to B, M claims to be A.
	send(mA, &wire.RelayChallenge{Nonce: chB.Nonce, Key: mKey.SignKey()})
	send(mB, chA)
	hA := read(mA).(*wire.RelayHello)
	send(mB, hA)
	if _, ok := read(mB).(*wire.RelayHello); !ok { // B's own, for M to pass on
		t.Fatal("no hello from B")
	}
	e, ok := read(mB).(*wire.Error)
	if !ok || e.Code != wire.CodeBadSignature {
		t.Fatalf("B answered the relayed hello with %+v", e)
	}
	if b.fed.Linked(a.key.SignKey()) || b.fed.Stats().Links != 0 {
		t.Fatal("B is linked to A through M")
	}
	wait.Until(t, wait.Default, "B counts the refusal", func() bool { return b.fed.Stats().Dropped == 1 })
}

// A -peer named with a key refuses a relay at that URL that proves
// another (logged, counted), and keeps dialing with backoff, so once the
// URL serves the right relay the link comes up by itself.
func TestPeerKeyMismatch(t *testing.T) {
	b := newRelay(t, "zone-b", Config{}, nil)
	impostor := newRelay(t, "zone-b", Config{}, nil)
	var real atomic.Bool
	a := newRelay(t, "zone-a", Config{Peers: []Peer{{URL: "pipe://b", Key: b.key.SignKey()}},
		Dial: pipeTo(func() *relay {
			if real.Load() {
				return b
			}
			return impostor
		})}, nil)
	b.fed.Trust(a.key.SignKey())
	impostor.fed.Trust(a.key.SignKey())
	wait.Until(t, wait.Default, "two refusals of the impostor", func() bool { return a.fed.Stats().KeyMismatch >= 2 })
	if a.fed.Stats().Links != 0 || impostor.fed.Stats().Links != 0 || a.fed.Trusts(impostor.key.SignKey()) {
		t.Fatalf("linked to the impostor: %+v", a.fed.Stats())
	}
	real.Store(true)
	wait.Until(t, wait.Default, "linked to the right relay", func() bool { return a.fed.Linked(b.key.SignKey()) })
}

// A -peer named without a key pins the key it first proves, in the
// relay's store on disk, and trusts it: after a restart the pin holds,
// so another relay at that URL is refused.
func TestPeerPinnedAtFirstSight(t *testing.T) {
	dir := t.TempDir()
	st := relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
	b := newRelay(t, "zone-b", Config{}, nil)
	impostor := newRelay(t, "zone-b", Config{}, nil)
	var real atomic.Bool
	real.Store(true)
	dial := pipeTo(func() *relay {
		if real.Load() {
			return b
		}
		return impostor
	})
	peers := []Peer{{URL: "pipe://b/"}}
	a := newRelay(t, "zone-a", Config{Peers: peers, Store: st, Dial: dial}, nil)
	b.fed.Trust(a.key.SignKey())
	wait.Until(t, wait.Default, "linked", func() bool { return a.fed.Linked(b.key.SignKey()) })
	if !a.fed.Trusts(b.key.SignKey()) {
		t.Fatal("the key seen first is not trusted")
	}
	if r, _ := a.fed.Lookup(b.key.SignKey()); !r.Trusted {
		t.Fatal("the pinned relay is not marked trusted")
	}
	a.fed.Close()
	a.zone.Close()

	// Restarted on the same store, with the URL now answered by another.
	real.Store(false)
	a2 := newRelay(t, "zone-a", Config{Peers: peers, Store: st, Dial: dial}, nil)
	impostor.fed.Trust(a2.key.SignKey())
	b.fed.Trust(a2.key.SignKey())
	if !a2.fed.Trusts(b.key.SignKey()) {
		t.Fatal("the pin was not kept across the restart")
	}
	wait.Until(t, wait.Default, "the impostor refused", func() bool { return a2.fed.Stats().KeyMismatch >= 1 })
	if a2.fed.Stats().Links != 0 {
		t.Fatal("linked to the impostor")
	}
	real.Store(true)
	wait.Until(t, wait.Default, "linked to the pinned relay", func() bool { return a2.fed.Linked(b.key.SignKey()) })
}

// -peer and trust file syntax.
func TestParsePeerAndTrust(t *testing.T) {
	key := strings.Repeat("ab", 32)
	p, err := ParsePeer("https://b.example/#" + key)
	if err != nil || p.URL != "https://b.example" || fmt.Sprintf("%x", p.Key) != key {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := ParsePeer("http://127.0.0.1:8081"); err != nil || p.Key != ([32]byte{}) {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"http://x#abc", "http://x#" + strings.Repeat("zz", 32), "#" + key, "http://x#" + strings.Repeat("00", 32)} {
		if _, err := ParsePeer(bad); err == nil {
			t.Errorf("-peer %q accepted", bad)
		}
	}
	other := strings.Repeat("cd", 32)
	peers, trusted, err := ParseTrust(strings.NewReader("# relays we federate with\n" + key + " https://b.example/  # b\n\n  " + other + "\n"))
	if err != nil || len(peers) != 1 || peers[0].URL != "https://b.example" || fmt.Sprintf("%x", peers[0].Key) != key ||
		len(trusted) != 1 || fmt.Sprintf("%x", trusted[0]) != other {
		t.Fatalf("%+v %x %v", peers, trusted, err)
	}
	for _, bad := range []string{"nothex\n", key + " http://x extra\n", "https://b.example " + key + "\n"} {
		if _, _, err := ParseTrust(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("trust file %q: %v", bad, err)
		}
	}
}

// A relay named twice is dialed once; named twice with two keys, the
// configuration is refused.
func TestPeerNamedTwice(t *testing.T) {
	b := newRelay(t, "zone-b", Config{}, nil)
	dial := pipeTo(func() *relay { return b })
	a := newRelay(t, "zone-a", Config{Peers: []Peer{{URL: "pipe://b", Key: b.key.SignKey()}, {URL: "pipe://b/", Key: b.key.SignKey()}}, Dial: dial}, nil)
	b.fed.Trust(a.key.SignKey())
	wait.Until(t, wait.Default, "linked", func() bool { return a.fed.Linked(b.key.SignKey()) })
	if len(a.fed.Relays()) != 2 {
		t.Fatalf("/relays %+v", a.fed.Relays())
	}
	_, err := New(Config{Zone: a.zone, Key: a.key, Peers: []Peer{{URL: "pipe://b", Key: b.key.SignKey()}, {URL: "pipe://b", Key: a.key.SignKey()}}, Dial: dial})
	if err == nil || !strings.Contains(err.Error(), "named twice") {
		t.Fatalf("New: %v", err)
	}
}
