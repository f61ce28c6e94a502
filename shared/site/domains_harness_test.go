//go:build !js

package site

import (
	"context"
	"testing"
	"time"

	"ddt/relay/enginetest"
	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wait"
)

// Native only: a real relay's engines behind a real WebSocket, which
// node's js runtime cannot serve.

// testRelay is one relay's engines in process (package enginetest), that
// nodes join over WebSocket.
type testRelay struct {
	t testing.TB
	*enginetest.Relay
}

func newTestRelay(t testing.TB) *testRelay {
	t.Helper()
	return &testRelay{t: t, Relay: enginetest.Start(t, "zone-s")}
}

// testNode is a node with the content and sites capabilities.
type testNode struct {
	n    *node.Node
	s    *Service
	st   store.Store
	stop func()
}

// join runs a node on st (a new one if nil) until the test ends or stop.
func (r *testRelay) join(st store.Store) *testNode {
	r.t.Helper()
	if st == nil {
		st = store.NewMemory()
	}
	files := content.New(content.Config{})
	svc := New(Config{Files: files})
	n, err := node.New(node.Config{Relay: r.URL, Store: st, Transport: r.Net.Transport(), MaxBackoff: 200 * time.Millisecond,
		Capabilities: []node.Capability{files, svc}})
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	tn := &testNode{n: n, s: svc, st: st}
	var stopped bool
	tn.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	r.t.Cleanup(tn.stop)
	wait.Until(r.t, wait.Default, "admission", func() bool { s, _ := n.State(); return s == node.StateAdmitted })
	return tn
}

// meshed waits until every node has a data channel to each other one.
func meshed(t testing.TB, ns ...*testNode) {
	t.Helper()
	wait.Until(t, wait.Default, "nodes connected", func() bool {
		for _, n := range ns {
			if len(n.n.Peers()) < len(ns)-1 {
				return false
			}
		}
		return true
	})
}
