package federation

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"ddt/relay/link"
	"ddt/relay/zone"
	"ddt/shared/backoff"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Limits and timings.
const (
	MaxLinks         = wire.MaxRelays - 1 // relays linked at once
	MaxJoining       = 16                 // relay connections not yet authenticated
	MaxRemoteMembers = 1 << 14            // members one federated zone may claim
	LinkQueue        = 1024               // frames queued to a relay beyond its snapshot
	LinkSignalRate   = 2000               // signals per second one relay may send us
	LinkSignalBurst  = 4000
	HelloTimeout     = 10 * time.Second
	MinBackoff       = 250 * time.Millisecond

	DefaultSummaryEvery = 10 * time.Second
	DefaultMaxBackoff   = 30 * time.Second
)

// Config configures a relay's federation.
type Config struct {
	Zone   *zone.Zone         // the zone this relay serves
	Key    *identity.Identity // the relay's key (the zone's)
	Peers  []string           // base URLs of relays to federate with; dialed, and redialed when lost
	Logger *slog.Logger
	Clock  clock.Clock // summaries, backoff, lease checks; the zone's if nil
	// Dial opens a link to the relay at a -peer base URL. An error
	// wrapping ErrBadPeer means the URL can never be dialed. Required
	// with Peers.
	Dial         func(ctx context.Context, peer string) (transport.Conn, error)
	SummaryEvery time.Duration // how often linked relays get this zone's counts (DefaultSummaryEvery)
	MaxBackoff   time.Duration // longest wait between redials (DefaultMaxBackoff)
}

// Handler serves one frame from the relay at the other end of l. Its
// error decides what happens to the link (see link.Link.Serve): nil, a
// *link.Refusal, link.ErrViolation, or any other error, which ends it.
type Handler func(l *Link, msg wire.Message) error

type handler struct {
	feature string
	fn      Handler
}

type periodic struct {
	feature string
	frame   func() []byte
}

// Federation is a relay's links to other relays.
type Federation struct {
	cfg   Config
	log   *slog.Logger
	key   *identity.Identity
	zone  *zone.Zone
	clock clock.Clock

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // dialers, the summary loop and every link

	// Set before Start or the first Serve; read-only after.
	handlers map[wire.Type]handler
	features wire.Features
	onUp     []func(*Link)
	onDown   []func(*Link)
	periodic []periodic
	started  atomic.Bool

	mu      sync.Mutex
	closed  bool
	relays  map[[32]byte]*relayState // federated relays, by key
	remote  map[id.Address]*member   // members of federated zones whose link is up
	dialed  []*dialTarget            // the -peer relays
	joining chan struct{}            // a slot per relay connection not yet authenticated

	signalsOut atomic.Int64 // signals sent over links
	signalsIn  atomic.Int64 // signals delivered from links
	dropped    atomic.Int64 // link frames refused or dropped, links refused
	unknown    atomic.Int64 // link frames of types this relay does not know, skipped
}

// relayState is what the federation knows of a relay.
type relayState struct {
	info       wire.RelayInfo // as its hello and summaries tell it
	features   wire.Features  // as its hello lists them
	link       *Link          // nil while down
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
	known bool // key is set (under mu)
}

// Link is an authenticated link to another relay.
type Link struct {
	f        *Federation
	link     *link.Link
	dialed   bool           // we opened it
	peer     wire.RelayInfo // the other relay, from its hello
	features wire.Features  // the link services it runs
	log      *slog.Logger
	lim      *rate.Limiter // signals it sends us
	synced   bool          // its snapshot has arrived (mu)
}

