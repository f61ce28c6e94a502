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
	// Without it a native transport offers loopback candidates only when
	// no other interface is up (an offline machine). Browsers ignore it:
	// their candidates are the browser's business.
	LoopbackOnly bool
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// Flow control: a channel's Send blocks while more than its high-water
// mark is buffered (queued in the SCTP stack, sent or not, until the peer
// acknowledges it) and resumes when the buffer drains below its low-water
// mark. The control channel keeps the marks the single channel had: its
// messages are small and it rarely fills. The bulk channel's are lower:
// both channels share one SCTP association, and the more bulk has
// buffered, the longer a control message may wait behind it. Measured on loopback (64 MiB in 60 KiB
// messages, a ping every 10 ms on control meanwhile; make bench's
// transport table): natively the median ping took 60 ms on a single
// channel behind a 4 MiB mark, and behind bulk 10 ms at 4 or 2 MiB, 9 ms
// at 1 MiB, 5 ms at 512 KiB and 3.5 ms at 256 KiB, while throughput fell
// by about a tenth at 256 KiB and held from 1 MiB up. In Chromium
// (dcsctp takes the streams in turn) the ping took 14–20 ms behind bulk
// at any mark from 256 KiB to 4 MiB, 150 ms on a single channel, and
// throughput did not move. What stays buffered is also the most a
// transfer keeps in flight: 1 MiB fills 400 Mbit/s at 20 ms of round
// trip, 80 Mbit/s at 100 ms.
const (
	controlHighWater = 4 << 20
	controlLowWater  = 1 << 20
	bulkHighWater    = 1 << 20
	bulkLowWater     = 512 << 10
	// recvCap bounds what a receiver may hold unread on one channel
	// before the link is considered overrun and closed. Receiving never
	// blocks: a stalled stream would fill SCTP's receive window, which
	// both channels share.
	recvCap = 64 << 20
)

// channels are the data channels of every WebRTC session. They are
// negotiated out of band: both sides create them with these SCTP stream
// ids as the session starts, so each opens as soon as the SCTP association
// is up, with no DCEP open/ack round trip, and its receive hook is in
// place before any message can arrive. The ids are part of the protocol:
// never renumber.
var channels = []channelSpec{
	{name: Control, id: 0, high: controlHighWater, low: controlLowWater},
	{name: Bulk, id: 1, high: bulkHighWater, low: bulkLowWater},
}

type channelSpec struct {
	name      string
	id        uint16
	high, low uint64
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

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
	log := c.logger()
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
	s := &rtcSession{pc: pc, send: send, log: w.log, chans: make(map[string]*dcConn), failed: make(chan struct{}), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	onLocalCandidate(pc, s.localCandidate)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			s.fail(fmt.Errorf("transport: connection %s", st))
		}
	})
	for _, spec := range channels {
		ordered, negotiated, id := true, true, spec.id
		dc, err := pc.CreateDataChannel(spec.name, &webrtc.DataChannelInit{Ordered: &ordered, Negotiated: &negotiated, ID: &id})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("transport: %s channel: %w", spec.name, err)
		}
		s.chans[spec.name] = newDCConn(s, dc, spec)
	}
	// Every channel is negotiated: one the peer opens in band has no
	// place here and is closed at once.
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		s.log.Debug("closing a channel the peer opened", "label", dc.Label())
		dc.Close()
	})
	if initiator {
		go s.offer()
	}
	return s, nil
}

type rtcSession struct {
	pc    *webrtc.PeerConnection
	send  SendFunc
	log   *slog.Logger
	chans map[string]*dcConn // by name; fixed at creation
	// ctx ends when the link closes: a browser never settles what a
	// closed RTCPeerConnection still had to do.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	remoteSet bool
	pending   []string // remote candidates that came before the description
	localSent bool     // our offer or answer went out
	local     []string // our candidates gathered before that
	err       error
	failed    chan struct{} // closed when err is set
	failOnce  sync.Once
	done      chan struct{} // closed when the link closes: every channel's Done
	doneOnce  sync.Once
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

// fail ends the attempt with err and closes the link.
func (s *rtcSession) fail(err error) {
	s.setErr(err)
	s.closeLink()
}

// setErr records why the attempt ended; the first reason wins.
func (s *rtcSession) setErr(err error) {
	s.failOnce.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.failed)
	})
}

