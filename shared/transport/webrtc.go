package transport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"ddt/shared/wire"
)

// Config configures the WebRTC transport.
type Config struct {
	// ICEServers are STUN/TURN URLs. Empty means host candidates only.
	ICEServers []string
	// LoopbackOnly restricts native ICE to the loopback interface (tests).
	// Browsers ignore it: their candidates are the browser's business.
	LoopbackOnly bool
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// Flow control for data channels: Send blocks while more than highWater
// bytes are buffered and resumes when the buffer drains below lowWater.
// Chromium's SCTP buffer takes 16 MiB; staying well under keeps memory
// flat while leaving enough in flight for full loopback speed.
const (
	highWater = 4 << 20
	lowWater  = 1 << 20
	// recvCap bounds what a receiver may hold unread before the link is
	// considered overrun and closed.
	recvCap = 64 << 20
)

// WebRTC is the Transport over WebRTC data channels.
type WebRTC struct {
	api    *webrtc.API
	mu     sync.Mutex
	cfg    webrtc.Configuration
	log    *slog.Logger
	closer func() error
}

var _ Transport = (*WebRTC)(nil)

// NewWebRTC makes a WebRTC transport.
func NewWebRTC(c Config) (*WebRTC, error) {
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api, closer, err := newAPI(c)
	if err != nil {
		return nil, err
	}
	var cfg webrtc.Configuration
	if len(c.ICEServers) > 0 {
		cfg.ICEServers = []webrtc.ICEServer{{URLs: c.ICEServers}}
	}
	return &WebRTC{api: api, cfg: cfg, log: log, closer: closer}, nil
}

// SetICEServers replaces the STUN/TURN servers for later sessions (a
// relay hands them out at admission).
func (w *WebRTC) SetICEServers(urls []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cfg.ICEServers = nil
	if len(urls) > 0 {
		w.cfg.ICEServers = []webrtc.ICEServer{{URLs: urls}}
	}
}

// Close releases the transport's shared socket, if any.
func (w *WebRTC) Close() error {
	if w.closer != nil {
		return w.closer()
	}
	return nil
}

// NewSession starts a WebRTC connection attempt.
func (w *WebRTC) NewSession(initiator bool, send SendFunc) (Session, error) {
	w.mu.Lock()
	cfg := w.cfg
	w.mu.Unlock()
	pc, err := w.api.NewPeerConnection(cfg)
	if err != nil {
		return nil, fmt.Errorf("transport: new peer connection: %w", err)
	}
	s := &rtcSession{pc: pc, send: send, log: w.log, ready: make(chan struct{}), closed: make(chan struct{})}
	onLocalCandidate(pc, s.localCandidate)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.fail(fmt.Errorf("transport: connection %s", st))
		}
	})
	if initiator {
		ordered := true
		dc, err := pc.CreateDataChannel("ddt", &webrtc.DataChannelInit{Ordered: &ordered})
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("transport: data channel: %w", err)
		}
		s.attach(dc)
		go s.offer()
	} else {
		pc.OnDataChannel(s.attach)
	}
	return s, nil
}

type rtcSession struct {
	pc   *webrtc.PeerConnection
	send SendFunc
	log  *slog.Logger

	mu        sync.Mutex
	remoteSet bool
	pending   []string // remote candidates that came before the description
	localSent bool     // our offer or answer went out
	local     []string // our candidates gathered before that
	conn      *dcConn
	err       error
	ready     chan struct{} // closed when conn or err is set
	readyOnce sync.Once
	closed    chan struct{}
	closeOnce sync.Once
}

func (s *rtcSession) offer() {
	offer, err := s.pc.CreateOffer(nil)
	if err == nil {
		err = s.pc.SetLocalDescription(offer)
	}
	if err != nil {
		s.fail(fmt.Errorf("transport: offer: %w", err))
		return
	}
	s.send(wire.SignalOffer, offer.SDP)
	s.flushLocal()
}

