//go:build !js

package unicast

import (
	"context"
	"sync"
	"testing"
	"time"

	"ddt/relay/enginetest"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/username"
	"ddt/shared/wait"
)

// Native only: a real relay's engines behind a real WebSocket, which
// node's js runtime cannot serve; the nodes link over in-memory pipes
// through the node's real handshake.

// testRelay is one relay's engines in process (package enginetest): real
// usernames with ledger proofs.
type testRelay struct {
	t testing.TB
	*enginetest.Relay
}

func newTestRelay(t testing.TB) *testRelay {
	t.Helper()
	return &testRelay{t: t, Relay: enginetest.Start(t, "zone-u")}
}

// testNode is a node with usernames and unicast, and what it emitted.
type testNode struct {
	n     *node.Node
	users *username.Client
	s     *Service
	st    store.Store
	stop  func()

	mu     sync.Mutex
	events []node.Event
}

// join runs a node on st (a new one if nil) until the test ends or stop;
// setup, if set, adjusts the service before the node runs.
func (r *testRelay) join(st store.Store, cfg Config, setup func(*Service)) *testNode {
	r.t.Helper()
	if st == nil {
		st = store.NewMemory()
	}
	users := username.New()
	svc := New(users, cfg)
	n, err := node.New(node.Config{Relay: r.URL, Store: st, Transport: r.Net.Transport(), MaxBackoff: 200 * time.Millisecond,
		Capabilities: []node.Capability{users, svc}})
	if err != nil {
		r.t.Fatal(err)
	}
	if setup != nil {
		setup(svc)
	}
	tn := &testNode{n: n, users: users, s: svc, st: st}
	n.Subscribe(func(e node.Event) {
		tn.mu.Lock()
		tn.events = append(tn.events, e)
		tn.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	var once sync.Once
	tn.stop = func() { once.Do(func() { cancel(); <-done }) }
	r.t.Cleanup(tn.stop)
	wait.Until(r.t, wait.Default, "admission", func() bool { s, _ := n.State(); return s == node.StateAdmitted })
	return tn
}

// register claims name for tn, trying again while the zone settles.
func (tn *testNode) register(t testing.TB, name string) {
	t.Helper()
	wait.For(t, 30*time.Second, "registering "+name, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := tn.users.Register(ctx, name)
		return err
	})
}

// emitted lists the values of the events of kind tn emitted.
func emitted[T any](tn *testNode, kind string) []T {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var out []T
	for _, e := range tn.events {
		if v, ok := e.Value.(T); ok && e.Kind == kind {
			out = append(out, v)
		}
	}
	return out
}

// texts are the texts of the messages tn was told of, in order.
func texts(tn *testNode) []string {
	var out []string
	for _, m := range emitted[MessageView](tn, EventMessage) {
		out = append(out, m.From+": "+m.Text)
	}
	return out
}

// friend is name as tn's Friends shows it.
func (tn *testNode) friend(name string) FriendView {
	for _, f := range tn.s.Friends() {
		if f.Name == name {
			return f
		}
	}
	return FriendView{}
}

// meshed waits until every node has a data channel to each other one.
func meshed(t testing.TB, ns ...*testNode) {
	t.Helper()
	wait.Until(t, 30*time.Second, "nodes connected", func() bool {
		for _, n := range ns {
			if len(n.n.Peers()) < len(ns)-1 {
				return false
			}
		}
		return true
	})
}
