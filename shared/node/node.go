package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"ddt/shared/clock"
	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// State is the node's standing with its relay.
type State string

// States, as the page shows them.
const (
	StateConnecting State = "connecting" // dialing the relay
	StateAdmitted   State = "admitted"   // in the zone
	StateRetrying   State = "retrying"   // relay unreachable; retrying with backoff
	StateRefused    State = "refused"    // the relay declined (zone full)
)

// IdentityReplaced is what the node's connecting states say after New
// found its stored identity unreadable: it kept the record aside (under
// "identity"+identity.UnreadableSuffix) and made a new identity, so its
// address, keys and username are new.
const IdentityReplaced = "This node's stored identity could not be read, so it has a new one; the old record is kept as " + keyIdentity + identity.UnreadableSuffix + "."

// Event kinds of the node itself; capabilities add theirs (usernames:
// "username").
const (
	EventPeer       = "peer"        // a data channel to a peer opened and proved its lease
	EventPeerGone   = "peer-gone"   // that channel closed
	EventState      = "state"       // the relay state changed
	EventDialFailed = "dial-failed" // a connection attempt failed; RetryIn says when it is tried again
)

// Event is something a user would notice.
type Event struct {
	Kind    string
	Peer    PeerInfo      // for peer, peer-gone and dial-failed (Address only)
	Reason  string        // for peer-gone and dial-failed
	State   State         // for state
	Detail  string        // for state: a readable sentence
	RetryIn time.Duration // for state retrying and refused, and dial-failed
	// Value is a capability event's payload: a view with JSON field
	// names, as window.ddt hands it to listeners.
	Value any
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	Address  id.Address
	Native   bool
	RTT      time.Duration // last keepalive round trip; 0 before the first
	Via      string        // ViaRelay or ViaOverlay: how the channel was signaled
	Since    time.Time     // when it opened
	Features wire.Features // what its hello announced
}

// Config configures a Node.
type Config struct {
	Relay     string              // relay base URL, e.g. http://127.0.0.1:8080
	Dial      Dialer              // opens the relay WebSocket; DialWebSocket if nil
	Store     store.Store         // keeps identity and lease, and the capabilities' namespaces
	Transport transport.Transport // links to peers
	Native    bool                // a headless native node rather than a tab
	Agent     string              // software name, for the relay's logs
	Logger    *slog.Logger
	// Clock is the time every timer, ticker and lease check of the node
	// uses (clock.System if nil).
	Clock clock.Clock
	// Capabilities are the features built on the node (usernames, …),
	// attached by New in this order; the node announces their features.
	Capabilities []Capability

	// Keepalive: a ping every KeepAlive; a peer silent for PeerTimeout is
	// gone. Defaults 2 s and 7 s.
	KeepAlive   time.Duration
	PeerTimeout time.Duration
	// MaxBackoff caps the delay between relay attempts (default 8 s).
	MaxBackoff time.Duration
	// MaxPeers is the connection budget: data channels kept open
	// (DefaultMaxPeers if 0). Channels opened by Connect are not counted
	// against it.
	MaxPeers int
	// MaintainEvery is how often the routing table is refreshed and the
	// connection set topped up (default 1 minute).
	MaintainEvery time.Duration
	// Probe dials relays to measure their round trip (DialWebSocket if
	// nil); kept apart from Dial so an EarlyDialer's connection is not
	// spent on a measurement.
	Probe Dialer
}

// Store keys of the node itself; capabilities keep theirs in their own
// namespaces (Host.Store).
const (
	keyIdentity = "identity"
	keyLease    = "lease"
	keyRelays   = "relays"
)

