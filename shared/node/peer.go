package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// handshakeTimeout bounds a connection attempt from offer to proven lease.
const handshakeTimeout = 15 * time.Second

// dial is a connection attempt in progress.
type dial struct {
	session   transport.Session // set before ready is closed; nil if it failed
	ready     chan struct{}
	done      chan struct{} // closed when the attempt has ended either way
	once      sync.Once
	sid       uint64
	initiator bool
	via       string // ViaRelay or ViaOverlay: where its signaling goes
}

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

// peer is an open, authenticated data channel.
type peer struct {
	n      *Node
	addr   id.Address
	native bool
	via    string    // how its channel was signaled
	since  time.Time // when the channel opened
	conn   transport.Conn
	routed *rate.Limiter // routed messages it may hand us
	rpcs   chan struct{} // a slot per request of its being answered

	mu       sync.Mutex
	rtt      time.Duration
	lastIn   time.Time
	lastUsed time.Time // last request or routed message either way: keepalives do not count
	pings    map[uint64]chan struct{}
	nextID   uint64
	benchIn  uint64        // bench bytes received since the last BenchEnd
	ack      chan uint64   // BenchAck values for the running throughput test
	bench    sync.Mutex    // one throughput test at a time
	gone     chan struct{} // closed when the peer is removed
	reason   string
}

func (p *peer) info() PeerInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PeerInfo{Address: p.addr, Native: p.native, RTT: p.rtt, Via: p.via, Since: p.since}
}

// touch notes that p carried real traffic.
func (p *peer) touch() {
	p.mu.Lock()
	p.lastUsed = time.Now()
	p.mu.Unlock()
}

