package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"ddt/shared/backoff"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Connection attempts.
const (
	// handshakeTimeout bounds a connection attempt from offer to proven
	// lease.
	handshakeTimeout = 15 * time.Second
	// maxDialRetries is how many times an attempt the node made by
	// itself (to a peer its relay named, or to cover a bucket) is tried
	// again after it failed or stalled.
	maxDialRetries = 2
)

// stallTimeouts bound how long a self-made attempt may take to open its
// channel before it counts as stalled and is tried again: short at first
// (setup takes well under a second on one network), the full handshake
// timeout at the last try.
var stallTimeouts = []time.Duration{5 * time.Second, 10 * time.Second, handshakeTimeout}

// dialRetryPause is the wait before the first retry; it doubles after.
var dialRetryPause = time.Second

// Offers: an offer this node answers holds a WebRTC session until its
// channel opens or handshakeTimeout passes. Whoever signals it (the
// relay, or a routed origin) could send offers for sessions that never
// open; these bound what that costs. Pending offers do not count against
// the connection budget, so they cannot keep the node from its own dials.
const (
	// MaxOffersPerSignaler is how many offers from one signaler may be
	// pending at once: through the relay, or routed from one origin
	// (which is one address, so one offer).
	MaxOffersPerSignaler = 8
	// MaxPendingOffers is how many may be pending in all.
	MaxPendingOffers = 16
)

// Sending to a peer: every control frame goes through the peer's send
// queue, drained by one writer, so no sender waits on the channel itself.
const (
	// MaxQueuedBytes bounds what may wait in one peer's send queue. A
	// frame that does not fit is dropped (forwarded routed messages,
	// answers to pings) or waits for room at most the peer timeout (the
	// node's own requests and capabilities' sends). The queue only fills
	// once the channel's own buffer (4 MiB) is full: a peer that reads
	// keeps it near empty.
	MaxQueuedBytes = 512 << 10
	// MaxQueuedFrames bounds the frames waiting there.
	MaxQueuedFrames = 1024
)

// dial is a connection attempt in progress.
type dial struct {
	session   transport.Session // set before ready is closed; nil if it failed
	ready     chan struct{}
	done      chan struct{} // closed when the attempt has ended either way
	once      sync.Once
	sid       uint64
	initiator bool
	via       string // ViaRelay or ViaOverlay: where its signaling goes
	auto      bool   // made by the node itself: tried again if it fails
	cover     bool   // opened to cover an empty bucket (may use the slack)
}

// ByeStopped is the reason in the Bye a node sends every peer as it
// stops: a peer that reads it drops the node from its routing table
// rather than from its channels only (a Bye for any other reason — a
// trimmed channel, say — leaves a node that is still in the network).
const ByeStopped = "node stopped"

func newDial(sid uint64, initiator bool, via string) *dial {
	return &dial{sid: sid, initiator: initiator, via: via, ready: make(chan struct{}), done: make(chan struct{})}
}

func (d *dial) finish() { d.once.Do(func() { close(d.done) }) }

// startSession makes d's transport session. Signals for d that arrive
// meanwhile wait for it in onSignal.
func (n *Node) startSession(addr id.Address, d *dial) (transport.Session, error) {
	s, err := n.cfg.Transport.NewSession(d.initiator, n.signaler(addr, d))
	if err != nil {
		s = nil
		n.log.Warn("could not start a connection", "peer", addr.Short(), "err", err)
		n.endDial(addr, d)
		d.finish()
	}
	n.mu.Lock()
	d.session = s
	abandoned := n.dials[addr] != d // stopped or superseded meanwhile
	n.mu.Unlock()
	close(d.ready)
	if err == nil && abandoned {
		s.Close()
		d.finish()
		return nil, errAbandoned
	}
	return s, err
}

// errAbandoned: the attempt was dropped while its session was made.
var errAbandoned = errors.New("node: connection attempt abandoned")