// localCandidate sends one of our ICE candidates (JSON of
// RTCIceCandidateInit), holding it back until our description is out: a
// candidate that overtook the offer would reach a peer with no session
// for it.
func (s *rtcSession) localCandidate(c string) {
	s.mu.Lock()
	if !s.localSent {
		s.local = append(s.local, c)
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.send(wire.SignalCandidate, c)
}

func (s *rtcSession) flushLocal() {
	s.mu.Lock()
	s.localSent = true
	held := s.local
	s.local = nil
	s.mu.Unlock()
	for _, c := range held {
		s.send(wire.SignalCandidate, c)
	}
}

func (s *rtcSession) attach(dc *webrtc.DataChannel) {
	c := newDCConn(dc, s.pc)
	onOpen := func() {
		s.mu.Lock()
		s.conn = c
		s.mu.Unlock()
		s.readyOnce.Do(func() { close(s.ready) })
	}
	dc.OnOpen(onOpen)
	// pion's js backend may deliver the channel already open.
	if dc.ReadyState() == webrtc.DataChannelStateOpen {
		onOpen()
	}
}

func (s *rtcSession) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	c := s.conn
	s.mu.Unlock()
	s.readyOnce.Do(func() { close(s.ready) })
	if c != nil {
		c.Close()
	}
}

func (s *rtcSession) Handle(kind wire.SignalKind, data string) error {
	switch kind {
	case wire.SignalOffer:
		if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: data}); err != nil {
			return fmt.Errorf("%w: offer: %v", ErrBadSignal, err)
		}
		s.flush()
		answer, err := s.pc.CreateAnswer(nil)
		if err == nil {
			err = s.pc.SetLocalDescription(answer)
		}
		if err != nil {
			return fmt.Errorf("transport: answer: %w", err)
		}
		s.send(wire.SignalAnswer, answer.SDP)
		s.flushLocal()
	case wire.SignalAnswer:
		if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: data}); err != nil {
			return fmt.Errorf("%w: answer: %v", ErrBadSignal, err)
		}
		s.flush()
	case wire.SignalCandidate:
		if !json.Valid([]byte(data)) {
			return fmt.Errorf("%w: candidate is not JSON", ErrBadSignal)
		}
		s.mu.Lock()
		if !s.remoteSet {
			if len(s.pending) < 64 {
				s.pending = append(s.pending, data)
			}
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if err := addCandidate(s.pc, data); err != nil {
			return fmt.Errorf("%w: candidate: %v", ErrBadSignal, err)
		}
	case wire.SignalBye:
		s.fail(errors.New("transport: peer abandoned the connection"))
		s.Close()
	}
	return nil
}

// flush adds candidates that arrived before the remote description.
func (s *rtcSession) flush() {
	s.mu.Lock()
	s.remoteSet = true
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	for _, c := range pending {
		if err := addCandidate(s.pc, c); err != nil {
			s.log.Debug("early candidate refused", "err", err)
		}
	}
}

func (s *rtcSession) Conn(ctx context.Context) (Conn, error) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn, nil
	}
	return nil, s.err
}

func (s *rtcSession) Close() error {
	s.closeOnce.Do(func() {
		s.fail(ErrClosed)
		s.pc.Close()
	})
	return nil
}

// dcConn is a Conn over one data channel. Receiving is platform glue
// (attachReceive) so that messages keep their order in the browser.
type dcConn struct {
	sender  // platform glue: how bytes reach the channel
	dc      *webrtc.DataChannel
	pc      *webrtc.PeerConnection
	in      *queue
	release func() // detaches the receive hook
	low     chan struct{}
	sent    sync.Mutex // one sender at a time keeps flow control simple

	done chan struct{}
	once sync.Once
}

func newDCConn(dc *webrtc.DataChannel, pc *webrtc.PeerConnection) *dcConn {
	c := &dcConn{sender: newSender(dc), dc: dc, pc: pc, in: newQueue(recvCap), low: make(chan struct{}, 1), done: make(chan struct{})}
	c.release = attachReceive(dc, func(b []byte) {
		if !c.in.push(b) {
			c.Close()
		}
	})
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	dc.OnClose(func() { c.Close() })
	return c
}

func (c *dcConn) Send(msg []byte) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(msg))
	}
	c.sent.Lock()
	defer c.sent.Unlock()
	for c.dc.BufferedAmount() > highWater {
		select {
		case <-c.low:
		case <-c.done:
			return ErrClosed
		case <-time.After(50 * time.Millisecond):
			// The low event can be missed if it fired between the
			// check and the wait; look again.
		}
	}
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	if err := c.send(msg); err != nil {
		return fmt.Errorf("transport: send: %w", err)
	}
	return nil
}

func (c *dcConn) Recv() ([]byte, error) { return c.in.pop(c.done) }

func (c *dcConn) Close() error {
	c.once.Do(func() {
		close(c.done)
		go func() {
			c.dc.Close()
			c.pc.Close()
			c.release()
		}()
	})
	return nil
}

func (c *dcConn) Done() <-chan struct{} { return c.done }
