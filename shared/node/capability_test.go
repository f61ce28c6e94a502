package node_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
	"ddt/shared/wire"
)

// echo is a capability for tests: it takes Experiment frames from peers,
// answers Experiment requests, and takes routed Experiments.
type echo struct {
	h      *node.Host
	got    chan wire.Message
	routed chan wire.Lease
}

func newEcho() *echo {
	return &echo{got: make(chan wire.Message, 16), routed: make(chan wire.Lease, 16)}
}

func (e *echo) Feature() string { return "echo" }

func (e *echo) Attach(h *node.Host) error {
	e.h = h
	h.HandlePeer(wire.TypeExperiment, func(_ node.PeerInfo, m wire.Message) { e.got <- m })
	h.HandleRequest(wire.TypeExperiment, func(_ context.Context, _ id.Address, req wire.Message) (wire.Message, error) {
		return &wire.Experiment{Label: "re-" + req.(*wire.Experiment).Label}, nil
	})
	h.HandleRouted(wire.TypeExperiment, func(origin wire.Lease, _ wire.Message) { e.routed <- origin })
	return nil
}

func received(t *testing.T, ch chan wire.Message) wire.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing arrived")
		return nil
	}
}

// A capability's messages go only to peers that announced it: sends to
// a peer without the feature fail at once and nothing reaches it; a
// routed request to a node without a handler comes back unsupported.
func TestCapabilityFeatureGating(t *testing.T) {
	echoes := map[int]*echo{0: newEcho(), 1: newEcho()} // node 2 has none
	s := nodetest.New(t, 3, nodetest.Options{Config: func(i int, c *node.Config) {
		if e := echoes[i]; e != nil {
			c.Capabilities = []node.Capability{e}
		}
	}})
	a, b, c := s.Nodes[0], s.Nodes[1], s.Nodes[2]
	s.Link(a, b)
	s.Link(a, c)
	ea, eb := echoes[0], echoes[1]
	if !a.Features().Has("echo") || c.Features().Has("echo") {
		t.Fatalf("features: a %v, c %v", a.Features(), c.Features())
	}
	for _, p := range a.Peers() {
		want := p.Address == b.Address()
		if p.Features.Has("echo") != want || !p.Features.Has(wire.FeatureBulk) {
			t.Errorf("a sees peer %s with features %v", p.Address.Short(), p.Features)
		}
	}

	// To a peer that has it: control and bulk channel, and a request.
	if err := ea.h.Send(b.Address(), &wire.Experiment{Label: "hi"}); err != nil {
		t.Fatal(err)
	}
	if m := received(t, eb.got).(*wire.Experiment); m.Label != "hi" {
		t.Fatalf("got %q", m.Label)
	}
	if err := ea.h.SendBulk(context.Background(), b.Address(), &wire.Experiment{Label: "big", Data: make([]byte, 1000)}); err != nil {
		t.Fatal(err)
	}
	if m := received(t, eb.got).(*wire.Experiment); m.Label != "big" || len(m.Data) != 1000 {
		t.Fatalf("bulk: got %q", m.Label)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := ea.h.Request(ctx, b.Address(), &wire.Experiment{Label: "q"}); err != nil || r.(*wire.Experiment).Label != "re-q" {
		t.Fatalf("request: %v %v", r, err)
	}

	// To a peer that does not: refused here, nothing sent.
	for what, err := range map[string]error{
		"send":      ea.h.Send(c.Address(), &wire.Experiment{Label: "no"}),
		"send bulk": ea.h.SendBulk(context.Background(), c.Address(), &wire.Experiment{Label: "no"}),
	} {
		if !errors.Is(err, node.ErrUnsupported) || !errors.Is(err, wire.ErrUnsupported) {
			t.Errorf("%s to a peer without echo: %v", what, err)
		}
	}
	if _, err := ea.h.Request(ctx, c.Address(), &wire.Experiment{Label: "no"}); !errors.Is(err, node.ErrUnsupported) {
		t.Errorf("request to a peer without echo: %v", err)
	}
	// Ping c, so that anything a sent before has been read.
	if _, err := a.Ping(ctx, c.Address()); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Unhandled != 0 || st.UnknownPeer != 0 {
		t.Errorf("c received echo frames it cannot handle: %+v", st)
	}

	// A routed one-way message to a node with it arrives with the
	// origin's lease.
	if err := ea.h.SendRouted(b.Address(), &wire.Experiment{Label: "routed"}); err != nil {
		t.Fatal(err)
	}
	select {
	case origin := <-eb.routed:
		if origin.Address != a.Address() {
			t.Errorf("routed from %s", origin.Address.Short())
		}
	case <-ctx.Done():
		t.Fatal("the routed message did not arrive")
	}

	// A routed request to a node without the capability (the last of a
	// chain, reached only through the middle one) is answered unsupported.
	e := newEcho()
	s2 := nodetest.New(t, 3, nodetest.Options{Config: func(i int, c *node.Config) {
		if i == 0 {
			c.Capabilities = []node.Capability{e}
		}
	}})
	s2.Link(s2.Nodes[0], s2.Nodes[1])
	s2.Link(s2.Nodes[1], s2.Nodes[2])
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	_, err := e.h.Request(ctx2, s2.Nodes[2].Address(), &wire.Experiment{Label: "far"})
	var re *wire.RemoteError
	if !errors.Is(err, wire.ErrUnsupported) || !errors.As(err, &re) {
		t.Errorf("routed request to a node without echo: %v", err)
	}
	if s2.Nodes[0].OverlayStats().Sent == 0 {
		t.Error("the request did not go through the overlay")
	}
}

// Registering a type twice, or a type package wire does not define,
// fails New with a clear error; so does a bad feature name.
func TestCapabilityRegistrationErrors(t *testing.T) {
	for says, c := range map[string]node.Capability{
		"type 34: already handled by node":    capFunc{"dup", func(h *node.Host) { h.HandlePeer(wire.TypePing, func(node.PeerInfo, wire.Message) {}) }},
		"package wire does not define":        capFunc{"undef", func(h *node.Host) { h.HandleRelay(230, func(wire.Message) {}) }},
		`feature "Bad Name": want 1–32 bytes`: capFunc{"Bad Name", func(*node.Host) {}},
		`feature "bulk": want`:                capFunc{"bulk", func(*node.Host) {}},
	} {
		s := nodetest.Options{Config: func(_ int, cfg *node.Config) { cfg.Capabilities = []node.Capability{c} }}
		ft := &fatalRecorder{TB: t}
		func() {
			defer func() { recover() }()
			nodetest.New(ft, 1, s)
		}()
		if !strings.Contains(ft.msg, says) {
			t.Errorf("New with a capability that breaks a rule failed with %q, want it to say %q", ft.msg, says)
		}
	}
}

type capFunc struct {
	feature string
	attach  func(*node.Host)
}

func (c capFunc) Feature() string { return c.feature }
func (c capFunc) Attach(h *node.Host) error {
	c.attach(h)
	return nil
}

// fatalRecorder stands in for a test where a failure is expected.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	panic(r)
}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	panic(r)
}

