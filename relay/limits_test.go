package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/zone"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// healthz fetches the relay's /healthz as a client would.
func (z *testZone) healthz() Stats {
	z.t.Helper()
	resp, err := http.Get(z.url + "/healthz")
	if err != nil {
		z.t.Fatal(err)
	}
	defer resp.Body.Close()
	var s Stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		z.t.Fatal(err)
	}
	return s
}

// dialWS opens /ws and returns the connection, or the HTTP status of the
// refusal.
func (z *testZone) dialWS() (*websocket.Conn, int) {
	z.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, strings.Replace(z.url, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		if resp == nil {
			z.t.Fatal(err)
		}
		return nil, resp.StatusCode
	}
	z.t.Cleanup(func() { c.CloseNow() })
	return c, http.StatusSwitchingProtocols
}

// Exactly zone.MaxJoining connections may be between upgrade and
// admission at once; the next gets HTTP 503 with Retry-After, and
// /healthz counts it. A slot freed is a connection admitted again.
func TestJoiningLimitExact(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	held := make([]*websocket.Conn, 0, zone.MaxJoining)
	for i := 0; i < zone.MaxJoining; i++ {
		c, status := z.dialWS()
		if c == nil {
			t.Fatalf("silent connection %d of %d refused with %d", i+1, zone.MaxJoining, status)
		}
		held = append(held, c)
	}
	if _, status := z.dialWS(); status != http.StatusServiceUnavailable {
		t.Fatalf("connection %d: status %d, want 503", zone.MaxJoining+1, status)
	}
	if l := z.healthz().Limits; l.Joining != zone.MaxJoining || l.Busy != 1 {
		t.Fatalf("/healthz limits %+v, want %d joining and 1 busy", l, zone.MaxJoining)
	}
	held[0].CloseNow()
	wait.Until(t, wait.Default, "a slot freed", func() bool { return z.relay.Zone.Joining() == zone.MaxJoining-1 })
	if c, status := z.dialWS(); c == nil {
		t.Fatalf("with one slot free: status %d", status)
	}
	if _, status := z.dialWS(); status != http.StatusServiceUnavailable {
		t.Fatalf("full again: status %d, want 503", status)
	}
	for _, c := range held {
		c.CloseNow()
	}
	wait.Until(t, wait.Default, "slots freed", func() bool { return z.relay.Zone.Joining() <= 1 })
	if l := z.healthz().Limits; l.Busy != 2 {
		t.Fatalf("/healthz limits %+v, want 2 busy", l)
	}
}

// A frame of exactly wire.MaxFrame bytes is read (one of a type this
// relay does not know is skipped, and the node stays); one byte more
// closes the connection, and /healthz counts it.
func TestFrameLimitExact(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	r := dialRaw(t, z)
	r.hello(true)
	if _, ok := r.read().(*wire.Admitted); !ok {
		t.Fatal("not admitted")
	}
	frame := make([]byte, wire.MaxFrame)
	frame[0], frame[1] = wire.Version, 250
	if err := r.write(frame); err != nil {
		t.Fatal(err)
	}
	r.send(&wire.Hello{}) // still served: refused, not closed
	r.expectError(wire.CodeProtocol)
	if s := z.healthz(); s.Unknown != 1 || s.Limits.Oversized != 0 || s.Nodes != 1 {
		t.Fatalf("/healthz after a %d-byte frame: %+v", wire.MaxFrame, s)
	}
	r.write(append(frame, 0))
	r.expectClosed()
	wait.Until(t, wait.Default, "the node gone", func() bool { return z.relay.Zone.Stats().Nodes == 0 })
	if l := z.healthz().Limits; l.Oversized != 1 {
		t.Fatalf("/healthz limits %+v, want 1 oversized", l)
	}
}

// Signals that a node cannot take now are dropped, and their sender
// told so: flooding a slow node with signals fills no queue past its
// bound, and never gets that node cut for being slow.
func TestSignalsCannotCutASlowNode(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	victim := dialRaw(t, z) // admitted, then reads nothing more
	victim.hello(true)
	adm, ok := victim.read().(*wire.Admitted)
	if !ok {
		t.Fatal("not admitted")
	}
	big := strings.Repeat("x", wire.MaxSignal)
	var senders []*rawClient
	for range 3 {
		r := dialRaw(t, z)
		r.hello(true)
		r.read()
		senders = append(senders, r)
	}
	// 3 × 300 signals of 16 KiB, within every sender's burst: 14 MiB,
	// more than loopback's socket buffers and the victim's queue hold.
	for i, r := range senders {
		go func() {
			for k := range 300 {
				b, _ := wire.Marshal(&wire.Signal{Peer: adm.Lease.Address, Session: uint64(i*1000 + k), Kind: wire.SignalCandidate, Data: big})
				if r.write(b) != nil {
					return
				}
			}
			r.send(&wire.Hello{}) // refused: the last frame, after every signal
		}()
	}
	congested := 0
	for _, r := range senders {
		for done := false; !done; {
			m := r.read()
			if e, ok := m.(*wire.Error); ok {
				switch e.Code {
				case wire.CodeRateLimited:
					congested++
				case wire.CodeProtocol:
					done = true
				default:
					t.Fatalf("sender heard %v", e.Err())
				}
			}
		}
	}
	s := z.relay.Stats()
	if z.relay.Zone.Member(adm.Lease.Address) == nil || s.Limits.Stuck != 0 {
		t.Fatalf("the slow node was cut by others' signals: limits %+v", s.Limits)
	}
	if congested == 0 || s.Limits.Congested != int64(congested) || s.Limits.QueuedBytes > zone.OutQueueBytes {
		t.Fatalf("senders heard %d refusals; limits %+v", congested, s.Limits)
	}
}
