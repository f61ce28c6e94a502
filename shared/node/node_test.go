package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// admitted makes a node that holds a lease from relay, without a relay
// connection: enough to exercise the peer handshake.
func admitted(t *testing.T, relay *identity.Identity) *Node {
	t.Helper()
	n, err := New(Config{Relay: "http://127.0.0.1:1", Store: store.NewMemory(), Transport: transport.NewNetwork().Transport()})
	if err != nil {
		t.Fatal(err)
	}
	var nonce [16]byte
	sk := n.id.SignKey()
	copy(nonce[:], sk[:16])
	n.lease = relay.IssueLease(n.id.SignKey(), n.id.AgreeKey(), nonce, "z", time.Now(), time.Hour)
	n.relayKey = relay.SignKey()
	return n
}

func handshakePair(a, b *Node, ca, cb transport.Conn) (errA, errB error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := b.handshake(ctx, cb, a.Address(), false)
		done <- err
	}()
	_, errA = a.handshake(ctx, ca, b.Address(), false)
	if errA != nil {
		ca.Close()
	}
	return errA, <-done
}

func TestHandshake(t *testing.T) {
	relay, _ := identity.New()
	a, b := admitted(t, relay), admitted(t, relay)
	ca, cb := transport.Pipe()
	if errA, errB := handshakePair(a, b, ca, cb); errA != nil || errB != nil {
		t.Fatalf("honest handshake: %v / %v", errA, errB)
	}
}

func TestHandshakeRefusesStrangers(t *testing.T) {
	relay, _ := identity.New()
	other, _ := identity.New()

	// A lease from another relay.
	a, b := admitted(t, relay), admitted(t, other)
	b.relayKey = relay.SignKey() // b believes it is in a's zone
	ca, cb := transport.Pipe()
	if errA, _ := handshakePair(a, b, ca, cb); !errors.Is(errA, identity.ErrBadLease) {
		t.Errorf("lease from another relay: %v", errA)
	}

	// Someone replaying b's real lease without b's key.
	a, b = admitted(t, relay), admitted(t, relay)
	thief := admitted(t, relay)
	thief.lease = b.lease
	ca, cb = transport.Pipe()
	errA, _ := handshakePair(a, thief, ca, cb)
	if !errors.Is(errA, wire.ErrBadSignature) {
		t.Errorf("stolen lease: %v", errA)
	}

	// The right lease for the wrong address.
	a, b = admitted(t, relay), admitted(t, relay)
	ca, cb = transport.Pipe()
	go b.handshake(context.Background(), cb, a.Address(), false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.handshake(ctx, ca, id.Address{7}, false); !errors.Is(err, wire.ErrProtocol) {
		t.Errorf("unexpected address: %v", err)
	}
	ca.Close() // ends b's side too

	// An expired lease.
	a, b = admitted(t, relay), admitted(t, relay)
	b.lease = relay.IssueLease(b.id.SignKey(), b.id.AgreeKey(), b.lease.Nonce, "z", time.Now().Add(-2*time.Hour), time.Hour)
	ca, cb = transport.Pipe()
	if errA, _ := handshakePair(a, b, ca, cb); !errors.Is(errA, identity.ErrExpired) {
		t.Errorf("expired lease: %v", errA)
	}
}

func TestIdentityPersists(t *testing.T) {
	st := store.NewMemory()
	cfg := Config{Relay: "http://127.0.0.1:1", Store: st, Transport: transport.NewNetwork().Transport()}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.id.SignKey() != b.id.SignKey() {
		t.Fatal("a second start made a new identity")
	}
}

// A corrupt stored identity does not stop the node for good: New starts
// it with a new identity (the same at the next start), keeps the
// unreadable record as identity.unreadable, and the node's connecting
// state says so; a node whose identity is fine says nothing of it.
func TestCorruptIdentity(t *testing.T) {
	st := store.NewMemory()
	cfg := Config{Relay: "http://127.0.0.1:1", Store: st, Transport: transport.NewNetwork().Transport(),
		Dial: func(ctx context.Context, url string) (*websocket.Conn, error) { <-ctx.Done(); return nil, ctx.Err() }}
	garbage := []byte("garbage")
	st.Put(keyIdentity, garbage)
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New with a corrupt identity: %v", err)
	}
	if b, err := st.Get("identity.unreadable"); err != nil || !bytes.Equal(b, garbage) {
		t.Fatalf("identity.unreadable: %q, %v; want the corrupt record", b, err)
	}
	const says = "This node's stored identity could not be read, so it has a new one; the old record is kept as identity.unreadable."
	if s, detail := n.State(); s != StateConnecting || !strings.Contains(detail, says) {
		t.Fatalf("state before Run: %s %q", s, detail)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	wait.Until(t, wait.Default, "the connecting state names the relay and the new identity", func() bool {
		_, detail := n.State()
		return strings.Contains(detail, "connecting to http://127.0.0.1:1") && strings.Contains(detail, says)
	})
	cancel()
	<-done
	again, err := New(cfg)
	if err != nil || again.id.SignKey() != n.id.SignKey() {
		t.Fatalf("the next start: %v, same identity %v", err, err == nil && again.id.SignKey() == n.id.SignKey())
	}
	if _, detail := again.State(); strings.Contains(detail, "identity") {
		t.Fatalf("the next start still says %q", detail)
	}
}

func TestWebSocketURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":     "ws://127.0.0.1:8080/ws",
		"https://relay.example/":    "wss://relay.example/ws",
		"https://relay.example/ddt": "wss://relay.example/ddt/ws",
	} {
		if got, err := WebSocketURL(in); err != nil || got != want {
			t.Errorf("WebSocketURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := WebSocketURL("ftp://x"); err == nil {
		t.Error("ftp relay accepted")
	}
}
