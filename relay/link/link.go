package link

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Limits and timings.
const (
	// DefaultQueue is how many frames wait to go out before a link counts
	// as stuck, unless Config.Queue says otherwise.
	DefaultQueue = 512
	// FlushWait is how long a stopped link's writer goes on sending what
	// is queued before it closes the conn.
	FlushWait = 250 * time.Millisecond
	// MaxViolations refused frames cut a link: Serve answers each of the
	// first MaxViolations-1 and stops the link at the last.
	MaxViolations = 50
	// maxCloseReason is what a close reason is cut to (a WebSocket close
	// frame holds 123 bytes).
	maxCloseReason = 120
)

// Status codes a conn closes with, where it can say why: WebSocket close
// codes (RFC 6455 §7.4.1), which a browser's and a Worker's WebSocket use
// as well.
const (
	StatusNormal          = 1000
	StatusGoingAway       = 1001
	StatusPolicyViolation = 1008
	StatusTryAgainLater   = 1013
)

// WhyGone is why a link ended that the other side closed or lost.
const WhyGone = "connection closed by the other side or lost"

// ReasonCloser is a conn that can tell the other side why it closes
// (transport.WebSocket is one).
type ReasonCloser interface {
	CloseWith(code int, reason string) error
}

// Config is how one Link counts, logs and salvages.
type Config struct {
	Queue   int           // frames waiting to go out before the link is stuck; DefaultQueue if 0
	Logger  *slog.Logger  // nil: discard
	Dropped *atomic.Int64 // counts frames refused: oversized, malformed, refused by a handler (nil: not counted)
	Unknown *atomic.Int64 // counts frames of types this build does not know, skipped (nil: not counted)
	// Salvage, if set, is offered a frame of a known type that does not
	// decode; when it has answered the frame itself it returns true, and
	// the link stays.
	Salvage func(frame []byte) bool
	// QueueBytes, if above 0, also bounds the bytes waiting to go out: a
	// frame that would take the queue past it counts as an overflow, as a
	// full queue does.
	QueueBytes int
	// Counts, if set, counts why links ended at a limit (shared by the
	// links of one engine).
	Counts *Counts
}

// Counts count the links that hit a limit, for an engine's /healthz.
type Counts struct {
	Oversized atomic.Int64 // closed for a frame over wire.MaxFrame
	Cut       atomic.Int64 // cut at MaxViolations refused frames
	Overflow  atomic.Int64 // stopped because their send queue was full (frames or bytes)
}

// Link is one connection of the relay's, to a node or to another relay.
type Link struct {
	conn    transport.Conn
	cfg     Config
	log     *slog.Logger
	out     chan []byte
	done    chan struct{} // closed by Stop
	flushed chan struct{} // closed when the writer has flushed and closed the conn
	once    sync.Once
	why     string
	flushBy context.Context // set by Stop: the writer's time to flush
	queued  atomic.Int64    // bytes in out
}

// New runs a Link over conn, which it owns from now on: its writer starts
// at once, so frames sent before anyone reads go out in order.
func New(conn transport.Conn, cfg Config) *Link {
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Link{conn: conn, cfg: cfg, log: cfg.Logger, out: make(chan []byte, cfg.Queue), done: make(chan struct{}), flushed: make(chan struct{})}
	go l.writeLoop()
	return l
}

// Send queues a frame; a link whose queue is full is too slow and is
// stopped.
func (l *Link) Send(frame []byte) {
	if !l.reserve(len(frame), l.cfg.QueueBytes) {
		l.overflow()
		return
	}
	select {
	case l.out <- frame:
	case <-l.done:
		l.queued.Add(-int64(len(frame)))
	default:
		l.queued.Add(-int64(len(frame)))
		l.overflow()
	}
}

// reserve counts n more bytes queued unless that takes the queue past
// limit (no limit if 0).
func (l *Link) reserve(n, limit int) bool {
	if q := l.queued.Add(int64(n)); limit > 0 && q > int64(limit) {
		l.queued.Add(-int64(n))
		return false
	}
	return true
}