// closeLink closes every channel and the peer connection, once. A channel
// not open by then never will be: Channel reports ErrClosed for it.
func (s *rtcSession) closeLink() {
	s.doneOnce.Do(func() {
		s.setErr(ErrClosed)
		close(s.done)
		s.cancel()
		go func() {
			for _, c := range s.chans {
				c.dc.Close()
			}
			s.pc.Close()
			for _, c := range s.chans {
				c.release()
			}
		}()
	})
}

// Handle feeds one signal; once the link is closed every signal is
// refused with ErrClosed.
func (s *rtcSession) Handle(kind wire.SignalKind, data string) error {
	err := s.handle(kind, data)
	if err != nil && s.ctx.Err() != nil {
		return ErrClosed // closed before or while handling: not the signal's fault
	}
	return err
}

func (s *rtcSession) handle(kind wire.SignalKind, data string) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
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
		if err := addCandidate(s.ctx, s.pc, data); err != nil {
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
		if err := addCandidate(s.ctx, s.pc, c); err != nil {
			s.log.Debug("early candidate refused", "err", err)
		}
	}
}

func (s *rtcSession) Conn(ctx context.Context) (Conn, error) { return s.Channel(ctx, Control) }

func (s *rtcSession) Channel(ctx context.Context, name string) (Conn, error) {
	c, ok := s.chans[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownChannel, name)
	}
	select {
	case <-c.open:
		return c, nil
	case <-s.failed:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-c.open: // it opened before the link failed: its Done says the rest
		return c, nil
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return nil, s.err
}

func (s *rtcSession) Close() error {
	s.fail(ErrClosed)
	return nil
}

// dcConn is a Conn over one data channel of a session. Receiving is
// platform glue (attachReceive) so that messages keep their order in the
// browser.
type dcConn struct {
	sender   // platform glue: how bytes reach the channel
	s        *rtcSession
	dc       *webrtc.DataChannel
	high     uint64
	in       *queue
	release  func() // detaches the receive hook
	low      chan struct{}
	sent     sync.Mutex // one sender at a time keeps flow control simple
	open     chan struct{}
	openOnce sync.Once
}

func newDCConn(s *rtcSession, dc *webrtc.DataChannel, spec channelSpec) *dcConn {
	c := &dcConn{sender: newSender(dc), s: s, dc: dc, high: spec.high, in: newQueue(recvCap), low: make(chan struct{}, 1), open: make(chan struct{})}
	c.release = attachReceive(dc, func(b []byte) {
		if c.in.push(b, nil) != nil {
			c.Close()
		}
	})
	dc.SetBufferedAmountLowThreshold(spec.low)
	dc.OnBufferedAmountLow(func() { signal(c.low) })
	dc.OnClose(func() { c.Close() })
	opened := func() { c.openOnce.Do(func() { close(c.open) }) }
	dc.OnOpen(opened)
	// pion's js backend may deliver the channel already open.
	if dc.ReadyState() == webrtc.DataChannelStateOpen {
		opened()
	}
	return c
}

func (c *dcConn) Send(msg []byte) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(msg))
	}
	c.sent.Lock()
	defer c.sent.Unlock()
	for c.dc.BufferedAmount() > c.high {
		select {
		case <-c.low:
		case <-c.s.done:
			return ErrClosed
		case <-time.After(50 * time.Millisecond):
			// The low event can be missed if it fired between the
			// check and the wait; look again.
		}
	}
	select {
	case <-c.s.done:
		return ErrClosed
	default:
	}
	if err := c.send(msg); err != nil {
		return fmt.Errorf("transport: send: %w", err)
	}
	return nil
}

func (c *dcConn) Recv() ([]byte, error) { return c.in.pop(c.s.done) }

// Close closes the whole link: every channel of the session.
func (c *dcConn) Close() error {
	c.s.closeLink()
	return nil
}

func (c *dcConn) Done() <-chan struct{} { return c.s.done }
