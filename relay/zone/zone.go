package zone

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"ddt/relay/link"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Limits and timings.
const (
	LeaseTTL      = 7 * 24 * time.Hour // a lease's validity from its issue
	LeaseLapse    = 7 * 24 * time.Hour // an inactive node's address is kept this long
	HelloTimeout  = 10 * time.Second   // from the connection to the node's Hello
	OutQueue      = 512                // frames queued to one node before it counts as stuck
	OutQueueBytes = 1 << 20            // bytes queued to one node before it counts as stuck
	ClosestPeers  = 8                  // in a newcomer's peer list: the closest addresses...
	RandomPeers   = 8                  // ...plus this many random others
	SignalRate    = 100                // signals per second per node, sustained
	SignalBurst   = 400
	// Offers are signals too, and also count against their own, lower
	// rate: each one makes its target spend a connection attempt, so one
	// node must not make hundreds of others dial it at once.
	OfferRate     = 4 // offers per second per node, sustained
	OfferBurst    = 64
	MaxJoining    = 256 // connections between upgrade and admission at once
	RefuseRetryMs = 30_000
	// MaxLeaseRecords is how many lease records the store keeps unless
	// Config.MaxLeases says otherwise. A new key past it evicts the
	// records of the nodes seen longest ago (never a member's), which get
	// a fresh address when they return.
	MaxLeaseRecords = 1 << 18
	// evictShare is the share of MaxLeases one eviction frees (1/16), so
	// that the scan it needs is paid once per many new keys.
	evictShare = 16

	DefaultSweepEvery = time.Hour
)

// Config configures a zone.
type Config struct {
	Name       string             // the zone's name
	URL        string             // this relay's public base URL
	MaxNodes   int                // most members at once
	Redirect   string             // a relay to name when the zone is full and the Directory knows none with room
	ICEServers []string           // handed to admitted nodes
	Key        *identity.Identity // the relay's key: signs leases
	Store      store.Store        // lease records
	Logger     *slog.Logger
	// Clock is behind every lease decision (issue and expiry, when a node
	// was last seen, when its lease lapses) and ticks the sweep.
	// clock.System if nil.
	Clock      clock.Clock
	SweepEvery time.Duration // how often lapsed leases are deleted (DefaultSweepEvery)
	MaxLeases  int           // most lease records kept (MaxLeaseRecords; never below MaxNodes)
}

// Handler serves one node frame from m. Its error decides what happens
// to the link (see link.Link.Serve): nil, a *link.Refusal, or
// link.ErrViolation.
type Handler func(m *Member, msg wire.Message) error

// Salvager is offered a frame of its type that does not decode; it
// reports whether it answered the frame itself.
type Salvager func(m *Member, frame []byte) bool

// Watch is told of members as they join and leave, in order. Its
// functions run with the zone's member lock held, so that, together with
// Snapshot, a watcher sees every change exactly once: they must be quick
// and must not call into the zone.
type Watch struct {
	JoinedLocked func(m *Member)
	LeftLocked   func(m *Member)
}

// Peer is a possible first contact for a newcomer, of this zone or a
// linked one.
type Peer struct {
	Lease  *wire.Lease
	Native bool
}

// Directory is what a zone knows of the zones federated with it;
// relay/federation supplies one. Without one, a zone is alone: its
// newcomers meet only its members and trust only its relay.
//
// The …Locked methods run with the zone's member lock held (an admission
// picks peers and lists relays in the instant it adds the newcomer), so
// they must not call into the zone.
type Directory interface {
	// EachPeerLocked calls fn with every member of a linked zone, each
	// address once. The leases are never modified (a renewed lease is a
	// new one), so fn may keep them.
	EachPeerLocked(fn func(Peer))
	// RelaysLocked lists the relays a newcomer may trust leases from,
	// this one first, and what this relay vouches for about each (flags
	// parallel to the list; this relay's own are SelfFlags).
	RelaysLocked() ([]wire.RelayInfo, []wire.RelayFlags)
	// RoomiestLocked names a linked relay with room for a newcomer this
	// zone refuses, or "".
	RoomiestLocked() string
	// Signal passes a signal from member from to a node of a linked
	// zone. It returns an error wrapping wire.ErrUnknownPeer if no linked
	// zone has that node, and a *link.Refusal if the signal cannot go now
	// (a congested link): the sender hears it, without it counting
	// against them.
	Signal(from *Member, sig *wire.Signal) error
}