// overflow stops a link too slow to take what is sent to it.
func (l *Link) overflow() {
	select {
	case <-l.done:
		return
	default:
	}
	if l.cfg.Counts != nil {
		l.cfg.Counts.Overflow.Add(1)
	}
	l.Stop("send queue overflow")
}

// Queued is how many bytes wait to go out.
func (l *Link) Queued() int64 { return l.queued.Load() }

// TrySend queues a frame unless the queue is more than half full; it
// reports whether it did. For frames that may be dropped (signals) on a
// link that must not be cut for them.
func (l *Link) TrySend(frame []byte) bool {
	if len(l.out) > cap(l.out)/2 || !l.reserve(len(frame), l.cfg.QueueBytes/2) {
		return false
	}
	select {
	case l.out <- frame:
		return true
	default:
		l.queued.Add(-int64(len(frame)))
		return false
	}
}

// SendMsg encodes m and queues it; it reports whether m encoded.
func (l *Link) SendMsg(m wire.Message) bool {
	b, err := wire.Marshal(m)
	if err != nil {
		l.log.Error("cannot encode a frame", "type", m.Type(), "err", err)
		return false
	}
	l.Send(b)
	return true
}

// Reject queues an Error frame.
func (l *Link) Reject(code wire.Code, msg string) {
	l.SendMsg(&wire.Error{Code: code, Message: Truncate(msg, wire.MaxReason)})
}

// Stop ends the link for why: the writer sends what is queued and then
// closes the conn, which it does after FlushWait at the latest (ending a
// send in progress). Only the first call counts.
func (l *Link) Stop(why string) {
	l.once.Do(func() {
		l.why = why
		ctx, cancel := context.WithTimeout(context.Background(), FlushWait)
		l.flushBy = ctx
		context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				l.conn.Close()
			}
		})
		go func() { <-l.flushed; cancel() }()
		close(l.done)
	})
}

// Stopped is closed once Stop was called.
func (l *Link) Stopped() <-chan struct{} { return l.done }

// Why is why the link was stopped; "" before Stopped is closed.
func (l *Link) Why() string {
	select {
	case <-l.done:
		return l.why
	default:
		return ""
	}
}

// Wait returns once the writer has flushed and closed the conn (after
// Stop).
func (l *Link) Wait() { <-l.flushed }

func (l *Link) writeLoop() {
	defer close(l.flushed)
	for {
		select {
		case b := <-l.out:
			l.queued.Add(-int64(len(b)))
			if err := l.conn.Send(b); err != nil {
				l.Stop("write failed")
				l.conn.Close()
				return
			}
		case <-l.done:
			l.flush()
			if l.why == WhyGone {
				l.conn.Close() // nobody to say goodbye to
			} else {
				Close(l.conn, StatusPolicyViolation, l.why)
			}
			return
		}
	}
}

// flush sends what is queued until Stop's deadline.
func (l *Link) flush() {
	for len(l.out) > 0 && l.flushBy.Err() == nil {
		b := <-l.out
		l.queued.Add(-int64(len(b)))
		if l.conn.Send(b) != nil {
			return
		}
	}
}

