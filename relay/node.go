package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/username"
	"ddt/shared/wire"
)

// runNode runs a headless native node: it joins exactly as a browser tab
// does, over native pion, and optionally serves its status over HTTP.
func runNode(args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	relayURL := fs.String("relay", "http://127.0.0.1:8080", "relay base URL")
	data := fs.String("data", defaultNodeData(), "folder for the node's identity, lease and usernames (bbolt)")
	status := fs.String("status", "", "serve /status, /peers, /ping, /lookup, /dht, /connect, /disconnect, /routing, /register and /resolve on this loopback address (e.g. 127.0.0.1:8081)")
	statusPublic := fs.Bool("status-public", false, "allow -status on an address that is not loopback: anyone who can reach it can drive the node")
	name := fs.String("name", "", "register this username once admitted (prints \"registered NAME\")")
	loopback := fs.Bool("loopback", false, "restrict WebRTC to the loopback interface (tests)")
	maxPeers := fs.Int("max-peers", node.DefaultMaxPeers, "connection budget: data channels kept open")
	logLevel := fs.String("log", "info", "log level: debug, info, warn, error")
	var ice listFlag
	fs.Var(&ice, "ice", "STUN/TURN URL (repeatable)")
	fs.Parse(args)
	log := newLogger(*logLevel)

	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(*data, "node.db"))
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("another node runs with -data %s: give this one a folder of its own (-data DIR)", *data)
	}
	if err != nil {
		return err
	}
	log.Info("node data", "dir", *data)
	defer st.Close()
	tr, err := transport.NewWebRTC(transport.Config{ICEServers: ice, LoopbackOnly: *loopback, Logger: log})
	if err != nil {
		return err
	}
	defer tr.Close()
	users := username.New()
	n, err := node.New(node.Config{Relay: *relayURL, Store: st, Transport: tr, Native: true, Agent: "ddt-native", Logger: log, MaxPeers: *maxPeers,
		Capabilities: []node.Capability{users}})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
		srv, ln, err := serveStatus(*status, *statusPublic, n, users, log)
		if err != nil {
			return err
		}
		defer srv.Close()
		log.Info("status endpoint", "url", "http://"+ln.Addr().String()+"/status")
	}
	return n.Run(ctx)
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
	case username.CodeInvalid:
		return http.StatusBadRequest
	case username.CodeTaken, username.CodeAlreadyRegistered:
		return http.StatusConflict
	case username.CodeNotFound, node.CodeNotConnected:
		return http.StatusNotFound
	case node.CodeRateLimited:
		return http.StatusTooManyRequests
	case node.CodeUnavailable, node.CodeNotAdmitted:
		return http.StatusServiceUnavailable
	case username.CodeForged:
		return http.StatusBadGateway
	case node.CodeTimeout:
		return http.StatusGatewayTimeout
	default:
		return http.StatusInternalServerError
	}
}

func statusMux(n *node.Node, users *username.Client) *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) { handleOnly(mux, pattern, h) }
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
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
		fresh := q.Get("fresh") == "1" || q.Get("fresh") == "true"
		rec, err := users.Resolve(r.Context(), q.Get("name"), fresh)
		nameReply(w, rec, err)
	})
	handle("GET /routing", func(w http.ResponseWriter, r *http.Request) { reply(w, n.RoutingView()) })
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
