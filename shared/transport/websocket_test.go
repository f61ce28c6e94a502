//go:build !js

package transport

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/shared/clock"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// wsPair accepts one WebSocket on a loopback server and returns its
// adapter and the raw client end.
func wsPair(t *testing.T, cfg WebSocketConfig) (*WebSocket, *websocket.Conn) {
	t.Helper()
	accepted := make(chan *WebSocket, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		ws := NewWebSocket(c, cfg)
		accepted <- ws
		<-ws.Done()
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	client.SetReadLimit(2 * MaxMessage)
	ws := <-accepted
	t.Cleanup(func() {
		client.CloseNow()
		ws.Close()
		srv.Close()
	})
	return ws, client
}

func write(t *testing.T, c *websocket.Conn, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, b); err != nil {
		t.Fatal(err)
	}
}

func TestWebSocketMessages(t *testing.T) {
	ws, client := wsPair(t, WebSocketConfig{})
	write(t, client, websocket.MessageBinary, []byte("one"))
	if b, err := ws.Recv(); err != nil || string(b) != "one" {
		t.Fatalf("recv %q %v", b, err)
	}
	if err := ws.Send([]byte("two")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if typ, b, err := client.Read(ctx); err != nil || typ != websocket.MessageBinary || string(b) != "two" {
		t.Fatalf("client read %v %q %v", typ, b, err)
	}
	// A text message is malformed; the connection stays.
	write(t, client, websocket.MessageText, []byte("hello"))
	if _, err := ws.Recv(); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("text frame: %v", err)
	}
	full := bytes.Repeat([]byte{7}, MaxMessage)
	write(t, client, websocket.MessageBinary, full)
	if b, err := ws.Recv(); err != nil || !bytes.Equal(b, full) {
		t.Fatalf("a frame of MaxMessage bytes: %d %v", len(b), err)
	}
	if err := ws.Send(make([]byte, MaxMessage+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("sending too much: %v", err)
	}
	select {
	case <-ws.Done():
		t.Fatal("closed by a refused send")
	default:
	}
}

func TestWebSocketTooLarge(t *testing.T) {
	ws, client := wsPair(t, WebSocketConfig{})
	go client.Write(context.Background(), websocket.MessageBinary, make([]byte, MaxMessage+1))
	if _, err := ws.Recv(); !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	<-ws.Done()
	if _, err := ws.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("after: %v", err)
	}
	if err := ws.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := client.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("the client heard %v", err)
	}
}

func TestWebSocketCloseWith(t *testing.T) {
	ws, client := wsPair(t, WebSocketConfig{})
	reason := strings.Repeat("é", 100) // more than a close frame holds
	closed := make(chan error, 1)
	go func() { closed <- ws.CloseWith(1013, reason) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := client.Read(ctx)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusTryAgainLater || !strings.HasPrefix(reason, ce.Reason) || len(ce.Reason) < 120 {
		t.Fatalf("the client heard %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("CloseWith: %v", err)
	}
	<-ws.Done()
	if _, err := ws.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("recv after close: %v", err)
	}
}

func TestWebSocketClosedByPeer(t *testing.T) {
	ws, client := wsPair(t, WebSocketConfig{})
	go client.Close(websocket.StatusNormalClosure, "bye")
	if _, err := ws.Recv(); !errors.Is(err, ErrClosed) {
		t.Fatalf("recv: %v", err)
	}
	select {
	case <-ws.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
}

// The keepalive pings on its clock; a side that never answers is cut.
func TestWebSocketKeepalive(t *testing.T) {
	config := func() (*clock.Virtual, WebSocketConfig) {
		vc := clock.NewVirtual(time.Unix(0, 0))
		return vc, WebSocketConfig{Keepalive: 15 * time.Second, PingTimeout: 200 * time.Millisecond, Clock: vc}
	}
	ticking := func(vc *clock.Virtual) {
		wait.Until(t, wait.Default, "the keepalive's ticker", func() bool { return vc.Pending() > 0 })
	}

	t.Run("answered", func(t *testing.T) {
		vc, cfg := config()
		ws, client := wsPair(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go client.Read(ctx) // reads, so pongs go back
		got := make(chan error, 1)
		go func() { _, err := ws.Recv(); got <- err }()
		ticking(vc)
		for range 3 {
			vc.Advance(15 * time.Second)
			time.Sleep(50 * time.Millisecond)
		}
		select {
		case err := <-got:
			t.Fatalf("closed although pongs came back: %v", err)
		case <-ws.Done():
			t.Fatal("closed although pongs came back")
		default:
		}
	})
	t.Run("unanswered", func(t *testing.T) {
		vc, cfg := config()
		ws, client := wsPair(t, cfg)
		go ws.Recv()
		ticking(vc)
		vc.Advance(15 * time.Second)
		// The close handshake waits up to 5 s for a client that reads nothing.
		select {
		case <-ws.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("a silent side was not cut")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			_, _, err := client.Read(ctx)
			if err == nil {
				continue
			}
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("the client heard %v", err)
			}
			break
		}
	})
}
