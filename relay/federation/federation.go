package federation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"ddt/relay/link"
	"ddt/relay/zone"
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
	trusted    bool           // named by this relay's operator (see Relay.Trusted)
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
