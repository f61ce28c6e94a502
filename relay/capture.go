package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	"ddt/shared/transport"
)

// Capture records the frames a process handles, for audits (-capture
// FILE on the relay and on `ddt-relay node`): an auditor reads in it
// exactly what the relay or an intermediary node had in hand — the relay's
// WebSocket messages (its nodes' and its federation links'), a native
// node's data-channel messages after DTLS (not its own link to its relay)
// — and can check what it could learn (the chat test looks in it for the
// messages' texts). It records at most MaxCapture bytes: a peer that
// streams at a node must not fill its disk.
//
// The file is appended to, one record a frame: a byte saying which way
// it went ('<' read, '>' written), its length (uint32, big-endian), then
// the frame as it was, unchanged. Each record is written whole, with one
// write, so records of concurrent connections do not interleave.
type Capture struct {
	mu      sync.Mutex
	f       *os.File
	written int64
	max     int64 // MaxCapture (less in a test)
	err     error // the first failed write, or the bound reached: reported once, then capture stops
}

// MaxCapture bounds what one Capture writes.
const MaxCapture = 1 << 30

// Directions of a captured frame.
const (
	captureRead    = '<'
	captureWritten = '>'
)

// OpenCapture opens path for appending (creating it); nil for "".
func OpenCapture(path string) (*Capture, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("-capture: %w", err)
	}
	return &Capture{f: f, max: MaxCapture}, nil
}

// record appends one frame.
func (c *Capture) record(dir byte, msg []byte) {
	rec := make([]byte, 5+len(msg))
	rec[0] = dir
	binary.BigEndian.PutUint32(rec[1:5], uint32(len(msg)))
	copy(rec[5:], msg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	if c.written+int64(len(rec)) > c.max {
		c.err = fmt.Errorf("%d bytes recorded, the most a capture keeps", c.written)
		fmt.Fprintf(os.Stderr, "capture: %v; no more frames are recorded\n", c.err)
		return
	}
	c.written += int64(len(rec))
	if _, err := c.f.Write(rec); err != nil {
		c.err = err
		fmt.Fprintf(os.Stderr, "capture: %v; no more frames are recorded\n", err)
	}
}

// Close closes the file; safe on nil.
func (c *Capture) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = os.ErrClosed
	}
	return c.f.Close()
}

// Conn returns conn recording every frame it carries; conn itself when
// c is nil.
func (c *Capture) Conn(conn transport.Conn) transport.Conn {
	if c == nil {
		return conn
	}
	return &captureConn{Conn: conn, c: c}
}

// Dial returns dial with every link it opens recorded; dial itself when
// c is nil.
func (c *Capture) Dial(dial func(context.Context, string) (transport.Conn, error)) func(context.Context, string) (transport.Conn, error) {
	if c == nil {
		return dial
	}
	return func(ctx context.Context, peer string) (transport.Conn, error) {
		conn, err := dial(ctx, peer)
		if err != nil {
			return nil, err
		}
		return c.Conn(conn), nil
	}
}

// WebRTC is transport.NewWebRTC with every channel of every session
// recorded (when c is not nil); closing the transport closes the capture.
func (c *Capture) WebRTC(cfg transport.Config) (transport.Transport, error) {
	t, err := transport.NewWebRTC(cfg)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return t, nil
	}
	return &captureTransport{WebRTC: t, c: c}, nil
}

type captureConn struct {
	transport.Conn
	c *Capture
}

func (cc *captureConn) Send(msg []byte) error {
	cc.c.record(captureWritten, msg)
	return cc.Conn.Send(msg)
}

func (cc *captureConn) Recv() ([]byte, error) {
	msg, err := cc.Conn.Recv()
	if err == nil {
		cc.c.record(captureRead, msg)
	}
	return msg, err
}

// captureTransport is a WebRTC transport whose sessions' channels are
// captureConns. It embeds the *WebRTC so that what the node asks of it
// beyond transport.Transport (SetICEServers) still reaches it.
type captureTransport struct {
	*transport.WebRTC
	c *Capture
}

func (t *captureTransport) NewSession(initiator bool, send transport.SendFunc) (transport.Session, error) {
	s, err := t.WebRTC.NewSession(initiator, send)
	if err != nil {
		return nil, err
	}
	return &captureSession{Session: s, c: t.c}, nil
}

func (t *captureTransport) Close() error {
	err := t.WebRTC.Close()
	t.c.Close()
	return err
}

type captureSession struct {
	transport.Session
	c *Capture
}

func (s *captureSession) Conn(ctx context.Context) (transport.Conn, error) {
	conn, err := s.Session.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return s.c.Conn(conn), nil
}

func (s *captureSession) Channel(ctx context.Context, name string) (transport.Conn, error) {
	conn, err := s.Session.Channel(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.c.Conn(conn), nil
}