// Zone is one zone: admission, leases, members and signaling.
type Zone struct {
	cfg   Config
	log   *slog.Logger
	key   *identity.Identity
	clock clock.Clock

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine and connection the zone runs

	// Set before the first Serve (Handle, Salvage, Watch, OnGone,
	// SetDirectory); read-only after.
	handlers  map[wire.Type]Handler
	salvagers map[wire.Type]Salvager
	features  wire.Features
	watches   []Watch
	gone      []func(*Member)
	dir       Directory
	serving   atomic.Bool

	mu      sync.Mutex
	closed  bool
	members map[id.Address]*Member
	nodes   atomic.Int64 // len(members), readable without mu
	// The signaling budgets of nodes that left, so that reconnecting
	// does not refill one (limits.go).
	recent     map[[32]byte]kept
	departures []departure
	joining    chan struct{} // a slot per connection not yet admitted

	leaseMu sync.Mutex   // serializes read-modify-write of lease records, and admissions
	leases  atomic.Int64 // lease records in the store

	admitted atomic.Int64 // admissions since start
	refused  atomic.Int64
	signals  atomic.Int64 // signals forwarded: within the zone, to a link, from a link
	dropped  atomic.Int64 // frames refused (malformed, misdirected, rate-limited) and connections refused
	unknown  atomic.Int64 // frames of types this relay does not know, skipped

	// What the limits refused, by limit.
	links         link.Counts  // oversized frames, cuts for refusals, full send queues
	busy          atomic.Int64 // connections refused: MaxJoining were joining
	helloTimeouts atomic.Int64 // connections closed: no Hello within HelloTimeout
	rateLimited   atomic.Int64 // signals refused: over SignalRate/SignalBurst
	offersLimited atomic.Int64 // offers refused: over OfferRate/OfferBurst
	evicted       atomic.Int64 // lease records evicted at MaxLeases
	congested     atomic.Int64 // signals dropped: their target's queue was half full
	unannounced   atomic.Int64 // joins and leaves not announced to a member whose queue was half full
}

// Member is an admitted node.
type Member struct {
	zone     *Zone
	link     *link.Link
	lease    wire.Lease
	native   bool
	agent    string
	features wire.Features
	log      *slog.Logger
	budget   *budget // signals and offers, kept across the node's reconnections
}

