package node

import (
	"container/heap"
	"context"
	"crypto/sha256"
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
	routesKept     = 4096 // ways back remembered, per generation
	// maxRoutedInFlight bounds the routed requests this node answers at
	// once, from all origins: the rest are dropped (and counted busy),
	// never answered on a peer's read loop.
	maxRoutedInFlight = 64
	// answerTimeout bounds a RequestHandler's work on one request.
	answerTimeout = 30 * time.Second
)

// Routed messages' time window and replay filter.
const (
	// RoutedWindow is how far a routed message's signed time may be from
	// this node's clock, either way, for the node to take it: one outside
	// is dropped whatever the replay filter holds, so a replay is refused
	// however long ago the filter forgot its original.
	RoutedWindow = 2 * time.Minute
	// ReplayCapacity is how many routed messages for this node the replay
	// filter remembers. A message is forgotten once its time leaves the
	// window; if more arrive within the window, the oldest is forgotten
	// early, and from then on a message not newer than it is dropped as
	// a possible replay: the filter may refuse, never readmit.
	ReplayCapacity = 8192
)

// OverlayStats counts routed traffic at this node, and what peers could
// not get from it: ddt.routing().overlay, the native node's /routing.
type OverlayStats struct {
	Sent      int64 `json:"sent"`      // routed messages this node originated
	Delivered int64 `json:"delivered"` // routed messages that reached this node and verified
	Forwarded int64 `json:"forwarded"` // routed messages passed on toward their destination
	Dropped   int64 `json:"dropped"`   // routed messages refused: no route, hop limit, flood, bad origin, replay, stale, full queue
	Unknown   int64 `json:"unknown"`   // frames of types this node does not know (from peers, routed or not), skipped
	// Stale: routed messages for this node whose signed time was outside
	// RoutedWindow (counted in dropped too).
	Stale int64 `json:"stale"`
	// Replayed: routed messages for this node already seen, or older than
	// what the replay filter still remembers (counted in dropped too).
	Replayed int64 `json:"replayed"`
	// QueueFull: frames not sent because the peer's send queue was full
	// (a peer that reads slowly or not at all): forwarded routed messages
	// (counted in dropped too), answers to its pings, and the like.
	QueueFull int64 `json:"queueFull"`
	// Stalled: peers closed because they stopped reading.
	Stalled int64 `json:"stalled"`
	// Busy: requests refused because too many were being answered (per
	// peer, or routed ones in all).
	Busy int64 `json:"busy"`
	// OffersRefused: WebRTC offers refused: the connection budget, or the
	// pending offers of their signaler or in all, were full.
	OffersRefused int64 `json:"offersRefused"`
}

type overlayCounters struct {
	sent, delivered, forwarded, dropped atomic.Int64
	stale, replayed, queueFull, stalled atomic.Int64
	busy, offersRefused                 atomic.Int64
}

// replays remembers the routed messages that reached this node, by a
// digest of what their origin signed (so a copy with another path is the
// same message), until their time leaves RoutedWindow; at most
// ReplayCapacity of them. Full, it forgets the message with the oldest
// time and from then on refuses, from that message's origin only, what is
// not newer than it: a flood from one origin costs that origin its own
// late arrivals, never another origin's messages.
type replays struct {
	mu     sync.Mutex
	byKey  map[[32]byte]struct{}
	order  replayHeap           // oldest time first
	floors map[id.Address]int64 // per origin: the newest time forgotten early
}

// maxFloors bounds the origins whose floor the filter keeps; past it (a
// flood of origins, each with a lease of its own, within one window) it
// refuses messages from origins it has no room for.
const maxFloors = 4 * ReplayCapacity

type replayEntry struct {
	key    [32]byte
	origin id.Address
	at     int64 // the message's time, Unix ms
}

type replayHeap []replayEntry

