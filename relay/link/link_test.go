package link

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// closer is a conn that records how it was closed, and whose Send can be
// held.
type closer struct {
	transport.Conn
	hold chan struct{} // Send waits for it to be closed, if set
	mu   sync.Mutex
	code int
	why  string
}

func (c *closer) Send(b []byte) error {
	if c.hold != nil {
		select {
		case <-c.hold:
		case <-c.Done():
			return transport.ErrClosed
		}
	}
	return c.Conn.Send(b)
}

func (c *closer) CloseWith(code int, reason string) error {
	c.mu.Lock()
	c.code, c.why = code, reason
	c.mu.Unlock()
	return c.Close()
}

func (c *closer) closedWith() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.why
}

func frame(t testing.TB, m wire.Message) []byte {
	t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recv(t testing.TB, c transport.Conn) wire.Message {
	t.Helper()
	b, err := c.Recv()
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pair runs a Link on one end of a pipe; the test holds the other end.
func pair(t *testing.T, cfg Config) (*Link, *closer, transport.Conn) {
	t.Helper()
	a, b := transport.Pipe()
	c := &closer{Conn: a}
	l := New(c, cfg)
	t.Cleanup(func() { l.Stop(WhyGone); l.Wait(); b.Close() })
	return l, c, b
}

func TestNextSkipsUnknownTypes(t *testing.T) {
	var unknown, dropped atomic.Int64
	l, _, peer := pair(t, Config{Unknown: &unknown, Dropped: &dropped})
	peer.Send([]byte{wire.Version, 250, 1, 2, 3}) // a type a newer relay might send
	peer.Send([]byte{wire.Version, 251})
	peer.Send(frame(t, &wire.Ping{ID: 7}))
	m, ok := l.Next()
	if p, isPing := m.(*wire.Ping); !ok || !isPing || p.ID != 7 {
		t.Fatalf("next: %T %v", m, ok)
	}
	if unknown.Load() != 2 || dropped.Load() != 0 {
		t.Fatalf("unknown %d, dropped %d", unknown.Load(), dropped.Load())
	}
}

func TestNextMalformedEndsTheLink(t *testing.T) {
	var unknown, dropped atomic.Int64
	l, c, peer := pair(t, Config{Unknown: &unknown, Dropped: &dropped})
	peer.Send([]byte{wire.Version, byte(wire.TypeSignal), 0xff})
	if _, ok := l.Next(); ok {
		t.Fatal("a malformed frame did not end the link")
	}
	if e, ok := recv(t, peer).(*wire.Error); !ok || e.Code != wire.CodeMalformed {
		t.Fatalf("the other side heard %+v", e)
	}
	l.Wait()
	if code, why := c.closedWith(); code != StatusPolicyViolation || why != "malformed message" {
		t.Fatalf("closed with %d %q", code, why)
	}
	if dropped.Load() != 1 || unknown.Load() != 0 {
		t.Fatalf("unknown %d, dropped %d", unknown.Load(), dropped.Load())
	}
}

func TestNextSalvage(t *testing.T) {
	var dropped atomic.Int64
	bad := []byte{wire.Version, byte(wire.TypeNameClaim), 0xff}
	l, _, peer := pair(t, Config{Dropped: &dropped, Salvage: func(b []byte) bool { return string(b) == string(bad) }})
	peer.Send(bad)
	if m, ok := l.Next(); !ok || m != nil {
		t.Fatalf("salvaged frame: %v %v", m, ok)
	}
	peer.Send([]byte{wire.Version, byte(wire.TypeNameClaim), 0xfe})
	if _, ok := l.Next(); ok {
		t.Fatal("a frame salvage refused did not end the link")
	}
}

func TestNextConnGone(t *testing.T) {
	l, c, peer := pair(t, Config{})
	peer.Close()
	if _, ok := l.Next(); ok {
		t.Fatal("a closed conn did not end the link")
	}
	l.Wait()
	if l.Why() != WhyGone {
		t.Fatalf("why %q", l.Why())
	}
	if code, _ := c.closedWith(); code != 0 {
		t.Fatalf("a gone conn was closed with code %d", code)
	}
}

// Stop lets the writer send what is queued, then closes with the reason.
func TestStopFlushes(t *testing.T) {
	a, peer := transport.Pipe()
	c := &closer{Conn: a, hold: make(chan struct{})}
	l := New(c, Config{})
	for i := range 3 {
		l.Send(frame(t, &wire.Ping{ID: uint64(i)}))
	}
	l.Reject(wire.CodeProtocol, "you did something")
	l.Stop("because")
	close(c.hold)
	l.Wait()
	for i := range 3 {
		if p, ok := recv(t, peer).(*wire.Ping); !ok || p.ID != uint64(i) {
			t.Fatalf("frame %d: %+v", i, p)
		}
	}
	if e, ok := recv(t, peer).(*wire.Error); !ok || e.Message != "you did something" {
		t.Fatalf("last frame %+v", e)
	}
	if code, why := c.closedWith(); code != StatusPolicyViolation || why != "because" || l.Why() != "because" {
		t.Fatalf("closed with %d %q, why %q", code, why, l.Why())
	}
}

// A conn that takes nothing is closed FlushWait after Stop.
func TestStopGivesUp(t *testing.T) {
	a, peer := transport.Pipe()
	defer peer.Close()
	c := &closer{Conn: a, hold: make(chan struct{})}
	l := New(c, Config{})
	l.Send(frame(t, &wire.Ping{ID: 1}))
	l.Send(frame(t, &wire.Ping{ID: 2}))
	l.Stop("because")
	done := make(chan struct{})
	go func() { l.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never gave up")
	}
}

func TestQueueOverflowStops(t *testing.T) {
	a, peer := transport.Pipe()
	defer peer.Close()
	c := &closer{Conn: a, hold: make(chan struct{})}
	l := New(c, Config{Queue: 4})
	b := frame(t, &wire.Ping{})
	took := 0
	for range 10 {
		if l.TrySend(b) {
			took++
		}
	}
	if took == 0 || took > 4 {
		t.Fatalf("TrySend took %d frames into a queue of 4 (the writer holds one)", took)
	}
	select {
	case <-l.Stopped():
		t.Fatal("TrySend stopped the link")
	default:
	}
	for range 10 {
		l.Send(b)
	}
	<-l.Stopped()
	if l.Why() != "send queue overflow" {
		t.Fatalf("why %q", l.Why())
	}
	close(c.hold)
	l.Wait()
}

func TestServe(t *testing.T) {
	var dropped atomic.Int64
	l, c, peer := pair(t, Config{Dropped: &dropped})
	served := make(chan struct{})
	go func() {
		defer close(served)
		l.Serve(func(m wire.Message) error {
			switch p := m.(type) {
			case *wire.Ping:
				switch p.ID {
				case 1:
					return nil
				case 2:
					return fmt.Errorf("limit: %w", Refuse(wire.CodeRateLimited, "slow down"))
				case 3:
					return ErrViolation
				}
				return fmt.Errorf("%w: ping %d", wire.ErrProtocol, p.ID)
			}
			return nil
		})
	}()
	peer.Send(frame(t, &wire.Ping{ID: 1}))
	peer.Send(frame(t, &wire.Ping{ID: 2}))
	if e, ok := recv(t, peer).(*wire.Error); !ok || e.Code != wire.CodeRateLimited || e.Message != "slow down" {
		t.Fatalf("refusal %+v", e)
	}
	peer.Send(frame(t, &wire.Ping{ID: 3}))
	peer.Send(frame(t, &wire.Ping{ID: 4}))
	if e, ok := recv(t, peer).(*wire.Error); !ok || e.Code != wire.CodeProtocol {
		t.Fatalf("fatal %+v", e)
	}
	<-served
	l.Wait()
	if code, why := c.closedWith(); code != StatusPolicyViolation || why != "protocol violation: ping 4" {
		t.Fatalf("closed with %d %q", code, why)
	}
	if dropped.Load() != 3 {
		t.Fatalf("dropped %d, want 3", dropped.Load())
	}
}

func TestServeCutsAfterTooManyViolations(t *testing.T) {
	l, _, peer := pair(t, Config{})
	go func() {
		for range MaxViolations + 5 {
			if peer.Send(frame(t, &wire.Ping{})) != nil {
				return
			}
		}
	}()
	l.Serve(func(wire.Message) error { return ErrViolation })
	<-l.Stopped()
	if l.Why() != "too many refused frames" {
		t.Fatalf("why %q", l.Why())
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"éé", 3, "é"}, {"", 0, ""}} {
		if got := Truncate(c.in, c.n); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q", c.in, c.n, got)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrViolation), ErrViolation) {
		t.Fatal("ErrViolation does not wrap")
	}
}

// A peer that stops reading is cut once what waits for it passes
// QueueBytes, long before the queue's frame count would stop it: a few
// big frames cannot pin megabytes per link.
func TestSendQueueBytesBounded(t *testing.T) {
	var counts Counts
	a, b := transport.Pipe()
	c := &closer{Conn: a, hold: make(chan struct{})}
	l := New(c, Config{Queue: 512, QueueBytes: 64 << 10, Counts: &counts})
	t.Cleanup(func() { l.Stop(WhyGone); close(c.hold); l.Wait(); b.Close() })
	big := make([]byte, 16<<10)
	for range 4 {
		l.Send(big)
	}
	// The writer takes one and is stuck sending it; three wait.
	wait.Until(t, wait.Default, "the writer took a frame", func() bool { return l.Queued() == 48<<10 })
	l.Send(big) // 64 KiB waiting: at the limit, not past it
	select {
	case <-l.Stopped():
		t.Fatalf("stopped at %d bytes queued, limit %d", l.Queued(), 64<<10)
	default:
	}
	l.Send(big)
	select {
	case <-l.Stopped():
	case <-time.After(5 * time.Second):
		t.Fatal("a link holding more than QueueBytes was not stopped")
	}
	if l.Why() != "send queue overflow" || counts.Overflow.Load() != 1 {
		t.Fatalf("why %q, overflows %d", l.Why(), counts.Overflow.Load())
	}
	if l.TrySend(big) {
		t.Fatal("TrySend queued on a stopped, full link")
	}
}
