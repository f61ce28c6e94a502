//go:build !js

package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// Native only: these tests run pion peers over loopback (the loopback
// namespace of make test).

// pionTransport is a native WebRTC transport restricted to loopback.
func pionTransport(t testing.TB) *transport.WebRTC {
	t.Helper()
	w, err := transport.NewWebRTC(transport.Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// pionLink connects a and b over a real WebRTC session (signaled directly)
// and runs the node's handshake on it, as a relay-signaled dial would.
func pionLink(t testing.TB, a, b *Node) {
	t.Helper()
	var sa, sb transport.Session
	var mu sync.Mutex
	ready := make(chan struct{})
	deliver := func(to *transport.Session) transport.SendFunc {
		return func(kind wire.SignalKind, data string) {
			<-ready
			mu.Lock()
			s := *to
			mu.Unlock()
			go s.Handle(kind, data)
		}
	}
	var err error
	mu.Lock()
	if sa, err = pionTransport(t).NewSession(true, deliver(&sb)); err != nil {
		t.Fatal(err)
	}
	if sb, err = pionTransport(t).NewSession(false, deliver(&sa)); err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	close(ready)
	t.Cleanup(func() { sa.Close(); sb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns [4]transport.Conn
	for i, c := range []struct {
		s    transport.Session
		name string
	}{{sa, transport.Control}, {sb, transport.Control}, {sa, transport.Bulk}, {sb, transport.Bulk}} {
		if conns[i], err = c.s.Channel(ctx, c.name); err != nil {
			t.Fatalf("%s channel: %v", c.name, err)
		}
	}
	if err := Link(a, b, conns[0], conns[1], conns[2], conns[3]); err != nil {
		t.Fatalf("link: %v", err)
	}
}

// rawPeerConnection is a pion peer connection outside the node's
// transport, restricted to loopback: a hostile peer's.
// gatheredOffer makes pc's offer and returns its SDP once every
// candidate is in it (no trickle: one signal carries it all).
func gatheredOffer(t testing.TB, pc *webrtc.PeerConnection) string {
	t.Helper()
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc.LocalDescription().SDP
}

func rawPeerConnection(t testing.TB) *webrtc.PeerConnection {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// stubborn is a hostile peer on raw pion: it passes the handshake as the
// node as would, then never reads again (its data channel's read loop is
// stuck, so the SCTP receive window closes and whatever is sent to it
// piles up at the sender), and floods pings.
type stubborn struct {
	pc      *webrtc.PeerConnection
	control *webrtc.DataChannel
	in      chan []byte   // frames while it still reads
	deaf    atomic.Bool   // set once the handshake is done
	release chan struct{} // unblocks its read loop when the test ends
	pings   atomic.Int64  // sent
}

// newStubborn connects as as to hub over pion and runs the peer
// handshake; hub adds it as a peer.
func newStubborn(t *testing.T, hub, as *Node) *stubborn {
	t.Helper()
	pc := rawPeerConnection(t)
	s := &stubborn{pc: pc, in: make(chan []byte, 16), release: make(chan struct{})}
	t.Cleanup(func() { close(s.release); pc.Close() })
	ordered, negotiated := true, true
	for i, name := range []string{transport.Control, transport.Bulk} {
		id := uint16(i)
		dc, err := pc.CreateDataChannel(name, &webrtc.DataChannelInit{Ordered: &ordered, Negotiated: &negotiated, ID: &id})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			s.control = dc
		}
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			if s.deaf.Load() {
				<-s.release // stops reading: pion's read loop waits here
				return
			}
			s.in <- m.Data
		})
	}
	opened := make(chan struct{})
	s.control.OnOpen(func() { close(opened) })

	// The hub's side is the node's own transport, answering the offer.
	hs, err := pionTransport(t).NewSession(false, func(kind wire.SignalKind, data string) {
		switch kind {
		case wire.SignalAnswer:
			pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: data})
		case wire.SignalCandidate:
			var c webrtc.ICECandidateInit
			if json.Unmarshal([]byte(data), &c) == nil {
				pc.AddICECandidate(c)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	if err := hs.Handle(wire.SignalOffer, gatheredOffer(t, pc)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := hs.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bulk, err := hs.Channel(ctx, transport.Bulk)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
	case <-ctx.Done():
		t.Fatal("the stubborn peer's channel did not open")
	}

	type result struct {
		hello *wire.PeerHello
		err   error
	}
	done := make(chan result, 1)
	go func() {
		h, err := hub.handshake(ctx, conn, as.Address(), true)
		done <- result{h, err}
	}()
	if err := s.handshake(ctx, as); err != nil {
		t.Fatalf("stubborn handshake: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("hub's handshake with the stubborn peer: %v", r.err)
	}
	s.deaf.Store(true)
	hub.addPeer(as.Address(), r.hello.Native, r.hello.Features, conn, bulk, ViaRelay)
	return s
}

func (s *stubborn) recv(ctx context.Context) (wire.Message, error) {
	select {
	case b := <-s.in:
		return wire.Unmarshal(b)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *stubborn) send(m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return s.control.Send(b)
}

// handshake is the peer handshake from the stubborn side, as the node
// identity as would run it.
func (s *stubborn) handshake(ctx context.Context, as *Node) error {
	hello := &wire.PeerHello{Lease: as.lease, Features: wire.NewFeatures(wire.FeatureBulk)}
	rand.Read(hello.Nonce[:])
	if err := s.send(hello); err != nil {
		return err
	}
	m, err := s.recv(ctx)
	if err != nil {
		return err
	}
	theirs, ok := m.(*wire.PeerHello)
	if !ok {
		return fmt.Errorf("expected a hello, got %T", m)
	}
	if err := s.send(&wire.PeerProof{Sig: as.id.Sign(wire.ProofSignedBytes(theirs.Nonce, as.Address()))}); err != nil {
		return err
	}
	if m, err = s.recv(ctx); err != nil {
		return err
	}
	if _, ok := m.(*wire.PeerProof); !ok {
		return fmt.Errorf("expected a proof, got %T", m)
	}
	return nil
}

// flood sends pings as fast as its own send buffer allows, until stop
// closes or its link does.
func (s *stubborn) flood(stop <-chan struct{}) {
	for id := uint64(1); ; id++ {
		select {
		case <-stop:
			return
		default:
		}
		if s.control.BufferedAmount() > 256<<10 {
			time.Sleep(time.Millisecond)
			continue
		}
		if s.send(&wire.Ping{ID: id}) != nil {
			return
		}
		s.pings.Add(1)
	}
}

// ownGoroutines counts the goroutines running DDT code (pion's own come
// and go per packet, whoever sends).
func ownGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "ddt/") {
			count++
		}
	}
	return count
}

// A peer that stops reading and floods pings costs the node no goroutine
// per ping, is closed within the peer timeout, and does not stall other
// peers' routed traffic through the node: today's node spawned a blocked
// goroutine per ping, never closed the peer (its pings counted as life),
// and a routed message forwarded to it blocked the read loop of the peer
// it came from.
func TestStubbornPeer(t *testing.T) {
	ns := swarm(t, 4, Config{})
	hub, c, d, as := ns[0], ns[1], ns[2], ns[3]
	pionLink(t, hub, c)
	pionLink(t, hub, d)
	gone := make(chan string, 8)
	unsub := hub.Subscribe(func(e Event) {
		if e.Kind == EventPeerGone && e.Peer.Address == as.Address() {
			gone <- e.Reason
		}
	})
	defer unsub()
	s := newStubborn(t, hub, as)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// c reaches d only through the hub.
	if _, err := c.call(ctx, d.Address(), &wire.Ping{ID: 1}); err != nil {
		t.Fatalf("routed ping c→hub→d before the flood: %v", err)
	}
	base := ownGoroutines()

	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() { defer close(flooded); s.flood(stop) }()
	defer func() { close(stop); <-flooded }()
	// c routes more to the stubborn peer, through the hub, than its link
	// can take while it does not read (5 MiB: its receive window and the
	// hub's send buffer).
	for i := 0; i < 200; i++ {
		if err := c.sendRouted(ctx, as.Address(), &wire.RPC{Nonce: uint64(i), Frame: make([]byte, 60000)}); err != nil {
			t.Fatalf("routed message %d to the stubborn peer: %v", i, err)
		}
	}
	peak := 0
	sample := func() { peak = max(peak, ownGoroutines()) }
	// Meanwhile c's routed traffic to d, through the same hub, flows.
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.call(ctx, d.Address(), &wire.Ping{ID: uint64(10 + i)})
		cancel()
		if err != nil {
			t.Errorf("routed ping %d c→hub→d while the hub's link to the stubborn peer is full: %v", i, err)
			break
		}
		sample()
		time.Sleep(200 * time.Millisecond)
	}
	var reason string
	for deadline := time.Now().Add(30 * time.Second); reason == "" && time.Now().Before(deadline); {
		sample()
		select {
		case reason = <-gone:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if reason == "" {
		t.Error("the hub did not close the peer that stopped reading within 30 s")
	}
	if !strings.Contains(reason, "stopped reading") {
		t.Errorf("closed for %q, want a reason saying it stopped reading", reason)
	}
	if n := s.pings.Load(); n < 1000 {
		t.Fatalf("the stubborn peer sent only %d pings: the flood did not happen", n)
	}
	if peak-base > 50 {
		t.Errorf("goroutines rose from %d to %d during a flood of %d pings", base, peak, s.pings.Load())
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.call(ctx, d.Address(), &wire.Ping{ID: 99}); err != nil {
		t.Errorf("routed ping c→hub→d after the stubborn peer was closed: %v", err)
	}
	// What the hub dropped for it is counted where the page sees it.
	if v := hub.RoutingView().Overlay; v.Stalled != 1 || v.QueueFull == 0 {
		t.Errorf("hub's overlay counters: %+v, want stalled 1 and queueFull > 0", v)
	}
	t.Logf("pings sent %d, goroutines %d → peak %d, hub %+v", s.pings.Load(), base, peak, hub.OverlayStats())
}

// Fake offers — real WebRTC offers, through the relay, from addresses
// that will never complete them — hold at most MaxOffersPerSignaler
// sessions and none of the connection budget: the node still dials a
// peer of its own, and the fake sessions end at their deadline. (Before,
// they were answered until the budget and its slack were full, 11 here,
// and the node could open no channel of its own until they timed out.)
func TestFakeOffersAreBounded(t *testing.T) {
	clk := clock.NewVirtual(time.Now())
	ns, relay := swarmOf(t, 3, Config{MaxPeers: 4, Clock: clk, KeepAlive: time.Hour, PeerTimeout: 2 * time.Hour})
	h, c, d := ns[0], ns[1], ns[2]
	h.cfg.Transport, d.cfg.Transport = pionTransport(t), pionTransport(t)
	link(h, c)
	link(c, d) // h reaches d only through c

	// One offer, sent again and again as if from many addresses: each
	// copy makes the node start a session for it.
	pc := rawPeerConnection(t)
	defer pc.Close()
	if _, err := pc.CreateDataChannel("x", nil); err != nil {
		t.Fatal(err)
	}
	offer := gatheredOffer(t, pc)
	const fakes = 100
	for i := 0; i < fakes; i++ {
		var from id.Address
		rand.Read(from[:])
		h.onSignal(&wire.Signal{Peer: from, Session: randomSID(), Kind: wire.SignalOffer, Data: offer}, ViaRelay)
	}
	pending := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		k := 0
		for _, d := range h.dials {
			if !d.initiator {
				k++
			}
		}
		return k
	}
	if got := pending(); got == 0 || got > MaxOffersPerSignaler {
		t.Errorf("%d fake offers through the relay pending, want 1–%d", got, MaxOffersPerSignaler)
	}
	if s := h.OverlayStats(); s.OffersRefused != int64(fakes-pending()) {
		t.Errorf("offers refused %d, want %d", s.OffersRefused, fakes-pending())
	}
	// Offers naming a peer h has a channel to need no room in the budget,
	// but they are pending offers all the same.
	for i := 0; i < 10; i++ {
		h.onSignal(&wire.Signal{Peer: c.Address(), Session: randomSID(), Kind: wire.SignalOffer, Data: offer}, ViaRelay)
	}
	if got := pending(); got > MaxOffersPerSignaler {
		t.Errorf("%d offers through the relay pending after offers naming a connected peer, want at most %d", got, MaxOffersPerSignaler)
	}

	// More offers routed through c, each from an origin of its own (a
	// routed offer must be signed by the address it offers from; many
	// origins are many admitted keys): they add up to MaxPendingOffers
	// in all.
	for i := 0; i < 2*MaxPendingOffers; i++ {
		who, _ := identity.New()
		var nonce [16]byte
		rand.Read(nonce[:])
		lease := relay.IssueLease(who.SignKey(), who.AgreeKey(), nonce, "z", clk.Now(), time.Hour)
		frame := mustMarshal(&wire.Signal{Peer: lease.Address, Session: randomSID(), Kind: wire.SignalOffer, Data: pc.LocalDescription().SDP})
		r := &wire.Routed{Dest: h.Address(), TTL: wire.MaxTTL, Nonce: randomSID(), Time: clk.Now().UnixMilli(), Origin: lease, Frame: frame}
		r.Sig = who.Sign(wire.RoutedSignedBytes(r.Dest, r.Nonce, r.Time, lease.Address, frame))
		h.onRouted(h.peer(c.Address()), r)
	}
	if s := h.OverlayStats(); s.Delivered != 2*MaxPendingOffers {
		t.Fatalf("the routed offers were not all delivered: %+v", s)
	}
	if got := pending(); got != MaxPendingOffers {
		t.Errorf("%d offers pending after routed ones from %d origins, want %d", got, 2*MaxPendingOffers, MaxPendingOffers)
	}

	// The node's own dial, by the budget (not a locked Connect), still
	// has room, and opens.
	if h.connectTo(d.Address(), ViaOverlay, false, true) == nil {
		t.Fatal("no room left for the node's own dial")
	}
	wait.Until(t, 20*time.Second, "the node's own channel to d", func() bool { return h.peer(d.Address()) != nil })

	// The fake sessions end at their deadline.
	clk.Advance(handshakeTimeout + time.Second)
	wait.Until(t, 20*time.Second, "the fake sessions to end", func() bool { return pending() == 0 })
}
