package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"ddt/shared/clock"
	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Capability is a feature built on the node — usernames, content, sites,
// chat, channels, streams, credits — in a package of its own. The node
// imports none of them: the edge (wasm/, relay/) lists them in
// Config.Capabilities, and New hands each a Host, the one API it builds on.
type Capability interface {
	// Feature names the capability in hellos (e.g. wire.FeatureNames): a
	// node sends a capability's messages only to peers and relays that
	// announced it. 1–32 bytes of a–z, 0–9 and '-'.
	Feature() string
	// Attach is called once, by New, before the node runs: the
	// capability keeps h and registers its handlers on it. Registering
	// a message type twice (or one the node handles) fails New.
	Attach(h *Host) error
}

// PeerHandler handles a frame a connected peer sent on one of its
// channels. It runs on that channel's read loop: it must not block (hand
// slow work to a goroutine).
type PeerHandler func(from PeerInfo, m wire.Message)

// RoutedHandler handles a frame routed through the overlay to this node,
// after the origin's lease and signature verified. It runs on the read
// loop of the peer that delivered it: it must not block.
type RoutedHandler func(origin wire.Lease, m wire.Message)

// RequestHandler answers a request (sent with Host.Request, directly or
// routed). It runs on a goroutine of its own, with a deadline in ctx; a
// non-nil error goes back as a wire.Error with its code.
type RequestHandler func(ctx context.Context, from id.Address, req wire.Message) (wire.Message, error)

// RelayHandler handles a frame from the node's relay that is not a reply
// to a RelayRequest. It runs on the relay's read loop: it must not block.
type RelayHandler func(m wire.Message)

// handlers are the node's dispatch tables, fixed once New returns.
type handlers struct {
	peer    map[wire.Type]func(*peer, wire.Message)
	routed  map[wire.Type]RoutedHandler
	request map[wire.Type]RequestHandler
	relay   map[wire.Type]RelayHandler
	owner   map[wire.Type]string // who registered each type: a feature, or "node"
}

func newHandlers() handlers {
	return handlers{
		peer:    map[wire.Type]func(*peer, wire.Message){},
		routed:  map[wire.Type]RoutedHandler{},
		request: map[wire.Type]RequestHandler{},
		relay:   map[wire.Type]RelayHandler{},
		owner:   map[wire.Type]string{},
	}
}

// claim records that owner handles type t on table kind; a second claim
// of one type on one table is an error.
func (hs *handlers) claim(kind string, t wire.Type, owner string, taken bool) error {
	if !wire.Known(t) {
		return fmt.Errorf("%s handler for type %d, which package wire does not define", kind, t)
	}
	if taken {
		return fmt.Errorf("%s handler for type %d: already handled by %s", kind, t, hs.owner[t])
	}
	hs.owner[t] = owner
	return nil
}

// Host is what the node offers one capability: its identity and lease,
// the DHT, its peers and the overlay, its relay, its events, a namespace
// of its store, its clock. Handlers are registered in Capability.Attach;
// every other method may be called at any time from any goroutine.
type Host struct {
	n        *Node
	feature  string
	log      *slog.Logger
	ns       *store.Namespace
	err      error // the first registration error, reported by New
	attached bool  // Attach has returned: no more registrations
}

// Feature is the capability's feature name.
func (h *Host) Feature() string { return h.feature }

// Identity is the node's keys.
func (h *Host) Identity() *identity.Identity { return h.n.id }

// Fresh reports whether the node made its identity just now (a first
// visit): then nothing of an earlier run is in its store, and a capability
// need not look for it.
func (h *Host) Fresh() bool { return h.n.fresh }

// Lease is the node's current lease (zero before its first admission).
func (h *Host) Lease() wire.Lease {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	return h.n.lease
}

// ZoneOf returns the zone of the relay with key, if this node trusts it:
// its own relay or one its relay federates with (for checking records a
// relay signed).
func (h *Host) ZoneOf(key [32]byte) (string, bool) { return h.n.zoneOf(key) }

