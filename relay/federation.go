package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/node"
	"ddt/shared/wire"
)

// Federation. Each relay dials the relays named by -peer at /federate and
// accepts links from any relay that proves its key (open federation; every
// link is logged). On a link both sides send a RelayChallenge, answer the
// other's with a signed RelayHello, then send their zone's membership
// (ZoneMembers batches), deltas as nodes join and leave, summaries every
// SummaryEvery, and signals from their nodes to the other zone's nodes. A
// lost link is redialed with backoff by the side that dialed it; while it
// is down the other zone's members are forgotten (they cannot be reached).
//
// When two links join the same pair of relays (both name each other with
// -peer, or a restart races a redial) both sides keep the same one: the
// link dialed by the relay with the smaller key, or the newer link if the
// same relay dialed both. The other is closed and its dialer waits for the
// kept link to end before dialing again.

// Federation limits.
const (
	maxLinks         = wire.MaxRelays - 1 // relays linked at once
	maxFedJoining    = 16                 // relay connections not yet authenticated
	maxRemoteMembers = 1 << 14            // members one federated zone may claim
	linkQueue        = 1024               // frames queued to a relay beyond its snapshot
	linkSignalRate   = 2000               // signals per second one relay may send us
	linkSignalBurst  = 4000
	minBackoff       = 250 * time.Millisecond
)

var (
	errSelfLink  = errors.New("the other relay is this relay")
	errDuplicate = errors.New("already linked to that relay")
	errTooMany   = errors.New("too many federated relays")
)

// relayState is what the hub knows of a federated relay.
type relayState struct {
	info       wire.RelayInfo // as its hello and summaries tell it
	link       *link          // nil while down
	configured bool           // a -peer of ours: kept (as down) when its link ends
	members    map[id.Address]*member
}

// member is a node of a federated zone.
type member struct {
	lease  wire.Lease
	native bool
	relay  *relayState
}

// dialTarget is a -peer relay and, once reached, its key.
type dialTarget struct {
	url   string
	key   [32]byte
	known bool // key is set (under h.mu)
}

// link is an authenticated relay↔relay WebSocket.
type link struct {
	wsLink
	hub     *Hub
	dialed  bool           // we opened it
	peer    wire.RelayInfo // the other relay, from its hello
	log     *slog.Logger
	lim     *rate.Limiter // signals it sends us
	nameLim *rate.Limiter // username claims and lookups it sends us
	synced  bool          // its snapshot has arrived (h.mu)
	ledger  ledgerSync    // mirroring its ledger (read loop only)
}

// FedURL turns a relay's base URL into its federation endpoint.
func FedURL(base string) (string, error) { return node.RelayEndpoint(base, "/federate") }

// selfInfo describes this relay. h.mu is held.
func (h *Hub) selfInfo() wire.RelayInfo {
	return wire.RelayInfo{Zone: h.cfg.Zone, URL: h.cfg.URL, Key: h.Key(), Nodes: uint32(len(h.clients)), MaxNodes: uint32(h.cfg.MaxNodes)}
}

// knownRelays lists this relay first, then linked relays by zone, then
// known relays whose link is down. h.mu is held.
func (h *Hub) knownRelays() []wire.RelayInfo {
	out := []wire.RelayInfo{h.selfInfo()}
	var up, down []wire.RelayInfo
	for _, rs := range h.relays {
		if rs.link != nil {
			up = append(up, rs.info)
		} else {
			down = append(down, rs.info)
		}
	}
	byZone := func(s []wire.RelayInfo) {
		sort.Slice(s, func(i, j int) bool {
			if s[i].Zone != s[j].Zone {
				return s[i].Zone < s[j].Zone
			}
			return s[i].URL < s[j].URL
		})
	}
	byZone(up)
	byZone(down)
	return append(append(out, up...), down...)
}

// redirect names the linked relay with the most room, or the configured
// fallback. h.mu is held.
func (h *Hub) redirect() string {
	best, room := "", int64(0)
	for _, rs := range h.relays {
		if rs.link == nil || rs.info.URL == "" {
			continue
		}
		if r := int64(rs.info.MaxNodes) - int64(rs.info.Nodes); r > room {
			best, room = rs.info.URL, r
		}
	}
	if best == "" {
		return h.cfg.Redirect
	}
	return best
}

// toLinks queues m on every relay link. h.mu is held, so deltas reach
// each link in the order they happened, after its snapshot.
func (h *Hub) toLinks(m wire.Message) {
	var b []byte
	for _, rs := range h.relays {
		if rs.link == nil {
			continue
		}
		if b == nil {
			var err error
			if b, err = wire.Marshal(m); err != nil {
				return
			}
		}
		rs.link.send(b)
	}
}