// New makes the federation of cfg.Zone: it becomes the zone's Directory
// and watches its members. Register services, then Start.
func New(cfg Config) (*Federation, error) {
	if cfg.Zone == nil || cfg.Key == nil {
		return nil, errors.New("federation: a zone and a key are required")
	}
	if len(cfg.Peers) > 0 && cfg.Dial == nil {
		return nil, errors.New("federation: peers but no way to dial them")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Zone.Clock()
	}
	if cfg.SummaryEvery <= 0 {
		cfg.SummaryEvery = DefaultSummaryEvery
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	f := &Federation{cfg: cfg, log: cfg.Logger, key: cfg.Key, zone: cfg.Zone, clock: cfg.Clock,
		handlers: make(map[wire.Type]handler), relays: make(map[[32]byte]*relayState), remote: make(map[id.Address]*member),
		joining: make(chan struct{}, MaxJoining)}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	for _, u := range cfg.Peers {
		f.dialed = append(f.dialed, &dialTarget{url: u})
	}
	f.Handle(wire.TypeZoneMembers, "", func(l *Link, m wire.Message) error {
		zm := m.(*wire.ZoneMembers)
		return l.addMembers(zm.Leases, zm.Natives, zm.Last)
	})
	f.Handle(wire.TypeMemberJoined, "", func(l *Link, m wire.Message) error {
		j := m.(*wire.MemberJoined)
		return l.addMembers([]wire.Lease{j.Lease}, []bool{j.Native}, false)
	})
	f.Handle(wire.TypeMemberLeft, "", func(l *Link, m wire.Message) error {
		l.removeMember(m.(*wire.MemberLeft).Address)
		return nil
	})
	f.Handle(wire.TypeZoneSummary, "", func(l *Link, m wire.Message) error {
		l.onSummary(m.(*wire.ZoneSummary))
		return nil
	})
	f.Handle(wire.TypeRelaySignal, "", func(l *Link, m wire.Message) error {
		l.deliver(m.(*wire.RelaySignal))
		return nil
	})
	f.Handle(wire.TypeError, "", func(l *Link, m wire.Message) error {
		l.log.Info("the other relay refused a frame", "err", m.(*wire.Error).Err())
		return nil
	})
	cfg.Zone.SetDirectory(f)
	cfg.Zone.Watch(zone.Watch{
		JoinedLocked: func(m *zone.Member) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.toLinksLocked(&wire.MemberJoined{Lease: m.Lease(), Native: m.Native()})
		},
		LeftLocked: func(m *zone.Member) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.toLinksLocked(&wire.MemberLeft{Address: m.Address()})
		},
	})
	return f, nil
}

func (f *Federation) setup(what string) {
	if f.started.Load() {
		panic("federation: " + what + " after the federation started")
	}
}

// Handle routes link frames of type t to fn. A feature other than ""
// is the link service fn belongs to: the relay announces it in its
// hellos, and frames of type t from a relay that did not announce it are
// refused. Call before Start.
func (f *Federation) Handle(t wire.Type, feature string, fn Handler) {
	f.setup("Handle")
	if _, dup := f.handlers[t]; dup {
		panic(fmt.Sprintf("federation: type %d handled twice", t))
	}
	f.handlers[t] = handler{feature, fn}
	if feature != "" {
		f.features = wire.NewFeatures(append(f.features, feature)...)
	}
}

// OnLinkUp calls fn for every link once it is up, after this relay's
// snapshot is queued on it and before its first frame is read. Call
// before Start.
func (f *Federation) OnLinkUp(fn func(*Link)) {
	f.setup("OnLinkUp")
	f.onUp = append(f.onUp, fn)
}

// OnLinkDown calls fn for every link once it has ended and the other
// zone's members are forgotten. Call before Start.
func (f *Federation) OnLinkDown(fn func(*Link)) {
	f.setup("OnLinkDown")
	f.onDown = append(f.onDown, fn)
}

// Periodic adds frame() to every summary round, for the links whose
// other side announced feature (a nil frame is skipped). Call before
// Start.
func (f *Federation) Periodic(feature string, frame func() []byte) {
	f.setup("Periodic")
	f.periodic = append(f.periodic, periodic{feature, frame})
}

// Features lists the link services registered.
func (f *Federation) Features() wire.Features { return f.features }

