package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/wire"
)

// connect runs a session pair on a and b, carrying signals directly, and
// waits for both control channels. The sessions close when the test ends.
func connect(t testing.TB, a, b Transport) (Session, Session) {
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
				if err := s.Handle(kind, data); err != nil && !errors.Is(err, ErrClosed) {
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
	t.Cleanup(func() { sa.Close(); sb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := sa.Conn(ctx); err != nil {
		t.Fatalf("initiator: %v", err)
	}
	if _, err := sb.Conn(ctx); err != nil {
		t.Fatalf("responder: %v", err)
	}
	return sa, sb
}

// channel returns both ends of the named channel of a connected pair.
func channel(t testing.TB, sa, sb Session, name string) (Conn, Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := sa.Channel(ctx, name)
	if err != nil {
		t.Fatalf("initiator's %s channel: %v", name, err)
	}
	b, err := sb.Channel(ctx, name)
	if err != nil {
		t.Fatalf("responder's %s channel: %v", name, err)
	}
	return a, b
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
			sa, sb := connect(t, pair[0], pair[1])
			for _, ch := range []string{Control, Bulk} {
				t.Run(ch, func(t *testing.T) {
					a, b := channel(t, sa, sb, ch)
					checkConn(t, a, b)
				})
			}
			ctx := context.Background()
			if c, _ := sa.Conn(ctx); c != must(sa.Channel(ctx, Control)) {
				t.Error("Conn is not the control channel")
			}
			if _, err := sa.Channel(ctx, "video"); !errors.Is(err, ErrUnknownChannel) {
				t.Errorf("unknown channel: %v", err)
			}
			// Closing one channel closes the link: every channel, both sides.
			ca, cb := channel(t, sa, sb, Control)
			ba, bb := channel(t, sa, sb, Bulk)
			ba.Close()
			for i, c := range []Conn{ca, cb, bb} {
				select {
				case <-c.Done():
				case <-time.After(15 * time.Second):
					t.Fatalf("channel %d did not notice the close", i)
				}
				if _, err := c.Recv(); err == nil {
					t.Fatalf("channel %d: recv after close succeeded", i)
				}
				if err := c.Send([]byte("late")); err == nil {
					t.Fatalf("channel %d: send after close succeeded", i)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// checkConn checks that messages arrive in order, whole, in both
// directions, and that oversized ones are refused.
func checkConn(t *testing.T, a, b Conn) {
	const n = 500
	size := func(i int) int { return max(4, 1+i*97%MaxMessage) }
	go func() {
		for i := 0; i < n; i++ {
			msg := make([]byte, size(i))
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
		if len(msg) != size(i) {
			t.Fatalf("message %d is %d bytes, want %d", i, len(msg), size(i))
		}
	}
	if err := b.Send([]byte("back")); err != nil {
		t.Fatal(err)
	}
	if msg, err := a.Recv(); err != nil || !bytes.Equal(msg, []byte("back")) {
		t.Fatalf("reply: %q %v", msg, err)
	}
	if err := a.Send(make([]byte, MaxMessage+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized message: %v", err)
	}
}

// TestChannelPriority moves 64 MiB on the bulk channel. When 8 MiB are
// sent, with 56 still queued behind a bulk sender blocked in Send, a
// control message goes out: it must arrive before the transfer ends. From
// then until the last 8 MiB, a keepalive pings on the control channel
// every ~100 ms and waits for each pong: every ping must be answered, in
// order, before the transfer ends — a peer that answered only once a
// transfer was over would be dropped as silent. No duration is asserted;
// the latencies are logged.
func TestChannelPriority(t *testing.T) {
	for name, pair := range transports(t) {
		t.Run(name, func(t *testing.T) {
			sa, sb := connect(t, pair[0], pair[1])
			ctrlA, ctrlB := channel(t, sa, sb, Control)
			bulkA, bulkB := channel(t, sa, sb, Bulk)
			const (
				total     = 64 << 20
				urgentAt  = 8 << 20 // with more than 32 MiB to go
				pingUntil = total - 8<<20
				chunk     = 60 << 10
			)
			// In memory a transfer is over in milliseconds; a receiver
			// that takes a millisecond a message makes it long enough to
			// see pings, and keeps the bulk sender blocked meanwhile.
			var pace time.Duration
			if name == "memory" {
				pace = time.Millisecond
			}

			var sent, received atomic.Int64
			urgentNow := make(chan struct{})
			sendErr := make(chan error, 1)
			go func() { // the bulk sender
				msg, urgent := make([]byte, chunk), urgentNow
				for seq := 0; sent.Load() < total; seq++ {
					if sent.Load() >= urgentAt && urgent != nil {
						close(urgent) // and carry on into a blocking Send
						urgent = nil
					}
					m := msg[:min(chunk, total-int(sent.Load()))]
					binary.BigEndian.PutUint32(m, uint32(seq))
					if err := bulkA.Send(m); err != nil {
						sendErr <- err
						return
					}
					sent.Add(int64(len(m)))
				}
				sendErr <- nil
			}()
			recvErr := make(chan error, 1)
			go func() { // the bulk receiver
				for seq := 0; received.Load() < total; seq++ {
					m, err := bulkB.Recv()
					if err != nil {
						recvErr <- err
						return
					}
					if got := binary.BigEndian.Uint32(m); got != uint32(seq) {
						recvErr <- fmt.Errorf("bulk message %d arrived as %d", seq, got)
						return
					}
					received.Add(int64(len(m)))
					if pace > 0 {
						time.Sleep(pace)
					}
				}
				recvErr <- nil
			}()
			type arrival struct {
				msg      []byte
				at       time.Time
				received int64 // bulk bytes the receiver had then
			}
			atB := make(chan arrival, 1)
			go func() { // the responder's control loop: note, and answer pings
				for {
					m, err := ctrlB.Recv()
					if err != nil {
						return
					}
					atB <- arrival{msg: m, at: time.Now(), received: received.Load()}
					if bytes.HasPrefix(m, []byte("ping")) {
						if err := ctrlB.Send(append([]byte("pong"), m[4:]...)); err != nil {
							return
						}
					}
				}
			}()

			<-urgentNow
			queued, start := total-sent.Load(), time.Now()
			if err := ctrlA.Send([]byte("urgent")); err != nil {
				t.Fatal(err)
			}
			got := <-atB
			if string(got.msg) != "urgent" {
				t.Fatalf("control message arrived as %q", got.msg)
			}
			if got.received >= total {
				t.Fatalf("the control message arrived after the bulk transfer ended")
			}
			t.Logf("control message sent with %d MiB of bulk still to send arrived after %v, with %.1f MiB of bulk still to arrive",
				queued>>20, got.at.Sub(start).Round(time.Microsecond), float64(total-got.received)/(1<<20))

			var rtts []time.Duration
			for i := 0; i == 0 || sent.Load() < pingUntil; i++ {
				ping := binary.BigEndian.AppendUint32([]byte("ping"), uint32(i))
				start := time.Now()
				if err := ctrlA.Send(ping); err != nil {
					t.Fatal(err)
				}
				if got := <-atB; !bytes.Equal(got.msg, ping) {
					t.Fatalf("ping %d arrived as %q", i, got.msg)
				}
				pong, err := ctrlA.Recv()
				if err != nil {
					t.Fatal(err)
				}
				if want := append([]byte("pong"), ping[4:]...); !bytes.Equal(pong, want) {
					t.Fatalf("ping %d answered with %q", i, pong)
				}
				rtts = append(rtts, time.Since(start))
				if received.Load() >= total {
					t.Fatalf("ping %d was answered only after the bulk transfer ended", i)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := <-sendErr; err != nil {
				t.Fatalf("bulk sender: %v", err)
			}
			if err := <-recvErr; err != nil {
				t.Fatalf("bulk receiver: %v", err)
			}
			slices.Sort(rtts)
			t.Logf("%d pings during the transfer, all answered: round trip median %v, max %v",
				len(rtts), rtts[len(rtts)/2].Round(time.Microsecond), rtts[len(rtts)-1].Round(time.Microsecond))
		})
	}
}

// TestStrayChannel: a channel the peer opens in band (every channel is
// negotiated) is closed, and the link carries on.
func TestStrayChannel(t *testing.T) {
	if testing.Short() || !webrtcAvailable(t) {
		t.Skip("no WebRTC in this runtime")
	}
	pair := transports(t)["webrtc"]
	sa, sb := connect(t, pair[0], pair[1])
	stray, err := sa.(*rtcSession).pc.CreateDataChannel("stray", nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	stray.OnClose(func() { close(closed) })
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatalf("the stray channel is still %s", stray.ReadyState())
	}
	a, b := channel(t, sa, sb, Control)
	if err := a.Send([]byte("still linked")); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(); err != nil || string(m) != "still linked" {
		t.Fatalf("%q %v", m, err)
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

// BenchmarkThroughput moves 64 MiB one way in 60 KiB messages, on the
// control channel (as everything went before there was a bulk one) and
// on the bulk channel. Meanwhile the sender pings its peer on the control
// channel every 10 ms: ping-ms is the round trip a keepalive or a lookup
// sees under that load.
func BenchmarkThroughput(b *testing.B) {
	for name, pair := range transports(b) {
		b.Run(name, func(b *testing.B) {
			for _, ch := range []string{Control, Bulk} {
				b.Run(ch, func(b *testing.B) { benchThroughput(b, pair, ch) })
			}
		})
	}
}

func benchThroughput(b *testing.B, pair [2]Transport, ch string) {
	sa, sc := connect(b, pair[0], pair[1])
	a, c := channel(b, sa, sc, ch)
	ctrlA, ctrlC := channel(b, sa, sc, Control)
	const total = 64 << 20
	msg := make([]byte, 60<<10)
	const pingLen = 12 // "ping" and a sequence number: no data message is this short
	echo := func(m []byte) error { return ctrlC.Send(append([]byte("pong"), m[4:]...)) }
	if ch != Control {
		go func() { // the data receiver sees no ping: answer them here
			for {
				m, err := ctrlC.Recv()
				if err != nil || echo(m) != nil {
					return
				}
			}
		}()
	}
	// The receiver counts data and, on the control channel, answers the
	// pings among it; it reads for the whole benchmark, so that a ping
	// queued behind the end of one transfer is answered too.
	transferred := make(chan error, 1)
	go func() {
		got := 0
		for {
			m, err := c.Recv()
			if err == nil && len(m) == pingLen {
				err = echo(m)
			} else if err == nil {
				got += len(m)
			}
			if err != nil {
				select {
				case transferred <- err:
				default:
				}
				return
			}
			if got >= total {
				got -= total
				transferred <- nil
			}
		}
	}()
	var rtts []time.Duration
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		stop, pinged := make(chan struct{}), make(chan []time.Duration)
		go func() { // ping every 10 ms, one at a time, until the transfer ends
			var out []time.Duration
			defer func() { pinged <- out }()
			for seq := uint64(0); ; seq++ {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				start := time.Now()
				if ctrlA.Send(binary.BigEndian.AppendUint64([]byte("ping"), seq)) != nil {
					return
				}
				if _, err := ctrlA.Recv(); err != nil {
					return
				}
				out = append(out, time.Since(start))
			}
		}()
		for sent := 0; sent < total; sent += len(msg) {
			if err := a.Send(msg[:min(len(msg), total-sent)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-transferred; err != nil {
			b.Fatal(fmt.Errorf("receiver: %w", err))
		}
		close(stop)
		rtts = append(rtts, <-pinged...)
	}
	b.StopTimer()
	if len(rtts) > 0 {
		slices.Sort(rtts)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(rtts[len(rtts)/2]), "ping-ms-p50")
		b.ReportMetric(ms(rtts[len(rtts)*99/100]), "ping-ms-p99")
		b.ReportMetric(ms(rtts[len(rtts)-1]), "ping-ms-max")
	}
}

// BenchmarkOpen makes sessions: the time from the first signal until the
// control channel is open on both sides, and until the bulk one is too
// (open-ms and bulk-ms, the means per session).
func BenchmarkOpen(b *testing.B) {
	for name, pair := range transports(b) {
		b.Run(name, func(b *testing.B) {
			var control, bulk time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				sa, sb := connect(b, pair[0], pair[1])
				control += time.Since(start)
				channel(b, sa, sb, Bulk)
				bulk += time.Since(start)
				sa.Close()
				sb.Close()
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
			b.ReportMetric(ms(control), "control-ms")
			b.ReportMetric(ms(bulk), "bulk-ms")
		})
	}
}
