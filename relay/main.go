package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"ddt/relay/federation"
	"ddt/shared/store"
	"ddt/web/extension"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "node" {
		if err := runNode(os.Args[2:]); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "publish" {
		if err := runPublish(os.Args[2:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "publish:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "key" {
		if err := runKey(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "key:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "audit" {
		if err := runAudit(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "audit: failed:", err)
			os.Exit(1)
		}
		return
	}
	if err := runRelay(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

// publicURL derives a relay's base URL from the address it listens on:
// an unspecified host (0.0.0.0, [::] or none) becomes 127.0.0.1, and an
// ACME host name replaces the address, with the port unless it is 443.
func publicURL(listen, acmeHost, scheme string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = listen, ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	if acmeHost != "" {
		host = acmeHost
		if port == "443" {
			return scheme + "://" + host
		}
	}
	if port == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func newLogger(level string) *slog.Logger {
	var lv slog.Level
	lv.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
}

// runKey is "ddt-relay key": it prints the relay's public key in hex
// (creating the key if the relay has none yet), for other relays'
// operators to name it with -peer URL#KEY or in a trust file.
func runKey(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("key", flag.ContinueOnError)
	data := fs.String("data", "ddt-data", "the relay's -data folder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(*data, "relay.db"))
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w (the relay is running: its log says its key at startup, and /healthz has it as relayKey)", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	k, err := LoadKey(st)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%x\n", k)
	return err
}

// federationConfig turns the -peer, -trust and -federation flags into
// the relay's federation settings.
func federationConfig(cfg *Config, peers []string, trustFile, mode string) error {
	switch mode {
	case "trusted":
	case "open":
		cfg.Open = true
	default:
		return fmt.Errorf("-federation %q: want trusted or open", mode)
	}
	for _, s := range peers {
		p, err := federation.ParsePeer(s)
		if err != nil {
			return err
		}
		cfg.Peers = append(cfg.Peers, p)
	}
	if trustFile != "" {
		f, err := os.Open(trustFile)
		if err != nil {
			return fmt.Errorf("-trust: %w", err)
		}
		defer f.Close()
		ps, keys, err := federation.ParseTrust(f)
		if err != nil {
			return fmt.Errorf("-trust %s: %w", trustFile, err)
		}
		cfg.Peers = append(cfg.Peers, ps...)
		cfg.Trusted = append(cfg.Trusted, keys...)
	}
	return nil
}

func runRelay(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	data := fs.String("data", "ddt-data", "folder for the relay's key and leases (bbolt)")
	zone := fs.String("zone", "local", "name of this relay's zone")
	maxNodes := fs.Int("max-nodes", 1024, "most nodes admitted to the zone at once")
	webDir := fs.String("web", "build/web", "folder with ddt.wasm and wasm_exec.js")
	tlsCert := fs.String("tls-cert", "", "TLS certificate file (HTTPS)")
	tlsKey := fs.String("tls-key", "", "TLS key file (HTTPS)")
	acmeHost := fs.String("acme", "", "obtain certificates automatically for this host name (HTTPS on -addr, e.g. :443)")
	logLevel := fs.String("log", "info", "log level: debug, info, warn, error")
	var ice, peers listFlag
	fs.Var(&ice, "ice", "STUN/TURN URL handed to nodes (repeatable; none by default)")
	fs.Var(&peers, "peer", "another relay to federate with, URL#KEYHEX (its `ddt-relay key`; a URL alone pins the key it first proves); the first is also the fallback redirect when this zone is full (repeatable)")
	trustFile := fs.String("trust", "", "file of relays to federate with, one a line: KEYHEX [URL] (a URL is dialed as -peer); # starts a comment")
	fedMode := fs.String("federation", "trusted", "trusted: link only relays named by -peer or -trust; open: also link other relays, untrusted (never redirected to, never homes of names)")
	public := fs.String("url", "", "this relay's public base URL, told to other relays and nodes (default: from -addr, an unspecified host as 127.0.0.1)")
	capture := fs.String("capture", "", "for audits: record every frame this process handles (every WebSocket message the relay reads or writes) in this file, appended")
	sitesDomain := fs.String("sites-domain", "", "serve DDT sites at <name>.ddt.<this domain> (as well as <name>.ddt.localhost); a registrable domain apart from the page's, with DNS and certificates for its subdomains")
	extensions := fs.String("extension-origins", extension.Origin(), "origins of DDT extensions' pages that sites' frames trust as DDT pages, comma-separated (chrome-extension://<ID>, moz-extension://<UUID>); the default is the DDT extension's, whose ID comes from the public key in its manifest (so any extension loaded with that key has it; a store build has another ID); empty: none")
	fs.Parse(args)
	log := newLogger(*logLevel)
	trustedExtensions, err := extensionOrigins(*extensions)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(*data, "relay.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	scheme := "http"
	var tlsConfig *tls.Config
	switch {
	case *acmeHost != "":
		m := &autocert.Manager{Prompt: autocert.AcceptTOS, HostPolicy: autocert.HostWhitelist(*acmeHost), Cache: autocert.DirCache(filepath.Join(*data, "acme"))}
		tlsConfig = m.TLSConfig()
		scheme = "https"
	case *tlsCert != "" || *tlsKey != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		scheme = "https"
	}
	if *public == "" {
		*public = publicURL(ln.Addr().String(), *acmeHost, scheme)
	}
	*public = strings.TrimSuffix(*public, "/")
	cfg := Config{Zone: *zone, URL: *public, MaxNodes: *maxNodes, ICEServers: ice, Store: st, Logger: log.With("zone", *zone),
		SitesDomain: strings.ToLower(strings.Trim(*sitesDomain, "."))}
	if cfg.Capture, err = OpenCapture(*capture); err != nil {
		ln.Close()
		return err
	}
	defer cfg.Capture.Close()
	if err := federationConfig(&cfg, peers, *trustFile, *fedMode); err != nil {
		ln.Close()
		return err
	}
	if len(cfg.Peers) > 0 {
		cfg.Redirect = cfg.Peers[0].URL
	}
	relay, err := NewRelay(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer relay.Close()
	mux, err := newMux(relay, *webDir, trustedExtensions, log)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), TLSConfig: tlsConfig}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		srv.Close()
	}()
	k := relay.Key()
	log.Info("relay up", "zone", *zone, "url", *public, "listen", ln.Addr().String(), "key", fmt.Sprintf("%x", k), "max-nodes", *maxNodes,
		"peers", len(cfg.Peers), "trusted", len(cfg.Trusted), "federation", *fedMode,
		"nameMe", fmt.Sprintf("-peer %s#%x", *public, k))
	fmt.Fprintf(os.Stderr, "\n  DDT relay for zone %q: open %s/ in a browser\n\n", *zone, *public)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