// Start dials the -peer relays and starts the summaries.
func (f *Federation) Start() {
	if f.started.Swap(true) {
		return
	}
	f.wg.Add(1)
	go f.summaryLoop()
	for _, d := range f.dialed {
		f.wg.Add(1)
		go f.dialLoop(d)
	}
}

// Close ends every link and stops dialing; it returns once all are gone.
func (f *Federation) Close() {
	f.started.Store(true)
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// enter registers a link's goroutine unless the federation is closing;
// the caller calls f.wg.Done when it ends.
func (f *Federation) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.wg.Add(1)
	return true
}

func (f *Federation) summaryLoop() {
	defer f.wg.Done()
	t := f.clock.NewTicker(f.cfg.SummaryEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C():
			f.sendSummaries()
		case <-f.ctx.Done():
			return
		}
	}
}

// sendSummaries sends every link this zone's counts and the periodic
// frames of the services it announced.
func (f *Federation) sendSummaries() {
	info := f.zone.Info()
	b, err := wire.Marshal(&wire.ZoneSummary{Nodes: info.Nodes, MaxNodes: info.MaxNodes})
	if err != nil {
		return
	}
	extra := make([][]byte, len(f.periodic))
	for i, p := range f.periodic {
		extra[i] = p.frame()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, rs := range f.relays {
		if rs.link == nil {
			continue
		}
		rs.link.TrySend(b)
		for i, p := range f.periodic {
			if extra[i] != nil && rs.link.Has(p.feature) {
				rs.link.TrySend(extra[i])
			}
		}
	}
}

// selfInfoLocked describes this relay.
func (f *Federation) selfInfoLocked() wire.RelayInfo { return f.zone.Info() }

// knownRelaysLocked lists this relay first, then linked relays by zone,
// then known relays whose link is down.
func (f *Federation) knownRelaysLocked() []wire.RelayInfo {
	out := []wire.RelayInfo{f.selfInfoLocked()}
	var up, down []wire.RelayInfo
	for _, rs := range f.relays {
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

// toLinksLocked queues m on every link, so deltas reach each link in the
// order they happened, after its snapshot.
func (f *Federation) toLinksLocked(m wire.Message) {
	var b []byte
	for _, rs := range f.relays {
		if rs.link == nil {
			continue
		}
		if b == nil {
			var err error
			if b, err = wire.Marshal(m); err != nil {
				return
			}
		}
		rs.link.Send(b)
	}
}

// The zone's Directory.
var _ zone.Directory = (*Federation)(nil)

// PeersLocked lists the members of linked zones (zone.Directory).
func (f *Federation) PeersLocked() []zone.Peer {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]zone.Peer, 0, len(f.remote))
	for _, m := range f.remote {
		out = append(out, zone.Peer{Lease: &m.lease, Native: m.native})
	}
	return out
}

// RelaysLocked lists this relay and every relay it knows (zone.Directory).
func (f *Federation) RelaysLocked() []wire.RelayInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.knownRelaysLocked()
}

// RoomiestLocked names the linked relay with the most room, or ""
// (zone.Directory).
func (f *Federation) RoomiestLocked() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	best, room := "", int64(0)
	for _, rs := range f.relays {
		if rs.link == nil || rs.info.URL == "" {
			continue
		}
		if r := int64(rs.info.MaxNodes) - int64(rs.info.Nodes); r > room {
			best, room = rs.info.URL, r
		}
	}
	return best
}

// Signal passes a signal from a member of this zone to its target's
// relay (zone.Directory).
func (f *Federation) Signal(from *zone.Member, sig *wire.Signal) error {
	f.mu.Lock()
	var l *Link
	if m := f.remote[sig.Peer]; m != nil {
		l = m.relay.link
	}
	f.mu.Unlock()
	if l == nil {
		return wire.ErrUnknownPeer
	}
	rs := &wire.RelaySignal{From: from.Address(), To: sig.Peer, Session: sig.Session, Kind: sig.Kind, Data: sig.Data}
	// Counted before it is queued, so no answer can overtake the count.
	f.signalsOut.Add(1)
	if b, err := wire.Marshal(rs); err != nil || !l.TrySend(b) {
		f.signalsOut.Add(-1)
		return link.Refuse(wire.CodeRateLimited, "the link to zone %s is congested", l.peer.Zone)
	}
	return nil
}

