package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
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

	"ddt/shared/store"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "node" {
		if err := runNode(os.Args[2:]); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "node:", err)
			os.Exit(1)
		}
		return
	}
	if err := runRelay(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
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
	fs.Var(&peers, "peer", "URL of another relay, named to newcomers when this zone is full (repeatable)")
	fs.Parse(args)
	log := newLogger(*logLevel)

	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	st, err := store.OpenBolt(filepath.Join(*data, "relay.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	hub, err := NewHub(HubConfig{Zone: *zone, MaxNodes: *maxNodes, ICEServers: ice, Store: st, Logger: log.With("zone", *zone)})
	if err != nil {
		return err
	}
	if len(peers) > 0 {
		hub.cfg.Redirect = peers[0]
	}
	mux, err := newMux(hub, *webDir, log)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	scheme := "http"
	switch {
	case *acmeHost != "":
		m := &autocert.Manager{Prompt: autocert.AcceptTOS, HostPolicy: autocert.HostWhitelist(*acmeHost), Cache: autocert.DirCache(filepath.Join(*data, "acme"))}
		srv.TLSConfig = m.TLSConfig()
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	case *tlsCert != "" || *tlsKey != "":
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
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
	k := hub.Key()
	log.Info("relay up", "zone", *zone, "url", fmt.Sprintf("%s://%s/", scheme, ln.Addr()), "key", fmt.Sprintf("%x", k[:8]), "max-nodes", *maxNodes)
	fmt.Fprintf(os.Stderr, "\n  DDT relay for zone %q: open %s://%s/ in a browser\n\n", *zone, scheme, ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