// Node is one DDT node: the host of its capabilities.
type Node struct {
	cfg   Config
	log   *slog.Logger
	id    *identity.Identity
	fresh bool // the identity was made by New: the store holds nothing older
	// notice is what the node's connecting states say besides the relay
	// (IdentityReplaced, or nothing); fixed by New.
	notice string
	clock  clock.Clock

	// Fixed by New: what the node announces and who handles what.
	features wire.Features
	handlers handlers
	admitted []func(ctx context.Context, lease wire.Lease) // capabilities' admission hooks

	mu            sync.Mutex
	lease         wire.Lease
	relayKey      [32]byte
	relayFeatures wire.Features // what the relay's challenge announced
	state         State
	detail        string
	retryIn       time.Duration
	peers         map[id.Address]*peer
	dials         map[id.Address]*dial
	known         map[id.Address]known
	relayOut      chan wire.Message // nil while not admitted
	subs          map[int]func(Event)
	nextSub       int

	stopped  bool                     // Run has ended: no new channels
	relay    string                   // the relay in use or being tried
	zoneKeys map[[32]byte]string      // federated relays' keys → zone
	relays   []KnownRelay             // as the last admission listed them
	dht      *dht.DHT                 // nil before admission
	dhtSelf  id.Address               // the address dht was made for
	locked   map[id.Address]bool      // opened by Connect: never trimmed
	settle   time.Duration            // settleTime when made
	closedAt map[id.Address]time.Time // channels closed lately: fill leaves them alone for a while
	retries  map[id.Address]int       // failed attempts in a row, by address
	calls    map[uint64]pendingCall   // requests awaiting replies, by nonce
	overlay  overlayCounters
	replay   replays
	routes   routes
	// routedSlots holds a slot per routed request being answered.
	routedSlots chan struct{}

	// Requests to the relay awaiting their replies, by ID.
	relayCalls  map[uint32]chan wire.Reply
	nextRelayID uint32

	// relayDone is closed when the relay session whose queue is relayOut
	// ends; relayBack (made by whoever waits) when the next one starts.
	relayDone chan struct{}
	relayBack chan struct{}

	// life ends when Run ends: capabilities' background work stops.
	life    context.Context
	endLife context.CancelFunc

	unknownPeer  atomic.Int64 // frames of unknown types from peers, skipped
	unknownRelay atomic.Int64 // ...from the relay
	unhandled    atomic.Int64 // frames of known types nothing here handles, skipped
}

type known struct {
	lease  wire.Lease
	native bool
}

// New loads the node's identity from cfg.Store, creating and saving one
// on first use, and attaches cfg.Capabilities.
func New(cfg Config) (*Node, error) {
	if cfg.Store == nil || cfg.Transport == nil || cfg.Relay == "" {
		return nil, errors.New("node: Config needs Relay, Store and Transport")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		cfg.Dial = DialWebSocket
	}
	if cfg.Probe == nil {
		cfg.Probe = DialWebSocket
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = 2 * time.Second
	}
	if cfg.PeerTimeout == 0 {
		cfg.PeerTimeout = 7 * time.Second
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 8 * time.Second
	}
	if cfg.Agent == "" {
		cfg.Agent = "ddt"
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.MaintainEvery <= 0 {
		cfg.MaintainEvery = time.Minute
	}
	n := &Node{
		cfg:   cfg,
		log:   cfg.Logger,
		clock: cfg.Clock,
		state: StateConnecting,
		peers: make(map[id.Address]*peer),
		dials: make(map[id.Address]*dial),
		known: make(map[id.Address]known),
		subs:  make(map[int]func(Event)),

		zoneKeys: make(map[[32]byte]string),
		locked:   make(map[id.Address]bool),
		closedAt: make(map[id.Address]time.Time),
		retries:  make(map[id.Address]int),
		settle:   settleTime,
		calls:    make(map[uint64]pendingCall),

		routedSlots: make(chan struct{}, maxRoutedInFlight),
		relayCalls:  make(map[uint32]chan wire.Reply),
	}
	var err error
	n.id, n.fresh, err = identity.Open(cfg.Store, keyIdentity)
	if errors.Is(err, identity.ErrBadIdentity) {
		// A corrupt record must not keep the node from starting for good
		// (a page or an extension would say "could not start" forever):
		// keep it aside, start as someone new, and say so.
		cfg.Logger.Warn("the stored identity could not be read; starting with a new one", "kept", keyIdentity+identity.UnreadableSuffix, "err", err)
		if n.id, err = identity.Replace(cfg.Store, keyIdentity); err == nil {
			n.notice = IdentityReplaced
			n.detail = IdentityReplaced
		}
	}
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.life, n.endLife = context.WithCancel(context.Background())
	n.handlers = newHandlers()
	n.registerCore()
	var feats []string
	for _, c := range cfg.Capabilities {
		f := c.Feature()
		if !wire.ValidFeature(f) || slices.Contains(feats, f) || f == wire.FeatureBulk {
			return nil, fmt.Errorf("node: capability feature %q: want 1–%d bytes of a–z, 0–9 and '-', not the name of another feature", f, wire.MaxFeature)
		}
		ns, err := store.NewNamespace(cfg.Store, f+"/")
		if err != nil {
			return nil, fmt.Errorf("node: capability %s: %w", f, err)
		}
		h := &Host{n: n, feature: f, log: n.log.With("part", f), ns: ns}
		err = c.Attach(h)
		h.attached = true
		if err == nil {
			err = h.err
		}
		if err != nil {
			return nil, fmt.Errorf("node: capability %s: %w", f, err)
		}
		feats = append(feats, c.Feature())
	}
	n.features = wire.NewFeatures(feats...)
	if _, err := wire.Marshal(&wire.PeerHello{Features: append(n.features, wire.FeatureBulk)}); err != nil {
		return nil, fmt.Errorf("node: capability features: %w", err)
	}
	return n, nil
}

// Features returns the capabilities the node announces in its hellos (a
// peer link's hello adds wire.FeatureBulk where the link has a bulk
// channel).
func (n *Node) Features() wire.Features { return n.features }

// Keys returns the node's public keys: Ed25519 for signing, X25519 for
// agreement.
func (n *Node) Keys() (sign, agree [32]byte) { return n.id.SignKey(), n.id.AgreeKey() }

// Address returns the node's DDT address (zero before admission).
func (n *Node) Address() id.Address {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lease.Address
}

// Zone returns the zone the node was admitted to.
func (n *Node) Zone() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lease.Zone
}