// peer is an open, authenticated link: a control channel for keepalives,
// the DHT and routed messages, and a bulk channel for large transfers
// (the control channel again if the link has none).
type peer struct {
	n        *Node
	addr     id.Address
	native   bool
	via      string    // how its channel was signaled
	since    time.Time // when the channel opened
	features wire.Features
	conn     transport.Conn // control
	bulk     transport.Conn // bulk, or conn
	routed   *rate.Limiter  // routed messages it may hand us
	rpcs     chan struct{}  // a slot per request of its being answered
	out      outbox         // control frames waiting for the writer
	checking atomic.Bool    // a liveness check the relay asked for is running

	mu     sync.Mutex
	rtt    time.Duration
	lastIn time.Time
	// unanswered is when the oldest of our pings since the last answer
	// went out; zero when none waits. Measured from the ping, not from
	// the last answer, so a throttled tab that pings rarely is not
	// taken for a peer that stopped reading.
	unanswered time.Time
	lastUsed   time.Time // last request or routed message either way: keepalives do not count
	pings      map[uint64]chan struct{}
	benchIn    uint64        // bench bytes received since the last BenchEnd
	ack        chan uint64   // BenchAck values for the running throughput test
	bench      sync.Mutex    // one throughput test at a time
	bulkSlot   chan struct{} // one slot: held by the bulk send in progress
	gone       chan struct{} // closed when the peer is removed
	reason     string
}

func (p *peer) info() PeerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PeerInfo{Address: p.addr, Native: p.native, RTT: p.rtt, Via: p.via, Since: p.since, Features: p.features}
}

// touch notes that p carried real traffic.
func (p *peer) touch() {
	now := p.n.clock.Now()
	p.mu.Lock()
	p.lastUsed = now
	p.mu.Unlock()
}

func (p *peer) used() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastUsed
}

// outbox is a peer's send queue for its control channel.
type outbox struct {
	mu     sync.Mutex
	frames [][]byte
	bytes  int
	room   chan struct{} // closed when a frame leaves, if senders wait for room
	wake   chan struct{} // one slot: frames were queued
	since  time.Time     // when the writer's send in progress began; zero if idle
}

// put queues b if it fits.
func (o *outbox) put(b []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.frames) >= MaxQueuedFrames || (len(o.frames) > 0 && o.bytes+len(b) > MaxQueuedBytes) {
		return false
	}
	o.frames = append(o.frames, b)
	o.bytes += len(b)
	signal(o.wake)
	return true
}

// roomLocked returns a channel closed when a frame leaves the queue.
func (o *outbox) roomLocked() <-chan struct{} {
	if o.room == nil {
		o.room = make(chan struct{})
	}
	return o.room
}

// stuck is how long the writer has been in one send, as of now.
func (o *outbox) stuck(now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return 0
	}
	return now.Sub(o.since)
}

// signal wakes the one waiter on c, if any, without blocking.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// trySend queues m on p's control channel, or drops it (and counts it)
// if the queue is full: for frames sent on a read loop, which must never
// wait on another peer, nor on this one.
func (p *peer) trySend(m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	if err := p.goneErr(); err != nil {
		return err
	}
	if !p.out.put(b) {
		p.n.overlay.queueFull.Add(1)
		return fmt.Errorf("%w (%s)", ErrQueueFull, p.addr.Short())
	}
	return nil
}

