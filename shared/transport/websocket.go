package transport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"ddt/shared/clock"
	"ddt/shared/wire"
)

// WebSocketConfig tunes a WebSocket. The zero value is usable.
type WebSocketConfig struct {
	// WriteTimeout bounds one Send (10 s if zero).
	WriteTimeout time.Duration
	// Keepalive is how often to ping the other side; 0 never pings. A
	// ping unanswered within PingTimeout (10 s if zero) closes the
	// connection. Pongs are read by Recv, so pings need a reader. (In a
	// browser, pings are the browser's business and do nothing here.)
	Keepalive   time.Duration
	PingTimeout time.Duration
	// Clock ticks the keepalive: clock.System if nil. The keepalive
	// checks a real socket, so it wants real time.
	Clock clock.Clock
}

// WebSocket is a Conn over a WebSocket (github.com/coder/websocket, the
// same on both platforms): one binary message per frame, at most
// MaxMessage bytes. A text message is an error wrapping wire.ErrMalformed
// (the connection stays usable); a message over the limit is an error
// wrapping wire.ErrTooLarge, and the connection closes with status 1009.
// Besides Close, CloseWith closes with a status code and a reason the
// other side can read.
type WebSocket struct {
	c       *websocket.Conn
	timeout time.Duration
	ctx     context.Context // ends when the connection closes, unblocking Recv and Send
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	why     error // why it closed, once done is closed
}

var _ Conn = (*WebSocket)(nil)

// NewWebSocket adapts c, which it owns from now on.
func NewWebSocket(c *websocket.Conn, cfg WebSocketConfig) *WebSocket {
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	c.SetReadLimit(MaxMessage)
	w := &WebSocket{c: c, timeout: cfg.WriteTimeout, done: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	if cfg.Keepalive > 0 {
		go w.keepalive(cfg)
	}
	return w
}

// Send writes msg as one binary message, waiting at most the write
// timeout; a failed write closes the connection.
func (w *WebSocket) Send(msg []byte) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(msg))
	}
	if err := w.closed(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(w.ctx, w.timeout)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		w.shut(err)
		w.c.CloseNow()
		return w.closed()
	}
	return nil
}

// Recv returns the next binary message. Errors wrap ErrClosed once the
// connection has closed (by either side), wire.ErrTooLarge for a message
// over the limit, and wire.ErrMalformed for a text message.
func (w *WebSocket) Recv() ([]byte, error) {
	if err := w.closed(); err != nil {
		return nil, err
	}
	typ, b, err := w.c.Read(w.ctx)
	switch {
	case err != nil && errors.Is(err, websocket.ErrMessageTooBig):
		w.shut(fmt.Errorf("%w: %v", wire.ErrTooLarge, err))
		w.c.CloseNow()
		return nil, fmt.Errorf("%w: %v", wire.ErrTooLarge, err)
	case err != nil:
		w.shut(err)
		w.c.CloseNow()
		return nil, w.closed()
	case typ != websocket.MessageBinary:
		return nil, fmt.Errorf("%w: text frame", wire.ErrMalformed)
	}
	return b, nil
}

// Close closes the connection at once, without a close handshake.
func (w *WebSocket) Close() error {
	w.shut(errors.New("closed here"))
	return w.c.CloseNow()
}

// CloseWith closes the connection with a WebSocket status code (RFC 6455
// §7.4: 1000 normal, 1001 going away, 1008 policy violation, 1013 try
// again later, …) and a reason of at most 123 bytes, and waits briefly
// for the other side to acknowledge.
func (w *WebSocket) CloseWith(code int, reason string) error {
	if n := 123; len(reason) > n {
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	err := w.c.Close(websocket.StatusCode(code), reason)
	w.shut(fmt.Errorf("closed here: %s", reason))
	return err
}

// Done is closed once the connection has closed: by Close or CloseWith,
// or when Send, Recv or a keepalive found it closed or failed.
func (w *WebSocket) Done() <-chan struct{} { return w.done }

// shut marks the connection closed for why, once.
func (w *WebSocket) shut(why error) {
	w.once.Do(func() {
		w.mu.Lock()
		w.why = why
		w.mu.Unlock()
		close(w.done)
		w.cancel()
	})
}

// closed is the error Send and Recv return once the connection closed.
func (w *WebSocket) closed() error {
	select {
	case <-w.done:
	default:
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return fmt.Errorf("%w: %v", ErrClosed, w.why)
}

func (w *WebSocket) keepalive(cfg WebSocketConfig) {
	t := cfg.Clock.NewTicker(cfg.Keepalive)
	defer t.Stop()
	for {
		select {
		case <-t.C():
			ctx, cancel := context.WithTimeout(w.ctx, cfg.PingTimeout)
			err := w.c.Ping(ctx)
			cancel()
			if err != nil {
				if w.closed() == nil {
					w.CloseWith(int(websocket.StatusPolicyViolation), "no pong")
				}
				return
			}
		case <-w.done:
			return
		}
	}
}
