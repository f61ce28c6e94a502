package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"ddt/shared/wire"
)

// connect runs a session pair on tr, carrying signals directly.
func connect(t testing.TB, a, b Transport) (Conn, Conn) {
	t.Helper()
	var sa, sb Session
	var mu sync.Mutex
	ready := make(chan struct{})
	deliver := func(to *Session) SendFunc {
		return func(kind wire.SignalKind, data string) {
			<-ready
			mu.Lock()
			s := *to
			mu.Unlock()
			go func() {
				if err := s.Handle(kind, data); err != nil {
					t.Errorf("handle %d: %v", kind, err)
				}
			}()
		}
	}
	var err error
	mu.Lock()
	sa, err = a.NewSession(true, deliver(&sb))
	if err != nil {
		t.Fatal(err)
	}
	sb, err = b.NewSession(false, deliver(&sa))
	if err != nil {
		t.Fatal(err)
	}
	mu.Unlock()
	close(ready)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ca, err := sa.Conn(ctx)
	if err != nil {
		t.Fatalf("initiator: %v", err)
	}
	cb, err := sb.Conn(ctx)
	if err != nil {
		t.Fatalf("responder: %v", err)
	}
	return ca, cb
}

// transports lists each implementation the suite runs against.
func transports(t testing.TB) map[string][2]Transport {
	net := NewNetwork()
	m := map[string][2]Transport{"memory": {net.Transport(), net.Transport()}}
	if !testing.Short() && webrtcAvailable(t) {
		w1, err := NewWebRTC(Config{LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		w2, err := NewWebRTC(Config{LoopbackOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w1.Close(); w2.Close() })
		m["webrtc"] = [2]Transport{w1, w2}
	}
	return m
}

func TestConnSuite(t *testing.T) {
	for name, pair := range transports(t) {
		t.Run(name, func(t *testing.T) {
			a, b := connect(t, pair[0], pair[1])
			// Messages arrive in order, whole, in both directions.
			const n = 500
			go func() {
				for i := 0; i < n; i++ {
					msg := make([]byte, max(4, 1+i*97%MaxMessage))
					binary.BigEndian.PutUint32(msg, uint32(i))
					if err := a.Send(msg); err != nil {
						t.Errorf("send %d: %v", i, err)
						return
					}
				}
			}()
			for i := 0; i < n; i++ {
				msg, err := b.Recv()
				if err != nil {
					t.Fatalf("recv %d: %v", i, err)
				}
				if got := binary.BigEndian.Uint32(msg); got != uint32(i) {
					t.Fatalf("message %d arrived as %d", i, got)
				}
				if want := max(4, 1+i*97%MaxMessage); len(msg) != want {
					t.Fatalf("message %d is %d bytes, want %d", i, len(msg), want)
				}
			}
			if err := b.Send([]byte("back")); err != nil {
				t.Fatal(err)
			}
			if msg, err := a.Recv(); err != nil || !bytes.Equal(msg, []byte("back")) {
				t.Fatalf("reply: %q %v", msg, err)
			}
			if err := a.Send(make([]byte, MaxMessage+1)); err == nil {
				t.Fatal("oversized message accepted")
			}
			// Closing one side closes the other.
			a.Close()
			select {
			case <-b.Done():
			case <-time.After(15 * time.Second):
				t.Fatal("peer did not notice the close")
			}
			if _, err := b.Recv(); err == nil {
				t.Fatal("recv after close succeeded")
			}
		})
	}
}

func TestBadSignals(t *testing.T) {
	if !webrtcAvailable(t) {
		t.Skip("no WebRTC in this runtime")
	}
	w, err := NewWebRTC(Config{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s, err := w.NewSession(false, func(wire.SignalKind, string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, sig := range []struct {
		kind wire.SignalKind
		data string
	}{{wire.SignalOffer, "not sdp"}, {wire.SignalCandidate, "{"}, {wire.SignalAnswer, "v=0"}} {
		if err := s.Handle(sig.kind, sig.data); err == nil {
			t.Errorf("signal %d %q accepted", sig.kind, sig.data)
		}
	}
	m := NewNetwork().Transport()
	ms, _ := m.NewSession(false, func(wire.SignalKind, string) {})
	if err := ms.Handle(wire.SignalOffer, "nope"); err == nil {
		t.Error("unknown in-memory offer accepted")
	}
}

// BenchmarkThroughput moves 64 MiB one way in 60 KiB messages.
func BenchmarkThroughput(b *testing.B) {
	for name, pair := range transports(b) {
		b.Run(name, func(b *testing.B) {
			a, c := connect(b, pair[0], pair[1])
			defer a.Close()
			const total = 64 << 20
			msg := make([]byte, 60<<10)
			b.SetBytes(total)
			for i := 0; i < b.N; i++ {
				done := make(chan error, 1)
				go func() {
					got := 0
					for got < total {
						m, err := c.Recv()
						if err != nil {
							done <- err
							return
						}
						got += len(m)
					}
					done <- nil
				}()
				for sent := 0; sent < total; sent += len(msg) {
					if err := a.Send(msg[:min(len(msg), total-sent)]); err != nil {
						b.Fatal(err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(fmt.Errorf("receiver: %w", err))
				}
			}
		})
	}
}
