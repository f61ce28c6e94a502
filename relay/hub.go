package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Hub limits and timings.
const (
	leaseTTL      = 7 * 24 * time.Hour // a lease's validity from its issue
	leaseLapse    = 7 * 24 * time.Hour // an inactive node's address is kept this long
	helloTimeout  = 10 * time.Second
	pingInterval  = 15 * time.Second
	outQueue      = 512 // frames queued to one node before it counts as stuck
	closestPeers  = 8   // in a newcomer's peer list: the closest addresses...
	randomPeers   = 8   // ...plus this many random others
	signalRate    = 100 // signals per second per node, sustained
	signalBurst   = 400
	maxViolations = 50  // rate-limited or misdirected messages before a node is cut off
	maxJoining    = 256 // connections between upgrade and admission at once
	refuseRetryMs = 30_000
	storeKeyRelay = "relay/key"

	defaultSummaryEvery = 10 * time.Second
	defaultSweepEvery   = time.Hour
	defaultMaxBackoff   = 30 * time.Second
)

// HubConfig configures a zone.
type HubConfig struct {
	Zone       string
	URL        string // this relay's public base URL, told to other relays and to nodes
	MaxNodes   int
	Redirect   string   // a relay to name when the zone is full and no federated relay has room
	Peers      []string // base URLs of relays to federate with; dialed, and redialed when lost
	ICEServers []string // handed to admitted nodes
	Store      store.Store
	Logger     *slog.Logger
	// Now is the clock behind every lease decision: issue and expiry,
	// when a node was last seen, when its lease lapses. time.Now if nil.
	Now          func() time.Time
	SummaryEvery time.Duration // how often linked relays get this zone's counts (10 s)
	SweepEvery   time.Duration // how often lapsed leases are deleted (1 h)
	MaxBackoff   time.Duration // longest wait between redials of a relay link (30 s)
	NameWait     time.Duration // how long a username claim or lookup forwarded to another relay waits (10 s)
}

// Hub is one zone: admission, leases, signaling, membership news, and
// the links to federated relays.
type Hub struct {
	cfg HubConfig
	log *slog.Logger
	key *identity.Identity

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine and connection the hub runs

	mu         sync.Mutex
	closed     bool
	clients    map[id.Address]*client
	relays     map[[32]byte]*relayState // federated relays, by key
	remote     map[id.Address]*member   // members of federated zones whose link is up
	dialed     []*dialTarget            // the -peer relays
	joining    chan struct{}            // a slot per node connection not yet admitted
	fedJoining chan struct{}            // a slot per relay connection not yet authenticated

	leaseMu sync.Mutex // serializes read-modify-write of lease records

	ledger   *ledger.Log                 // this zone's public log
	mirrors  map[mirrorID]*ledger.Mirror // other relays' logs (under h.mu)
	mirrorMu sync.Mutex                  // serializes opening mirrors
	seqMu    sync.Mutex                  // serializes Sequence, so each returns its own checkpoint
	forks    atomic.Int64                // forked checkpoints refused

	names nameBook // usernames: the index of who holds which name, requests in flight

	admitted   atomic.Int64 // admissions since start
	refused    atomic.Int64
	signals    atomic.Int64 // signals forwarded: within the zone, to a link, from a link
	fedOut     atomic.Int64 // signals sent over relay links
	fedIn      atomic.Int64 // signals delivered from relay links
	dropped    atomic.Int64 // messages refused (malformed, misdirected, rate-limited)
	fedDropped atomic.Int64 // relay-link frames refused or dropped
}

type client struct {
	wsLink
	hub       *Hub
	lease     wire.Lease
	native    bool
	agent     string
	lim       *rate.Limiter // signals
	nameLim   *rate.Limiter // username claims
	lookupLim *rate.Limiter // username lookups
}

// NewHub loads or creates the relay's signing key and starts dialing the
// configured peer relays. Close stops everything it runs.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SummaryEvery <= 0 {
		cfg.SummaryEvery = defaultSummaryEvery
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = defaultSweepEvery
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	if cfg.NameWait <= 0 {
		cfg.NameWait = defaultNameWait
	}
	h := &Hub{cfg: cfg, log: cfg.Logger,
		clients: make(map[id.Address]*client), relays: make(map[[32]byte]*relayState), remote: make(map[id.Address]*member),
		joining: make(chan struct{}, maxJoining), fedJoining: make(chan struct{}, maxFedJoining)}
	var err error
	if h.key, err = identity.LoadOrCreate(cfg.Store, storeKeyRelay); err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	if err := h.openLedger(); err != nil {
		return nil, err
	}
	if err := h.openNames(); err != nil {
		return nil, err
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.wg.Add(1)
	go h.loop()
	for _, u := range cfg.Peers {
		d := &dialTarget{url: u}
		h.dialed = append(h.dialed, d)
		h.wg.Add(1)
		go h.dialLoop(d)
	}
	return h, nil
}

