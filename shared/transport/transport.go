package transport

import (
	"context"
	"errors"
	"sync"

	"ddt/shared/wire"
)

// Errors returned by links.
var (
	ErrClosed    = errors.New("transport: link closed")
	ErrTooLarge  = errors.New("transport: message too large")
	ErrOverrun   = errors.New("transport: receiver fell too far behind")
	ErrBadSignal = errors.New("transport: unusable signal")
	// ErrUnknownChannel: Session.Channel was asked for a name that is
	// neither Control nor Bulk.
	ErrUnknownChannel = errors.New("transport: unknown channel")
)

// The channels every session carries. Both are Conns (ordered, reliable,
// messages up to MaxMessage) over the same link: closing one, or the
// session, closes both.
const (
	// Control carries keepalives, DHT lookups and routed messages: small
	// messages that must never wait behind a transfer.
	Control = "control"
	// Bulk carries large transfers. Its Send blocks while its buffer is
	// full, which keeps what a transfer queues small enough that a
	// control message sent meanwhile is not held up behind it.
	Bulk = "bulk"
)

// MaxMessage is the largest message a Conn carries: one wire frame.
const MaxMessage = wire.MaxFrame

// Conn is an ordered, reliable message link to one peer.
type Conn interface {
	// Send queues msg, blocking while the link's send buffer is full.
	Send(msg []byte) error
	// Recv returns the next message; ErrClosed after the link closed.
	Recv() ([]byte, error)
	// Close closes the link; safe to call more than once.
	Close() error
	// Done is closed once the link is closed, by either side.
	Done() <-chan struct{}
}

// SendFunc carries one signaling message to the other side of a session.
type SendFunc func(kind wire.SignalKind, data string)

// Transport makes connection attempts.
type Transport interface {
	// NewSession starts an attempt. The initiator sends the offer.
	NewSession(initiator bool, send SendFunc) (Session, error)
	// Close releases shared resources (sockets) of the transport.
	Close() error
}

// Session is one connection attempt.
type Session interface {
	// Handle feeds a signaling message from the other side.
	Handle(kind wire.SignalKind, data string) error
	// Conn waits until the control channel is open and returns it: it is
	// Channel(ctx, Control).
	Conn(ctx context.Context) (Conn, error)
	// Channel waits until the named channel (Control or Bulk) is open;
	// ErrUnknownChannel for any other name.
	Channel(ctx context.Context, name string) (Conn, error)
	// Close abandons the attempt (and the link, if it opened).
	Close() error
}

// queue is a FIFO of received messages with a byte cap. In the default
// mode a push never blocks: the browser delivers data-channel messages by
// callback, which must not block, so they land here and Recv takes them in
// order; a push past the cap fails and the link is overrun. A blocking
// queue (newBlockingQueue, the memory transport's bulk channel) makes a
// push wait for room instead: that is its sender's back-pressure.
type queue struct {
	mu     sync.Mutex
	msgs   [][]byte
	bytes  int
	max    int
	block  bool
	notify chan struct{} // a message was pushed
	room   chan struct{} // a message was popped (blocking queues)
	err    error
}

func newQueue(max int) *queue {
	return &queue{max: max, notify: make(chan struct{}, 1)}
}

// newBlockingQueue returns a queue whose push waits while max bytes are
// queued. A message larger than max still passes once the queue is empty.
func newBlockingQueue(max int) *queue {
	q := newQueue(max)
	q.block, q.room = true, make(chan struct{}, 1)
	return q
}

// push adds msg. It fails with ErrOverrun past the cap; a blocking queue
// waits for room instead, or fails with ErrClosed once done is closed.
// After an overrun the queue drops what it is given.
func (q *queue) push(msg []byte, done <-chan struct{}) error {
	q.mu.Lock()
	for q.block && q.err == nil && q.bytes > 0 && q.bytes+len(msg) > q.max {
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-done:
			return ErrClosed
		}
		q.mu.Lock()
	}
	if q.err != nil {
		q.mu.Unlock()
		return nil
	}
	if q.bytes+len(msg) > q.max && !q.block {
		q.err = ErrOverrun
		q.mu.Unlock()
		signal(q.notify)
		return ErrOverrun
	}
	q.msgs = append(q.msgs, msg)
	q.bytes += len(msg)
	q.mu.Unlock()
	signal(q.notify)
	return nil
}

// signal wakes the one waiter on c, if any, without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pop waits for a message until done is closed. Messages already queued
// are delivered before the close is reported.
func (q *queue) pop(done <-chan struct{}) ([]byte, error) {
	for {
		q.mu.Lock()
		if q.err != nil {
			err := q.err
			q.mu.Unlock()
			return nil, err
		}
		if len(q.msgs) > 0 {
			m := q.msgs[0]
			q.msgs[0] = nil
			q.msgs = q.msgs[1:]
			q.bytes -= len(m)
			q.mu.Unlock()
			if q.block {
				signal(q.room)
			}
			return m, nil
		}
		q.mu.Unlock()
		select {
		case <-q.notify:
		case <-done:
			q.mu.Lock()
			empty := len(q.msgs) == 0
			q.mu.Unlock()
			if empty {
				return nil, ErrClosed
			}
		}
	}
}