// State returns the relay state and its readable detail.
func (n *Node) State() (State, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state, n.detail
}

// Relay returns the URL of the relay the node uses or is trying.
func (n *Node) Relay() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.relay == "" {
		return n.cfg.Relay
	}
	return n.relay
}

// Peers lists peers with an open data channel, by address.
func (n *Node) Peers() []PeerInfo {
	n.mu.Lock()
	out := make([]PeerInfo, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, p.info())
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Compare(out[j].Address) < 0 })
	return out
}

// Subscribe calls fn for every event until the returned function is
// called. fn runs on the node's goroutines and must not block for long.
func (n *Node) Subscribe(fn func(Event)) (unsubscribe func()) {
	n.mu.Lock()
	k := n.nextSub
	n.nextSub++
	n.subs[k] = fn
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		delete(n.subs, k)
		n.mu.Unlock()
	}
}

func (n *Node) emit(e Event) {
	n.mu.Lock()
	fns := make([]func(Event), 0, len(n.subs))
	for _, fn := range n.subs {
		fns = append(fns, fn)
	}
	n.mu.Unlock()
	for _, fn := range fns {
		fn(e)
	}
}

func (n *Node) setState(s State, detail string, retryIn time.Duration) {
	n.mu.Lock()
	changed := n.state != s || n.detail != detail
	n.state, n.detail, n.retryIn = s, detail, retryIn
	n.mu.Unlock()
	if changed || retryIn > 0 {
		n.log.Info("relay state", "state", s, "detail", detail)
		n.emit(Event{Kind: EventState, State: s, Detail: detail, RetryIn: retryIn})
	}
}

// Ping measures the round trip to a connected peer.
func (n *Node) Ping(ctx context.Context, addr id.Address) (time.Duration, error) {
	p := n.peer(addr)
	if p == nil {
		return 0, fmt.Errorf("%w: %s", ErrNotConnected, addr)
	}
	return p.ping(ctx)
}

// Throughput sends total bytes of test data to a connected peer over its
// bulk channel and returns how long it took until the peer acknowledged
// all of it.
func (n *Node) Throughput(ctx context.Context, addr id.Address, total int) (time.Duration, error) {
	p := n.peer(addr)
	if p == nil {
		return 0, fmt.Errorf("%w: %s", ErrNotConnected, addr)
	}
	return p.throughput(ctx, total)
}

func (n *Node) peer(addr id.Address) *peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peers[addr]
}

// Stats counts what the node skipped and routed.
type Stats struct {
	Overlay      OverlayStats
	UnknownPeer  int64 // frames of types this node does not know, from peers
	UnknownRelay int64 // ...from the relay
	Unhandled    int64 // frames of known types that nothing here handles (a capability this node lacks), skipped
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{Overlay: n.OverlayStats(), UnknownPeer: n.unknownPeer.Load(), UnknownRelay: n.unknownRelay.Load(), Unhandled: n.unhandled.Load()}
}