// VerifyLease checks a lease from any zone this node trusts (its relay's
// or a federated one's): signed by that zone's relay, for that zone, and
// current. Capabilities check the leases in the records others sign
// (provider records) with it.
func (h *Host) VerifyLease(l *wire.Lease) error { return h.n.verifyLease(l) }

// Relays lists the relays the node's last admission named, the admitting
// one first, with what it vouches for about each (wire.RelayTrusted,
// wire.RelayNames); nil before the first admission.
func (h *Host) Relays() []KnownRelay {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	return slices.Clone(h.n.relays)
}

// Clock is the node's clock: every timer a capability sets comes from it.
func (h *Host) Clock() clock.Clock { return h.n.clock }

// Logger is the node's logger, with part=<feature>.
func (h *Host) Logger() *slog.Logger { return h.log }

// Life ends when the node stops: background work ends with it.
func (h *Host) Life() context.Context { return h.n.life }

// Store is the capability's namespace of the node's store: keys are its
// own ("<feature>/" in the node's store), at most MaxKeySize less that.
func (h *Host) Store() store.Store { return h.ns }

// Adopt moves a record an earlier version kept under legacy, outside any
// namespace, to key in the capability's namespace, unless key is already
// there. A missing legacy record is not an error.
func (h *Host) Adopt(legacy, key string) error {
	root := h.n.cfg.Store
	b, err := root.Get(legacy)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := h.Store().Get(key); errors.Is(err, store.ErrNotFound) {
		if err := store.PutDurable(h.Store(), key, b); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	return root.Delete(legacy)
}

// Emit tells the node's subscribers (window.ddt's listeners, the native
// node's log) of something a user would notice: kind names the event,
// value is its payload, a view with JSON field names.
func (h *Host) Emit(kind string, value any) { h.n.emit(Event{Kind: kind, Value: value}) }

// OnAdmitted registers fn to run, on a goroutine of its own, after every
// admission by a relay; ctx ends with that relay session. Call it in Attach.
func (h *Host) OnAdmitted(fn func(ctx context.Context, lease wire.Lease)) {
	if h.registering("admission hook") {
		h.n.admitted = append(h.n.admitted, fn)
	}
}

// registering reports whether handlers may still be registered, and
// panics if Attach has returned: registration after the node is built is
// a programming error.
func (h *Host) registering(what string) bool {
	if h.attached {
		panic(fmt.Sprintf("node: %s registered by %s after Attach returned", what, h.feature))
	}
	return h.err == nil
}

func (h *Host) fail(err error) {
	if h.err == nil {
		h.err = err
	}
}

// HandlePeer registers fn for frames of type t that peers send on their
// channels. Call it in Attach.
func (h *Host) HandlePeer(t wire.Type, fn PeerHandler) {
	register(h, "peer", h.n.handlers.peer, t, func(p *peer, m wire.Message) { fn(p.info(), m) })
}

// HandleRouted registers fn for frames of type t routed to this node.
// Call it in Attach.
func (h *Host) HandleRouted(t wire.Type, fn RoutedHandler) {
	register(h, "routed", h.n.handlers.routed, t, fn)
}

// HandleRequest registers fn to answer requests of type t. Call it in
// Attach.
func (h *Host) HandleRequest(t wire.Type, fn RequestHandler) {
	register(h, "request", h.n.handlers.request, t, fn)
}

// HandleRelay registers fn for frames of type t from the relay. Call it
// in Attach.
func (h *Host) HandleRelay(t wire.Type, fn RelayHandler) {
	register(h, "relay", h.n.handlers.relay, t, fn)
}

// register puts fn in table under t for h's capability, unless t is
// already there (or not a type at all): then New fails with why.
func register[F any](h *Host, kind string, table map[wire.Type]F, t wire.Type, fn F) {
	if !h.registering(kind + " handler") {
		return
	}
	_, taken := table[t]
	if err := h.n.handlers.claim(kind, t, h.feature, taken); err != nil {
		h.fail(err)
		return
	}
	table[t] = fn
}

// Peers lists the peers with an open data channel.
func (h *Host) Peers() []PeerInfo { return h.n.Peers() }

// peerFor returns the connected peer at addr if it announced the
// capability's feature.
func (h *Host) peerFor(addr id.Address) (*peer, error) {
	p := h.n.peer(addr)
	if p == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, addr.Short())
	}
	if !p.features.Has(h.feature) {
		return nil, fmt.Errorf("%w: peer %s has no %s", ErrUnsupported, addr.Short(), h.feature)
	}
	return p, nil
}