// send queues m on p's control channel, waiting for room while ctx lasts
// and at most the peer timeout: a peer that takes nothing for that long
// is closed for it anyway.
func (p *peer) send(ctx context.Context, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	var deadline clock.Timer
	for {
		if err := p.goneErr(); err != nil {
			return err
		}
		if p.out.put(b) {
			return nil
		}
		p.out.mu.Lock()
		room := p.out.roomLocked()
		p.out.mu.Unlock()
		if deadline == nil {
			deadline = p.n.clock.NewTimer(p.n.cfg.PeerTimeout)
			defer deadline.Stop()
		}
		select {
		case <-room:
		case <-p.gone:
		case <-deadline.C():
			p.n.overlay.queueFull.Add(1)
			return fmt.Errorf("%w (%s) for %s", ErrQueueFull, p.addr.Short(), p.n.cfg.PeerTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// goneErr is ErrNotConnected, with the reason, once p is closed.
func (p *peer) goneErr() error {
	select {
	case <-p.gone:
		p.mu.Lock()
		defer p.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotConnected, p.reason)
	default:
		return nil
	}
}

// writeLoop sends what the queue holds, in order, until p is closed. A
// send that never returns (the peer stopped reading and the channel's
// buffer is full) is ended by keepAlive closing the link.
func (p *peer) writeLoop() {
	o := &p.out
	for {
		o.mu.Lock()
		for len(o.frames) == 0 {
			o.mu.Unlock()
			select {
			case <-o.wake:
			case <-p.gone:
				return
			}
			o.mu.Lock()
		}
		b := o.frames[0]
		o.frames[0] = nil
		o.frames = o.frames[1:]
		o.bytes -= len(b)
		if o.room != nil {
			close(o.room)
			o.room = nil
		}
		o.since = p.n.clock.Now()
		o.mu.Unlock()
		err := p.conn.Send(b)
		o.mu.Lock()
		o.since = time.Time{}
		o.mu.Unlock()
		if err != nil {
			p.close("connection closed", true)
			return
		}
	}
}

// sendBulk sends m on p's bulk channel, waiting while the channel is
// full (back-pressure) for as long as ctx lasts.
func (p *peer) sendBulk(ctx context.Context, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return p.sendBulkRaw(ctx, b)
}

// sendBulkRaw sends the encoded frame b on the bulk channel. The
// transport's Send blocks while the link's buffer is full and knows no
// context, so it runs on a goroutine of its own: a caller whose ctx ends
// returns at once, and the frame still goes out, in order, before the
// next one (bulkSlot is held until it has), or the link closes.
func (p *peer) sendBulkRaw(ctx context.Context, b []byte) error {
	select {
	case p.bulkSlot <- struct{}{}:
	case <-p.gone:
		return p.goneErr()
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := p.goneErr(); err != nil {
		<-p.bulkSlot
		return err
	}
	done := make(chan error, 1)
	go func() {
		err := p.bulk.Send(b)
		<-p.bulkSlot
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-p.gone:
		return p.goneErr()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func randomSID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1 // fits a varint in 9 bytes
}

// connectTo starts an outgoing connection attempt, signaled via relay or
// overlay, and returns it; nil if there is a channel or an attempt
// already, or no room in the budget. Locked addresses always have room;
// one that covers an empty bucket (cover) may use the slack, and trimming
// then closes a channel of a crowded bucket instead. An auto attempt is
// the node's own idea and is tried again if it fails.
func (n *Node) connectTo(addr id.Address, via string, cover, auto bool) *dial {
	n.mu.Lock()
	if n.stopped || addr == n.lease.Address || n.peers[addr] != nil || n.dials[addr] != nil || (!n.locked[addr] && !n.roomForLocked(cover)) {
		n.mu.Unlock()
		return nil
	}
	d := newDial(randomSID(), true, via)
	d.auto, d.cover = auto, cover
	n.dials[addr] = d
	n.mu.Unlock()
	if _, err := n.startSession(addr, d); err == nil {
		go n.finishDial(addr, d)
	}
	return d
}

// keepOwnOffer settles glare, two nodes offering to each other at once,
// the same way on both sides: an offer signaled through the relay beats
// one routed through the overlay (a node that has just joined has no
// channel yet for a routed offer to reach it), and between offers of one
// kind the lower address keeps its own.
func keepOwnOffer(mine, theirs string, self, them id.Address) bool {
	if mine != theirs {
		return mine == ViaRelay
	}
	return self.Compare(them) < 0
}

// accept answers an offer; glare is settled by keepOwnOffer.
func (n *Node) accept(from id.Address, sid uint64, offer string, via string) {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return
	}
	// An offer for an address with a channel, an attempt or a lock needs
	// no room in the budget, but it is one more offer pending all the
	// same (so offers naming connected peers cannot get past the bounds),
	// unless it replaces an offer pending for that address.
	fresh := n.dials[from] == nil && n.peers[from] == nil && !n.locked[from]
	replaces := n.dials[from] != nil && !n.dials[from].initiator
	why := ""
	fromRelay, pending := n.pendingOffersLocked()
	switch {
	case fresh && !n.roomForLocked(true):
		why = "connection budget full"
	case replaces:
	case pending >= MaxPendingOffers:
		why = "too many offers pending"
	case via == ViaRelay && fromRelay >= MaxOffersPerSignaler:
		why = "too many offers from the relay pending"
	}
	if why != "" {
		n.mu.Unlock()
		n.overlay.offersRefused.Add(1)
		n.log.Debug("refused an offer: "+why, "peer", from.Short(), "via", via)
		return
	}
	if old := n.dials[from]; old != nil {
		if old.sid == sid {
			n.mu.Unlock()
			return // a duplicate offer
		}
		if old.initiator && keepOwnOffer(old.via, via, n.lease.Address, from) {
			n.mu.Unlock()
			n.log.Debug("glare: keeping my own offer", "peer", from.Short())
			return
		}
		delete(n.dials, from)
		if old.session != nil {
			go old.session.Close()
		}
	}
	d := newDial(sid, false, via)
	n.dials[from] = d
	n.mu.Unlock()
	s, err := n.startSession(from, d)
	if err != nil {
		return
	}
	if err := s.Handle(wire.SignalOffer, offer); err != nil {
		n.log.Warn("bad offer", "peer", from.Short(), "err", err)
		s.Close()
		n.endDial(from, d)
		d.finish()
		return
	}
	go n.finishDial(from, d)
}

// pendingOffersLocked counts the offers this node answered whose channel
// has not opened yet: those signaled through the relay, and all.
func (n *Node) pendingOffersLocked() (fromRelay, all int) {
	for _, d := range n.dials {
		if !d.initiator {
			all++
			if d.via == ViaRelay {
				fromRelay++
			}
		}
	}
	return fromRelay, all
}

// onSignal routes answers and candidates to their attempt; via says how
// the signal came, and an answer to an offer goes back the same way.
func (n *Node) onSignal(s *wire.Signal, via string) {
	if s.Kind == wire.SignalOffer {
		n.accept(s.Peer, s.Session, s.Data, via)
		return
	}
	n.mu.Lock()
	d := n.dials[s.Peer]
	n.mu.Unlock()
	if d == nil || d.sid != s.Session {
		return // stale: the attempt already finished or was abandoned
	}
	select {
	case <-d.ready:
	case <-clock.After(n.clock, handshakeTimeout):
		return
	}
	n.mu.Lock()
	session := d.session
	n.mu.Unlock()
	if session == nil {
		return
	}
	if err := session.Handle(s.Kind, s.Data); err != nil {
		n.log.Debug("signal refused", "peer", s.Peer.Short(), "kind", s.Kind, "err", err)
	}
}

// signaler sends a session's signaling through the relay or, for an
// attempt signaled through the overlay, routed to the peer.
func (n *Node) signaler(to id.Address, d *dial) transport.SendFunc {
	return func(kind wire.SignalKind, data string) {
		if d.via == ViaOverlay {
			// Never waits: this runs on a read loop (answering an offer)
			// or in the transport's callbacks.
			err := n.trySendRouted(to, &wire.Signal{Peer: n.Address(), Session: d.sid, Kind: kind, Data: data})
			if err != nil {
				n.log.Info("overlay signaling failed", "peer", to.Short(), "err", err)
			}
			return
		}
		n.sendRelay(&wire.Signal{Peer: to, Session: d.sid, Kind: kind, Data: data})
	}
}

func (n *Node) endDial(addr id.Address, d *dial) {
	n.mu.Lock()
	if n.dials[addr] == d {
		delete(n.dials, addr)
	}
	n.mu.Unlock()
}

// finishDial waits for the data channels, proves leases both ways and
// turns the attempt into a peer.
func (n *Node) finishDial(addr id.Address, d *dial) {
	defer d.finish()
	defer n.endDial(addr, d)
	limit := handshakeTimeout
	if d.auto {
		n.mu.Lock()
		limit = stallTimeouts[min(n.retries[addr], len(stallTimeouts)-1)]
		n.mu.Unlock()
	}
	// The deadline is on the node's clock, so a test can make it pass.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stalled := fmt.Errorf("no data channel after %s", limit)
	deadline := n.clock.AfterFunc(limit, func() { cancel(stalled) })
	defer deadline.Stop()
	conn, err := d.session.Conn(ctx)
	if ctx.Err() != nil {
		err = context.Cause(ctx)
	}
	if err == nil {
		var theirs *wire.PeerHello
		theirs, err = n.handshake(ctx, conn, addr, true)
		if err == nil {
			bulk := conn
			if theirs.Features.Has(wire.FeatureBulk) {
				if bulk, err = d.session.Channel(ctx, transport.Bulk); err != nil {
					err = fmt.Errorf("bulk channel: %w", err)
				}
			}
			if err == nil {
				n.mu.Lock()
				delete(n.retries, addr)
				n.mu.Unlock()
				n.addPeer(addr, theirs.Native, theirs.Features, conn, bulk, d.via)
				return
			}
		}
		conn.Close()
	}
	d.session.Close()
	n.mu.Lock()
	superseded := n.dials[addr] != d || n.peers[addr] != nil
	n.mu.Unlock()
	if !superseded {
		n.endDial(addr, d) // before a retry can start
		n.dialFailed(addr, d, err)
	}
}

// dialFailed says an attempt failed and, for one the node made by
// itself, tries again after a pause: a first dial that fails or stalls
// (the other side busy, a candidate lost) must not leave a fresh node
// without peers.
func (n *Node) dialFailed(addr id.Address, d *dial, err error) {
	n.mu.Lock()
	tries := n.retries[addr]
	retry := d.auto && d.initiator && !n.stopped && tries < maxDialRetries
	if retry {
		n.retries[addr] = tries + 1
	} else {
		delete(n.retries, addr)
	}
	n.mu.Unlock()
	var wait time.Duration
	if retry {
		wait = backoff.Jitter(dialRetryPause << tries)
		n.clock.AfterFunc(wait, func() {
			if n.connectTo(addr, d.via, d.cover, true) == nil {
				n.mu.Lock()
				delete(n.retries, addr) // connected meanwhile, or no room: fill decides later
				n.mu.Unlock()
			}
		})
		n.log.Info("connection attempt failed; retrying", "peer", addr.Short(), "err", err, "in", wait)
	} else {
		n.log.Info("connection attempt failed", "peer", addr.Short(), "err", err)
	}
	if !d.initiator {
		return // the other side's attempt: it says so on its side
	}
	reason := "failed"
	if err != nil {
		reason = err.Error()
	}
	n.emit(Event{Kind: EventDialFailed, Peer: PeerInfo{Address: addr, Via: d.via}, Reason: reason, RetryIn: wait})
}

// handshake exchanges PeerHello and PeerProof and checks the peer's lease
// and its possession of the lease's key. bulk says whether this link
// offers a bulk channel.
func (n *Node) handshake(ctx context.Context, conn transport.Conn, want id.Address, bulk bool) (*wire.PeerHello, error) {
	n.mu.Lock()
	lease := n.lease
	n.mu.Unlock()
	feats := n.features
	if bulk {
		feats = wire.NewFeatures(append(feats, wire.FeatureBulk)...)
	}
	hello := &wire.PeerHello{Lease: lease, Native: n.cfg.Native, Features: feats}
	rand.Read(hello.Nonce[:])
	// ctx bounds every step, sends included: a peer that stops reading
	// mid-handshake must not hold the attempt.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := send(conn, hello); err != nil {
		return nil, err
	}

	m, err := recv(conn)
	if err != nil {
		return nil, err
	}
	theirs, ok := m.(*wire.PeerHello)
	if !ok {
		return nil, fmt.Errorf("%w: expected PeerHello, got type %d", wire.ErrProtocol, m.Type())
	}
	if theirs.Lease.Address != want {
		return nil, fmt.Errorf("%w: expected %s, lease is for %s", wire.ErrProtocol, want.Short(), theirs.Lease.Address.Short())
	}
	if err := n.verifyLease(&theirs.Lease); err != nil {
		return nil, err
	}
	proof := &wire.PeerProof{Sig: n.id.Sign(wire.ProofSignedBytes(theirs.Nonce, lease.Address))}
	if err := send(conn, proof); err != nil {
		return nil, err
	}
	m, err = recv(conn)
	if err != nil {
		return nil, err
	}
	pp, ok := m.(*wire.PeerProof)
	if !ok {
		return nil, fmt.Errorf("%w: expected PeerProof, got type %d", wire.ErrProtocol, m.Type())
	}
	if !identity.Verify(theirs.Lease.SignKey, wire.ProofSignedBytes(hello.Nonce, want), pp.Sig) {
		return nil, fmt.Errorf("peer proof: %w", wire.ErrBadSignature)
	}
	if !bulk {
		// We have no bulk channel to offer, whatever they have.
		theirs.Features = without(theirs.Features, wire.FeatureBulk)
	}
	return theirs, nil
}

func send(c transport.Conn, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return c.Send(b)
}

func recv(c transport.Conn) (wire.Message, error) {
	b, err := c.Recv()
	if err != nil {
		return nil, err
	}
	return wire.Unmarshal(b)
}

func (n *Node) addPeer(addr id.Address, native bool, features wire.Features, conn, bulk transport.Conn, via string) {
	now := n.clock.Now()
	p := &peer{n: n, addr: addr, native: native, via: via, since: now, features: features, conn: conn, bulk: bulk, lastIn: now,
		routed: rate.NewLimiter(routedRate, routedBurst), rpcs: make(chan struct{}, maxRPCInFlight),
		out: outbox{wake: make(chan struct{}, 1)}, pings: make(map[uint64]chan struct{}), gone: make(chan struct{}),
		bulkSlot: make(chan struct{}, 1)}
	n.mu.Lock()
	old := n.peers[addr]
	n.peers[addr] = p
	d := n.dht
	n.mu.Unlock()
	if d != nil {
		d.Seen(addr)
	}
	if old != nil {
		// A fresh channel replaces a stale one without a gone/up pair.
		old.close("replaced by a new connection", false)
	} else {
		n.log.Info("peer up", "peer", addr.Short(), "native", native, "via", via, "features", features)
		n.emit(Event{Kind: EventPeer, Peer: p.info()})
	}
	go p.writeLoop()
	go p.readLoop(p.conn)
	if p.bulk != p.conn {
		go p.readLoop(p.bulk)
	}
	go p.keepAlive()
	n.trim()
}

// close removes p and closes its link; announce says whether subscribers
// hear of it.
func (p *peer) close(reason string, announce bool) {
	n := p.n
	n.mu.Lock()
	mine := n.peers[p.addr] == p
	if mine {
		delete(n.peers, p.addr)
	}
	n.mu.Unlock()
	p.mu.Lock()
	select {
	case <-p.gone:
		p.mu.Unlock()
		return
	default:
	}
	p.reason = reason
	close(p.gone)
	p.mu.Unlock()
	shut := func() {
		p.conn.Close()
		p.bulk.Close()
	}
	if announce {
		// Say why before closing, but never wait on a stuck channel.
		go func() {
			force := n.clock.AfterFunc(time.Second, shut)
			defer force.Stop()
			if b, err := wire.Marshal(&wire.Bye{Reason: reason}); err == nil {
				p.conn.Send(b)
			}
			shut()
		}()
	} else {
		shut()
	}
	if mine && announce {
		n.log.Info("peer gone", "peer", p.addr.Short(), "reason", reason)
		n.emit(Event{Kind: EventPeerGone, Peer: p.info(), Reason: reason})
		// A channel gone (the other side trimmed it, say) may have been
		// the only one in its bucket, or one of the last: cover the
		// buckets again now rather than at the next maintenance round,
		// or routing through this node dead-ends meanwhile.
		n.mu.Lock()
		n.closedAt[p.addr] = n.clock.Now()
		left := len(n.peers)
		bucket := id.CommonPrefixLen(n.lease.Address, p.addr)
		covered := false
		for a := range n.peers {
			if id.CommonPrefixLen(n.lease.Address, a) == bucket {
				covered = true
				break
			}
		}
		n.mu.Unlock()
		if !covered || left < min(n.cfg.MaxPeers, refillBelow) {
			go n.fill()
		}
	}
}

// readLoop reads one of p's channels until it closes: every frame counts
// as life; a frame of a type this node does not know is counted and
// skipped (a newer peer may send it); a malformed frame closes the link;
// the rest go to the handler registered for their type.
func (p *peer) readLoop(c transport.Conn) {
	n := p.n
	for {
		b, err := c.Recv()
		if err != nil {
			reason := "connection closed"
			if errors.Is(err, transport.ErrOverrun) {
				reason = "peer overran the receive buffer"
			}
			p.close(reason, true)
			return
		}
		now := n.clock.Now()
		p.mu.Lock()
		p.lastIn = now
		p.mu.Unlock()
		m, err := wire.Unmarshal(b)
		if errors.Is(err, wire.ErrUnknownType) {
			n.unknownPeer.Add(1)
			t, _ := wire.TypeOf(b)
			n.log.Debug("skipping a message of a type this node does not know", "peer", p.addr.Short(), "type", t)
			continue
		}
		if err != nil {
			n.log.Warn("bad message from peer", "peer", p.addr.Short(), "err", err)
			p.close("sent a malformed message", true)
			return
		}
		fn := n.handlers.peer[m.Type()]
		if fn == nil {
			n.unhandled.Add(1)
			n.log.Debug("ignoring a message nothing here handles", "peer", p.addr.Short(), "type", m.Type())
			continue
		}
		fn(p, m)
		if _, bye := m.(*wire.Bye); bye {
			return
		}
	}
}

// registerCore registers the node's own handlers: the peer link's
// keepalive, throughput test and goodbye, the overlay's envelopes, the
// DHT's requests, and the relay's signaling and membership news.
func (n *Node) registerCore() {
	hs := &n.handlers
	onPeer := func(t wire.Type, fn func(*peer, wire.Message)) {
		hs.peer[t] = fn
		hs.owner[t] = "node"
	}
	// Answers go through the send queue and are dropped if it is full:
	// a read loop never waits, and never starts a goroutine per frame.
	onPeer(wire.TypePing, func(p *peer, m wire.Message) {
		p.trySend(&wire.Pong{ID: m.(*wire.Ping).ID})
	})
	onPeer(wire.TypePong, func(p *peer, m wire.Message) { p.pong(m.(*wire.Pong).ID) })
	onPeer(wire.TypeBenchData, func(p *peer, m wire.Message) { p.benchIn += uint64(len(m.(*wire.BenchData).Data)) })
	onPeer(wire.TypeBenchEnd, func(p *peer, m wire.Message) {
		got := p.benchIn
		p.benchIn = 0
		p.trySend(&wire.BenchAck{Received: got})
	})
	onPeer(wire.TypeBenchAck, func(p *peer, m wire.Message) { p.benchAck(m.(*wire.BenchAck).Received) })
	onPeer(wire.TypeRPC, func(p *peer, m wire.Message) { p.onRPC(m.(*wire.RPC)) })
	onPeer(wire.TypeRouted, func(p *peer, m wire.Message) { n.onRouted(p, m.(*wire.Routed)) })
	onPeer(wire.TypeBye, func(p *peer, m wire.Message) {
		reason := "peer left"
		r := m.(*wire.Bye).Reason
		if r != "" {
			reason = "peer left: " + r
		}
		p.close(reason, true)
		if r == ByeStopped {
			n.departed(p.addr)
		}
	})
	for _, t := range []wire.Type{wire.TypePing, wire.TypeFindNode, wire.TypeFindValue, wire.TypeStore} {
		hs.request[t] = n.answerDHT
		hs.owner[t] = "node"
	}
	relay := func(t wire.Type, fn RelayHandler) {
		hs.relay[t] = fn
		hs.owner[t] = "node"
	}
	relay(wire.TypeSignal, func(m wire.Message) { n.onSignal(m.(*wire.Signal), ViaRelay) })
	relay(wire.TypePeerJoined, func(m wire.Message) {
		j := m.(*wire.PeerJoined)
		n.learn(&j.Lease, j.Native)
	})
	relay(wire.TypePeerLeft, func(m wire.Message) { n.onPeerLeft(m.(*wire.PeerLeft).Address) })
	relay(wire.TypeError, func(m wire.Message) { n.log.Info("relay refused a request", "err", m.(*wire.Error).Err()) })
}

// onRPC answers a request from p, or hands a reply to its caller.
func (p *peer) onRPC(m *wire.RPC) {
	n := p.n
	if m.Reply {
		n.onReply(p.addr, m)
		return
	}
	// A goroutine per request in flight, at most maxRPCInFlight of them.
	select {
	case p.rpcs <- struct{}{}:
		p.touch()
		go func() {
			defer func() { <-p.rpcs }()
			n.answer(p.addr, m, func(reply wire.Message) error { return p.send(n.life, reply) })
		}()
	default:
		n.overlay.busy.Add(1)
		n.log.Debug("request dropped: too many in flight", "peer", p.addr.Short())
	}
}

// pong takes the answer to one of our pings: proof that p reads what we
// send. Ping IDs are random, so a peer that does not read cannot answer.
func (p *peer) pong(pid uint64) {
	p.mu.Lock()
	ch := p.pings[pid]
	delete(p.pings, pid)
	if ch != nil {
		p.unanswered = time.Time{}
	}
	p.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

func (p *peer) benchAck(received uint64) {
	p.mu.Lock()
	ch := p.ack
	p.mu.Unlock()
	if ch != nil {
		select {
		case ch <- received:
		default:
		}
	}
}

// ping sends one Ping and waits for its Pong.
func (p *peer) ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan struct{})
	pid := randomSID()
	start := p.n.clock.Now()
	p.mu.Lock()
	p.pings[pid] = ch
	if p.unanswered.IsZero() {
		p.unanswered = start
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pings, pid)
		p.mu.Unlock()
	}()
	if err := p.send(ctx, &wire.Ping{ID: pid}); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		rtt := clock.Since(p.n.clock, start)
		p.mu.Lock()
		p.rtt = rtt
		p.mu.Unlock()
		return rtt, nil
	case <-p.gone:
		return 0, fmt.Errorf("%w: %s", ErrNotConnected, p.reason)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// keepAlive pings every KeepAlive and drops a peer silent for
// PeerTimeout, or one that has left a ping unanswered for that long, or
// whose channel has taken nothing for that long: a peer that stops
// reading (while it may still send) is closed within the timeout.
func (p *peer) keepAlive() {
	cfg := p.n.cfg
	t := p.n.clock.NewTicker(cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-p.gone:
			return
		case <-t.C():
		}
		now := p.n.clock.Now()
		p.mu.Lock()
		silent, deaf := now.Sub(p.lastIn), time.Duration(0)
		if !p.unanswered.IsZero() {
			deaf = now.Sub(p.unanswered)
		}
		p.mu.Unlock()
		if silent > cfg.PeerTimeout {
			p.close(fmt.Sprintf("no answer for %s", silent.Round(time.Second)), true)
			return
		}
		if stuck := p.out.stuck(now); deaf > cfg.PeerTimeout || stuck > cfg.PeerTimeout {
			p.n.overlay.stalled.Add(1)
			p.close(fmt.Sprintf("stopped reading: no answer to a keepalive for %s", max(deaf, stuck).Round(time.Second)), true)
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.PeerTimeout)
			defer cancel()
			p.ping(ctx)
		}()
	}
}