// Next reads the next frame, skipping (and counting) frames of unknown
// types. When the link should end — the conn closed or failed, an
// oversized or malformed frame — it stops the link, telling the other
// side why where that helps, and returns false. A frame that Salvage
// answered returns a nil message and true.
func (l *Link) Next() (wire.Message, bool) {
	for {
		b, err := l.conn.Recv()
		switch {
		case err != nil && errors.Is(err, wire.ErrTooLarge):
			l.log.Warn("oversized frame; closing", "err", err)
			count(l.cfg.Dropped)
			if l.cfg.Counts != nil {
				l.cfg.Counts.Oversized.Add(1)
			}
			l.Stop("oversized frame")
			return nil, false
		case err != nil && errors.Is(err, wire.ErrMalformed): // a text frame
			count(l.cfg.Dropped)
			l.malformed(err)
			return nil, false
		case err != nil:
			l.Stop(WhyGone)
			l.log.Debug("read", "err", err)
			return nil, false
		}
		m, err := wire.Unmarshal(b)
		switch {
		case err == nil:
			return m, true
		case errors.Is(err, wire.ErrUnknownType): // before ErrMalformed, which it wraps
			count(l.cfg.Unknown)
			t, _ := wire.TypeOf(b)
			l.log.Debug("skipping a frame of a type this relay does not know", "type", t)
			continue
		}
		// Counted before anything answers it, so no answer overtakes
		// the count.
		count(l.cfg.Dropped)
		if l.cfg.Salvage != nil && l.cfg.Salvage(b) {
			l.log.Debug("malformed message answered", "err", err)
			return nil, true
		}
		l.malformed(err)
		return nil, false
	}
}

// malformed answers a malformed frame (counted already) and stops.
func (l *Link) malformed(err error) {
	l.log.Warn("malformed message; closing", "err", err)
	l.Reject(wire.CodeOf(err), err.Error())
	l.Stop("malformed message")
}

// Serve hands every frame Next reads to handle until the link ends.
// handle's error decides: nil, the frame was taken; a Refusal, the other
// side hears why and the frame counts against the link; ErrViolation,
// it counts (handle answered it); anything else ends the link, telling
// the other side why. A frame Salvage answered counts too. The
// MaxViolations-th counted frame ends the link.
func (l *Link) Serve(handle func(wire.Message) error) {
	violations := 0
	for {
		m, ok := l.Next()
		if !ok {
			return
		}
		if m != nil {
			err := handle(m)
			if err == nil {
				continue
			}
			if !l.refused(err) {
				return
			}
		} // else a frame Salvage answered, counted by Next
		if violations++; violations >= MaxViolations {
			l.log.Warn("too many refused frames; closing", "count", violations)
			if l.cfg.Counts != nil {
				l.cfg.Counts.Cut.Add(1)
			}
			l.Stop("too many refused frames")
			return
		}
	}
}

// refused counts a frame a handler refused and answers it as err says;
// it reports false when err ends the link.
func (l *Link) refused(err error) bool {
	count(l.cfg.Dropped) // before any answer is queued, so none overtakes the count
	var r *Refusal
	switch {
	case errors.As(err, &r):
		l.Reject(r.Code, r.Message)
	case errors.Is(err, ErrViolation):
	default:
		l.log.Warn("closing the link", "err", err)
		l.Reject(wire.CodeOf(err), err.Error())
		l.Stop(err.Error())
		return false
	}
	return true
}

func count(c *atomic.Int64) {
	if c != nil {
		c.Add(1)
	}
}

// Write encodes m and sends it on conn directly: for handshakes, before a
// Link runs the conn.
func Write(conn transport.Conn, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Send(b)
}

// Read reads one frame from conn and decodes it: for handshakes, where a
// frame of an unknown type is as wrong as any other unexpected one.
func Read(conn transport.Conn) (wire.Message, error) {
	b, err := conn.Recv()
	if err != nil {
		return nil, err
	}
	return wire.Unmarshal(b)
}

// Close closes conn with code and reason where it can say why, else
// plainly.
func Close(conn transport.Conn, code int, reason string) error {
	if rc, ok := conn.(ReasonCloser); ok {
		return rc.CloseWith(code, Truncate(reason, maxCloseReason))
	}
	return conn.Close()
}

// Deadline closes conn once ctx ends unless the returned stop is called
// first (which reports whether it was in time): a handshake's deadline
// over a conn whose Recv takes no context.
func Deadline(ctx context.Context, conn transport.Conn) (stop func() bool) {
	return context.AfterFunc(ctx, func() { conn.Close() })
}

// Truncate cuts s to at most n bytes, on a character boundary (close
// reasons and error messages have limits).
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