// New makes a zone and starts its lease sweep; Close stops it.
func New(cfg Config) (*Zone, error) {
	if cfg.Key == nil || cfg.Store == nil {
		return nil, errors.New("zone: a key and a store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.MaxLeases <= 0 {
		cfg.MaxLeases = MaxLeaseRecords
	}
	cfg.MaxLeases = max(cfg.MaxLeases, cfg.MaxNodes)
	keys, err := cfg.Store.Keys(storeLeasePrefix)
	if err != nil {
		return nil, fmt.Errorf("zone: the lease records: %w", err)
	}
	z := &Zone{cfg: cfg, log: cfg.Logger, key: cfg.Key, clock: cfg.Clock,
		handlers: make(map[wire.Type]Handler), salvagers: make(map[wire.Type]Salvager),
		members: make(map[id.Address]*Member), joining: make(chan struct{}, MaxJoining), recent: make(map[[32]byte]kept)}
	z.leases.Store(int64(len(keys)))
	z.ctx, z.cancel = context.WithCancel(context.Background())
	z.Handle(wire.TypeSignal, "", onSignal)
	z.wg.Add(1)
	go z.sweepLoop()
	return z, nil
}

// Close ends every node's link and stops the zone's goroutines; it
// returns once they are gone (lease records are written by then).
func (z *Zone) Close() {
	z.mu.Lock()
	z.closed = true
	z.mu.Unlock()
	z.cancel()
	z.wg.Wait()
}

// setup panics unless the zone has not served yet: handlers and hooks
// are wired before the first connection.
func (z *Zone) setup(what string) {
	if z.serving.Load() {
		panic("zone: " + what + " after the zone started serving")
	}
}

// Handle routes node frames of type t to h. A feature other than "" is
// the node-facing service h belongs to; the Challenge lists it. (Nodes
// are served whether or not their Hello lists it: nodes of today list
// nothing.) Call before the first Serve.
func (z *Zone) Handle(t wire.Type, feature string, h Handler) {
	z.setup("Handle")
	if z.handlers[t] != nil {
		panic(fmt.Sprintf("zone: type %d handled twice", t))
	}
	z.handlers[t] = h
	if feature != "" {
		z.features = wire.NewFeatures(append(z.features, feature)...)
	}
}

// Salvage offers s the frames of type t that do not decode. Call before
// the first Serve.
func (z *Zone) Salvage(t wire.Type, s Salvager) {
	z.setup("Salvage")
	z.salvagers[t] = s
}

// Watch adds w. Call before the first Serve.
func (z *Zone) Watch(w Watch) {
	z.setup("Watch")
	z.watches = append(z.watches, w)
}

// OnGone calls fn once a member's link has ended, before the zone hears
// of its departure. Call before the first Serve.
func (z *Zone) OnGone(fn func(*Member)) {
	z.setup("OnGone")
	z.gone = append(z.gone, fn)
}

// SetDirectory federates the zone. Call before the first Serve.
func (z *Zone) SetDirectory(d Directory) {
	z.setup("SetDirectory")
	z.dir = d
}

// Features lists the node-facing services registered.
func (z *Zone) Features() wire.Features { return z.features }

// enter registers a connection's goroutine unless the zone is closing;
// the caller calls z.wg.Done when it ends.
func (z *Zone) enter() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.closed {
		return false
	}
	z.wg.Add(1)
	return true
}

func (z *Zone) sweepLoop() {
	defer z.wg.Done()
	t := z.clock.NewTicker(z.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C():
			if _, err := z.Sweep(); err != nil {
				z.log.Error("lease sweep", "err", err)
			}
		case <-z.ctx.Done():
			return
		}
	}
}

// Name is the zone's name.
func (z *Zone) Name() string { return z.cfg.Name }

// Key returns the relay's public signing key.
func (z *Zone) Key() [32]byte { return z.key.SignKey() }

// Clock is the zone's clock.
func (z *Zone) Clock() clock.Clock { return z.clock }

// Info describes this relay as other relays and nodes see it.
func (z *Zone) Info() wire.RelayInfo {
	return wire.RelayInfo{Zone: z.cfg.Name, URL: z.cfg.URL, Key: z.Key(), Nodes: uint32(z.nodes.Load()), MaxNodes: uint32(z.cfg.MaxNodes)}
}

// Stats counts the zone.
type Stats struct {
	Zone     string
	URL      string
	RelayKey string // hex
	Nodes    int
	MaxNodes int
	Admitted int64
	Refused  int64
	Signals  int64 // forwarded: within the zone, to relay links and from them
	Dropped  int64 // frames and connections refused
	Unknown  int64 // frames of unknown types, skipped
	Limits   Limits
}