// Close ends every node and relay link and stops the hub's goroutines;
// it returns once they are gone (lease records are written by then).
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.wg.Wait()
}

// enter registers a connection's goroutine with the hub unless it is
// closing; the caller calls h.wg.Done when it ends.
func (h *Hub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// loop sends summaries to linked relays and sweeps lapsed leases.
func (h *Hub) loop() {
	defer h.wg.Done()
	summary := time.NewTicker(h.cfg.SummaryEvery)
	defer summary.Stop()
	sweep := time.NewTicker(h.cfg.SweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-summary.C:
			h.sendSummaries()
		case <-sweep.C:
			if _, err := h.sweep(); err != nil {
				h.log.Error("lease sweep", "err", err)
			}
		case <-h.ctx.Done():
			return
		}
	}
}

func (h *Hub) now() time.Time { return h.cfg.Now() }

// Key returns the relay's public signing key.
func (h *Hub) Key() [32]byte { return h.key.SignKey() }

// Stats is what /healthz reports.
type Stats struct {
	Zone      string      `json:"zone"`
	URL       string      `json:"url"`
	RelayKey  string      `json:"relayKey"`
	Nodes     int         `json:"nodes"`
	MaxNodes  int         `json:"maxNodes"`
	Admitted  int64       `json:"admitted"`
	Refused   int64       `json:"refused"`
	Signals   int64       `json:"signals"` // forwarded: within the zone, to relay links and from them
	Dropped   int64       `json:"dropped"`
	Federated FedStats    `json:"federated"`
	Ledger    LedgerStats `json:"ledger"`
	Names     NameStats   `json:"names"`
}

// FedStats counts the federation.
type FedStats struct {
	Links      int   `json:"links"`      // relay links up
	Relays     int   `json:"relays"`     // relays known, linked or not (this one excluded)
	Members    int   `json:"members"`    // members of federated zones known
	SignalsOut int64 `json:"signalsOut"` // signals sent to other zones
	SignalsIn  int64 `json:"signalsIn"`  // signals from other zones delivered here
	Dropped    int64 `json:"dropped"`    // relay-link frames refused or dropped
}

// Stats returns the zone's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n, links := len(h.clients), 0
	for _, rs := range h.relays {
		if rs.link != nil {
			links++
		}
	}
	fed := FedStats{Links: links, Relays: len(h.knownRelays()) - 1, Members: len(h.remote)}
	ls := h.ledgerStats()
	h.mu.Unlock()
	fed.SignalsOut, fed.SignalsIn, fed.Dropped = h.fedOut.Load(), h.fedIn.Load(), h.fedDropped.Load()
	k := h.Key()
	return Stats{Zone: h.cfg.Zone, URL: h.cfg.URL, RelayKey: hex.EncodeToString(k[:]), Nodes: n, MaxNodes: h.cfg.MaxNodes,
		Admitted: h.admitted.Load(), Refused: h.refused.Load(), Signals: h.signals.Load(), Dropped: h.dropped.Load(), Federated: fed, Ledger: ls,
		Names: h.nameStats()}
}

// JoinSlot reserves room for one more connection to go through admission;
// false means too many are joining at once (a connection flood) and the
// caller should refuse before upgrading. Serve releases the slot.
func (h *Hub) JoinSlot() bool {
	select {
	case h.joining <- struct{}{}:
		return true
	default:
		h.dropped.Add(1)
		return false
	}
}

// ReleaseSlot gives back a JoinSlot that did not reach Serve.
func (h *Hub) ReleaseSlot() { <-h.joining }