// throughput sends total bytes on the bulk channel and waits for the
// peer's acknowledgement.
func (p *peer) throughput(ctx context.Context, total int) (time.Duration, error) {
	p.bench.Lock()
	defer p.bench.Unlock()
	ack := make(chan uint64, 1)
	p.mu.Lock()
	p.ack = ack
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.ack = nil
		p.mu.Unlock()
	}()
	// Every full chunk is the same frame: encode it once.
	full, err := wire.Marshal(&wire.BenchData{Data: make([]byte, wire.MaxBenchData)})
	if err != nil {
		return 0, err
	}
	start := p.n.clock.Now()
	for sent := 0; sent < total; {
		k := min(wire.MaxBenchData, total-sent)
		if k == wire.MaxBenchData {
			err = p.sendBulkRaw(ctx, full)
		} else {
			err = p.sendBulk(ctx, &wire.BenchData{Data: make([]byte, k)})
		}
		if err != nil {
			return 0, err
		}
		sent += k
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	// The end goes the way the data went, so it arrives after all of it.
	if err := p.sendBulk(ctx, &wire.BenchEnd{Total: uint64(total)}); err != nil {
		return 0, err
	}
	select {
	case got := <-ack:
		if got != uint64(total) {
			return 0, fmt.Errorf("node: peer received %d of %d bytes", got, total)
		}
		return clock.Since(p.n.clock, start), nil
	case <-p.gone:
		return 0, fmt.Errorf("%w: %s", ErrNotConnected, p.reason)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
