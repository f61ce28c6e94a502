package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/wire"
)

// How a peer's data channel was signaled.
const (
	ViaRelay   = "relay"   // offers and answers went through a relay
	ViaOverlay = "overlay" // they were routed through connected peers
)

// Overlay limits.
const (
	routedRate     = 200  // routed messages a peer may hand us per second...
	routedBurst    = 400  // ...with bursts of this many
	maxRPCInFlight = 32   // requests from one peer being answered at once
	replayWindow   = 4096 // routed messages remembered against replay, per generation
	// answerTimeout bounds a RequestHandler's work on one request.
	answerTimeout = 30 * time.Second
)

// OverlayStats counts routed traffic at this node.
type OverlayStats struct {
	Sent      int64 `json:"sent"`      // routed messages this node originated
	Delivered int64 `json:"delivered"` // routed messages that reached this node and verified
	Forwarded int64 `json:"forwarded"` // routed messages passed on toward their destination
	Dropped   int64 `json:"dropped"`   // routed messages refused: no route, hop limit, flood, bad origin, replay
	Unknown   int64 `json:"unknown"`   // frames of types this node does not know (from peers, routed or not), skipped
}

type overlayCounters struct {
	sent, delivered, forwarded, dropped atomic.Int64
}

// replays remembers recent routed messages by origin and nonce in two
// generations, so memory stays bounded however many arrive.
type replays struct {
	mu        sync.Mutex
	cur, prev map[replayKey]struct{}
}

type replayKey struct {
	origin id.Address
	nonce  uint64
}

// seen records k and reports whether it was already there.
func (r *replays) seen(k replayKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cur[k]; ok {
		return true
	}
	if _, ok := r.prev[k]; ok {
		return true
	}
	if r.cur == nil || len(r.cur) >= replayWindow {
		r.prev, r.cur = r.cur, make(map[replayKey]struct{}, replayWindow)
	}
	r.cur[k] = struct{}{}
	return false
}

// routes remembers, per origin of routed traffic that reached this node,
// the way back: the hops it took, reversed. Replies and signaling answers
// follow it, since greedy routing toward a node with few channels may find
// no peer closer. It is a whole list, so following it cannot loop. Two
// generations bound it.
type routes struct {
	mu        sync.Mutex
	cur, prev map[id.Address][]id.Address
}

func (r *routes) note(origin id.Address, path []id.Address) {
	back := make([]id.Address, len(path))
	for i, a := range path {
		back[len(path)-1-i] = a
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil || len(r.cur) >= replayWindow {
		r.prev, r.cur = r.cur, make(map[id.Address][]id.Address, replayWindow)
	}
	r.cur[origin] = back
}

func (r *routes) back(origin id.Address) []id.Address {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.cur[origin]; ok {
		return v
	}
	return r.prev[origin]
}

// zoneOf returns the zone of the relay with key, if this node trusts it:
// its own relay, or one its relay federates with.
func (n *Node) zoneOf(key [32]byte) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if key == n.relayKey {
		return n.lease.Zone, true
	}
	z, ok := n.zoneKeys[key]
	return z, ok
}

// verifyLease checks a lease from any zone this node's relay vouches for:
// signed by that zone's relay, for that zone.
func (n *Node) verifyLease(l *wire.Lease) error {
	zone, ok := n.zoneOf(l.RelayKey)
	if !ok {
		return fmt.Errorf("%w: signed by relay %x, which is not federated with this zone", identity.ErrBadLease, l.RelayKey[:4])
	}
	if l.Zone != zone {
		return fmt.Errorf("%w: lease for zone %q signed by the relay of zone %q", identity.ErrBadLease, l.Zone, zone)
	}
	return identity.VerifyLease(l, l.RelayKey, n.clock.Now())
}

// nextHop returns the connected peer to hand a message for dest to: dest
// itself, or else the connected peer closest to dest, provided it is
// strictly closer than this node. It never returns the peer at not (the
// one a message came from). Nil means there is no such peer.
//
// The origin of a message (originate) may also start with a peer that is
// not closer: from there on every hop gets strictly closer, so the
// message still cannot loop, and a node with no channel in the target's
// bucket can still reach it.
func (n *Node) nextHop(dest, not id.Address, originate bool) *peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[dest]; p != nil && dest != not {
		return p
	}
	var best *peer
	var bestAddr id.Address
	for a, p := range n.peers {
		if a != not && (best == nil || id.Closer(dest, a, bestAddr)) {
			best, bestAddr = p, a
		}
	}
	if best != nil && !originate && !id.Closer(dest, bestAddr, n.lease.Address) {
		return nil
	}
	return best
}

// sendRouted signs inner and sends it toward dest through the overlay.
func (n *Node) sendRouted(dest id.Address, inner wire.Message) error {
	return n.sendRoutedAvoiding(dest, inner, id.Address{})
}