// Slot reserves room for one more relay connection to authenticate;
// false means too many are at it. Serve releases the slot.
func (f *Federation) Slot() bool {
	select {
	case f.joining <- struct{}{}:
		return true
	default:
		f.dropped.Add(1)
		return false
	}
}

// ReleaseSlot gives back a Slot that did not reach Serve.
func (f *Federation) ReleaseSlot() { <-f.joining }

// Serve runs a link another relay opened, until it ends. The caller holds
// a Slot.
func (f *Federation) Serve(ctx context.Context, conn transport.Conn, remote string) {
	f.started.Store(true)
	defer conn.Close()
	if !f.enter() {
		f.ReleaseSlot()
		link.Close(conn, link.StatusGoingAway, "relay shutting down")
		return
	}
	defer f.wg.Done()
	f.runLink(ctx, conn, nil, remote, f.ReleaseSlot)
}

// dialLoop keeps a link to one -peer relay: dial, run, and redial with
// backoff when it ends.
func (f *Federation) dialLoop(d *dialTarget) {
	defer f.wg.Done()
	log := f.log.With("peer", d.url)
	wait := backoff.Backoff{Min: MinBackoff, Max: f.cfg.MaxBackoff}
	failures := 0
	for f.ctx.Err() == nil {
		f.mu.Lock()
		key, known := d.key, d.known
		f.mu.Unlock()
		if known {
			f.waitLinkDown(key)
		}
		if f.ctx.Err() != nil {
			return
		}
		dctx, cancel := context.WithTimeout(f.ctx, HelloTimeout)
		conn, err := f.cfg.Dial(dctx, d.url)
		cancel()
		if err == nil {
			var up bool
			key, up, err = f.runLink(f.ctx, conn, d, d.url, nil)
			if key != ([32]byte{}) {
				f.mu.Lock()
				d.key, d.known = key, true
				f.mu.Unlock()
			}
			if up {
				wait.Reset()
				failures = 0
			}
		}
		switch {
		case f.ctx.Err() != nil:
			return
		case errors.Is(err, ErrBadPeer):
			log.Error("cannot federate", "err", err)
			return
		case errors.Is(err, ErrSelfLink):
			log.Warn("not federating: this -peer is this relay itself")
			return
		case errors.Is(err, ErrDuplicate):
			continue // wait for the kept link to end
		case err != nil:
			failures++
			if failures == 1 {
				log.Info("relay link failed; redialing with backoff", "err", err)
			} else {
				log.Debug("relay link failed", "err", err, "failures", failures)
			}
		}
		if !clock.Sleep(f.clock, wait.Next(), f.ctx.Done()) {
			return
		}
	}
}

// waitLinkDown returns once no link to key is up (or the federation
// closes).
func (f *Federation) waitLinkDown(key [32]byte) {
	for {
		f.mu.Lock()
		var stopped <-chan struct{}
		if rs := f.relays[key]; rs != nil && rs.link != nil {
			stopped = rs.link.link.Stopped()
		}
		f.mu.Unlock()
		if stopped == nil {
			return
		}
		select {
		case <-stopped:
		case <-f.ctx.Done():
			return
		}
	}
}

