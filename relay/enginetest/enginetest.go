// Package enginetest runs a relay's engines in a test's process — zone,
// federation, zone ledger and registrar (real usernames and domains with
// ledger proofs) — behind a real WebSocket on loopback, for the tests of
// capabilities under shared/ whose nodes need a relay that decides names.
// Nodes join it at URL and link to each other over Net's in-memory pipes
// with the node's real handshake. Native only: node's js runtime cannot
// serve a WebSocket.
package enginetest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/federation"
	"ddt/relay/registrar"
	"ddt/relay/zone"
	"ddt/relay/zoneledger"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
)

// Relay is one relay's engines, serving until the test ends.
type Relay struct {
	URL   string             // its base URL, for node.Config.Relay
	Net   *transport.Network // the nodes' peer links: Net.Transport() for each node
	Zone  *zone.Zone
	Names *registrar.Registrar
}

// Start runs a relay for the zone named zoneName (up to 32 nodes) until t
// ends.
func Start(t testing.TB, zoneName string) *Relay {
	t.Helper()
	key, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	st := store.NewMemory()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	r := &Relay{URL: srv.URL, Net: transport.NewNetwork()}
	z, err := zone.New(zone.Config{Name: zoneName, URL: srv.URL, MaxNodes: 32, Key: key, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	fed, err := federation.New(federation.Config{Zone: z, Key: key, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	led, err := zoneledger.New(zoneledger.Config{Zone: zoneName, Key: key, Store: st, Federation: fed, Trusted: fed.Trusts})
	if err != nil {
		t.Fatal(err)
	}
	r.Zone = z
	if r.Names, err = registrar.New(registrar.Config{Zone: z, Federation: fed, Ledger: led, Store: st}); err != nil {
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
		r.Names.Close()
		srv.Close()
	})
	return r
}