// Serve runs one node's WebSocket until it closes. The caller holds a
// JoinSlot, which Serve releases once admission is decided.
func (h *Hub) Serve(ctx context.Context, conn *websocket.Conn, remote string) {
	defer conn.CloseNow()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { <-h.joining }) }
	defer release()
	if !h.enter() {
		conn.Close(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	defer h.wg.Done()
	ctx, stopCtx := context.WithCancel(ctx)
	defer stopCtx()
	defer context.AfterFunc(h.ctx, stopCtx)()

	conn.SetReadLimit(wire.MaxFrame)
	log := h.log.With("remote", remote)

	ch := &wire.Challenge{Zone: h.cfg.Zone, RelayKey: h.Key(), Features: wire.Features{wire.FeatureNames}}
	rand.Read(ch.Nonce[:])
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	if err := writeMsg(hctx, conn, ch); err != nil {
		return
	}
	hello, err := readHello(hctx, conn)
	if err != nil {
		log.Info("admission failed", "err", err)
		h.dropped.Add(1)
		writeMsg(hctx, conn, &wire.Error{Code: wire.CodeOf(err), Message: truncate(err.Error(), wire.MaxReason)})
		conn.Close(websocket.StatusPolicyViolation, "admission failed")
		return
	}
	if !identity.Verify(hello.SignKey, wire.HelloSignedBytes(ch, hello.SignKey, hello.AgreeKey, hello.Native), hello.Sig) {
		log.Info("admission refused: bad signature")
		h.dropped.Add(1)
		writeMsg(hctx, conn, &wire.Error{Code: wire.CodeBadSignature, Message: "hello signature does not verify"})
		conn.Close(websocket.StatusPolicyViolation, "bad signature")
		return
	}
	lease, err := h.leaseFor(hello.SignKey, hello.AgreeKey, log)
	if err != nil {
		log.Error("lease store", "err", err)
		writeMsg(hctx, conn, &wire.Error{Code: wire.CodeInternal, Message: "relay storage failed"})
		return
	}
	c := &client{wsLink: newWSLink(conn, outQueue), hub: h, lease: lease, native: hello.Native, agent: hello.Agent,
		lim: rate.NewLimiter(signalRate, signalBurst), nameLim: rate.NewLimiter(nameClaimRate, nameClaimBurst),
		lookupLim: rate.NewLimiter(nameLookupRate, nameLookupBurst)}

	adm, old, redirect, ok := h.register(c)
	if !ok {
		h.refused.Add(1)
		reason := fmt.Sprintf("zone %s is full: it admits at most %d %s", h.cfg.Zone, h.cfg.MaxNodes, plural(h.cfg.MaxNodes, "node", "nodes"))
		log.Info("admission refused: zone full", "nodes", h.cfg.MaxNodes, "redirect", redirect)
		writeMsg(hctx, conn, &wire.Refused{Code: wire.CodeZoneFull, Reason: reason, Redirect: redirect, RetryAfterMs: refuseRetryMs})
		conn.Close(websocket.StatusTryAgainLater, "zone full")
		return
	}
	h.admitted.Add(1)
	release()
	if old != nil {
		old.stop("replaced by a new connection from the same node")
	}
	log = log.With("node", lease.Address.Short())
	log.Info("admitted", "native", hello.Native, "agent", hello.Agent, "peers", len(adm.Peers), "relays", len(adm.Relays))
	if err := writeMsg(hctx, conn, adm); err != nil {
		h.unregister(c)
		return
	}
	cancel()
	h.announce(c, &wire.PeerJoined{Lease: lease, Native: hello.Native})

	go c.writeLoop()
	go c.pingLoop(ctx)
	c.readLoop(ctx, log)
	c.stop(whyGone)
	h.namesClientGone(c)
	<-c.flushed
	if h.unregister(c) {
		h.announce(c, &wire.PeerLeft{Address: lease.Address})
	}
	log.Info("node left", "why", c.why)
}

func readHello(ctx context.Context, conn *websocket.Conn) (*wire.Hello, error) {
	m, err := readFrame(ctx, conn)
	if err != nil {
		return nil, err
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("%w: expected Hello, got type %d", wire.ErrProtocol, m.Type())
	}
	return hello, nil
}

// register admits c unless the zone is full; a node that reconnects
// replaces its old link, which is returned. Refused, it returns the
// relay to redirect to. Linked relays hear of the newcomer.
func (h *Hub) register(c *client) (adm *wire.Admitted, old *client, redirect string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old = h.clients[c.lease.Address]
	if old == nil && len(h.clients) >= h.cfg.MaxNodes {
		return nil, nil, h.redirect(), false
	}
	h.clients[c.lease.Address] = c
	adm = &wire.Admitted{Lease: c.lease, ICEServers: h.cfg.ICEServers, Relays: h.knownRelays()}
	if len(adm.Relays) > wire.MaxRelays {
		adm.Relays = adm.Relays[:wire.MaxRelays]
	}
	for _, p := range h.pickPeers(&c.lease) {
		adm.Peers = append(adm.Peers, *p.lease)
		adm.Natives = append(adm.Natives, p.native)
	}
	h.toLinks(&wire.MemberJoined{Lease: c.lease, Native: c.native})
	return adm, old, "", true
}

// candidate is a possible peer for a newcomer, local or federated.
type candidate struct {
	lease  *wire.Lease
	native bool
}

// pickPeers returns the members closest to l's address plus random
// others, drawn from this zone and every linked zone alike, so the
// overlay is one network. h.mu is held.
func (h *Hub) pickPeers(l *wire.Lease) []candidate {
	all := make([]candidate, 0, len(h.clients)+len(h.remote))
	for a, c := range h.clients {
		if a != l.Address && c.lease.SignKey != l.SignKey {
			all = append(all, candidate{&c.lease, c.native})
		}
	}
	for a, m := range h.remote {
		if a != l.Address && m.lease.SignKey != l.SignKey && h.clients[a] == nil {
			all = append(all, candidate{&m.lease, m.native})
		}
	}
	addr := l.Address
	sort.Slice(all, func(i, j int) bool { return id.Closer(addr, all[i].lease.Address, all[j].lease.Address) })
	if len(all) <= closestPeers+randomPeers {
		return all
	}
	picked := all[:closestPeers:closestPeers]
	rest := all[closestPeers:]
	for i := 0; i < randomPeers; i++ {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(len(rest)-i)))
		k := i + int(j.Int64())
		rest[i], rest[k] = rest[k], rest[i]
		picked = append(picked, rest[i])
	}
	return picked
}