// runLink authenticates a relay link and serves it until it ends. It
// returns the other relay's key once proven, whether the link came up,
// and why it ended. target is the -peer dialed (nil for a link another
// relay opened); it learns the key as soon as the key is proven. release,
// if set, is called once authentication is decided.
func (f *Federation) runLink(ctx context.Context, conn transport.Conn, target *dialTarget, remote string, release func()) (key [32]byte, up bool, err error) {
	dialed := target != nil
	defer conn.Close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(f.ctx, stop)()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	log := f.log.With("remote", remote, "dialed", dialed)

	peer, features, err := f.handshake(ctx, conn, dialed)
	if release != nil {
		release()
	}
	if target != nil && (err == nil || errors.Is(err, ErrSelfLink)) {
		f.mu.Lock()
		target.key, target.known = peer.Key, true
		f.mu.Unlock()
	}
	if err != nil {
		if errors.Is(err, ErrSelfLink) {
			link.Close(conn, link.StatusNormal, "link to self")
			return peer.Key, false, err
		}
		f.dropped.Add(1)
		log.Info("relay link refused", "err", err)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		inTime := link.Deadline(wctx, conn)
		link.Write(conn, &wire.Error{Code: wire.CodeOf(err), Message: link.Truncate(err.Error(), wire.MaxReason)})
		inTime()
		cancel()
		link.Close(conn, link.StatusPolicyViolation, "federation refused")
		return [32]byte{}, false, err
	}
	log = f.log.With("peerZone", peer.Zone, "peerURL", peer.URL, "peerKey", fmt.Sprintf("%x", peer.Key[:6]), "dialed", dialed)
	l := &Link{f: f, dialed: dialed, peer: peer, features: features, log: log, lim: rate.NewLimiter(LinkSignalRate, LinkSignalBurst)}
	if err := f.linkUp(l, conn); err != nil {
		log.Info("relay link closed", "why", err)
		link.Close(conn, link.StatusNormal, err.Error())
		return peer.Key, false, err
	}
	log.Info("relay link up", "nodes", peer.Nodes, "maxNodes", peer.MaxNodes, "features", features)
	for _, fn := range f.onUp {
		fn(l)
	}
	l.link.Serve(l.handle)
	l.link.Stop(link.WhyGone)
	l.link.Wait()
	f.linkDown(l)
	for _, fn := range f.onDown {
		fn(l)
	}
	log.Info("relay link down", "why", l.link.Why())
	return peer.Key, true, nil
}

// handshake proves our key to the other relay and checks its proof.
func (f *Federation) handshake(ctx context.Context, conn transport.Conn, dialed bool) (wire.RelayInfo, wire.Features, error) {
	hctx, cancel := context.WithTimeout(ctx, HelloTimeout)
	defer cancel()
	defer link.Deadline(hctx, conn)()
	ours := &wire.RelayChallenge{}
	rand.Read(ours.Nonce[:])
	if err := link.Write(conn, ours); err != nil {
		return wire.RelayInfo{}, nil, err
	}
	m, err := link.Read(conn)
	if err != nil {
		return wire.RelayInfo{}, nil, err
	}
	theirs, ok := m.(*wire.RelayChallenge)
	if !ok {
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: expected RelayChallenge, got type %d", wire.ErrProtocol, m.Type())
	}
	self := f.zone.Info()
	hello := &wire.RelayHello{Relay: self, Sig: f.key.Sign(wire.RelayHelloSignedBytes(theirs.Nonce, dialed, &self)), Features: f.features}
	if err := link.Write(conn, hello); err != nil {
		return wire.RelayInfo{}, nil, err
	}
	if m, err = link.Read(conn); err != nil {
		return wire.RelayInfo{}, nil, err
	}
	peer, ok := m.(*wire.RelayHello)
	switch {
	case !ok:
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: expected RelayHello, got type %d", wire.ErrProtocol, m.Type())
	case !identity.Verify(peer.Relay.Key, wire.RelayHelloSignedBytes(ours.Nonce, !dialed, &peer.Relay), peer.Sig):
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: relay hello does not verify", wire.ErrBadSignature)
	case peer.Relay.Key == self.Key:
		return peer.Relay, nil, ErrSelfLink
	case peer.Relay.Zone == "":
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: relay names no zone", wire.ErrProtocol)
	}
	return peer.Relay, peer.Features, nil
}