// A capability's event reaches subscribers with its value.
func TestCapabilityEmit(t *testing.T) {
	e := newEcho()
	s := nodetest.New(t, 1, nodetest.Options{Config: func(_ int, c *node.Config) { c.Capabilities = []node.Capability{e} }})
	got := make(chan node.Event, 1)
	s.Nodes[0].Subscribe(func(ev node.Event) { got <- ev })
	e.h.Emit("echo", map[string]string{"hello": "world"})
	ev := <-got
	if ev.Kind != "echo" || ev.Payload().(map[string]string)["hello"] != "world" {
		t.Fatalf("event %+v", ev)
	}
}

// stuck is a capability whose handler of bulk frames blocks until
// released: a receiver that stops reading its bulk channel.
type stuck struct {
	h       *node.Host
	release chan struct{}
	got     chan string
}

func (s *stuck) Feature() string { return "echo" }

func (s *stuck) Attach(h *node.Host) error {
	s.h = h
	h.HandlePeer(wire.TypeExperiment, func(_ node.PeerInfo, m wire.Message) {
		<-s.release
		s.got <- m.(*wire.Experiment).Label
	})
	return nil
}

// A bulk send to a peer that stopped reading waits for room only as long
// as its ctx: it ends with the ctx's error, the control channel still
// works meanwhile, and once the peer reads again every frame arrives in
// the order sent.
func TestSendBulkHonoursContext(t *testing.T) {
	ea := newEcho()
	sb := &stuck{release: make(chan struct{}), got: make(chan string, 100000)}
	s := nodetest.New(t, 2, nodetest.Options{Config: func(i int, c *node.Config) {
		c.Capabilities = []node.Capability{[]node.Capability{ea, sb}[i]}
	}})
	a, b := s.Nodes[0], s.Nodes[1]
	s.Link(a, b)
	var sent []string
	var stalled error
	for i := 0; i < 100000 && stalled == nil; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		label := fmt.Sprint(i)
		stalled = ea.h.SendBulk(ctx, b.Address(), &wire.Experiment{Label: label, Data: make([]byte, 1000)})
		cancel()
		if stalled == nil {
			sent = append(sent, label)
		}
	}
	if !errors.Is(stalled, context.DeadlineExceeded) {
		t.Fatalf("bulk sends to a peer that reads nothing: %v after %d frames; want the ctx's deadline", stalled, len(sent))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Ping(ctx, b.Address()); err != nil {
		t.Fatalf("the control channel while bulk is stalled: %v", err)
	}
	close(sb.release)
	// The frame whose send gave up still goes out, after the others.
	want := append(sent, fmt.Sprint(len(sent)))
	for i, w := range want {
		select {
		case got := <-sb.got:
			if got != w {
				t.Fatalf("frame %d: got %q, want %q", i, got, w)
			}
		case <-ctx.Done():
			t.Fatalf("only %d of %d frames arrived", i, len(want))
		}
	}
}