// Limits is what the zone holds for nodes, against its bounds, and what
// each bound refused since start (/healthz "limits").
type Limits struct {
	Joining       int   `json:"joining"`       // connections between upgrade and admission now (at most MaxJoining)
	Busy          int64 `json:"busy"`          // connections refused with HTTP 503: MaxJoining were joining
	HelloTimeouts int64 `json:"helloTimeouts"` // connections closed without a Hello within HelloTimeout
	RateLimited   int64 `json:"rateLimited"`   // signals refused: faster than SignalRate, bursts of SignalBurst
	OffersLimited int64 `json:"offersLimited"` // offers refused: faster than OfferRate, bursts of OfferBurst
	Cut           int64 `json:"cut"`           // node links cut at link.MaxViolations refused frames
	Oversized     int64 `json:"oversized"`     // node links closed for a frame over wire.MaxFrame
	Stuck         int64 `json:"stuck"`         // node links cut because their send queue held OutQueue frames or OutQueueBytes
	QueuedBytes   int64 `json:"queuedBytes"`   // bytes waiting in members' send queues now
	LeaseRecords  int64 `json:"leaseRecords"`  // lease records in the store now
	MaxLeases     int   `json:"maxLeases"`     // the most it keeps
	LeasesEvicted int64 `json:"leasesEvicted"` // records evicted at MaxLeases, seen longest ago first
	Congested     int64 `json:"congested"`     // signals dropped: their target's send queue was half full
	BudgetsKept   int   `json:"budgetsKept"`   // departed nodes' signaling budgets remembered now (at most RecentLimiters)
	Unannounced   int64 `json:"unannounced"`   // joins and leaves not told to a member: its send queue was half full
}

// Stats returns the zone's counters.
func (z *Zone) Stats() Stats {
	k := z.Key()
	var queued int64
	z.mu.Lock()
	for _, m := range z.members {
		queued += m.link.Queued()
	}
	kept := len(z.recent)
	z.mu.Unlock()
	return Stats{Zone: z.cfg.Name, URL: z.cfg.URL, RelayKey: hex.EncodeToString(k[:]), Nodes: int(z.nodes.Load()), MaxNodes: z.cfg.MaxNodes,
		Admitted: z.admitted.Load(), Refused: z.refused.Load(), Signals: z.signals.Load(), Dropped: z.dropped.Load(), Unknown: z.unknown.Load(),
		Limits: Limits{Joining: z.Joining(), Busy: z.busy.Load(), HelloTimeouts: z.helloTimeouts.Load(), RateLimited: z.rateLimited.Load(),
			OffersLimited: z.offersLimited.Load(), Cut: z.links.Cut.Load(), Oversized: z.links.Oversized.Load(), Stuck: z.links.Overflow.Load(),
			QueuedBytes: queued, LeaseRecords: z.leases.Load(), MaxLeases: z.cfg.MaxLeases, LeasesEvicted: z.evicted.Load(),
			Congested: z.congested.Load(), BudgetsKept: kept, Unannounced: z.unannounced.Load()}}
}

// JoinSlot reserves room for one more connection to go through admission;
// false means too many are joining at once (a connection flood) and the
// caller should refuse before upgrading. Serve releases the slot.
func (z *Zone) JoinSlot() bool {
	select {
	case z.joining <- struct{}{}:
		return true
	default:
		z.dropped.Add(1)
		z.busy.Add(1)
		return false
	}
}

// ReleaseSlot gives back a JoinSlot that did not reach Serve.
func (z *Zone) ReleaseSlot() { <-z.joining }

// Joining is how many connections hold a JoinSlot now.
func (z *Zone) Joining() int { return len(z.joining) }

