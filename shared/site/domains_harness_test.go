//go:build !js

package site

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/federation"
	"ddt/relay/registrar"
	"ddt/relay/zone"
	"ddt/relay/zoneledger"
	"ddt/shared/content"
	"ddt/shared/identity"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"
)

// Native only: a real relay's engines (zone, federation, zone ledger,
// registrar) behind a real WebSocket, which node's js runtime cannot
// serve.

// testRelay is one relay, in process, that nodes join over WebSocket.
type testRelay struct {
	t     testing.TB
	zone  *zone.Zone
	names *registrar.Registrar
	srv   *httptest.Server
	net   *transport.Network // the nodes' peer links
}

func newTestRelay(t testing.TB) *testRelay {
	t.Helper()
	key, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	r := &testRelay{t: t, net: transport.NewNetwork()}
	mux := http.NewServeMux()
	r.srv = httptest.NewServer(mux)
	z, err := zone.New(zone.Config{Name: "zone-s", URL: r.srv.URL, MaxNodes: 32, Key: key, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	fed, err := federation.New(federation.Config{Zone: z, Key: key, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	led, err := zoneledger.New(zoneledger.Config{Zone: "zone-s", Key: key, Store: st, Federation: fed, Trusted: fed.Trusts})
	if err != nil {
		t.Fatal(err)
	}
	r.zone = z
	if r.names, err = registrar.New(registrar.Config{Zone: z, Federation: fed, Ledger: led, Store: st}); err != nil {
		t.Fatal(err)
	}
	fed.Start()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, req *http.Request) {
		if !z.JoinSlot() {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		conn, err := websocket.Accept(w, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			z.ReleaseSlot()
			return
		}
		z.Serve(req.Context(), transport.NewWebSocket(conn, transport.WebSocketConfig{Keepalive: 15 * time.Second}), req.RemoteAddr)
	})
	t.Cleanup(func() {
		z.Close()
		fed.Close()
		led.Close()
		r.names.Close()
		r.srv.Close()
	})
	return r
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
	n, err := node.New(node.Config{Relay: r.srv.URL, Store: st, Transport: r.net.Transport(), MaxBackoff: 200 * time.Millisecond,
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
