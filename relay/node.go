package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"ddt/shared/clock"
	"ddt/shared/content"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/site"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/unicast"
	"ddt/shared/username"
	"ddt/shared/wire"
)

// runNode runs a headless native node: it joins exactly as a browser tab
// does, over native pion, and optionally serves its status over HTTP.
func runNode(args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	relayURL := fs.String("relay", "http://127.0.0.1:8080", "relay base URL")
	data := fs.String("data", defaultNodeData(), "folder for the node's identity, lease and usernames (bbolt), and its content chunks (chunks/)")
	status := fs.String("status", "", "serve /status, /peers, /ping, /lookup, /dht, /connect, /disconnect, /routing, /register and /resolve on this loopback address (e.g. 127.0.0.1:8081)")
	statusPublic := fs.Bool("status-public", false, "allow -status on an address that is not loopback: anyone who can reach it can drive the node")
	name := fs.String("name", "", "register this username once admitted (prints \"registered NAME\")")
	loopback := fs.Bool("loopback", false, "restrict WebRTC to the loopback interface (tests)")
	maxPeers := fs.Int("max-peers", node.DefaultMaxPeers, "connection budget: data channels kept open")
	logLevel := fs.String("log", "info", "log level: debug, info, warn, error")
	var ice listFlag
	fs.Var(&ice, "ice", "STUN/TURN URL (repeatable)")
	pledge := sizeFlag(content.DefaultPledge)
	fs.Var(&pledge, "pledge", "storage this node volunteers for others' content (cache and replicas), e.g. 64MiB, 1GiB; its own content does not count")
	cacheTypes := fs.String("cache-types", "", "comma-separated media-type prefixes this node caches for others (e.g. video/,image/); empty: every type")
	cacheMaxAge := fs.Duration("cache-max-age", 0, "drop cached and replicated chunks unused for this long (e.g. 720h); 0: no limit")
	capture := fs.String("capture", "", "for audits: record every frame this process handles (every data-channel message its transport reads or writes, after DTLS) in this file, appended")
	dropOnions := fs.Bool("drop-onions", false, "for tests: take onion layers and forward none")
	host := fs.String("host", "", "comma-separated domains to host (e.g. example.ddt,other.ddt): keep each one's current site pinned here, following its updates")
	fs.Parse(args)
	log := newLogger(*logLevel)
	var hosted []string
	for _, d := range splitList(*host) {
		nd, err := site.NormalizeDomain(d)
		if err != nil {
			return fmt.Errorf("-host: %w", err)
		}
		hosted = append(hosted, nd)
	}

	capt, err := OpenCapture(*capture)
	if err != nil {
		return err
	}
	nn, err := openNative(nativeConfig{relay: *relayURL, data: *data, ice: ice, loopback: *loopback, maxPeers: *maxPeers, log: log, capture: capt, dropOnions: *dropOnions,
		files: content.Config{Pledge: int64(pledge), Policy: content.Policy{Types: splitList(*cacheTypes), MaxAge: *cacheMaxAge}}})
	if err != nil {
		return err
	}
	defer nn.close()
	n, users, files, sites := nn.n, nn.users, nn.files, nn.sites
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, d := range hosted {
		go func() {
			fmt.Printf("hosting %s\n", d)
			if err := sites.Host(ctx, d); err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "host %s: %v\n", d, err)
			}
		}()
	}
	var registerOnce sync.Once
	n.Subscribe(func(e node.Event) {
		switch e.Kind {
		case node.EventPeer:
			fmt.Printf("peer %s\n", e.Peer.Address)
		case node.EventPeerGone:
			fmt.Printf("peer-gone %s (%s)\n", e.Peer.Address, e.Reason)
		case node.EventDialFailed:
			retry := "; not retrying"
			if e.RetryIn > 0 {
				retry = fmt.Sprintf("; retrying in %s", e.RetryIn.Round(100*time.Millisecond))
			}
			fmt.Printf("connecting to %s failed: %s%s\n", e.Peer.Address.Short(), e.Reason, retry)
		case site.EventHosted:
			if h, ok := e.Value.(site.HostedEvent); ok {
				fmt.Printf("hosted %s version %d manifest %s (%d files)\n", h.Domain, h.Version, h.Manifest, h.Files)
			}
		case node.EventState:
			if e.State == node.StateAdmitted {
				fmt.Printf("admitted %s zone %s\n", n.Address(), n.Zone())
				if *name != "" {
					registerOnce.Do(func() { go registerName(ctx, users, *name) })
				}
			}
		}
	})
	if *status != "" {
		srv, ln, err := serveAPI(*status, *statusPublic, apiServices{n: n, users: users, files: files, sites: sites, chat: nn.chat}, log)
		if err != nil {
			return err
		}
		defer srv.Close()
		log.Info("status endpoint", "url", "http://"+ln.Addr().String()+"/status")
	}
	return n.Run(ctx)
}