// Serve runs one node's connection until it closes. The caller holds a
// JoinSlot, which Serve releases once admission is decided.
func (z *Zone) Serve(ctx context.Context, conn transport.Conn, remote string) {
	z.serving.Store(true)
	defer conn.Close()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { <-z.joining }) }
	defer release()
	if !z.enter() {
		link.Close(conn, link.StatusGoingAway, "relay shutting down")
		return
	}
	defer z.wg.Done()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(z.ctx, stop)()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	log := z.log.With("remote", remote)

	ch := &wire.Challenge{Zone: z.cfg.Name, RelayKey: z.Key(), Features: z.features}
	rand.Read(ch.Nonce[:])
	hctx, cancel := context.WithTimeout(ctx, HelloTimeout)
	defer cancel()
	inTime := link.Deadline(hctx, conn)
	if err := link.Write(conn, ch); err != nil {
		return
	}
	hello, err := readHello(conn)
	if err != nil && hctx.Err() != nil && ctx.Err() == nil {
		log.Info("admission failed: no hello in time", "timeout", HelloTimeout)
		z.dropped.Add(1)
		z.helloTimeouts.Add(1)
		return
	}
	if err != nil {
		log.Info("admission failed", "err", err)
		z.dropped.Add(1)
		link.Write(conn, &wire.Error{Code: wire.CodeOf(err), Message: link.Truncate(err.Error(), wire.MaxReason)})
		link.Close(conn, link.StatusPolicyViolation, "admission failed")
		return
	}
	if !identity.Verify(hello.SignKey, wire.HelloSignedBytes(ch, hello.SignKey, hello.AgreeKey, hello.Native), hello.Sig) {
		log.Info("admission refused: bad signature")
		z.dropped.Add(1)
		link.Write(conn, &wire.Error{Code: wire.CodeBadSignature, Message: "hello signature does not verify"})
		link.Close(conn, link.StatusPolicyViolation, "bad signature")
		return
	}
	m := &Member{zone: z, native: hello.Native, agent: hello.Agent, features: hello.Features}
	adm, old, redirect, err := z.enroll(m, hello, conn, inTime, log)
	switch {
	case errors.Is(err, errLate):
		return // the deadline closed the connection
	case err != nil && !errors.Is(err, errFull):
		log.Error("lease store", "err", err)
		link.Write(conn, &wire.Error{Code: wire.CodeInternal, Message: "relay storage failed"})
		return
	}
	log = m.log
	lease := m.lease
	if err != nil {
		z.refused.Add(1)
		reason := fmt.Sprintf("zone %s is full: it admits at most %d %s", z.cfg.Name, z.cfg.MaxNodes, plural(z.cfg.MaxNodes, "node", "nodes"))
		log.Info("admission refused: zone full", "nodes", z.cfg.MaxNodes, "redirect", redirect)
		link.Write(conn, &wire.Refused{Code: wire.CodeZoneFull, Reason: reason, Redirect: redirect, RetryAfterMs: RefuseRetryMs})
		link.Close(conn, link.StatusTryAgainLater, "zone full")
		return
	}
	z.admitted.Add(1)
	release()
	if old != nil {
		old.link.Stop("replaced by a new connection from the same node")
	}
	log.Info("admitted", "native", hello.Native, "agent", hello.Agent, "features", hello.Features, "peers", len(adm.Peers), "relays", len(adm.Relays))
	z.announce(m, &wire.PeerJoined{Lease: lease, Native: hello.Native})

	m.link.Serve(m.handle)
	m.link.Stop(link.WhyGone)
	for _, fn := range z.gone {
		fn(m)
	}
	m.link.Wait()
	if z.leave(m) {
		z.announce(m, &wire.PeerLeft{Address: lease.Address})
	}
	log.Info("node left", "why", m.link.Why())
}

func readHello(conn transport.Conn) (*wire.Hello, error) {
	m, err := link.Read(conn)
	if err != nil {
		return nil, err
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("%w: expected Hello, got type %d", wire.ErrProtocol, m.Type())
	}
	return hello, nil
}

var (
	errFull = errors.New("zone full")
	errLate = errors.New("admission past its deadline")
)

// enroll issues m's lease for hello's keys and admits it over conn. It
// holds z.leaseMu throughout, so that no other admission takes the room
// between the check and the admission, and writes the lease record only
// once the node is sure to be admitted: a flood of fresh keys at a full
// zone leaves nothing in the store. It returns errFull with the relay to
// redirect to, errLate if inTime says the hello deadline closed conn, or
// the store's error.
func (z *Zone) enroll(m *Member, hello *wire.Hello, conn transport.Conn, inTime func() bool, log *slog.Logger) (adm *wire.Admitted, old *Member, redirect string, err error) {
	z.leaseMu.Lock()
	defer z.leaseMu.Unlock()
	now := z.clock.Now()
	lease, fresh, err := z.issueLeaseLocked(hello.SignKey, hello.AgreeKey, now, log)
	if err != nil {
		return nil, nil, "", err
	}
	m.lease = lease
	m.log = log.With("node", lease.Address.Short())
	if r, ok := z.roomFor(lease.Address); !ok {
		return nil, nil, r, errFull
	}
	if !inTime() {
		return nil, nil, "", errLate
	}
	if err := z.saveLeaseLocked(leaseKey(lease.SignKey), &leaseRecord{lease: lease, seen: now}, fresh); err != nil {
		return nil, nil, "", err
	}
	adm, old, redirect, ok := z.admit(m, conn)
	if !ok {
		return nil, nil, redirect, errFull
	}
	return adm, old, "", nil
}

