package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// rawLink connects a and b over one pipe and returns a's end, to write
// frames to b as a would.
func rawLink(a, b *Node) transport.Conn {
	ca, cb := transport.Pipe()
	a.addPeer(b.Address(), false, nil, ca, ca, ViaRelay)
	b.addPeer(a.Address(), false, nil, cb, cb, ViaRelay)
	return ca
}

// A peer that sends a message type it invented (a newer version's) keeps
// its channel, and the node keeps serving it; a malformed frame of a
// type it knows still closes the channel.
func TestPeerSendsUnknownType(t *testing.T) {
	ns := swarm(t, 2, Config{})
	a, b := ns[0], ns[1]
	ca := rawLink(a, b)
	for _, frame := range [][]byte{{wire.Version, 250}, {wire.Version, 251, 1, 2, 3}, {wire.Version, 199, 0xff}} {
		if err := ca.Send(frame); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, wait.Default, "the unknown frames counted", func() bool { return b.Stats().UnknownPeer == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Ping(ctx, a.Address()); err != nil {
		t.Fatalf("b no longer serves a after unknown frames: %v", err)
	}
	if _, err := a.Ping(ctx, b.Address()); err != nil {
		t.Fatalf("a's channel to b: %v", err)
	}
	if s := b.RoutingView().Overlay; s.Unknown != 3 {
		t.Errorf("routing view counts %d unknown frames", s.Unknown)
	}

	// A request of a type the receiver does not know is answered, not
	// dropped: unsupported.
	nonce := randomSID()
	reply := make(chan wire.Message, 1)
	a.mu.Lock()
	a.calls[nonce] = pendingCall{to: b.Address(), reply: reply}
	a.mu.Unlock()
	rpc, _ := wire.Marshal(&wire.RPC{Nonce: nonce, Frame: []byte{wire.Version, 250, 9}})
	if err := ca.Send(rpc); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-reply:
		if e, ok := m.(*wire.Error); !ok || e.Code != wire.CodeUnsupported {
			t.Fatalf("an unknown request was answered %#v", m)
		}
	case <-ctx.Done():
		t.Fatal("an unknown request got no answer")
	}
	// A known request type that nothing answers: unsupported too.
	if _, err := a.call(ctx, b.Address(), &wire.Experiment{Label: "x"}); !errors.Is(err, wire.ErrUnsupported) {
		t.Fatalf("a request nothing handles: %v", err)
	}

	// A malformed Ping is not "unknown": the channel closes.
	if err := ca.Send([]byte{wire.Version, byte(wire.TypePing)}); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, wait.Default, "the channel closed for a malformed frame", func() bool { return b.peer(a.Address()) == nil })
	if b.Stats().UnknownPeer != 4 {
		t.Errorf("unknown frames counted: %d, want 4 (3 frames and 1 request)", b.Stats().UnknownPeer)
	}
}

// A routed message of a type the destination does not know is counted
// and dropped there; the destination keeps answering its sender.
func TestRoutedUnknownType(t *testing.T) {
	ns := swarm(t, 2, Config{})
	a, b := ns[0], ns[1]
	rawLink(a, b)
	r := routedFrom(a, a, b.Address(), 7)
	r.Frame = []byte{wire.Version, 252, 4}
	r.Sig = a.id.Sign(wire.RoutedSignedBytes(r.Dest, r.Nonce, r.Time, r.Origin.Address, r.Frame))
	b.onRouted(b.peer(a.Address()), r)
	if s := b.Stats(); s.UnknownPeer != 1 || s.Overlay.Dropped != 1 {
		t.Fatalf("stats after an unknown routed frame: %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.call(ctx, b.Address(), &wire.Ping{ID: 1}); err != nil {
		t.Fatalf("b stopped answering: %v", err)
	}
}
