package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/federation"
	"ddt/relay/registrar"
	"ddt/relay/zone"
	"ddt/relay/zoneledger"
	"ddt/shared/clock"
	"ddt/shared/identity"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
)

const (
	storeKeyRelay = "relay/key" // the relay's signing key
	pingInterval  = 15 * time.Second
)

// websockets is how the relay's WebSockets are kept: pinged every 15 s,
// cut when a pong takes over 10 s.
var websockets = transport.WebSocketConfig{Keepalive: pingInterval}

// Config configures a relay: its zone and the services wired to it.
type Config struct {
	Zone       string
	URL        string // this relay's public base URL, told to other relays and to nodes
	MaxNodes   int
	Redirect   string            // a relay to name when the zone is full and no federated relay has room
	Peers      []federation.Peer // relays to federate with, by base URL and key; dialed, and redialed when lost
	Trusted    [][32]byte        // more relay keys to federate with when they link here (a trust file's lines without a URL)
	Open       bool              // -federation=open: also link untrusted relays, with their restrictions
	ICEServers []string          // handed to admitted nodes
	// SitesDomain, if set, is the domain DDT sites are served under as
	// well as localhost: <label>.ddt.<SitesDomain> (-sites-domain). It is
	// named in /healthz, for nodes whose host is no page of this relay.
	SitesDomain string
	Store       store.Store
	Logger      *slog.Logger
	// Clock drives every lease decision and every timer and ticker of
	// the relay's packages (sweeps, summaries, backoff, the waits of
	// forwarded username requests). clock.System if nil.
	Clock        clock.Clock
	SummaryEvery time.Duration // how often linked relays get this zone's counts (10 s)
	SweepEvery   time.Duration // how often lapsed leases are deleted (1 h)
	MaxBackoff   time.Duration // longest wait between redials of a relay link (30 s)
	NameWait     time.Duration // how long a username claim or lookup forwarded to another relay waits (10 s)
	// Dial opens a relay link to a -peer (a WebSocket to its /federate
	// if nil).
	Dial func(ctx context.Context, peer string) (transport.Conn, error)
	// Capture, if set, records every WebSocket frame the relay reads or
	// writes, its nodes' and its relay links' (-capture, for audits).
	Capture *Capture
}

// Relay is a relay's engines wired together: the zone, its federation,
// the zone ledger service and the username service.
type Relay struct {
	cfg        Config
	log        *slog.Logger
	key        *identity.Identity
	Zone       *zone.Zone
	Federation *federation.Federation
	Ledger     *zoneledger.Service
	Names      *registrar.Registrar
}

// NewRelay loads or creates the relay's signing key, wires its services
// and starts dialing the configured peer relays. Close stops everything
// it runs.
func NewRelay(cfg Config) (*Relay, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.Dial == nil {
		cfg.Dial = dialRelay
	}
	cfg.Dial = cfg.Capture.Dial(cfg.Dial)
	r := &Relay{cfg: cfg, log: cfg.Logger}
	var err error
	if r.key, err = identity.LoadOrCreate(cfg.Store, storeKeyRelay); err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	r.Zone, err = zone.New(zone.Config{Name: cfg.Zone, URL: cfg.URL, MaxNodes: cfg.MaxNodes, Redirect: cfg.Redirect, ICEServers: cfg.ICEServers,
		Key: r.key, Store: cfg.Store, Logger: cfg.Logger, Clock: cfg.Clock, SweepEvery: cfg.SweepEvery})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Relay, error) {
		r.Zone.Close()
		return nil, err
	}
	r.Federation, err = federation.New(federation.Config{Zone: r.Zone, Key: r.key, Peers: cfg.Peers, Trusted: cfg.Trusted, Open: cfg.Open,
		Store: cfg.Store, Logger: cfg.Logger, Clock: cfg.Clock, Dial: cfg.Dial, SummaryEvery: cfg.SummaryEvery, MaxBackoff: cfg.MaxBackoff})
	if err != nil {
		return fail(err)
	}
	fed := r.Federation
	r.Ledger, err = zoneledger.New(zoneledger.Config{Zone: cfg.Zone, Key: r.key, Store: cfg.Store, Federation: fed, Logger: cfg.Logger, Clock: cfg.Clock,
		// Named by key, in the trust file or pinned (all known at start,
		// so a restart keeps their mirrors).
		Trusted: fed.Trusts})
	if err != nil {
		return fail(err)
	}
	r.Names, err = registrar.New(registrar.Config{Zone: r.Zone, Federation: r.Federation, Ledger: r.Ledger, Store: cfg.Store,
		Logger: cfg.Logger, Clock: cfg.Clock, Wait: cfg.NameWait})
	if err != nil {
		return fail(err)
	}
	r.Federation.Start()
	return r, nil
}

