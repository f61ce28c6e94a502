package node

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/clock"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// stalling makes the first outgoing attempts hang, as a dial does whose
// offer or candidates are lost: the channel never opens.
type stalling struct {
	transport.Transport
	left atomic.Int32
}

func (s *stalling) NewSession(initiator bool, send transport.SendFunc) (transport.Session, error) {
	if initiator && s.left.Add(-1) >= 0 {
		return &stalledSession{closed: make(chan struct{})}, nil
	}
	return s.Transport.NewSession(initiator, send)
}

type stalledSession struct {
	closed chan struct{}
	once   atomic.Bool
}

func (s *stalledSession) Handle(wire.SignalKind, string) error { return nil }
func (s *stalledSession) Conn(ctx context.Context) (transport.Conn, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closed:
		return nil, transport.ErrClosed
	}
}
func (s *stalledSession) Channel(ctx context.Context, _ string) (transport.Conn, error) {
	return s.Conn(ctx)
}
func (s *stalledSession) Close() error {
	if s.once.CompareAndSwap(false, true) {
		close(s.closed)
	}
	return nil
}

// A first dial that stalls is given up after a few seconds and tried
// again by itself, and the node's events say so: the node is not left
// without the peer (1 in 7 fresh pages once were, with nothing said).
func TestStalledDialIsRetried(t *testing.T) {
	net := transport.NewNetwork()
	clk := clock.NewVirtual(time.Now())
	st := &stalling{Transport: net.Transport()}
	st.left.Store(1)
	var ns []*Node
	ns = append(ns, swarm(t, 1, Config{Transport: st, Clock: clk, PeerTimeout: time.Hour})...)
	ns = append(ns, swarm(t, 2, Config{Transport: net.Transport()})...)
	a, b, hub := ns[0], ns[1], ns[2]
	// One relay identity for all: swarm's leases differ per call, so
	// trust each other's.
	for _, n := range ns {
		for _, m := range ns {
			n.zoneKeys[m.relayKey] = m.lease.Zone
		}
	}
	link(a, hub)
	link(b, hub)
	events := make(chan Event, 16)
	a.Subscribe(func(e Event) { events <- e })

	if a.connectTo(b.Address(), ViaOverlay, false, true) == nil {
		t.Fatal("no attempt started")
	}
	// a's clock holds its keepalive ticker for the hub and, once the
	// attempt waits for its channel, the stall timer.
	wait.Until(t, wait.Default, "the stall timer", func() bool { return clk.Pending() >= 2 })
	clk.Advance(stallTimeouts[0])
	var failed Event
	select {
	case failed = <-events:
	case <-time.After(5 * time.Second):
		t.Fatal("no event for the stalled dial")
	}
	v := failed.Payload().(DialFailedView)
	if failed.Kind != EventDialFailed || v.Address != b.Address().String() || v.RetryInMs <= 0 || !strings.Contains(v.Reason, "no data channel after 5s") {
		t.Fatalf("event %+v", v)
	}
	// The retry is due within a couple of seconds.
	if v.RetryInMs > 2000 {
		t.Errorf("retry in %d ms", v.RetryInMs)
	}
	wait.Until(t, wait.Default, "the retry timer", func() bool { return clk.Pending() >= 2 })
	clk.Advance(2 * time.Second)
	wait.Until(t, wait.Default, "a channel on the second attempt", func() bool { return a.peer(b.Address()) != nil })
	for {
		select {
		case e := <-events:
			if e.Kind == EventPeer && e.Peer.Address == b.Address() {
				return
			}
			continue
		case <-time.After(5 * time.Second):
			t.Fatal("no peer event after the retry")
		}
	}
}
