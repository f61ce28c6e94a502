package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"ddt/relay/link"
	"ddt/relay/zone"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Limits and timings.
const (
	MaxLinks            = wire.MaxRelays - 1 // trusted relays linked at once
	MaxOpenLinks        = 8                  // untrusted relays linked at once (-federation=open only), apart from MaxLinks
	MaxJoining          = 16                 // relay connections not yet authenticated
	MaxRemoteMembers    = 1 << 14            // members one federated zone may claim
	MaxFederatedMembers = 1 << 15            // members of all trusted federated zones together
	MaxOpenMembers      = 1 << 12            // members of all untrusted zones together (-federation=open), apart
	LinkQueue           = 1024               // frames queued to a relay beyond its snapshot
	LinkSignalRate      = 2000               // signals per second one relay may send us
	LinkSignalBurst     = 4000
	HelloTimeout        = 10 * time.Second
	MinBackoff          = 250 * time.Millisecond

	DefaultSummaryEvery = 10 * time.Second
	DefaultMaxBackoff   = 30 * time.Second
)

// Peer is a relay to federate with: dialed at URL, and redialed when
// lost. Key is the relay key it must prove; a zero Key is pinned to the
// key the relay first proves (kept in Config.Store, so a restart keeps
// it).
type Peer struct {
	URL string
	Key [32]byte
}

// Config configures a relay's federation.
type Config struct {
	Zone  *zone.Zone         // the zone this relay serves
	Key   *identity.Identity // the relay's key (the zone's)
	Peers []Peer             // relays to federate with (trusted): dialed, and redialed when lost
	// Trusted are more relay keys this relay federates with when they
	// link to it (a trust file's lines without a URL).
	Trusted [][32]byte
	// Open also accepts links from relays nobody named, as untrusted:
	// they are never redirected to, never marked trusted to nodes and
	// have links and members of their own, smaller, limits
	// (MaxOpenLinks, MaxOpenMembers). Off, such a link is refused.
	Open   bool
	Store  store.Store // keeps the keys pinned for Peers named without one; in memory only if nil
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
	remote  map[id.Address]*member   // the member each address reaches: its first claimant's (see addMembers)
	claims  int                      // member claims of all relays (sum of len(rs.members))
	open    int                      // ...of untrusted relays
	trust   map[[32]byte]string      // trusted relay keys, and why ("-peer", "-trust", "pinned", ...)
	dialed  []*dialTarget            // the -peer relays
	joining chan struct{}            // a slot per relay connection not yet authenticated

	signalsOut  atomic.Int64 // signals sent over links
	signalsIn   atomic.Int64 // signals delivered from links
	dropped     atomic.Int64 // link frames refused or dropped, links refused
	unknown     atomic.Int64 // link frames of types this relay does not know, skipped
	untrusted   atomic.Int64 // links refused: the relay's key is not trusted
	mismatched  atomic.Int64 // dialed relays that proved another key than the one named or pinned
	linksFull   atomic.Int64 // links refused: MaxLinks or MaxOpenLinks reached
	joiningFull atomic.Int64 // relay connections refused: MaxJoining reached
	contested   atomic.Int64 // member claims of an address another relay holds, kept aside
	membersFull atomic.Int64 // member claims dropped: MaxFederatedMembers or MaxOpenMembers reached
}

// relayState is what the federation knows of a relay.
type relayState struct {
	info       wire.RelayInfo         // as its hello and summaries tell it
	features   wire.Features          // as its hello lists them
	link       *Link                  // nil while down
	configured bool                   // a -peer of ours: kept (as down) when its link ends
	trusted    bool                   // named by this relay's operator or pinned (see Relay.Trusted), as of its link
	members    map[id.Address]*member // every member it claims, whether or not it holds the address
}

// member is a node of a federated zone.
type member struct {
	lease  wire.Lease
	native bool
	relay  *relayState
}

// dialTarget is a -peer relay and the key it must prove. Fields are
// under mu.
type dialTarget struct {
	url     string
	key     [32]byte
	known   bool // key is set: named, pinned earlier, or pinned at first sight
	reached bool // a link to it came up (or it turned out to be this relay)
}

// Link is an authenticated link to another relay.
type Link struct {
	f        *Federation
	link     *link.Link
	dialed   bool           // we opened it
	trusted  bool           // its key is trusted here (else it came in open mode)
	peer     wire.RelayInfo // the other relay, from its hello
	features wire.Features  // the link services it runs
	log      *slog.Logger
	lim      *rate.Limiter // signals it sends us
	synced   bool          // its snapshot has arrived (mu)

	warnedFull, warnedContested bool // logged once at warn (mu)
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
		trust: make(map[[32]byte]string), joining: make(chan struct{}, MaxJoining)}
	for _, k := range cfg.Trusted {
		f.trust[k] = "-trust"
	}
	named := map[string][32]byte{}
	for _, p := range cfg.Peers {
		u := strings.TrimSuffix(p.URL, "/")
		if k, dup := named[u]; dup {
			if k != p.Key {
				return nil, fmt.Errorf("federation: relay %s is named twice, with different keys", p.URL)
			}
			continue // named twice (-peer and -trust, say): dialed once
		}
		named[u] = p.Key
		d := &dialTarget{url: p.URL, key: p.Key, known: p.Key != [32]byte{}}
		if !d.known {
			k, ok, err := f.loadPin(p.URL)
			if err != nil {
				return nil, err
			}
			if ok {
				d.key, d.known = k, true
				f.log.Info("using the key pinned at first contact for a -peer named without one", "peer", p.URL, "key", fmt.Sprintf("%x", k))
				f.trust[k] = "pinned"
			} else {
				f.log.Warn("a -peer named without its key: the key it first proves will be pinned and trusted", "peer", p.URL)
			}
		} else {
			f.trust[d.key] = "-peer"
		}
		f.dialed = append(f.dialed, d)
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
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

// Slot reserves room for one more relay connection to authenticate;
// false means MaxJoining are at it. Serve releases the slot.
func (f *Federation) Slot() bool {
	select {
	case f.joining <- struct{}{}:
		return true
	default:
		f.dropped.Add(1)
		f.joiningFull.Add(1)
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

// Trusts reports whether this relay trusts the relay with key: its
// operator named the key (-peer URL#KEY, a trust file, Config.Trusted),
// it was pinned for a -peer named without one, or Trust added it. Only
// trusted relays sequence names, are redirected to and are marked
// trusted to nodes.
func (f *Federation) Trusts(key [32]byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.trust[key]
	return ok
}

// Trust adds key to the relays this one trusts, as a trust file's line
// does, until the relay stops. A relay linked with it untrusted (open
// mode) stays untrusted until it links again.
func (f *Federation) Trust(key [32]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.trust[key]; !ok {
		f.trust[key] = "added"
	}
}
