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
	// Conn waits until the link is open.
	Conn(ctx context.Context) (Conn, error)
	// Close abandons the attempt (and the link, if it opened).
	Close() error
}

// queue is an unbounded FIFO of received messages with a byte cap: the
// browser delivers data-channel messages by callback, which must never
// block, so they land here and Recv takes them in order.
type queue struct {
	mu     sync.Mutex
	msgs   [][]byte
	bytes  int
	max    int
	notify chan struct{}
	err    error
}

func newQueue(max int) *queue {
	return &queue{max: max, notify: make(chan struct{}, 1)}
}

// push adds msg; it reports false if the cap was exceeded.
func (q *queue) push(msg []byte) bool {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return true
	}
	if q.bytes+len(msg) > q.max {
		q.err = ErrOverrun
		q.mu.Unlock()
		q.wake()
		return false
	}
	q.msgs = append(q.msgs, msg)
	q.bytes += len(msg)
	q.mu.Unlock()
	q.wake()
	return true
}

func (q *queue) wake() {
	select {
	case q.notify <- struct{}{}:
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