// Send queues m for the connected peer at addr on its control channel.
// It fails with ErrNotConnected, ErrUnsupported if the peer did not
// announce the capability, or ErrQueueFull if the peer's send queue
// (MaxQueuedBytes) stayed full for the peer timeout.
func (h *Host) Send(addr id.Address, m wire.Message) error {
	p, err := h.peerFor(addr)
	if err != nil {
		return err
	}
	p.touch()
	return p.send(h.n.life, m)
}

// SendBulk is Send on the peer's bulk channel (its control channel if
// the link has none): for large transfers, which then never delay
// keepalives or lookups. It waits while the channel is full (the
// receiver's back-pressure), for as long as ctx lasts: a send that
// stalls ends with ctx's error. Frames go out in the order sent, even
// when a caller gave up waiting on one.
func (h *Host) SendBulk(ctx context.Context, addr id.Address, m wire.Message) error {
	p, err := h.peerFor(addr)
	if err != nil {
		return err
	}
	p.touch()
	return p.sendBulk(ctx, m)
}

// Connect opens a data channel to addr, if none is open, and keeps it
// open (see Node.Connect); it fails with ErrUnsupported if the peer did
// not announce the capability.
func (h *Host) Connect(ctx context.Context, addr id.Address) (PeerInfo, error) {
	if p, err := h.peerFor(addr); err == nil {
		return p.info(), nil
	}
	info, err := h.n.Connect(ctx, addr)
	if err != nil {
		return info, err
	}
	if !info.Features.Has(h.feature) {
		return info, fmt.Errorf("%w: peer %s has no %s", ErrUnsupported, addr.Short(), h.feature)
	}
	return info, nil
}

// Gone returns a channel that is closed when the data channel to addr
// closes: a transfer waiting on that peer ends then rather than at its
// deadline. It is closed already if no channel is open.
func (h *Host) Gone(addr id.Address) <-chan struct{} {
	if p := h.n.peer(addr); p != nil {
		return p.gone
	}
	return closedChan
}

// closedChan is a channel closed from the start.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Ping measures the round trip to the connected peer at addr.
func (h *Host) Ping(ctx context.Context, addr id.Address) (time.Duration, error) {
	return h.n.Ping(ctx, addr)
}

// Closest looks up key in the DHT and returns up to n of the live nodes
// closest to it, closest first: those that answered the lookup, with
// this node among them if it is that close.
func (h *Host) Closest(ctx context.Context, key id.Address, n int) ([]id.Address, error) {
	d := h.n.table()
	if d == nil {
		return nil, ErrNotAdmitted
	}
	res, err := d.Lookup(ctx, key)
	if err != nil && len(res.Closest) == 0 {
		return nil, err
	}
	out := slices.Clone(res.Closest)
	self := h.n.Address()
	if !slices.Contains(out, self) {
		out = append(out, self)
	}
	slices.SortFunc(out, func(a, b id.Address) int {
		switch {
		case a == b:
			return 0
		case id.Closer(key, a, b):
			return -1
		default:
			return 1
		}
	})
	return out[:min(n, len(out))], nil
}

// Contacts lists the addresses in the node's routing table (connected
// or not), in no particular order: where a capability picks nodes at
// random (the intermediaries of a key exchange's chains).
func (h *Host) Contacts() []id.Address {
	d := h.n.table()
	if d == nil {
		return nil
	}
	cs := d.Contacts()
	out := make([]id.Address, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Address)
	}
	return out
}

// Forget stops republishing the record this node put under key (Put);
// the copies the DHT holds expire with their TTL.
func (h *Host) Forget(key id.Address) {
	if d := h.n.table(); d != nil {
		d.Forget(key, h.n.id.SignKey())
	}
}

