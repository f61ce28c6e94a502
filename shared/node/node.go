package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Errors returned by Node methods.
var (
	ErrNotConnected = errors.New("node: no open data channel to that address")
	ErrNotAdmitted  = errors.New("node: not admitted to a zone yet")
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

// Event kinds.
const (
	EventPeer     = "peer"      // a data channel to a peer opened and proved its lease
	EventPeerGone = "peer-gone" // that channel closed
	EventState    = "state"     // the relay state changed
	EventUsername = "username"  // the node registered its username, or renewed it
)

// Event is something a user would notice.
type Event struct {
	Kind    string
	Peer    PeerInfo      // for peer and peer-gone
	Reason  string        // for peer-gone
	State   State         // for state
	Detail  string        // for state: a readable sentence
	RetryIn time.Duration // for state retrying and refused
	Name    string        // for username
}

// PeerInfo describes a connected peer.
type PeerInfo struct {
	Address id.Address
	Native  bool
	RTT     time.Duration // last keepalive round trip; 0 before the first
	Via     string        // ViaRelay or ViaOverlay: how the channel was signaled
	Since   time.Time     // when it opened
}

// Config configures a Node.
type Config struct {
	Relay     string              // relay base URL, e.g. http://127.0.0.1:8080
	Dial      Dialer              // opens the relay WebSocket; DialWebSocket if nil
	Store     store.Store         // keeps identity and lease
	Transport transport.Transport // links to peers
	Native    bool                // a headless native node rather than a tab
	Agent     string              // software name, for the relay's logs
	Logger    *slog.Logger
	Now       func() time.Time // clock; time.Now if nil

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

// Store keys.
const (
	keyIdentity = "identity"
	keyLease    = "lease"
	keyRelays   = "relays"
	keyUsername = "username" // the node's username record, wire-encoded
)

// Node is one DDT node.
type Node struct {
	cfg Config
	log *slog.Logger
	id  *identity.Identity

	mu       sync.Mutex
	lease    wire.Lease
	relayKey [32]byte
	state    State
	detail   string
	retryIn  time.Duration
	peers    map[id.Address]*peer
	dials    map[id.Address]*dial
	known    map[id.Address]known
	relayOut chan wire.Message // nil while not admitted
	subs     map[int]func(Event)
	nextSub  int

	stopped  bool                     // Run has ended: no new channels
	relay    string                   // the relay in use or being tried
	zoneKeys map[[32]byte]string      // federated relays' keys → zone
	dht      *dht.DHT                 // nil before admission
	dhtSelf  id.Address               // the address dht was made for
	locked   map[id.Address]bool      // opened by Connect: never trimmed
	settle   time.Duration            // settleTime when made
	closedAt map[id.Address]time.Time // channels closed lately: fill leaves them alone for a while
	calls    map[uint64]pendingCall   // requests awaiting replies, by nonce
	overlay  overlayCounters
	replay   replays
	routes   routes

	// relayDone is closed when the relay session whose queue is relayOut
	// ends; relayBack (made by whoever waits) when the next one starts.
	relayDone chan struct{}
	relayBack chan struct{}

	// Usernames (names.go).
	life       context.Context // ends when Run ends: background publishing stops
	endLife    context.CancelFunc
	regMu      sync.Mutex                       // one Register at a time
	userRec    *wire.UserRecord                 // this node's verified record, nil if none
	nameWaits  map[uint32]chan *wire.NameResult // name requests awaiting the relay's answer, by ID
	nextNameID uint32
	published  struct { // the last publication of userRec that some node stored
		d       *dht.DHT
		version uint64
	}
	resolved resolveCache
}

type known struct {
	lease  wire.Lease
	native bool
}

// New loads the node's identity from cfg.Store, creating and saving one
// on first use, and the username record Register saved there, if any.
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
	if cfg.Now == nil {
		cfg.Now = time.Now
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
		state: StateConnecting,
		peers: make(map[id.Address]*peer),
		dials: make(map[id.Address]*dial),
		known: make(map[id.Address]known),
		subs:  make(map[int]func(Event)),

		zoneKeys: make(map[[32]byte]string),
		locked:   make(map[id.Address]bool),
		closedAt: make(map[id.Address]time.Time),
		settle:   settleTime,
		calls:    make(map[uint64]pendingCall),

		nameWaits: make(map[uint32]chan *wire.NameResult),
	}
	var err error
	if n.id, err = identity.LoadOrCreate(cfg.Store, keyIdentity); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n.loadUsername()
	n.life, n.endLife = context.WithCancel(context.Background())
	return n, nil
}

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

// Throughput sends total bytes of test data to a connected peer and
// returns how long it took until the peer acknowledged all of it.
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