// dialerKey is the key of the relay that opened l.
func (l *Link) dialerKey() [32]byte {
	if l.dialed {
		return l.f.key.SignKey()
	}
	return l.peer.Key
}

// preferred reports whether l should be kept over cur, another link to
// the same relay. Both relays reach the same answer.
func (l *Link) preferred(cur *Link) bool {
	a, b := l.dialerKey(), cur.dialerKey()
	if a == b {
		return true // the same relay dialed again: it knows the old one is stale
	}
	return string(a[:]) < string(b[:])
}

// linkUp makes l the link to its relay and queues our snapshot on it, or
// refuses it. The snapshot and the installation happen under the zone's
// member lock, so the zone's Watch adds every later change after it.
func (f *Federation) linkUp(l *Link, conn transport.Conn) (err error) {
	f.zone.Snapshot(func(members []*zone.Member) {
		f.mu.Lock()
		defer f.mu.Unlock()
		err = f.linkUpLocked(l, conn, members)
	})
	return err
}

func (f *Federation) linkUpLocked(l *Link, conn transport.Conn, members []*zone.Member) error {
	if f.closed {
		return ErrShuttingDown
	}
	key := l.peer.Key
	rs := f.relays[key]
	if rs != nil && l.dialed {
		rs.configured = true
	}
	if rs != nil && rs.link != nil {
		if !l.preferred(rs.link) {
			return ErrDuplicate
		}
		rs.link.link.Stop("replaced by a newer link")
		f.dropMembersLocked(rs)
		rs.link = nil
	}
	if rs == nil {
		links := 0
		for _, o := range f.relays {
			if o.link != nil {
				links++
			}
		}
		if links >= MaxLinks || len(f.relays) >= 4*MaxLinks {
			return ErrTooMany
		}
		rs = &relayState{members: make(map[id.Address]*member), configured: l.dialed}
		f.relays[key] = rs
	}
	rs.info, rs.features, rs.link = l.peer, l.features, l

	// Our snapshot, then our counts; deltas follow in order.
	var batches [][]byte
	batch := &wire.ZoneMembers{}
	flush := func(last bool) {
		batch.Last = last
		if b, err := wire.Marshal(batch); err == nil {
			batches = append(batches, b)
		} else {
			f.log.Error("member batch", "err", err)
		}
		batch = &wire.ZoneMembers{}
	}
	for _, m := range members {
		if len(batch.Leases) == wire.MaxMemberBatch {
			flush(false)
		}
		batch.Leases = append(batch.Leases, m.Lease())
		batch.Natives = append(batch.Natives, m.Native())
	}
	flush(true)
	l.link = link.New(conn, link.Config{Queue: LinkQueue + len(batches) + 2, Logger: l.log, Dropped: &f.dropped, Unknown: &f.unknown})
	for _, b := range batches {
		l.link.Send(b)
	}
	info := f.zone.Info()
	l.link.SendMsg(&wire.ZoneSummary{Nodes: uint32(len(members)), MaxNodes: info.MaxNodes})
	return nil
}

// linkDown forgets what came over l once it has ended.
func (f *Federation) linkDown(l *Link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[l.peer.Key]
	if rs == nil || rs.link != l {
		return
	}
	rs.link = nil
	f.dropMembersLocked(rs)
	if !rs.configured {
		delete(f.relays, l.peer.Key)
	}
}

// dropMembersLocked forgets a relay's members.
func (f *Federation) dropMembersLocked(rs *relayState) {
	for a := range rs.members {
		delete(f.remote, a)
	}
	rs.members = make(map[id.Address]*member)
}

// handle serves one frame with the handler for its type.
func (l *Link) handle(m wire.Message) error {
	h, ok := l.f.handlers[m.Type()]
	switch {
	case !ok:
		return link.Refuse(wire.CodeProtocol, "relays do not send type %d on a federation link", m.Type())
	case h.feature != "" && !l.features.Has(h.feature):
		return link.Refuse(wire.CodeUnsupported, "type %d belongs to the %q service, which your hello did not list", m.Type(), h.feature)
	}
	return h.fn(l, m)
}

