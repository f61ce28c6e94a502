package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"ddt/shared/wire"
)

// wsLink is the plumbing a node's link and a relay's link share: a queue
// of outgoing frames drained by one writer, a keepalive, and a stop that
// lets the writer send what is queued (an Error saying why, typically)
// before it closes the socket.
type wsLink struct {
	conn    *websocket.Conn
	out     chan []byte
	done    chan struct{} // closed by stop
	flushed chan struct{} // closed when the writer has drained and closed the socket
	once    sync.Once
	why     string
}

func newWSLink(conn *websocket.Conn, queue int) wsLink {
	return wsLink{conn: conn, out: make(chan []byte, queue), done: make(chan struct{}), flushed: make(chan struct{})}
}

// whyGone is why a link ended that the other side closed or lost.
const whyGone = "connection closed by the other side or lost"

// send queues a frame; a link whose queue is full is too slow and is cut.
func (w *wsLink) send(b []byte) {
	select {
	case w.out <- b:
	case <-w.done:
	default:
		w.stop("send queue overflow")
	}
}

// trySend queues a frame unless the queue is more than half full; it
// reports whether it did. For frames that may be dropped (signals) on a
// link that must not be cut for them.
func (w *wsLink) trySend(b []byte) bool {
	if len(w.out) > cap(w.out)/2 {
		return false
	}
	select {
	case w.out <- b:
		return true
	default:
		return false
	}
}

// reject queues an Error frame.
func (w *wsLink) reject(code wire.Code, msg string) {
	b, _ := wire.Marshal(&wire.Error{Code: code, Message: truncate(msg, wire.MaxReason)})
	w.send(b)
}

// stop ends the link; the writer sends what is queued and then closes it.
func (w *wsLink) stop(why string) {
	w.once.Do(func() {
		w.why = why
		close(w.done)
	})
}

func (w *wsLink) writeLoop() {
	defer close(w.flushed)
	write := func(b []byte, limit time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		return w.conn.Write(ctx, websocket.MessageBinary, b)
	}
	for {
		select {
		case b := <-w.out:
			if err := write(b, 10*time.Second); err != nil {
				w.stop("write failed")
				w.conn.CloseNow()
				return
			}
		case <-w.done:
			deadline := time.Now().Add(250 * time.Millisecond)
			for len(w.out) > 0 && time.Now().Before(deadline) {
				if write(<-w.out, time.Until(deadline)) != nil {
					break
				}
			}
			if w.why == whyGone {
				w.conn.CloseNow() // nobody to say goodbye to
			} else {
				w.conn.Close(websocket.StatusPolicyViolation, truncate(w.why, 120))
			}
			return
		}
	}
}

func (w *wsLink) pingLoop(ctx context.Context) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := w.conn.Ping(pctx)
			cancel()
			if err != nil {
				w.stop("no pong")
				return
			}
		case <-w.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

// next reads the next message. When the link should end (the socket
// closed or failed, an oversized or malformed frame) it stops the link,
// telling the other side why where that helps, and returns false.
// Refused frames count in dropped.
func (w *wsLink) next(ctx context.Context, log *slog.Logger, dropped *atomic.Int64) (wire.Message, bool) {
	return w.nextOr(ctx, log, dropped, nil)
}

// nextOr is next, except that a frame that does not decode is first
// offered to salvage (if set): when salvage answers it, the link stays and
// nextOr returns a nil message and true.
func (w *wsLink) nextOr(ctx context.Context, log *slog.Logger, dropped *atomic.Int64, salvage func([]byte) bool) (wire.Message, bool) {
	typ, b, err := w.conn.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Code == websocket.StatusMessageTooBig {
			log.Warn("oversized frame; closing", "err", err)
			dropped.Add(1)
			w.stop("oversized frame")
		} else {
			w.stop(whyGone)
			log.Debug("read", "err", err)
		}
		return nil, false
	}
	var m wire.Message
	if typ != websocket.MessageBinary {
		err = fmt.Errorf("%w: text frame", wire.ErrMalformed)
	} else {
		m, err = wire.Unmarshal(b)
	}
	if err != nil && salvage != nil && typ == websocket.MessageBinary && salvage(b) {
		log.Debug("malformed message answered", "err", err)
		return nil, true
	}
	if err != nil {
		dropped.Add(1)
		log.Warn("malformed message; closing", "err", err)
		w.reject(wire.CodeOf(err), err.Error())
		w.stop("malformed message")
		return nil, false
	}
	return m, true
}

// readFrame reads one binary frame and decodes it.
func readFrame(ctx context.Context, conn *websocket.Conn) (wire.Message, error) {
	typ, b, err := conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, fmt.Errorf("%w: text frame", wire.ErrMalformed)
	}
	return wire.Unmarshal(b)
}

func writeMsg(ctx context.Context, conn *websocket.Conn, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageBinary, b)
}

// truncate cuts s to at most n bytes, on a character boundary (close
// reasons and error messages have limits).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
