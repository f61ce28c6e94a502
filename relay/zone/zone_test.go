package zone

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"ddt/relay/link"
	"ddt/shared/id"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

func isSignal(m wire.Message) bool { _, ok := m.(*wire.Signal); return ok }

// Two nodes over pipes: admitted, told of each other, signaling.
func TestAdmissionAndSignaling(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{Name: "zone-p"})
	x, admX := admit(t, z, nil)
	if x.ch.Zone != "zone-p" || x.ch.RelayKey != z.Key() || len(x.ch.Features) != 0 {
		t.Fatalf("challenge %+v", x.ch)
	}
	if len(admX.Relays) != 1 || admX.Relays[0].Key != z.Key() || admX.Relays[0].Nodes != 1 {
		t.Fatalf("a zone alone lists itself: %+v", admX.Relays)
	}
	y, admY := admit(t, z, nil)
	if len(admY.Peers) != 1 || admY.Peers[0].Address != admX.Lease.Address {
		t.Fatalf("y's peers %+v", admY.Peers)
	}
	j := x.Until("y joining", func(m wire.Message) bool { _, ok := m.(*wire.PeerJoined); return ok }).(*wire.PeerJoined)
	if j.Lease.Address != admY.Lease.Address {
		t.Fatalf("joined %+v", j)
	}
	x.Send(&wire.Signal{Peer: admY.Lease.Address, Session: 3, Kind: wire.SignalOffer, Data: "v=0"})
	got := y.Until("the offer", isSignal).(*wire.Signal)
	if got.Peer != admX.Lease.Address || got.Session != 3 || got.Data != "v=0" {
		t.Fatalf("y got %+v", got)
	}
	// A signal to oneself, or to nobody, is an unknown peer.
	x.Send(&wire.Signal{Peer: admX.Lease.Address, Kind: wire.SignalBye})
	x.ExpectError(wire.CodeUnknownPeer)
	x.Send(&wire.Signal{Peer: id.Address{7}, Kind: wire.SignalBye})
	x.ExpectError(wire.CodeUnknownPeer)
	y.leave(z)
	l := x.Until("y leaving", func(m wire.Message) bool { _, ok := m.(*wire.PeerLeft); return ok }).(*wire.PeerLeft)
	if l.Address != admY.Lease.Address {
		t.Fatalf("left %+v", l)
	}
	if s := z.Stats(); s.Nodes != 1 || s.Admitted != 2 || s.Signals != 1 || s.Dropped != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// A node that sends a message type it invented keeps its link, is served
// afterwards, and the frames are counted apart from the refused ones.
func TestUnknownTypesSkipped(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{})
	x, _ := admit(t, z, nil)
	y, admY := admit(t, z, nil)
	for _, f := range [][]byte{{wire.Version, 250, 1, 2, 3}, {wire.Version, 200}, {wire.Version, 239, 0xff}} {
		x.SendRaw(f)
	}
	x.Send(&wire.Signal{Peer: admY.Lease.Address, Session: 9, Kind: wire.SignalBye})
	if got := y.Until("the signal after the unknown frames", isSignal).(*wire.Signal); got.Session != 9 {
		t.Fatalf("y got %+v", got)
	}
	if s := z.Stats(); s.Unknown != 3 || s.Dropped != 0 || s.Nodes != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// A known type nodes may not send is refused and counted; the node stays.
// A malformed frame of a known type closes its link.
func TestRefusedAndMalformed(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{})
	x, _ := admit(t, z, nil)
	y, admY := admit(t, z, nil)
	x.Send(&wire.Hello{})
	x.ExpectError(wire.CodeProtocol)
	x.Send(&wire.Signal{Peer: admY.Lease.Address, Session: 1, Kind: wire.SignalBye})
	y.Until("the signal", isSignal)
	if s := z.Stats(); s.Dropped != 1 {
		t.Fatalf("dropped %d", s.Dropped)
	}
	x.SendRaw([]byte{wire.Version, byte(wire.TypeSignal), 0xff})
	x.ExpectError(wire.CodeMalformed)
	x.ExpectClosed()
	wait.Until(t, wait.Default, "x is gone", func() bool { return z.Stats().Nodes == 1 })
}

// Admission refuses a bad hello, and garbage (an unknown type among it)
// instead of one.
func TestBadHellos(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{})
	r := dial(t, z)
	r.SendRaw([]byte{wire.Version, 250, 1})
	r.ExpectError(wire.CodeMalformed)
	r.ExpectClosed()
	r = dial(t, z)
	if _, m := r.Join(r.id, false); m.(*wire.Error).Code != wire.CodeBadSignature {
		t.Fatalf("unsigned hello: %+v", m)
	}
	r.ExpectClosed()
	if s := z.Stats(); s.Dropped != 2 || s.Admitted != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A service registers a node message type and its feature: the Challenge