// addMembers records members of the other zone whose leases that relay
// signed; a lease that does not verify is dropped and logged.
func (l *Link) addMembers(leases []wire.Lease, natives []bool, last bool) error {
	f := l.f
	now := f.clock.Now()
	var good []member
	for i := range leases {
		err := identity.VerifyLease(&leases[i], l.peer.Key, now)
		if err == nil && leases[i].Zone != l.peer.Zone {
			err = fmt.Errorf("lease is for zone %q, not %q", leases[i].Zone, l.peer.Zone)
		}
		if err != nil {
			f.dropped.Add(1)
			l.log.Warn("dropping a member whose lease does not verify", "member", leases[i].Address.Short(), "err", err)
			continue
		}
		good = append(good, member{lease: leases[i], native: i < len(natives) && natives[i]})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[l.peer.Key]
	if rs == nil || rs.link != l {
		return nil // replaced meanwhile
	}
	for i := range good {
		m := &good[i]
		a := m.lease.Address
		if rs.members[a] == nil && len(rs.members) >= MaxRemoteMembers {
			return fmt.Errorf("%w: zone %s claims over %d members", wire.ErrTooLarge, l.peer.Zone, MaxRemoteMembers)
		}
		if old := f.remote[a]; old != nil && old.relay != rs {
			delete(old.relay.members, a) // it moved zones
		}
		m.relay = rs
		rs.members[a] = m
		f.remote[a] = m
	}
	if last && !l.synced {
		l.synced = true
		l.log.Info("relay's members received", "members", len(rs.members))
	}
	return nil
}

func (l *Link) removeMember(a id.Address) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[l.peer.Key]
	if rs == nil || rs.link != l || rs.members[a] == nil {
		return
	}
	delete(rs.members, a)
	delete(f.remote, a)
}

func (l *Link) onSummary(m *wire.ZoneSummary) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if rs := f.relays[l.peer.Key]; rs != nil && rs.link == l {
		rs.info.Nodes, rs.info.MaxNodes = m.Nodes, m.MaxNodes
	}
}

// deliver hands a signal from the other zone to our member it is for.
func (l *Link) deliver(s *wire.RelaySignal) {
	f := l.f
	if !l.lim.Allow() {
		f.dropped.Add(1)
		return
	}
	f.mu.Lock()
	from := f.remote[s.From]
	f.mu.Unlock()
	if from == nil || from.relay.link != l {
		f.dropped.Add(1)
		l.log.Debug("dropping a signal from a node not in that zone", "from", s.From.Short())
		return
	}
	to := f.zone.Member(s.To)
	if to == nil {
		f.dropped.Add(1)
		l.log.Debug("dropping a signal for a node not here", "to", s.To.Short())
		return
	}
	f.signalsIn.Add(1)
	f.zone.Deliver(to, &wire.Signal{Peer: s.From, Session: s.Session, Kind: s.Kind, Data: s.Data})
}

// Peer is the relay at the other end, as its hello and summaries tell it.
func (l *Link) Peer() wire.RelayInfo { return l.peer }

// Has reports whether the other relay announced feature.
func (l *Link) Has(feature string) bool { return l.features.Has(feature) }

// Log is the link's logger.
func (l *Link) Log() *slog.Logger { return l.log }

// Send queues a frame; a link too slow to take it is cut.
func (l *Link) Send(frame []byte) { l.link.Send(frame) }

// Dropped counts a frame a service dropped on this link (an answer nobody
// waits for, say) among the federation's dropped frames.
func (l *Link) Dropped() { l.f.dropped.Add(1) }

// TrySend queues a frame unless the link is busy; it reports whether it
// did.
func (l *Link) TrySend(frame []byte) bool { return l.link.TrySend(frame) }

// SendMsg encodes m and queues it.
func (l *Link) SendMsg(m wire.Message) bool { return l.link.SendMsg(m) }