// nativeConfig is how to open a native node: what runNode and
// runPublish share.
type nativeConfig struct {
	relay    string
	data     string // the folder of its identity, store and chunks
	ice      []string
	loopback bool
	maxPeers int
	log      *slog.Logger
	files    content.Config // its Chunks are set here
	capture  *Capture       // records the transport's frames (-capture); nil: none
	// dropOnions: the unicast service forwards no onion layer (tests).
	dropOnions bool
}

// nativeNode is a native node with the capabilities of the native build:
// usernames, content (chunks on disk), sites, unicast (friends and chat).
type nativeNode struct {
	n     *node.Node
	users *username.Client
	files *content.Service
	sites *site.Service
	chat  *unicast.Service
	close func()
}

// openNative opens the node's store in cfg.data (its identity persists
// there, so a publisher keeps its domains across runs), its chunk store
// and transport, and makes the node; it does not run it.
func openNative(cfg nativeConfig) (*nativeNode, error) {
	log := cfg.log
	if err := os.MkdirAll(cfg.data, 0o700); err != nil {
		return nil, err
	}
	st, err := store.OpenBolt(filepath.Join(cfg.data, "node.db"))
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("another node runs with -data %s: give this one a folder of its own (-data DIR)", cfg.data)
	}
	if err != nil {
		return nil, err
	}
	log.Info("node data", "dir", cfg.data)
	var closers []func() error
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	closers = append(closers, st.Close)
	tr, err := cfg.capture.WebRTC(transport.Config{ICEServers: cfg.ice, LoopbackOnly: cfg.loopback, Logger: log})
	if err != nil {
		closeAll()
		return nil, err
	}
	closers = append(closers, tr.Close)
	chunks, err := store.OpenDiskChunks(filepath.Join(cfg.data, "chunks"))
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("open the chunk store: %w", err)
	}
	closers = append(closers, chunks.Close)
	users := username.New()
	fc := cfg.files
	fc.Chunks = chunks
	files := content.New(fc)
	sites := site.New(site.Config{Files: files})
	chat := unicast.New(users, unicast.Config{DropOnions: cfg.dropOnions})
	n, err := node.New(node.Config{Relay: cfg.relay, Store: st, Transport: tr, Native: true, Agent: "ddt-native", Logger: log, MaxPeers: cfg.maxPeers,
		Capabilities: []node.Capability{users, files, sites, chat}})
	if err != nil {
		closeAll()
		return nil, err
	}
	return &nativeNode{n: n, users: users, files: files, sites: sites, chat: chat, close: closeAll}, nil
}

// defaultNodeData is where a native node keeps its state unless told:
// ddt/node in the user's configuration folder ($XDG_CONFIG_HOME or
// ~/.config on Linux), never the working directory (a checkout); "ddt-node"
// only where the user has no such folder.
func defaultNodeData() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return filepath.Join(dir, "ddt", "node")
	}
	return "ddt-node"
}

// registerName registers name for the -name flag, trying again while the
// failure is one that passes (the home relay unreachable, …).
func registerName(ctx context.Context, users *username.Client, name string) {
	for wait := 2 * time.Second; ; wait = min(2*wait, time.Minute) {
		rec, err := users.Register(ctx, name)
		if err == nil {
			fmt.Printf("registered %s\n", rec.Claim.Name)
			return
		}
		e := node.Explain(err)
		fmt.Fprintf(os.Stderr, "register %s: %s (%s)\n", name, e.Error, e.Code)
		switch e.Code {
		case node.CodeUnavailable, node.CodeTimeout, node.CodeRateLimited, node.CodeNotAdmitted:
		default:
			return
		}
		if !clock.Sleep(clock.System, wait, ctx.Done()) {
			return
		}
	}
}

