package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"ddt/shared/wire"
)

// Memory is an in-process Transport: an offer names a pipe in a registry
// shared by every Memory made from the same Network.
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
		a, b2 := Pipe()
		s.conn, s.peerConn = a, b2
		m.net.mu.Lock()
		m.net.pipes[s.key] = s
		m.net.mu.Unlock()
		go send(wire.SignalOffer, s.key)
	}
	return s, nil
}

// Close does nothing: the memory transport holds no sockets.
func (m *Memory) Close() error { return nil }

type memSession struct {
	net      *Network
	send     SendFunc
	key      string
	conn     Conn
	peerConn Conn
	once     sync.Once
	ready    chan struct{}
	closed   chan struct{}
	shut     sync.Once
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
		s.conn = init.peerConn
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

func (s *memSession) Conn(ctx context.Context) (Conn, error) {
	select {
	case <-s.ready:
		return s.conn, nil
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
	if s.conn != nil {
		s.conn.Close()
	}
	return nil
}

// Pipe returns two Conns connected to each other in memory.
func Pipe() (Conn, Conn) {
	done := make(chan struct{})
	once := new(sync.Once)
	a := &pipeConn{in: newQueue(64 << 20), done: done, once: once}
	b := &pipeConn{in: newQueue(64 << 20), done: done, once: once}
	a.out, b.out = b.in, a.in
	return a, b
}

type pipeConn struct {
	in, out *queue
	done    chan struct{}
	once    *sync.Once
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
	if !p.out.push(append([]byte(nil), msg...)) {
		p.Close()
		return ErrOverrun
	}
	return nil
}

func (p *pipeConn) Recv() ([]byte, error) { return p.in.pop(p.done) }

func (p *pipeConn) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeConn) Done() <-chan struct{} { return p.done }