// Relay is a federated relay as this relay knows it.
type Relay struct {
	Info     wire.RelayInfo
	Features wire.Features
	Link     *Link // nil while down
}

// Known lists the relays this one knows, linked or not (itself not).
func (f *Federation) Known() []Relay {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Relay, 0, len(f.relays))
	for _, rs := range f.relays {
		out = append(out, Relay{Info: rs.info, Features: rs.features, Link: rs.link})
	}
	return out
}

// Lookup returns the relay with key, if known.
func (f *Federation) Lookup(key [32]byte) (Relay, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[key]
	if rs == nil {
		return Relay{}, false
	}
	return Relay{Info: rs.info, Features: rs.features, Link: rs.link}, true
}

// Links lists the links up whose other side announced feature (every
// link up for "").
func (f *Federation) Links(feature string) []*Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Link
	for _, rs := range f.relays {
		if rs.link != nil && (feature == "" || rs.link.Has(feature)) {
			out = append(out, rs.link)
		}
	}
	return out
}

// Linked reports whether the relay with key is linked now.
func (f *Federation) Linked(key [32]byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[key]
	return rs != nil && rs.link != nil
}

// Knows reports whether addr is a member of a linked zone.
func (f *Federation) Knows(addr id.Address) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remote[addr] != nil
}

// Joining reports whether this relay is still joining the federation: a
// -peer it has never reached, whose key it does not know, and that no
// linked relay names as its URL (it may have linked to us before our dial
// got through; as in Relays, the URL is its claim).
func (f *Federation) Joining() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.dialed {
		if !d.known && !f.linkedAtLocked(d.url) {
			return true
		}
	}
	return false
}

// linkedAtLocked reports whether a relay that names url as its own is
// linked.
func (f *Federation) linkedAtLocked(url string) bool {
	url = strings.TrimSuffix(url, "/")
	for _, rs := range f.relays {
		if rs.link != nil && strings.TrimSuffix(rs.info.URL, "/") == url {
			return true
		}
	}
	return false
}

// Stats counts the federation.
type Stats struct {
	Links      int   `json:"links"`      // relay links up
	Relays     int   `json:"relays"`     // relays known, linked or not (this one excluded)
	Members    int   `json:"members"`    // members of federated zones known
	SignalsOut int64 `json:"signalsOut"` // signals sent to other zones
	SignalsIn  int64 `json:"signalsIn"`  // signals from other zones delivered here
	Dropped    int64 `json:"dropped"`    // relay-link frames refused or dropped
	Unknown    int64 `json:"unknown"`    // relay-link frames of unknown types, skipped
}

// Stats returns the federation's counters.
func (f *Federation) Stats() Stats {
	f.mu.Lock()
	s := Stats{Relays: len(f.relays), Members: len(f.remote)}
	for _, rs := range f.relays {
		if rs.link != nil {
			s.Links++
		}
	}
	f.mu.Unlock()
	s.SignalsOut, s.SignalsIn, s.Dropped, s.Unknown = f.signalsOut.Load(), f.signalsIn.Load(), f.dropped.Load(), f.unknown.Load()
	return s
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
func (f *Federation) Relays() []RelayJSON {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []RelayJSON
	listed := map[string]bool{}
	for i, r := range f.knownRelaysLocked() {
		up := i == 0
		if rs := f.relays[r.Key]; rs != nil {
			up = rs.link != nil
		}
		out = append(out, RelayJSON{Zone: r.Zone, URL: r.URL, Key: fmt.Sprintf("%x", r.Key), Nodes: r.Nodes, MaxNodes: r.MaxNodes, Up: up, Self: i == 0})
		listed[strings.TrimSuffix(r.URL, "/")] = true
	}
	for _, d := range f.dialed {
		// A -peer not reached yet, unless a relay at that URL linked to
		// us first (the URL is its claim: for this listing only).
		if !d.known && !listed[strings.TrimSuffix(d.url, "/")] {
			out = append(out, RelayJSON{URL: d.url})
		}
	}
	return out
}