// roomFor reports whether the node at addr may be admitted now (a member
// reconnecting always may), and else the relay to redirect it to.
func (z *Zone) roomFor(addr id.Address) (redirect string, ok bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.members[addr] == nil && len(z.members) >= z.cfg.MaxNodes {
		return z.redirectLocked(), false
	}
	return "", true
}

// admit makes m a member over conn unless the zone is full; a node that
// reconnects replaces its old link, which is returned. Its Admitted is
// the first frame queued to it, so nothing overtakes it. Refused, it
// returns the relay to redirect to.
func (z *Zone) admit(m *Member, conn transport.Conn) (adm *wire.Admitted, old *Member, redirect string, ok bool) {
	z.mu.Lock()
	defer z.mu.Unlock()
	old = z.members[m.lease.Address]
	if old == nil && len(z.members) >= z.cfg.MaxNodes {
		return nil, nil, z.redirectLocked(), false
	}
	m.budget = z.budgetForLocked(m.lease.SignKey, old)
	m.link = link.New(conn, link.Config{Queue: OutQueue, QueueBytes: OutQueueBytes, Logger: m.log, Dropped: &z.dropped, Unknown: &z.unknown,
		Salvage: m.salvage, Counts: &z.links})
	z.members[m.lease.Address] = m
	z.nodes.Store(int64(len(z.members)))
	adm = &wire.Admitted{Lease: m.lease, ICEServers: z.cfg.ICEServers}
	adm.Relays, adm.Flags = z.relaysLocked()
	if len(adm.Relays) > wire.MaxRelays {
		adm.Relays, adm.Flags = adm.Relays[:wire.MaxRelays], adm.Flags[:wire.MaxRelays]
	}
	for _, p := range z.pickPeersLocked(&m.lease) {
		adm.Peers = append(adm.Peers, *p.Lease)
		adm.Natives = append(adm.Natives, p.Native)
	}
	m.link.SendMsg(adm)
	for _, w := range z.watches {
		w.JoinedLocked(m)
	}
	return adm, old, "", true
}

// relaysLocked lists the relays a newcomer may trust, this one first,
// with their flags.
func (z *Zone) relaysLocked() ([]wire.RelayInfo, []wire.RelayFlags) {
	if z.dir == nil {
		return []wire.RelayInfo{z.Info()}, []wire.RelayFlags{z.SelfFlags()}
	}
	return z.dir.RelaysLocked()
}

// SelfFlags is what this relay vouches for about itself in an
// admission: always trusted, and whether it runs the username and the
// domain service.
func (z *Zone) SelfFlags() wire.RelayFlags {
	f := wire.RelayTrusted
	if z.features.Has(wire.FeatureNames) {
		f |= wire.RelayNames
	}
	if z.features.Has(wire.FeatureSites) {
		f |= wire.RelaySites
	}
	return f
}

// redirectLocked names the relay a refused newcomer should try.
func (z *Zone) redirectLocked() string {
	if z.dir != nil {
		if r := z.dir.RoomiestLocked(); r != "" {
			return r
		}
	}
	return z.cfg.Redirect
}