func (h replayHeap) Len() int           { return len(h) }
func (h replayHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h replayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *replayHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *replayHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// admit records the message from origin with digest key and time at (all
// signed) and reports whether it is new; now is this node's clock. It
// does not check the window: the caller has.
func (r *replays) admit(origin id.Address, key [32]byte, at int64, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey == nil {
		r.byKey = make(map[[32]byte]struct{})
		r.floors = make(map[id.Address]int64)
	}
	// What left the window is refused by the window: forget it.
	oldest := now.Add(-RoutedWindow).UnixMilli()
	for len(r.order) > 0 && r.order[0].at < oldest {
		delete(r.byKey, heap.Pop(&r.order).(replayEntry).key)
	}
	if _, ok := r.byKey[key]; ok {
		return false
	}
	if floor, ok := r.floors[origin]; ok && at <= floor {
		return false
	}
	if len(r.order) >= ReplayCapacity {
		e := heap.Pop(&r.order).(replayEntry)
		delete(r.byKey, e.key)
		if _, ok := r.floors[e.origin]; !ok && len(r.floors) >= maxFloors {
			for o, f := range r.floors {
				if f < oldest {
					delete(r.floors, o) // the window refuses all it covered
				}
			}
		}
		if _, ok := r.floors[e.origin]; !ok && len(r.floors) >= maxFloors {
			// No room to remember what it forgot: keep the message
			// instead, and refuse this one.
			heap.Push(&r.order, e)
			r.byKey[e.key] = struct{}{}
			return false
		}
		r.floors[e.origin] = max(r.floors[e.origin], e.at)
	}
	heap.Push(&r.order, replayEntry{key, origin, at})
	r.byKey[key] = struct{}{}
	return true
}

// size is how many messages the filter remembers.
func (r *replays) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// routes remembers, per origin of routed traffic that reached this node,
// the way back: the hops it took, reversed, as the newest message from
// that origin (by its signed time) recorded them. Replies and signaling
// answers follow it, since greedy routing toward a node with few channels
// may find no peer closer. It is a whole list, so following it cannot
// loop. Two generations bound it.
type routes struct {
	mu        sync.Mutex
	cur, prev map[id.Address]route
}

type route struct {
	back []id.Address
	at   int64 // the signed time of the message it came with
}

// note records path, the Path of a message from origin sent at at, unless
// a message from origin sent later already gave the way back: a delayed
// message, or a replay, never replaces a newer way.
func (r *routes) note(origin id.Address, path []id.Address, at int64) {
	back := make([]id.Address, len(path))
	for i, a := range path {
		back[len(path)-1-i] = a
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.getLocked(origin); ok && old.at > at {
		return
	}
	if r.cur == nil || len(r.cur) >= routesKept {
		r.prev, r.cur = r.cur, make(map[id.Address]route, routesKept)
	}
	r.cur[origin] = route{back, at}
}

func (r *routes) getLocked(origin id.Address) (route, bool) {
	if v, ok := r.cur[origin]; ok {
		return v, true
	}
	v, ok := r.prev[origin]
	return v, ok
}

func (r *routes) back(origin id.Address) []id.Address {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, _ := r.getLocked(origin)
	return v.back
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

// sendRouted signs inner and sends it toward dest through the overlay,
// waiting for room in the first hop's send queue while ctx lasts (and at
// most the peer timeout).
func (n *Node) sendRouted(ctx context.Context, dest id.Address, inner wire.Message) error {
	return n.routeOut(ctx, dest, inner, id.Address{}, true)
}

// trySendRouted is sendRouted that never waits: if the first hop's queue
// is full, the message is dropped (and the error says so).
func (n *Node) trySendRouted(dest id.Address, inner wire.Message) error {
	return n.routeOut(context.Background(), dest, inner, id.Address{}, false)
}

// routeOut is sendRouted without handing the message to the peer at
// avoid (a channel that just failed; when avoid is dest, the way back is
// taken even while a channel to dest is open); wait says whether to wait
// for room in the first hop's send queue.
func (n *Node) routeOut(ctx context.Context, dest id.Address, inner wire.Message, avoid id.Address, wait bool) error {
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
		if len(route) > 0 && (n.peer(dest) == nil || avoid == dest) && route[0] != avoid {
			p = n.peer(route[0])
		}
		if p == nil {
			route = nil
			p = n.nextHop(dest, avoid, true)
		}
		if p == nil {
			return fmt.Errorf("%w: %s", ErrNoRoute, dest.Short())
		}
		r := &wire.Routed{Dest: dest, TTL: wire.MaxTTL, Nonce: randomSID(), Time: n.clock.Now().UnixMilli(), Origin: lease, Route: route, Frame: frame}
		r.Sig = n.id.Sign(wire.RoutedSignedBytes(dest, r.Nonce, r.Time, lease.Address, frame))
		p.touch()
		if wait {
			err = p.send(ctx, r)
		} else {
			err = p.trySend(r)
		}
		if err == nil {
			n.overlay.sent.Add(1)
			return nil
		}
		if try == 1 || ctx.Err() != nil {
			return err
		}
		avoid = p.addr
	}
}

// onRouted forwards a routed message or, if it is for this node, checks
// its origin, its time and the replay filter, and delivers it. It runs on
// the read loop of the peer it came from, so nothing here waits on
// another peer: a forward to a full send queue is dropped, and a request
// is answered on a goroutine of its own (at most maxRoutedInFlight).
func (n *Node) onRouted(from *peer, r *wire.Routed) {
	drop := func(why string, args ...any) {
		n.overlay.dropped.Add(1)
		n.log.Debug("routed message dropped: "+why, append([]any{"from", from.addr.Short(), "dest", r.Dest.Short()}, args...)...)
	}
	now := n.clock.Now()
	if !from.routed.AllowN(now, 1) {
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
		if err := p.trySend(r); err != nil {
			drop("next hop failed", "err", err)
			return
		}
		n.overlay.forwarded.Add(1)
		return
	}
	// The window first: it costs nothing, and a message outside it is
	// refused whatever the replay filter still remembers.
	if skew := now.Sub(time.UnixMilli(r.Time)); skew > RoutedWindow || skew < -RoutedWindow {
		n.overlay.stale.Add(1)
		drop("outside the time window", "skew", skew.Round(time.Second))
		return
	}
	origin := r.Origin.Address
	if err := n.verifyLease(&r.Origin); err != nil {
		drop("origin's lease", "err", err)
		return
	}
	signed := wire.RoutedSignedBytes(r.Dest, r.Nonce, r.Time, origin, r.Frame)
	if !identity.Verify(r.Origin.SignKey, signed, r.Sig) {
		drop("bad origin signature")
		return
	}
	// Keyed on what the origin signed, so a copy with another path is the
	// same message; only a message that passed the window and the filter
	// may teach the way back.
	if !n.replay.admit(origin, sha256.Sum256(signed), r.Time, now) {
		n.overlay.replayed.Add(1)
		drop("replayed, or older than the replay filter remembers")
		return
	}
	n.routes.note(origin, r.Path, r.Time)
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
		// The answer goes back the way the request came. A request
		// routed from a node with a channel to this one came around
		// that channel (it failed under the sender, or is failing), so
		// the answer avoids it too.
		var avoid id.Address
		if from.addr != origin {
			avoid = origin
		}
		select {
		case n.routedSlots <- struct{}{}:
			go func() {
				defer func() { <-n.routedSlots }()
				n.answer(origin, m, func(reply wire.Message) error { return n.routeOut(n.life, origin, reply, avoid, true) })
			}()
		default:
			n.overlay.busy.Add(1)
			n.log.Debug("routed request dropped: too many in flight", "from", origin.Short())
		}
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
		err = p.send(ctx, rpc)
	}
	if p == nil || err != nil {
		gone = nil
		err = n.routeOut(ctx, to, rpc, to, true)
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
			if err := n.routeOut(ctx, to, rpc, to, true); err != nil {
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
	o := &n.overlay
	return OverlayStats{Sent: o.sent.Load(), Delivered: o.delivered.Load(),
		Forwarded: o.forwarded.Load(), Dropped: o.dropped.Load(), Unknown: n.unknownPeer.Load(),
		Stale: o.stale.Load(), Replayed: o.replayed.Load(), QueueFull: o.queueFull.Load(), Stalled: o.stalled.Load(),
		Busy: o.busy.Load(), OffersRefused: o.offersRefused.Load()}
}
