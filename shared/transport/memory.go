package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"ddt/shared/wire"
)

// Memory is an in-process Transport: an offer names a pair of links in a
// registry shared by every Memory made from the same Network. Its control
// channel never blocks a sender (a receiver that falls 64 MiB behind is
// overrun, as on WebRTC); its bulk channel holds at most bulkHighWater
// bytes and blocks the sender beyond that, as WebRTC's buffered amount
// does. The two are independent queues, so a control message is delivered
// at once while a bulk sender is blocked.
type Memory struct{ net *Network }

// Network is the registry in-memory sessions meet through.
type Network struct {
	mu    sync.Mutex
	pipes map[string]*memSession
}

// NewNetwork returns an empty in-memory network.
func NewNetwork() *Network { return &Network{pipes: make(map[string]*memSession)} }

// Transport returns a Transport on this network.
func (n *Network) Transport() *Memory { return &Memory{net: n} }

var _ Transport = (*Memory)(nil)

// NewSession starts an in-memory connection attempt.
func (m *Memory) NewSession(initiator bool, send SendFunc) (Session, error) {
	s := &memSession{net: m.net, send: send, ready: make(chan struct{}), closed: make(chan struct{})}
	if initiator {
		var b [16]byte
		rand.Read(b[:])
		s.key = hex.EncodeToString(b[:])
		s.conns, s.peerConns = memLink()
		m.net.mu.Lock()
		m.net.pipes[s.key] = s
		m.net.mu.Unlock()
		go send(wire.SignalOffer, s.key)
	}
	return s, nil
}

// Close does nothing: the memory transport holds no sockets.
func (m *Memory) Close() error { return nil }

// memLink returns both ends of one link: each side's channels by name,
// closed together.
func memLink() (a, b map[string]Conn) {
	done := make(chan struct{})
	once := new(sync.Once)
	ca, cb := pipe(done, once, newQueue(recvCap), newQueue(recvCap))
	ba, bb := pipe(done, once, newBlockingQueue(bulkHighWater), newBlockingQueue(bulkHighWater))
	return map[string]Conn{Control: ca, Bulk: ba}, map[string]Conn{Control: cb, Bulk: bb}
}

type memSession struct {
	net       *Network
	send      SendFunc
	key       string
	conns     map[string]Conn // set before ready is closed
	peerConns map[string]Conn // the responder's, handed over with the offer
	once      sync.Once
	ready     chan struct{}
	closed    chan struct{}
	shut      sync.Once
}

func (s *memSession) open() { s.once.Do(func() { close(s.ready) }) }

func (s *memSession) Handle(kind wire.SignalKind, data string) error {
	switch kind {
	case wire.SignalOffer:
		s.net.mu.Lock()
		init, ok := s.net.pipes[data]
		delete(s.net.pipes, data)
		s.net.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: unknown in-memory offer", ErrBadSignal)
		}
		s.conns = init.peerConns
		s.open()
		go s.send(wire.SignalAnswer, data)
	case wire.SignalAnswer:
		if data != s.key {
			return fmt.Errorf("%w: answer for another session", ErrBadSignal)
		}
		s.open()
	case wire.SignalBye:
		s.Close()
	}
	return nil
}

func (s *memSession) Conn(ctx context.Context) (Conn, error) { return s.Channel(ctx, Control) }

func (s *memSession) Channel(ctx context.Context, name string) (Conn, error) {
	if name != Control && name != Bulk {
		return nil, fmt.Errorf("%w: %q", ErrUnknownChannel, name)
	}
	select {
	case <-s.ready:
		return s.conns[name], nil
	case <-s.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *memSession) Close() error {
	s.shut.Do(func() { close(s.closed) })
	if s.key != "" {
		s.net.mu.Lock()
		delete(s.net.pipes, s.key)
		s.net.mu.Unlock()
	}
	select {
	case <-s.ready:
		s.conns[Control].Close() // closes the whole link
	default:
	}
	return nil
}

// Pipe returns two Conns connected to each other in memory; like a
// control channel, a send never blocks.
func Pipe() (Conn, Conn) {
	return pipe(make(chan struct{}), new(sync.Once), newQueue(recvCap), newQueue(recvCap))
}

// pipe connects two Conns through queues ab (a to b) and ba. Closing
// done, once, closes them and every other pipe sharing done.
func pipe(done chan struct{}, once *sync.Once, ab, ba *queue) (Conn, Conn) {
	a := &pipeConn{in: ba, out: ab, done: done, once: once}
	b := &pipeConn{in: ab, out: ba, done: done, once: once}
	return a, b
}

type pipeConn struct {
	in, out *queue
	done    chan struct{}
	once    *sync.Once
	sent    sync.Mutex // one sender at a time waits for room
}

func (p *pipeConn) Send(msg []byte) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(msg))
	}
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	p.sent.Lock()
	defer p.sent.Unlock()
	err := p.out.push(append([]byte(nil), msg...), p.done)
	if err == ErrOverrun {
		p.Close()
	}
	return err
}

func (p *pipeConn) Recv() ([]byte, error) { return p.in.pop(p.done) }

func (p *pipeConn) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeConn) Done() <-chan struct{} { return p.done }