// pickPeersLocked returns the members closest to l's address plus random
// others, drawn from this zone and every linked zone alike, so the
// overlay is one network. It looks at each candidate once and keeps only
// ClosestPeers+RandomPeers of them at a time: the ClosestPeers closest
// (a sorted list, insertion), and a uniform sample of
// ClosestPeers+RandomPeers (reservoir sampling), from which the random
// others are those not among the closest. Its work is linear in the
// candidates, which the federation bounds (MaxFederatedMembers), and its
// memory constant, so an admission stays cheap however many members
// linked zones claim.
func (z *Zone) pickPeersLocked(l *wire.Lease) []Peer {
	const sample = ClosestPeers + RandomPeers
	var (
		closest []Peer // sorted, closest first
		pool    []Peer // the reservoir
		seen    int64
	)
	addr := l.Address
	consider := func(p Peer) {
		seen++
		if len(pool) < sample {
			pool = append(pool, p)
		} else if j := randN(seen); j < sample {
			pool[j] = p
		}
		if len(closest) == ClosestPeers && !id.Closer(addr, p.Lease.Address, closest[ClosestPeers-1].Lease.Address) {
			return
		}
		i := sort.Search(len(closest), func(i int) bool { return id.Closer(addr, p.Lease.Address, closest[i].Lease.Address) })
		if len(closest) < ClosestPeers {
			closest = append(closest, Peer{})
		}
		copy(closest[i+1:], closest[i:])
		closest[i] = p
	}
	for a, m := range z.members {
		if a != l.Address && m.lease.SignKey != l.SignKey {
			consider(Peer{&m.lease, m.native})
		}
	}
	if z.dir != nil {
		z.dir.EachPeerLocked(func(p Peer) {
			if a := p.Lease.Address; a != l.Address && p.Lease.SignKey != l.SignKey && z.members[a] == nil {
				consider(p)
			}
		})
	}
	if seen <= sample {
		// Every candidate is in the pool: the closest first, then the rest.
		return append(closest, others(pool, closest)...)
	}
	rest := others(pool, closest)
	for i := range rest {
		j := i + int(randN(int64(len(rest)-i)))
		rest[i], rest[j] = rest[j], rest[i]
	}
	if len(rest) > RandomPeers {
		rest = rest[:RandomPeers]
	}
	return append(closest, rest...)
}

// others returns the peers of pool not in picked.
func others(pool, picked []Peer) []Peer {
	var out []Peer
	for _, p := range pool {
		in := false
		for _, q := range picked {
			if q.Lease.Address == p.Lease.Address {
				in = true
				break
			}
		}
		if !in {
			out = append(out, p)
		}
	}
	return out
}

// randN returns a uniform random integer in [0, n). It is math/rand's
// ChaCha8, seeded per process: unpredictable to a remote party, and cheap
// enough to draw once per candidate.
func randN(n int64) int64 { return mathrand.Int64N(n) }