// sendRoutedAvoiding is sendRouted without handing the message to the
// peer at avoid (a channel that just failed).
func (n *Node) sendRoutedAvoiding(dest id.Address, inner wire.Message, avoid id.Address) error {
	frame, err := wire.Marshal(inner)
	if err != nil {
		return err
	}
	n.mu.Lock()
	lease := n.lease
	n.mu.Unlock()
	if lease.Address.IsZero() {
		return ErrNotAdmitted
	}
	// The way traffic from dest came, if it came and its first hop is
	// still connected; else greedy. A first hop whose channel fails on
	// send (closing, not yet noticed) is avoided on a second try.
	for try := 0; ; try++ {
		var p *peer
		route := n.routes.back(dest)
		if len(route) > 0 && n.peer(dest) == nil && route[0] != avoid {
			p = n.peer(route[0])
		}
		if p == nil {
			route = nil
			p = n.nextHop(dest, avoid, true)
		}
		if p == nil {
			return fmt.Errorf("%w: %s", ErrNoRoute, dest.Short())
		}
		r := &wire.Routed{Dest: dest, TTL: wire.MaxTTL, Nonce: randomSID(), Origin: lease, Route: route, Frame: frame}
		r.Sig = n.id.Sign(wire.RoutedSignedBytes(dest, r.Nonce, lease.Address, frame))
		p.touch()
		err := p.sendControl(r)
		if err == nil {
			n.overlay.sent.Add(1)
			return nil
		}
		if try == 1 {
			return err
		}
		avoid = p.addr
	}
}

// onRouted forwards a routed message or, if it is for this node, checks
// its origin and delivers it.
func (n *Node) onRouted(from *peer, r *wire.Routed) {
	drop := func(why string, args ...any) {
		n.overlay.dropped.Add(1)
		n.log.Debug("routed message dropped: "+why, append([]any{"from", from.addr.Short(), "dest", r.Dest.Short()}, args...)...)
	}
	if !from.routed.AllowN(n.clock.Now(), 1) {
		drop("the peer floods")
		return
	}
	self := n.Address()
	if r.Dest != self {
		if r.TTL == 0 || len(r.Path) >= wire.MaxTTL {
			drop("hop limit reached")
			return
		}
		p := n.planned(r, self, from.addr)
		if p == nil {
			p = n.nextHop(r.Dest, from.addr, false)
		}
		if p == nil {
			drop("no connected peer is closer")
			return
		}
		r.TTL--
		r.Path = append(r.Path, self)
		p.touch()
		if err := p.sendControl(r); err != nil {
			drop("next hop failed", "err", err)
			return
		}
		n.overlay.forwarded.Add(1)
		return
	}
	origin := r.Origin.Address
	if err := n.verifyLease(&r.Origin); err != nil {
		drop("origin's lease", "err", err)
		return
	}
	if !identity.Verify(r.Origin.SignKey, wire.RoutedSignedBytes(r.Dest, r.Nonce, origin, r.Frame), r.Sig) {
		drop("bad origin signature")
		return
	}
	if n.replay.seen(replayKey{origin, r.Nonce}) {
		drop("replayed")
		return
	}
	n.routes.note(origin, r.Path)
	m, err := wire.Unmarshal(r.Frame)
	if errors.Is(err, wire.ErrUnknownType) {
		n.unknownPeer.Add(1)
		drop("inner frame of a type this node does not know", "err", err)
		return
	}
	if err != nil {
		drop("malformed inner frame", "err", err)
		return
	}
	n.overlay.delivered.Add(1)
	switch m := m.(type) {
	case *wire.RPC:
		if m.Reply {
			n.onReply(origin, m)
			return
		}
		n.answer(origin, m, func(reply wire.Message) error { return n.sendRouted(origin, reply) })
	case *wire.Signal:
		if m.Peer != origin {
			drop("signal names another sender")
			return
		}
		n.onSignal(m, ViaOverlay)
	default:
		fn := n.handlers.routed[m.Type()]
		if fn == nil {
			n.unhandled.Add(1)
			drop("unexpected inner type", "type", m.Type())
			return
		}
		fn(r.Origin, m)
	}
}

// planned returns the next hop r's Route names after this node, if that
// peer is connected (and is not where r came from); nil otherwise.
func (n *Node) planned(r *wire.Routed, self, from id.Address) *peer {
	for i, a := range r.Route {
		if a != self {
			continue
		}
		next := r.Dest
		if i+1 < len(r.Route) {
			next = r.Route[i+1]
		}
		if next == from {
			return nil
		}
		return n.peer(next)
	}
	return nil
}

// pendingCall is an RPC waiting for its reply.
type pendingCall struct {
	to    id.Address
	reply chan wire.Message
}