// errorStatus is the HTTP status for an error code.
func errorStatus(code string) int {
	switch code {
	case username.CodeInvalid, unicast.CodeSelf:
		return http.StatusBadRequest
	case unicast.CodeNoName, unicast.CodeNotFriend, unicast.CodeNoRequest:
		return http.StatusForbidden
	case unicast.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case unicast.CodeMailFull, content.CodeQuota:
		return http.StatusInsufficientStorage
	case unicast.CodeDeclined, unicast.CodeReplay, username.CodeTaken, username.CodeAlreadyRegistered, site.CodeStale:
		return http.StatusConflict
	case content.CodeCorrupt:
		return http.StatusUnprocessableEntity
	case username.CodeNotFound, node.CodeNotConnected, site.CodeUnknownDomain:
		return http.StatusNotFound
	case site.CodeBadRange:
		return http.StatusRequestedRangeNotSatisfiable
	case node.CodeRateLimited:
		return http.StatusTooManyRequests
	case unicast.CodeNoSession, node.CodeUnavailable, node.CodeNotAdmitted:
		return http.StatusServiceUnavailable
	case username.CodeForged:
		return http.StatusBadGateway
	case node.CodeTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

func statusMux(n *node.Node, users *username.Client, files *content.Service) *http.ServeMux {
	return apiMux(apiServices{n: n, users: users, files: files})
}

// apiMux is the native node's HTTP API over the services it has.
func apiMux(svc apiServices) *http.ServeMux {
	n, users, files := svc.n, svc.users, svc.files
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) { handleOnly(mux, pattern, h) }
	handle("GET /status", func(w http.ResponseWriter, r *http.Request) {
		state, detail := n.State()
		addr := ""
		if a := n.Address(); !a.IsZero() {
			addr = a.String()
		}
		reply(w, map[string]any{"address": addr, "zone": n.Zone(), "state": state, "detail": detail, "relay": n.Relay(), "username": users.Name()})
	})
	handle("GET /peers", func(w http.ResponseWriter, r *http.Request) { reply(w, node.PeerViews(n.Peers())) })
	handle("GET /ping", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := addressParam(w, r, "address")
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		rtt, err := n.Ping(ctx, addr)
		if err != nil {
			code := http.StatusGatewayTimeout
			if errors.Is(err, node.ErrNotConnected) {
				code = http.StatusNotFound
			}
			http.Error(w, err.Error(), code)
			return
		}
		reply(w, map[string]float64{"ms": float64(rtt.Microseconds()) / 1000})
	})
	handle("GET /lookup", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := addressParam(w, r, "address")
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		t0 := clock.System.Now()
		res, err := n.Lookup(ctx, addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		reply(w, node.ViewLookup(res, clock.Since(clock.System, t0)))
	})
	handle("GET /dht", func(w http.ResponseWriter, r *http.Request) {
		key, ok := addressParam(w, r, "key")
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		recs, err := n.Get(ctx, key)
		if err != nil && len(recs) == 0 {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		// values, and the same records with their signers: what any node
		// that asks, or stores them, sees.
		type record struct {
			Signer string `json:"signer"` // hex Ed25519 key
			Seq    uint64 `json:"seq"`
			Value  []byte `json:"value"`
		}
		values := make([][]byte, len(recs))
		records := make([]record, len(recs))
		for i, rec := range recs {
			values[i] = rec.Value
			records[i] = record{Signer: hex.EncodeToString(rec.Signer[:]), Seq: rec.Seq, Value: rec.Value}
		}
		reply(w, map[string]any{"values": values, "records": records})
	})
	handle("POST /connect", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := addressParam(w, r, "address")
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 45*time.Second)
		defer cancel()
		p, err := n.Connect(ctx, addr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusGatewayTimeout)
			return
		}
		reply(w, p.View())
	})
	handle("POST /disconnect", func(w http.ResponseWriter, r *http.Request) {
		addr, ok := addressParam(w, r, "address")
		if !ok {
			return
		}
		reply(w, map[string]bool{"closed": n.Disconnect(addr)})
	})
	// Usernames: the record as JSON (username.View, the shape window.ddt
	// gives), or node.ErrorView {"error": "...", "code": "invalid|taken|not-found|..."}.
	nameReply := func(w http.ResponseWriter, rec *wire.UserRecord, err error) {
		if err != nil {
			e := node.Explain(err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(errorStatus(e.Code))
			json.NewEncoder(w).Encode(e)
			return
		}
		reply(w, username.ViewOf(rec))
	}
	handle("POST /register", func(w http.ResponseWriter, r *http.Request) {
		rec, err := users.Register(r.Context(), r.URL.Query().Get("name"))
		nameReply(w, rec, err)
	})
	handle("GET /resolve", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("domain") && svc.sites != nil {
			resolveDomain(w, r, svc.sites)
			return
		}
		fresh := q.Get("fresh") == "1" || q.Get("fresh") == "true"
		rec, err := users.Resolve(r.Context(), q.Get("name"), fresh)
		nameReply(w, rec, err)
	})
	handle("GET /routing", func(w http.ResponseWriter, r *http.Request) { reply(w, n.RoutingView()) })
	if files != nil {
		contentRoutes(handle, files)
	}
	if svc.sites != nil {
		siteRoutes(handle, svc.sites)
	}
	if svc.chat != nil {
		unicastRoutes(handle, svc.chat)
	}
	return mux
}

// addressParam reads query parameter name as a DDT address (40 hex
// digits); a bad one is answered with 400.
func addressParam(w http.ResponseWriter, r *http.Request, name string) (id.Address, bool) {
	a, err := id.Parse(r.URL.Query().Get(name))
	if err != nil {
		http.Error(w, name+": "+err.Error(), http.StatusBadRequest)
		return id.Address{}, false
	}
	return a, true
}

// sizeFlag is a byte count given as 64MiB, 1GiB, 500MB, 4096 (bytes).
type sizeFlag int64

func (s *sizeFlag) String() string { return formatSize(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// sizeUnits are the suffixes parseSize knows, longest first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3},
	{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// parseSize reads a byte count: a whole number with an optional unit
// (KiB, MiB, GiB, TiB in powers of 1024; KB, MB, GB, TB in powers of
// 1000; K, M, G, T as the binary ones).
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: give a whole number of bytes with an optional unit, e.g. 64MiB or 1GiB", v)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}

// formatSize writes n in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return fmt.Sprintf("%d%s", n/u.mult, u.suffix)
		}
	}
	return strconv.FormatInt(n, 10)
}

// splitList splits a comma-separated flag, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