// leave removes m if it is still the member for its address, tells the
// watches, and records when the node was last seen.
func (z *Zone) leave(m *Member) bool {
	if z.Member(m.lease.Address) != m {
		return false
	}
	// The last sighting is on record before the node is gone.
	if err := z.touch(&m.lease); err != nil {
		z.log.Warn("lease store", "node", m.lease.Address.Short(), "err", err)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.members[m.lease.Address] != m {
		return false
	}
	delete(z.members, m.lease.Address)
	z.nodes.Store(int64(len(z.members)))
	z.keepBudgetLocked(m)
	for _, w := range z.watches {
		w.LeftLocked(m)
	}
	return true
}

// Snapshot calls fn with every member, with the member lock held: a Watch
// sees only the changes after it. fn must not call into the zone.
func (z *Zone) Snapshot(fn func(members []*Member)) {
	z.mu.Lock()
	defer z.mu.Unlock()
	ms := make([]*Member, 0, len(z.members))
	for _, m := range z.members {
		ms = append(ms, m)
	}
	fn(ms)
}

// Member returns the member at addr, or nil.
func (z *Zone) Member(addr id.Address) *Member {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.members[addr]
}

// announce sends msg to every member but m.
func (z *Zone) announce(m *Member, msg wire.Message) {
	b, err := wire.Marshal(msg)
	if err != nil {
		return
	}
	z.mu.Lock()
	others := make([]*Member, 0, len(z.members))
	for _, o := range z.members {
		if o != m {
			others = append(others, o)
		}
	}
	z.mu.Unlock()
	// Announcements are hints (the newcomer's peers learn of it through
	// the overlay too): a member too slow to take one misses it rather
	// than being cut, so churn by others cannot cut a slow node.
	for _, o := range others {
		if !o.link.TrySend(b) {
			z.unannounced.Add(1)
		}
	}
}

// Deliver queues sig, a signal from a node of a linked zone, to member
// to; it counts among the signals forwarded. A member whose queue is
// half full does not get it (counted as congested): signals from others
// never get a node cut for being slow.
func (z *Zone) Deliver(to *Member, sig *wire.Signal) {
	b, err := wire.Marshal(sig)
	if err != nil {
		return
	}
	if !to.link.TrySend(b) {
		z.congested.Add(1)
		return
	}
	z.signals.Add(1)
}

// handle serves one frame from m with the handler for its type.
func (m *Member) handle(msg wire.Message) error {
	h := m.zone.handlers[msg.Type()]
	if h == nil {
		return link.Refuse(wire.CodeProtocol, "nodes may not send type %d to the relay", msg.Type())
	}
	return h(m, msg)
}

func (m *Member) salvage(frame []byte) bool {
	t, _ := wire.TypeOf(frame)
	s := m.zone.salvagers[t]
	return s != nil && s(m, frame)
}

// onSignal forwards a signal to its target, in this zone or across a
// relay link.
func onSignal(m *Member, msg wire.Message) error {
	sig := msg.(*wire.Signal)
	z := m.zone
	// The zone's clock, not the limiter's own, so tests can step it.
	now := z.clock.Now()
	if !m.budget.signals.AllowN(now, 1) {
		z.rateLimited.Add(1)
		return link.Refuse(wire.CodeRateLimited, "signaling faster than allowed: at most %d signals a second, in bursts of %d", SignalRate, SignalBurst)
	}
	if sig.Kind == wire.SignalOffer && !m.budget.offers.AllowN(now, 1) {
		z.offersLimited.Add(1)
		return link.Refuse(wire.CodeRateLimited, "offering connections faster than allowed: at most %d offers a second, in bursts of %d", OfferRate, OfferBurst)
	}
	to := z.Member(sig.Peer)
	switch {
	case to != nil && to != m:
		fwd := *sig
		fwd.Peer = m.lease.Address
		b, err := wire.Marshal(&fwd)
		switch {
		case err != nil:
		case to.link.TrySend(b):
			z.signals.Add(1)
		default:
			// The target is slow: it keeps its link, the signal is
			// dropped, and the sender hears it without it counting
			// against them, as for a congested relay link.
			z.congested.Add(1)
			m.Reject(wire.CodeRateLimited, fmt.Sprintf("node %s is not taking signals now; try again shortly", sig.Peer.Short()))
		}
		return nil
	case to == nil && z.dir != nil:
		// Counted before it is queued, so no answer can overtake the count.
		z.signals.Add(1)
		err := z.dir.Signal(m, sig)
		if err == nil {
			return nil
		}
		z.signals.Add(-1)
		var r *link.Refusal
		if errors.As(err, &r) {
			z.dropped.Add(1)
			m.Reject(r.Code, r.Message)
			return nil
		}
	}
	return link.Refuse(wire.CodeUnknownPeer, "no node %s in this zone or a federated one", sig.Peer)
}

// Lease is the member's lease.
func (m *Member) Lease() wire.Lease { return m.lease }

// Address is the member's address.
func (m *Member) Address() id.Address { return m.lease.Address }

// Native reports whether the member is a headless native node.
func (m *Member) Native() bool { return m.native }

// Features are what the member's Hello listed.
func (m *Member) Features() wire.Features { return m.features }

// Log is the member's logger.
func (m *Member) Log() *slog.Logger { return m.log }

// Send queues a frame to the member; a member too slow to take it is cut.
func (m *Member) Send(frame []byte) { m.link.Send(frame) }

// SendMsg encodes msg and queues it to the member.
func (m *Member) SendMsg(msg wire.Message) bool { return m.link.SendMsg(msg) }

// Reject queues an Error to the member.
func (m *Member) Reject(code wire.Code, msg string) { m.link.Reject(code, msg) }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