// SendRouted signs m and sends it toward dest through the overlay (the
// destination gets it if it has a RoutedHandler for m's type).
func (h *Host) SendRouted(dest id.Address, m wire.Message) error {
	return h.n.sendRouted(h.n.life, dest, m)
}

// Request sends req to the node at to — over its data channel if one is
// open (and it announced the capability), else routed through the
// overlay — and waits for the answer of its RequestHandler. A refusal
// comes back as an error wrapping a *wire.RemoteError (wire.ErrUnsupported
// if to has no handler for req's type).
func (h *Host) Request(ctx context.Context, to id.Address, req wire.Message) (wire.Message, error) {
	if p := h.n.peer(to); p != nil && !p.features.Has(h.feature) {
		return nil, fmt.Errorf("%w: peer %s has no %s", ErrUnsupported, to.Short(), h.feature)
	}
	return h.n.call(ctx, to, req)
}

// DHT: Get collects the valid records under key, Put stores r (signed)
// at the nodes closest to its key and republishes it, Lookup finds a node.

// Get collects the valid records the DHT holds under key.
func (h *Host) Get(ctx context.Context, key id.Address) ([]dht.Record, error) {
	return h.n.Get(ctx, key)
}

// Put stores r at the nodes closest to its key and keeps it published
// (republished every 12 h); it returns how many nodes stored it.
func (h *Host) Put(ctx context.Context, r dht.Record) (int, error) {
	d := h.n.table()
	if d == nil {
		return 0, ErrNotAdmitted
	}
	return d.Put(ctx, r)
}

// Lookup finds the node at target through the DHT.
func (h *Host) Lookup(ctx context.Context, target id.Address) (LookupResult, error) {
	return h.n.Lookup(ctx, target)
}

// RelayHas reports whether the node's relay announced the capability.
func (h *Host) RelayHas() bool {
	h.n.mu.Lock()
	defer h.n.mu.Unlock()
	return h.n.relayFeatures.Has(h.feature)
}

// RelayRequest sends the request mk(id) to the relay and waits for the
// frame that answers that id (a wire.Reply). It waits for the relay while
// it is away; if the relay connection drops before the answer, it asks
// once more on the next one. Failures are *Error values worded for
// people: CodeUnavailable (the relay is away, congested, or does not
// offer the capability), CodeTimeout.
func (h *Host) RelayRequest(ctx context.Context, mk func(id uint32) wire.Message) (wire.Reply, error) {
	return h.n.relayRequest(ctx, h.feature, mk)
}

// PutPatiently puts r, the node's own record of what (for the log), in
// the DHT until some node stores it: while none does (a node just
// admitted has few channels yet), it tries again after each of retries,
// each try bounded by timeout, then leaves it to the DHT's republishing.
// Before each try, done(addr) says whether the record is out already at
// the node's address addr (another call published it); after a try that
// stored it, stored(addr, n) is told. It gives up at once when a newer
// version went out (dht.ErrStale), the node is not admitted, or ctx ends.
func (h *Host) PutPatiently(ctx context.Context, r dht.Record, what string, retries []time.Duration, timeout time.Duration,
	done func(addr id.Address) bool, stored func(addr id.Address, n int)) {
	for i := 0; ; i++ {
		addr := h.Lease().Address
		if addr.IsZero() || done(addr) {
			return // published at admission, or already
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		n, err := h.Put(pctx, r)
		cancel()
		if err == nil && n > 0 {
			stored(addr, n)
			h.log.Info(what+" published", "version", r.Seq, "stored", n)
			return
		}
		if errors.Is(err, dht.ErrStale) || errors.Is(err, ErrNotAdmitted) || ctx.Err() != nil {
			return // a newer version went out meanwhile, or the node stops
		}
		if i >= len(retries) {
			h.log.Warn("could not publish the "+what+" in the DHT; the DHT will try again later", "err", err)
			return
		}
		h.log.Info(what+" not published yet; trying again", "err", err, "in", retries[i])
		if !clock.Sleep(h.n.clock, retries[i], ctx.Done()) {
			return
		}
	}
}