// call sends a DHT request to the node at to, over its data channel if one
// is open and through the overlay otherwise, and waits for the reply.
func (n *Node) call(ctx context.Context, to id.Address, req wire.Message) (wire.Message, error) {
	frame, err := wire.Marshal(req)
	if err != nil {
		return nil, err
	}
	nonce := randomSID()
	pc := pendingCall{to: to, reply: make(chan wire.Message, 1)}
	n.mu.Lock()
	n.calls[nonce] = pc
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.calls, nonce)
		n.mu.Unlock()
	}()
	rpc := &wire.RPC{Nonce: nonce, Frame: frame}
	var gone <-chan struct{} // the direct channel's end, if it went that way
	p := n.peer(to)
	if p != nil {
		p.touch()
		gone = p.gone
		err = p.sendControl(rpc)
	}
	if p == nil || err != nil {
		gone = nil
		err = n.sendRoutedAvoiding(to, rpc, to)
	}
	if err != nil {
		return nil, err
	}
	for {
		select {
		case m := <-pc.reply:
			if e, ok := m.(*wire.Error); ok {
				return nil, e.Err()
			}
			return m, nil
		case <-gone:
			// The channel closed under the request (trimmed, say): the
			// node may well be alive, so ask again through the overlay.
			gone = nil
			if err := n.sendRoutedAvoiding(to, rpc, to); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("%w from %s: %v", ErrTimeout, to.Short(), ctx.Err())
		}
	}
}

// onReply hands a reply that came from the node at from to the request
// waiting for it.
func (n *Node) onReply(from id.Address, m *wire.RPC) {
	n.mu.Lock()
	pc, ok := n.calls[m.Nonce]
	if ok && pc.to == from {
		delete(n.calls, m.Nonce)
	}
	n.mu.Unlock()
	if !ok || pc.to != from {
		n.log.Debug("unexpected reply", "from", from.Short())
		return
	}
	msg, err := wire.Unmarshal(m.Frame)
	if err != nil {
		n.log.Debug("malformed reply", "from", from.Short(), "err", err)
		msg = &wire.Error{Code: wire.CodeMalformed, Message: err.Error()}
	}
	pc.reply <- msg
}

// answer runs the handler registered for the request in m and sends its
// answer with reply (on the way the request came). A request of a type
// this node does not know, or has no handler for, is answered with
// CodeUnsupported.
func (n *Node) answer(from id.Address, m *wire.RPC, reply func(wire.Message) error) {
	var resp wire.Message
	req, err := wire.Unmarshal(m.Frame)
	switch {
	case errors.Is(err, wire.ErrUnknownType):
		n.unknownPeer.Add(1)
		t, _ := wire.TypeOf(m.Frame)
		resp = &wire.Error{Code: wire.CodeUnsupported, Message: fmt.Sprintf("this node does not know requests of type %d", t)}
	case err != nil:
		resp = &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}
	case n.handlers.request[req.Type()] == nil:
		resp = &wire.Error{Code: wire.CodeUnsupported, Message: fmt.Sprintf("this node does not answer requests of type %d", req.Type())}
	default:
		ctx, cancel := context.WithTimeout(n.life, answerTimeout)
		resp, err = n.handlers.request[req.Type()](ctx, from, req)
		cancel()
		if err != nil {
			n.log.Debug("refused a request", "from", from.Short(), "type", req.Type(), "err", err)
			var re *wire.RemoteError
			if errors.As(err, &re) {
				resp = &wire.Error{Code: re.Code, Message: re.Message}
			} else {
				resp = &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}
			}
		}
	}
	frame, err := wire.Marshal(resp)
	if err != nil {
		n.log.Warn("could not encode a reply", "err", err)
		return
	}
	if err := reply(&wire.RPC{Nonce: m.Nonce, Reply: true, Frame: frame}); err != nil {
		n.log.Debug("could not send a reply", "to", from.Short(), "err", err)
	}
}

// answerDHT is the RequestHandler of the DHT's requests.
func (n *Node) answerDHT(_ context.Context, from id.Address, req wire.Message) (wire.Message, error) {
	d := n.table()
	if d == nil {
		return nil, &wire.RemoteError{Code: wire.CodeNotAdmitted, Message: "this node has not joined yet"}
	}
	return d.Handle(from, req)
}

// network is the DHT's view of the overlay.
type network struct{ n *Node }

func (w network) Call(ctx context.Context, to id.Address, req wire.Message) (wire.Message, error) {
	return w.n.call(ctx, to, req)
}

// OverlayStats returns this node's routed-traffic counters.
func (n *Node) OverlayStats() OverlayStats {
	return OverlayStats{Sent: n.overlay.sent.Load(), Delivered: n.overlay.delivered.Load(),
		Forwarded: n.overlay.forwarded.Load(), Dropped: n.overlay.dropped.Load(), Unknown: n.unknownPeer.Load()}
}