// lists the feature, the handler serves the type, and a salvager answers
// frames of it that do not decode.
func TestHandlersAndFeatures(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{})
	z.Handle(wire.TypePing, "echo", func(m *Member, msg wire.Message) error {
		p := msg.(*wire.Ping)
		if p.ID == 0 {
			return link.Refuse(wire.CodeBadName, "no zero")
		}
		m.SendMsg(&wire.Pong{ID: p.ID})
		return nil
	})
	z.Salvage(wire.TypePing, func(m *Member, frame []byte) bool {
		m.SendMsg(&wire.Pong{ID: 999})
		return true
	})
	x, _ := admit(t, z, nil)
	if !slices.Equal(x.ch.Features, wire.Features{"echo"}) || !slices.Equal(z.Features(), x.ch.Features) {
		t.Fatalf("challenge features %v", x.ch.Features)
	}
	x.Send(&wire.Ping{ID: 5})
	if p, ok := x.Read().(*wire.Pong); !ok || p.ID != 5 {
		t.Fatalf("echo %+v", p)
	}
	x.Send(&wire.Ping{})
	x.ExpectError(wire.CodeBadName)
	x.SendRaw([]byte{wire.Version, byte(wire.TypePing), 0xff, 0xff})
	if p, ok := x.Read().(*wire.Pong); !ok || p.ID != 999 {
		t.Fatalf("salvage %+v", p)
	}
	if s := z.Stats(); s.Dropped != 2 || s.Nodes != 1 {
		t.Fatalf("stats %+v", s)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a handler registered after serving")
		}
	}()
	z.Handle(wire.TypePong, "", nil)
}

// fakeDirectory is a federation of one other zone, with member far.
type fakeDirectory struct {
	mu      sync.Mutex
	far     Peer
	relays  []wire.RelayInfo
	full    bool                // the link to the far zone is congested
	signals []*wire.Signal      // passed on
	events  []string            // joins and leaves, as the watch saw them
	snap    map[id.Address]bool // from Snapshot
}

func (d *fakeDirectory) EachPeerLocked(fn func(Peer)) { fn(d.far) }
func (d *fakeDirectory) RelaysLocked() ([]wire.RelayInfo, []wire.RelayFlags) {
	return d.relays, make([]wire.RelayFlags, len(d.relays))
}
func (d *fakeDirectory) RoomiestLocked() string { return "http://roomy.example" }
func (d *fakeDirectory) Signal(from *Member, sig *wire.Signal) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case sig.Peer != d.far.Lease.Address:
		return fmt.Errorf("%w: nobody", wire.ErrUnknownPeer)
	case d.full:
		return link.Refuse(wire.CodeRateLimited, "congested")
	}
	d.signals = append(d.signals, sig)
	return nil
}

func TestDirectory(t *testing.T) {
	z := newTestZone(t, store.NewMemory(), Config{MaxNodes: 2})
	far := z.key.IssueLease([32]byte{1}, [32]byte{2}, [16]byte{3}, "far", z.clock.Now(), LeaseTTL)
	d := &fakeDirectory{far: Peer{Lease: &far, Native: true}, relays: []wire.RelayInfo{{Zone: "test"}, {Zone: "far"}}}
	z.SetDirectory(d)
	z.Watch(Watch{
		JoinedLocked: func(m *Member) { d.events = append(d.events, "joined "+m.Address().Short()) },
		LeftLocked:   func(m *Member) { d.events = append(d.events, "left "+m.Address().Short()) },
	})
	x, adm := admit(t, z, nil)
	if len(adm.Peers) != 1 || adm.Peers[0].Address != far.Address || !adm.Natives[0] || len(adm.Relays) != 2 {
		t.Fatalf("admitted %+v", adm)
	}
	x.Send(&wire.Signal{Peer: far.Address, Session: 1, Kind: wire.SignalOffer})
	x.Send(&wire.Signal{Peer: id.Address{9}, Kind: wire.SignalOffer})
	x.ExpectError(wire.CodeUnknownPeer)
	d.mu.Lock()
	d.full = true
	d.mu.Unlock()
	x.Send(&wire.Signal{Peer: far.Address, Session: 2, Kind: wire.SignalOffer})
	x.ExpectError(wire.CodeRateLimited)
	if s := z.Stats(); s.Signals != 1 || s.Dropped != 2 || len(d.signals) != 1 {
		t.Fatalf("stats %+v, %d passed on", s, len(d.signals))
	}
	// Deliver takes signals coming back.
	z.Deliver(z.Member(adm.Lease.Address), &wire.Signal{Peer: far.Address, Session: 1, Kind: wire.SignalAnswer})
	if s := x.Until("the answer", isSignal).(*wire.Signal); s.Peer != far.Address || s.Kind != wire.SignalAnswer {
		t.Fatalf("answer %+v", s)
	}
	// Snapshot sees the members; the watch saw the changes in order.
	y, _ := admit(t, z, nil)
	z.Snapshot(func(ms []*Member) {
		d.snap = map[id.Address]bool{}
		for _, m := range ms {
			d.snap[m.Address()] = true
		}
	})
	if len(d.snap) != 2 || !d.snap[x.lease.Address] || !d.snap[y.lease.Address] {
		t.Fatalf("snapshot %v", d.snap)
	}
	// Full: the refusal names the directory's roomiest relay.
	r := dial(t, z)
	_, m := r.Join(r.id, true)
	if ref, ok := m.(*wire.Refused); !ok || ref.Redirect != "http://roomy.example" || ref.Code != wire.CodeZoneFull {
		t.Fatalf("refusal %+v", ref)
	}
	y.leave(z)
	z.Snapshot(func([]*Member) {
		want := []string{"joined " + x.lease.Address.Short(), "joined " + y.lease.Address.Short(), "left " + y.lease.Address.Short()}
		if !slices.Equal(d.events, want) {
			t.Errorf("watch saw %v, want %v", d.events, want)
		}
	})
}