// unregister removes c if it is still the current link for its address,
// tells linked relays, and records when the node was last seen.
func (h *Hub) unregister(c *client) bool {
	h.mu.Lock()
	current := h.clients[c.lease.Address] == c
	h.mu.Unlock()
	if !current {
		return false
	}
	// The last sighting is on record before the node is gone.
	if err := h.touch(&c.lease); err != nil {
		h.log.Warn("lease store", "node", c.lease.Address.Short(), "err", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients[c.lease.Address] != c {
		return false
	}
	delete(h.clients, c.lease.Address)
	h.toLinks(&wire.MemberLeft{Address: c.lease.Address})
	return true
}

// announce sends m to every member but c.
func (h *Hub) announce(c *client, m wire.Message) {
	b, err := wire.Marshal(m)
	if err != nil {
		return
	}
	h.mu.Lock()
	others := make([]*client, 0, len(h.clients))
	for _, o := range h.clients {
		if o != c {
			others = append(others, o)
		}
	}
	h.mu.Unlock()
	for _, o := range others {
		o.send(b)
	}
}

// route finds where a signal for addr goes: a member of this zone, or the
// link to the relay of the federated zone addr belongs to.
func (h *Hub) route(addr id.Address) (*client, *link) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.clients[addr]; c != nil {
		return c, nil
	}
	if m := h.remote[addr]; m != nil {
		return nil, m.relay.link
	}
	return nil, nil
}

// readLoop serves a node's signaling and username requests until the
// link ends.
func (c *client) readLoop(ctx context.Context, log *slog.Logger) {
	h := c.hub
	violations := 0
	for {
		m, ok := c.nextOr(ctx, log, &h.dropped, c.salvageNameClaim)
		if !ok {
			return
		}
		var violation bool
		switch m := m.(type) {
		case nil: // a frame answered without decoding it
			violation = true
		case *wire.Signal:
			violation = c.onSignal(m)
		case *wire.NameClaim:
			violation = c.onNameClaim(m)
		case *wire.NameLookup:
			violation = c.onNameLookup(m)
		default:
			violation = true
			c.reject(wire.CodeProtocol, fmt.Sprintf("nodes may send only signals and username requests here, not type %d", m.Type()))
		}
		if violation {
			h.dropped.Add(1)
			violations++
		}
		if violations > maxViolations {
			log.Warn("too many refused messages; closing", "count", violations)
			c.stop("too many refused messages")
			return
		}
	}
}

// onSignal forwards a signal to its target, in this zone or across a
// relay link; it reports whether the node broke a rule.
func (c *client) onSignal(sig *wire.Signal) (violation bool) {
	h := c.hub
	if !c.lim.Allow() {
		c.reject(wire.CodeRateLimited, "signaling faster than allowed")
		return true
	}
	to, l := h.route(sig.Peer)
	switch {
	case to != nil && to != c:
		fwd := *sig
		fwd.Peer = c.lease.Address
		if b, err := wire.Marshal(&fwd); err == nil {
			h.signals.Add(1)
			to.send(b)
		}
	case l != nil:
		rs := &wire.RelaySignal{From: c.lease.Address, To: sig.Peer, Session: sig.Session, Kind: sig.Kind, Data: sig.Data}
		// Counted before it is queued, so no answer can overtake the count.
		h.signals.Add(1)
		h.fedOut.Add(1)
		if b, err := wire.Marshal(rs); err != nil || !l.trySend(b) {
			h.signals.Add(-1)
			h.fedOut.Add(-1)
			h.dropped.Add(1)
			c.reject(wire.CodeRateLimited, "the link to zone "+l.peer.Zone+" is congested")
		}
	default:
		c.reject(wire.CodeUnknownPeer, "no node "+sig.Peer.String()+" in this zone or a federated one")
		return true
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
