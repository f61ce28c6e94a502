//go:build !js

package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/wait"

	"github.com/coder/websocket"
)

// Native only: the test serves WebSockets, which node's js runtime cannot.
func TestEarlyDialer(t *testing.T) {
	var accepted atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		accepted.Add(1)
		c.Read(r.Context()) // hold until the client goes
	}))
	defer srv.Close()
	dial := EarlyDialer(srv.URL)
	wsURL, _ := WebSocketURL(srv.URL)
	// The dial starts before anyone asks.
	wait.Until(t, 5*time.Second, "EarlyDialer to dial ahead", func() bool { return accepted.Load() > 0 })
	if accepted.Load() != 1 {
		t.Fatal("EarlyDialer dialed more than once")
	}
	ctx := context.Background()
	c1, err := dial(ctx, wsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.CloseNow()
	if accepted.Load() != 1 {
		t.Fatal("the first call dialed again instead of using the early connection")
	}
	c2, err := dial(ctx, wsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	// The server counts a connection once its handler runs, which may be
	// just after the client's dial returns.
	wait.Until(t, 5*time.Second, "the second connection", func() bool { return accepted.Load() >= 2 })
	if c2 == c1 || accepted.Load() != 2 {
		t.Fatal("a later call reused the early connection")
	}
}