func (p *peer) used() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastUsed
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
// then closes a channel of a crowded bucket instead.
func (n *Node) connectTo(addr id.Address, via string, cover bool) *dial {
	n.mu.Lock()
	if n.stopped || addr == n.lease.Address || n.peers[addr] != nil || n.dials[addr] != nil || (!n.locked[addr] && !n.roomFor(cover)) {
		n.mu.Unlock()
		return nil
	}
	d := newDial(randomSID(), true, via)
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
	if n.dials[from] == nil && n.peers[from] == nil && !n.locked[from] && !n.roomFor(true) {
		n.mu.Unlock()
		n.log.Info("refused an offer: connection budget full", "peer", from.Short(), "via", via)
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
	case <-time.After(handshakeTimeout):
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
			err := n.sendRouted(to, &wire.Signal{Peer: n.Address(), Session: d.sid, Kind: kind, Data: data})
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

// finishDial waits for the data channel, proves leases both ways and
// turns the attempt into a peer.
func (n *Node) finishDial(addr id.Address, d *dial) {
	defer d.finish()
	defer n.endDial(addr, d)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	conn, err := d.session.Conn(ctx)
	if err == nil {
		var native bool
		native, err = n.handshake(ctx, conn, addr)
		if err == nil {
			n.addPeer(addr, native, conn, d.via)
			return
		}
		conn.Close()
	}
	d.session.Close()
	n.mu.Lock()
	superseded := n.dials[addr] != d
	n.mu.Unlock()
	if !superseded {
		n.log.Info("connection attempt failed", "peer", addr.Short(), "err", err)
	}
}

// handshake exchanges PeerHello and PeerProof and checks the peer's lease
// and its possession of the lease's key.
func (n *Node) handshake(ctx context.Context, conn transport.Conn, want id.Address) (native bool, err error) {
	n.mu.Lock()
	lease := n.lease
	n.mu.Unlock()
	hello := &wire.PeerHello{Lease: lease, Native: n.cfg.Native}
	rand.Read(hello.Nonce[:])
	if err := send(conn, hello); err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	m, err := recv(conn)
	if err != nil {
		return false, err
	}
	theirs, ok := m.(*wire.PeerHello)
	if !ok {
		return false, fmt.Errorf("%w: expected PeerHello, got type %d", wire.ErrProtocol, m.Type())
	}
	if theirs.Lease.Address != want {
		return false, fmt.Errorf("%w: expected %s, lease is for %s", wire.ErrProtocol, want.Short(), theirs.Lease.Address.Short())
	}
	if err := n.verifyLease(&theirs.Lease); err != nil {
		return false, err
	}
	proof := &wire.PeerProof{Sig: n.id.Sign(wire.ProofSignedBytes(theirs.Nonce, lease.Address))}
	if err := send(conn, proof); err != nil {
		return false, err
	}
	m, err = recv(conn)
	if err != nil {
		return false, err
	}
	pp, ok := m.(*wire.PeerProof)
	if !ok {
		return false, fmt.Errorf("%w: expected PeerProof, got type %d", wire.ErrProtocol, m.Type())
	}
	if !identity.Verify(theirs.Lease.SignKey, wire.ProofSignedBytes(hello.Nonce, want), pp.Sig) {
		return false, fmt.Errorf("peer proof: %w", wire.ErrBadSignature)
	}
	return theirs.Native, nil
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

func (n *Node) addPeer(addr id.Address, native bool, conn transport.Conn, via string) {
	now := time.Now()
	p := &peer{n: n, addr: addr, native: native, via: via, since: now, conn: conn, lastIn: now,
		routed: rate.NewLimiter(routedRate, routedBurst), rpcs: make(chan struct{}, maxRPCInFlight),
		pings: make(map[uint64]chan struct{}), gone: make(chan struct{})}
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
		n.log.Info("peer up", "peer", addr.Short(), "native", native, "via", via)
		n.emit(Event{Kind: EventPeer, Peer: p.info()})
	}
	go p.readLoop()
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
	if announce {
		// Say why before closing, but never wait on a stuck channel.
		go func() {
			force := time.AfterFunc(time.Second, func() { p.conn.Close() })
			defer force.Stop()
			if b, err := wire.Marshal(&wire.Bye{Reason: reason}); err == nil {
				p.conn.Send(b)
			}
			p.conn.Close()
		}()
	} else {
		p.conn.Close()
	}
	if mine && announce {
		n.log.Info("peer gone", "peer", p.addr.Short(), "reason", reason)
		n.emit(Event{Kind: EventPeerGone, Peer: p.info(), Reason: reason})
		// A channel gone (the other side trimmed it, say) may have been
		// the only one in its bucket, or one of the last: cover the
		// buckets again now rather than at the next maintenance round,
		// or routing through this node dead-ends meanwhile.
		n.mu.Lock()
		n.closedAt[p.addr] = time.Now()
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

func (p *peer) readLoop() {
	for {
		b, err := p.conn.Recv()
		if err != nil {
			reason := "connection closed"
			if errors.Is(err, transport.ErrOverrun) {
				reason = "peer overran the receive buffer"
			}
			p.close(reason, true)
			return
		}
		p.mu.Lock()
		p.lastIn = time.Now()
		p.mu.Unlock()
		m, err := wire.Unmarshal(b)
		if err != nil {
			p.n.log.Warn("bad message from peer", "peer", p.addr.Short(), "err", err)
			p.close("sent a malformed message", true)
			return
		}
		switch m := m.(type) {
		case *wire.Ping:
			go send(p.conn, &wire.Pong{ID: m.ID})
		case *wire.Pong:
			p.mu.Lock()
			ch := p.pings[m.ID]
			delete(p.pings, m.ID)
			p.mu.Unlock()
			if ch != nil {
				close(ch)
			}
		case *wire.BenchData:
			p.benchIn += uint64(len(m.Data))
		case *wire.BenchEnd:
			got := p.benchIn
			p.benchIn = 0
			go send(p.conn, &wire.BenchAck{Received: got})
		case *wire.BenchAck:
			p.mu.Lock()
			ch := p.ack
			p.mu.Unlock()
			if ch != nil {
				select {
				case ch <- m.Received:
				default:
				}
			}
		case *wire.RPC:
			select {
			case p.rpcs <- struct{}{}:
				p.touch()
				go func() {
					defer func() { <-p.rpcs }()
					p.n.onRPC(p.addr, m, func(reply wire.Message) error { return send(p.conn, reply) })
				}()
			default:
				p.n.log.Debug("request dropped: too many in flight", "peer", p.addr.Short())
			}
		case *wire.Routed:
			p.n.onRouted(p, m)
		case *wire.Bye:
			reason := "peer left"
			if m.Reason != "" {
				reason = "peer left: " + m.Reason
			}
			p.close(reason, true)
			return
		default:
			p.n.log.Debug("ignoring message", "peer", p.addr.Short(), "type", m.Type())
		}
	}
}

// ping sends one Ping and waits for its Pong.
func (p *peer) ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan struct{})
	p.mu.Lock()
	p.nextID++
	pid := p.nextID
	p.pings[pid] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pings, pid)
		p.mu.Unlock()
	}()
	start := time.Now()
	if err := send(p.conn, &wire.Ping{ID: pid}); err != nil {
		return 0, err
	}
	select {
	case <-ch:
		rtt := time.Since(start)
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

// keepAlive pings every KeepAlive and drops a peer silent for PeerTimeout.
func (p *peer) keepAlive() {
	cfg := p.n.cfg
	t := time.NewTicker(cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-p.gone:
			return
		case <-t.C:
		}
		p.mu.Lock()
		silent := time.Since(p.lastIn)
		p.mu.Unlock()
		if silent > cfg.PeerTimeout {
			p.close(fmt.Sprintf("no answer for %s", silent.Round(time.Second)), true)
			return
		}
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.PeerTimeout)
			defer cancel()
			p.ping(ctx)
		}()
	}
}

// throughput sends total bytes and waits for the peer's acknowledgement.
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
	start := time.Now()
	for sent := 0; sent < total; {
		k := min(wire.MaxBenchData, total-sent)
		if k == wire.MaxBenchData {
			err = p.conn.Send(full)
		} else {
			err = send(p.conn, &wire.BenchData{Data: make([]byte, k)})
		}
		if err != nil {
			return 0, err
		}
		sent += k
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	if err := send(p.conn, &wire.BenchEnd{Total: uint64(total)}); err != nil {
		return 0, err
	}
	select {
	case got := <-ack:
		if got != uint64(total) {
			return 0, fmt.Errorf("node: peer received %d of %d bytes", got, total)
		}
		return time.Since(start), nil
	case <-p.gone:
		return 0, fmt.Errorf("%w: %s", ErrNotConnected, p.reason)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