// Close ends every node and relay link and stops the relay's goroutines;
// it returns once they are gone (lease records are written by then).
func (r *Relay) Close() {
	r.Zone.Close()
	r.Federation.Close()
	r.Ledger.Close()
	r.Names.Close()
}

// Key returns the relay's public signing key.
func (r *Relay) Key() [32]byte { return r.key.SignKey() }

// LoadKey returns the public key of the relay whose store is st,
// creating the key if st has none yet (as `ddt-relay key` does).
func LoadKey(st store.Store) ([32]byte, error) {
	id, err := identity.LoadOrCreate(st, storeKeyRelay)
	if err != nil {
		return [32]byte{}, fmt.Errorf("relay key: %w", err)
	}
	return id.SignKey(), nil
}

// Sequence appends one public event to the zone's ledger (see
// zoneledger.Service.Sequence).
func (r *Relay) Sequence(entry []byte) (int64, []byte, error) { return r.Ledger.Sequence(entry) }

// Stats is what /healthz reports.
type Stats struct {
	Zone      string           `json:"zone"`
	URL       string           `json:"url"`
	RelayKey  string           `json:"relayKey"`
	Nodes     int              `json:"nodes"`
	MaxNodes  int              `json:"maxNodes"`
	Admitted  int64            `json:"admitted"`
	Refused   int64            `json:"refused"`
	Signals   int64            `json:"signals"` // forwarded: within the zone, to relay links and from them
	Dropped   int64            `json:"dropped"`
	Unknown   int64            `json:"unknown"` // node frames of types this relay does not know, skipped
	Limits    zone.Limits      `json:"limits"`  // what the zone holds for nodes and what its bounds refused
	Federated federation.Stats `json:"federated"`
	Ledger    zoneledger.Stats `json:"ledger"`
	Names     registrar.Stats  `json:"names"`
	// SitesDomain is Config.SitesDomain: a node whose host is not an
	// http(s) page (an extension's) derives sites' origins from it.
	SitesDomain string `json:"sitesDomain,omitempty"`
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	z := r.Zone.Stats()
	return Stats{Zone: z.Zone, URL: z.URL, RelayKey: z.RelayKey, Nodes: z.Nodes, MaxNodes: z.MaxNodes, Admitted: z.Admitted,
		Refused: z.Refused, Signals: z.Signals, Dropped: z.Dropped, Unknown: z.Unknown, Limits: z.Limits,
		Federated: r.Federation.Stats(), Ledger: r.Ledger.Stats(), Names: r.Names.Stats(), SitesDomain: r.cfg.SitesDomain}
}

// FedURL turns a relay's base URL into its federation endpoint.
func FedURL(base string) (string, error) { return node.RelayEndpoint(base, "/federate") }

// dialRelay opens a relay link to the relay at base URL peer.
func dialRelay(ctx context.Context, peer string) (transport.Conn, error) {
	u, err := FedURL(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", federation.ErrBadPeer, err)
	}
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	return transport.NewWebSocket(c, websockets), nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