func (h *Hub) sendSummaries() {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, err := wire.Marshal(&wire.ZoneSummary{Nodes: uint32(len(h.clients)), MaxNodes: uint32(h.cfg.MaxNodes)})
	if err != nil {
		return
	}
	cp := h.checkpointFrame() // again, in case an announcement was dropped
	for _, rs := range h.relays {
		if rs.link != nil {
			rs.link.trySend(b)
			if cp != nil {
				rs.link.trySend(cp)
			}
		}
	}
}

// FedSlot reserves room for one more relay connection to authenticate;
// false means too many are at it. ServeFederation releases the slot.
func (h *Hub) FedSlot() bool {
	select {
	case h.fedJoining <- struct{}{}:
		return true
	default:
		h.fedDropped.Add(1)
		return false
	}
}

// ReleaseFedSlot gives back a FedSlot that did not reach ServeFederation.
func (h *Hub) ReleaseFedSlot() { <-h.fedJoining }

// ServeFederation runs a link another relay opened, until it ends. The
// caller holds a FedSlot.
func (h *Hub) ServeFederation(ctx context.Context, conn *websocket.Conn, remote string) {
	defer conn.CloseNow()
	if !h.enter() {
		h.ReleaseFedSlot()
		conn.Close(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	defer h.wg.Done()
	h.runLink(ctx, conn, nil, remote, h.ReleaseFedSlot)
}

// dialLoop keeps a link to one -peer relay: dial, run, and redial with
// backoff when it ends.
func (h *Hub) dialLoop(d *dialTarget) {
	defer h.wg.Done()
	log := h.log.With("peer", d.url)
	fed, err := FedURL(d.url)
	if err != nil {
		log.Error("cannot federate", "err", err)
		return
	}
	backoff, failures := minBackoff, 0
	for h.ctx.Err() == nil {
		h.mu.Lock()
		key, known := d.key, d.known
		h.mu.Unlock()
		if known {
			h.waitLinkDown(key)
		}
		if h.ctx.Err() != nil {
			return
		}
		dctx, cancel := context.WithTimeout(h.ctx, helloTimeout)
		conn, _, err := websocket.Dial(dctx, fed, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
		cancel()
		if err == nil {
			var up bool
			key, up, err = h.runLink(h.ctx, conn, d, fed, nil)
			if key != ([32]byte{}) {
				h.mu.Lock()
				d.key, d.known = key, true
				h.mu.Unlock()
			}
			if up {
				backoff, failures = minBackoff, 0
			}
		}
		switch {
		case h.ctx.Err() != nil:
			return
		case errors.Is(err, errSelfLink):
			log.Warn("not federating: this -peer is this relay itself")
			return
		case errors.Is(err, errDuplicate):
			continue // wait for the kept link to end
		case err != nil:
			failures++
			if failures == 1 {
				log.Info("relay link failed; redialing with backoff", "err", err)
			} else {
				log.Debug("relay link failed", "err", err, "failures", failures)
			}
		}
		wait := jitter(backoff)
		backoff = min(2*backoff, h.cfg.MaxBackoff)
		select {
		case <-time.After(wait):
		case <-h.ctx.Done():
			return
		}
	}
}

func jitter(d time.Duration) time.Duration {
	r, _ := rand.Int(rand.Reader, big.NewInt(int64(d/4)+1))
	return d - d/8 + time.Duration(r.Int64())
}

// waitLinkDown returns once no link to key is up (or the hub closes).
func (h *Hub) waitLinkDown(key [32]byte) {
	for {
		h.mu.Lock()
		var done chan struct{}
		if rs := h.relays[key]; rs != nil && rs.link != nil {
			done = rs.link.done
		}
		h.mu.Unlock()
		if done == nil {
			return
		}
		select {
		case <-done:
		case <-h.ctx.Done():
			return
		}
	}
}

// runLink authenticates a relay link and serves it until it ends. It
// returns the other relay's key once proven, whether the link came up,
// and why it ended. target is the -peer dialed (nil for a link another
// relay opened); it learns the key as soon as the key is proven. release,
// if set, is called once authentication is decided.
func (h *Hub) runLink(ctx context.Context, conn *websocket.Conn, target *dialTarget, remote string, release func()) (key [32]byte, up bool, err error) {
	dialed := target != nil
	defer conn.CloseNow()
	ctx, stopCtx := context.WithCancel(ctx)
	defer stopCtx()
	defer context.AfterFunc(h.ctx, stopCtx)()
	conn.SetReadLimit(wire.MaxFrame)
	log := h.log.With("remote", remote, "dialed", dialed)

	peer, err := h.handshake(ctx, conn, dialed)
	if release != nil {
		release()
	}
	if target != nil && (err == nil || errors.Is(err, errSelfLink)) {
		h.mu.Lock()
		target.key, target.known = peer.Key, true
		h.mu.Unlock()
	}
	if err != nil {
		if errors.Is(err, errSelfLink) {
			conn.Close(websocket.StatusNormalClosure, "link to self")
			return peer.Key, false, err
		}
		h.fedDropped.Add(1)
		log.Info("relay link refused", "err", err)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		writeMsg(wctx, conn, &wire.Error{Code: wire.CodeOf(err), Message: truncate(err.Error(), wire.MaxReason)})
		cancel()
		conn.Close(websocket.StatusPolicyViolation, "federation refused")
		return [32]byte{}, false, err
	}
	log = h.log.With("peerZone", peer.Zone, "peerURL", peer.URL, "peerKey", fmt.Sprintf("%x", peer.Key[:6]), "dialed", dialed)
	l := &link{hub: h, dialed: dialed, peer: peer, log: log, lim: rate.NewLimiter(linkSignalRate, linkSignalBurst),
		nameLim: rate.NewLimiter(linkNameRate, linkNameBurst)}
	if err := h.linkUp(l, conn); err != nil {
		log.Info("relay link closed", "why", err)
		conn.Close(websocket.StatusNormalClosure, err.Error())
		return peer.Key, false, err
	}
	log.Info("relay link up", "nodes", peer.Nodes, "maxNodes", peer.MaxNodes)
	go l.writeLoop()
	go l.pingLoop(ctx)
	l.readLoop(ctx)
	l.stop(whyGone)
	<-l.flushed
	h.linkDown(l)
	h.namesLinkDown(l)
	log.Info("relay link down", "why", l.why)
	return peer.Key, true, nil
}

// handshake proves our key to the other relay and checks its proof.
func (h *Hub) handshake(ctx context.Context, conn *websocket.Conn, dialed bool) (wire.RelayInfo, error) {
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	ours := &wire.RelayChallenge{}
	rand.Read(ours.Nonce[:])
	if err := writeMsg(hctx, conn, ours); err != nil {
		return wire.RelayInfo{}, err
	}
	m, err := readFrame(hctx, conn)
	if err != nil {
		return wire.RelayInfo{}, err
	}
	theirs, ok := m.(*wire.RelayChallenge)
	if !ok {
		return wire.RelayInfo{}, fmt.Errorf("%w: expected RelayChallenge, got type %d", wire.ErrProtocol, m.Type())
	}
	h.mu.Lock()
	self := h.selfInfo()
	h.mu.Unlock()
	hello := &wire.RelayHello{Relay: self, Sig: h.key.Sign(wire.RelayHelloSignedBytes(theirs.Nonce, dialed, &self))}
	if err := writeMsg(hctx, conn, hello); err != nil {
		return wire.RelayInfo{}, err
	}
	if m, err = readFrame(hctx, conn); err != nil {
		return wire.RelayInfo{}, err
	}
	peer, ok := m.(*wire.RelayHello)
	switch {
	case !ok:
		return wire.RelayInfo{}, fmt.Errorf("%w: expected RelayHello, got type %d", wire.ErrProtocol, m.Type())
	case !identity.Verify(peer.Relay.Key, wire.RelayHelloSignedBytes(ours.Nonce, !dialed, &peer.Relay), peer.Sig):
		return wire.RelayInfo{}, fmt.Errorf("%w: relay hello does not verify", wire.ErrBadSignature)
	case peer.Relay.Key == self.Key:
		return peer.Relay, errSelfLink
	case peer.Relay.Zone == "":
		return wire.RelayInfo{}, fmt.Errorf("%w: relay names no zone", wire.ErrProtocol)
	}
	return peer.Relay, nil
}

// dialerKey is the key of the relay that opened l.
func (l *link) dialerKey() [32]byte {
	if l.dialed {
		return l.hub.Key()
	}
	return l.peer.Key
}

// preferred reports whether l should be kept over cur, another link to
// the same relay. Both relays reach the same answer.
func (l *link) preferred(cur *link) bool {
	a, b := l.dialerKey(), cur.dialerKey()
	if a == b {
		return true // the same relay dialed again: it knows the old one is stale
	}
	return string(a[:]) < string(b[:])
}

// linkUp makes l the link to its relay and queues our snapshot on it, or
// refuses it.
func (h *Hub) linkUp(l *link, conn *websocket.Conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("relay shutting down")
	}
	key := l.peer.Key
	rs := h.relays[key]
	if rs != nil && l.dialed {
		rs.configured = true
	}
	if rs != nil && rs.link != nil {
		if !l.preferred(rs.link) {
			return errDuplicate
		}
		rs.link.stop("replaced by a newer link")
		h.dropMembers(rs)
		rs.link = nil
	}
	if rs == nil {
		links := 0
		for _, o := range h.relays {
			if o.link != nil {
				links++
			}
		}
		if links >= maxLinks || len(h.relays) >= 4*maxLinks {
			return errTooMany
		}
		rs = &relayState{members: make(map[id.Address]*member), configured: l.dialed}
		h.relays[key] = rs
	}
	rs.info, rs.link = l.peer, l

	// Our snapshot, then our counts; deltas follow in order (h.mu).
	var batches [][]byte
	batch := &wire.ZoneMembers{}
	flush := func(last bool) {
		batch.Last = last
		if b, err := wire.Marshal(batch); err == nil {
			batches = append(batches, b)
		} else {
			h.log.Error("member batch", "err", err)
		}
		batch = &wire.ZoneMembers{}
	}
	for _, c := range h.clients {
		if len(batch.Leases) == wire.MaxMemberBatch {
			flush(false)
		}
		batch.Leases = append(batch.Leases, c.lease)
		batch.Natives = append(batch.Natives, c.native)
	}
	flush(true)
	l.wsLink = newWSLink(conn, linkQueue+len(batches)+2)
	for _, b := range batches {
		l.out <- b
	}
	if b, err := wire.Marshal(&wire.ZoneSummary{Nodes: uint32(len(h.clients)), MaxNodes: uint32(h.cfg.MaxNodes)}); err == nil {
		l.out <- b
	}
	if b := h.checkpointFrame(); b != nil {
		l.out <- b
	}
	return nil
}

// linkDown forgets what came over l once it has ended.
func (h *Hub) linkDown(l *link) {
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := h.relays[l.peer.Key]
	if rs == nil || rs.link != l {
		return
	}
	rs.link = nil
	h.dropMembers(rs)
	if !rs.configured {
		delete(h.relays, l.peer.Key)
	}
}

// dropMembers forgets a relay's members. h.mu is held.
func (h *Hub) dropMembers(rs *relayState) {
	for a := range rs.members {
		delete(h.remote, a)
	}
	rs.members = make(map[id.Address]*member)
}

// readLoop applies what the other relay sends until the link ends.
func (l *link) readLoop(ctx context.Context) {
	h := l.hub
	violations := 0
	for {
		m, ok := l.next(ctx, l.log, &h.fedDropped)
		if !ok {
			return
		}
		var err error
		switch m := m.(type) {
		case *wire.ZoneMembers:
			err = l.addMembers(m.Leases, m.Natives, m.Last)
		case *wire.MemberJoined:
			err = l.addMembers([]wire.Lease{m.Lease}, []bool{m.Native}, false)
		case *wire.MemberLeft:
			l.removeMember(m.Address)
		case *wire.ZoneSummary:
			h.mu.Lock()
			if rs := h.relays[l.peer.Key]; rs != nil && rs.link == l {
				rs.info.Nodes, rs.info.MaxNodes = m.Nodes, m.MaxNodes
			}
			h.mu.Unlock()
		case *wire.RelaySignal:
			l.deliver(m)
		case *wire.LedgerCheckpoint:
			err = l.onCheckpoint(m.Note)
		case *wire.LedgerGetEntries:
			err = l.serveEntries(m)
		case *wire.LedgerEntries:
			err = l.onEntries(m)
		case *wire.LedgerGetProof:
			err = l.serveProof(m)
		case *wire.LedgerProof:
			err = l.onProof(m)
		case *wire.RelayNameClaim:
			if l.onNameClaim(m) {
				h.fedDropped.Add(1)
				violations++
			}
		case *wire.NameLookup:
			if l.onNameLookup(m) {
				h.fedDropped.Add(1)
				violations++
			}
		case *wire.NameResult:
			l.onNameResult(m)
		case *wire.Error:
			l.log.Info("the other relay refused a frame", "err", m.Err())
		default:
			h.fedDropped.Add(1)
			violations++
			l.reject(wire.CodeProtocol, fmt.Sprintf("relays do not send type %d on a federation link", m.Type()))
		}
		if errors.Is(err, errLedgerRefused) {
			h.fedDropped.Add(1)
			violations++
			l.log.Warn("refusing a ledger frame", "err", err)
			l.reject(wire.CodeProtocol, err.Error())
			err = nil
		}
		if err != nil {
			h.fedDropped.Add(1)
			l.log.Warn("closing relay link", "err", err)
			l.reject(wire.CodeOf(err), err.Error())
			l.stop(err.Error())
			return
		}
		if violations > maxViolations {
			l.log.Warn("too many refused frames; closing", "count", violations)
			l.stop("too many refused frames")
			return
		}
	}
}

// addMembers records members of the other zone whose leases that relay
// signed; a lease that does not verify is dropped and logged.
func (l *link) addMembers(leases []wire.Lease, natives []bool, last bool) error {
	h := l.hub
	now := h.now()
	var good []member
	for i := range leases {
		err := identity.VerifyLease(&leases[i], l.peer.Key, now)
		if err == nil && leases[i].Zone != l.peer.Zone {
			err = fmt.Errorf("lease is for zone %q, not %q", leases[i].Zone, l.peer.Zone)
		}
		if err != nil {
			h.fedDropped.Add(1)
			l.log.Warn("dropping a member whose lease does not verify", "member", leases[i].Address.Short(), "err", err)
			continue
		}
		good = append(good, member{lease: leases[i], native: i < len(natives) && natives[i]})
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := h.relays[l.peer.Key]
	if rs == nil || rs.link != l {
		return nil // replaced meanwhile
	}
	for i := range good {
		m := &good[i]
		a := m.lease.Address
		if rs.members[a] == nil && len(rs.members) >= maxRemoteMembers {
			return fmt.Errorf("%w: zone %s claims over %d members", wire.ErrTooLarge, l.peer.Zone, maxRemoteMembers)
		}
		if old := h.remote[a]; old != nil && old.relay != rs {
			delete(old.relay.members, a) // it moved zones
		}
		m.relay = rs
		rs.members[a] = m
		h.remote[a] = m
	}
	if last && !l.synced {
		l.synced = true
		l.log.Info("relay's members received", "members", len(rs.members))
	}
	return nil
}

func (l *link) removeMember(a id.Address) {
	h := l.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := h.relays[l.peer.Key]
	if rs == nil || rs.link != l || rs.members[a] == nil {
		return
	}
	delete(rs.members, a)
	delete(h.remote, a)
}

// deliver hands a signal from the other zone to our member it is for.
func (l *link) deliver(s *wire.RelaySignal) {
	h := l.hub
	if !l.lim.Allow() {
		h.fedDropped.Add(1)
		return
	}
	h.mu.Lock()
	from := h.remote[s.From]
	to := h.clients[s.To]
	h.mu.Unlock()
	switch {
	case from == nil || from.relay.link != l:
		h.fedDropped.Add(1)
		l.log.Debug("dropping a signal from a node not in that zone", "from", s.From.Short())
		return
	case to == nil:
		h.fedDropped.Add(1)
		l.log.Debug("dropping a signal for a node not here", "to", s.To.Short())
		return
	}
	b, err := wire.Marshal(&wire.Signal{Peer: s.From, Session: s.Session, Kind: s.Kind, Data: s.Data})
	if err != nil {
		return
	}
	h.signals.Add(1)
	h.fedIn.Add(1)
	to.send(b)
}

// RelayJSON is one entry of /relays.
type RelayJSON struct {
	Zone     string `json:"zone"`
	URL      string `json:"url"`
	Key      string `json:"key"` // hex; empty for a -peer never reached
	Nodes    uint32 `json:"nodes"`
	MaxNodes uint32 `json:"maxNodes"`
	Up       bool   `json:"up"`   // linked now (always true for this relay)
	Self     bool   `json:"self"` // this relay
}

// Relays lists this relay, the relays it knows and the -peer relays it
// has not reached yet.
func (h *Hub) Relays() []RelayJSON {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []RelayJSON
	listed := map[string]bool{}
	for i, r := range h.knownRelays() {
		up := i == 0
		if rs := h.relays[r.Key]; rs != nil {
			up = rs.link != nil
		}
		out = append(out, RelayJSON{Zone: r.Zone, URL: r.URL, Key: fmt.Sprintf("%x", r.Key), Nodes: r.Nodes, MaxNodes: r.MaxNodes, Up: up, Self: i == 0})
		listed[strings.TrimSuffix(r.URL, "/")] = true
	}
	for _, d := range h.dialed {
		// A -peer not reached yet, unless a relay at that URL linked to
		// us first (the URL is its claim: for this listing only).
		if !d.known && !listed[strings.TrimSuffix(d.url, "/")] {
			out = append(out, RelayJSON{URL: d.url})
		}
	}
	return out
}
