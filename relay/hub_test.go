package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/internal/relaytest"
	"ddt/relay/zone"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/names"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// testZone is a real relay behind a loopback HTTP server.
type testZone struct {
	t     testing.TB
	cfg   Config // as started, without its store
	relay *Relay
	srv   *httptest.Server
	net   *transport.Network
	url   string // http://127.0.0.1:port
	addr  string // 127.0.0.1:port
	stop  func() // closes the relay and the server (also at cleanup)
}

func newZone(t testing.TB, st store.Store, cfg Config) *testZone {
	t.Helper()
	return startZone(t, st, cfg, listen(t, "127.0.0.1:0"))
}

// listen opens a loopback listener; a restarted relay listens again on
// the address it had, which may take a moment to be free.
func listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// testLogger logs to stderr when DDT_TEST_LOG names a level.
func testLogger() *slog.Logger {
	level := os.Getenv("DDT_TEST_LOG")
	if level == "" {
		return nil
	}
	return newLogger(level)
}

// startZone runs a relay with the relay's real routes on ln. Federation
// runs on short timers in tests.
func startZone(t testing.TB, st store.Store, cfg Config, ln net.Listener) *testZone {
	t.Helper()
	if cfg.Zone == "" {
		cfg.Zone = "test"
	}
	if cfg.MaxNodes == 0 {
		cfg.MaxNodes = 16
	}
	z := &testZone{t: t, net: transport.NewNetwork(), addr: ln.Addr().String()}
	z.url = "http://" + z.addr
	if cfg.URL == "" {
		cfg.URL = z.url
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 100 * time.Millisecond
	}
	if cfg.SummaryEvery == 0 {
		cfg.SummaryEvery = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		if l := testLogger(); l != nil {
			cfg.Logger = l.With("zone", cfg.Zone)
		}
	}
	z.cfg = cfg
	cfg.Store = st
	relay, err := NewRelay(cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	relay.Routes(mux, relay.log)
	z.relay = relay
	z.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	z.srv.Start()
	z.stop = sync.OnceFunc(func() {
		relay.Close()
		z.srv.Close()
	})
	t.Cleanup(z.stop)
	return z
}

// join runs a node on the memory transport until the test ends.
func (z *testZone) join(st store.Store) *node.Node {
	z.t.Helper()
	n, err := node.New(node.Config{Relay: z.srv.URL, Store: st, Transport: z.net.Transport(), MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		z.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	z.t.Cleanup(func() { cancel(); <-done })
	wait.Until(z.t, wait.Default, "admission", func() bool { s, _ := n.State(); return s == node.StateAdmitted })
	return n
}

func peerSet(n *node.Node) map[id.Address]bool {
	m := map[id.Address]bool{}
	for _, p := range n.Peers() {
		m[p.Address] = true
	}
	return m
}

func TestZoneMesh(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	var nodes []*node.Node
	for i := 0; i < 4; i++ {
		nodes = append(nodes, z.join(store.NewMemory()))
	}
	for i, n := range nodes {
		wait.Until(t, wait.Default, "full mesh", func() bool { return len(n.Peers()) == 3 })
		ps := peerSet(n)
		for j, m := range nodes {
			if i != j && !ps[m.Address()] {
				t.Errorf("node %d lacks node %d", i, j)
			}
		}
	}
	rtt, err := nodes[0].Ping(context.Background(), nodes[3].Address())
	if err != nil || rtt <= 0 {
		t.Fatalf("ping: %v %v", rtt, err)
	}
	if _, err := nodes[0].Ping(context.Background(), id.Address{1}); !errors.Is(err, node.ErrNotConnected) {
		t.Fatalf("ping to a stranger: %v", err)
	}
	if d, err := nodes[1].Throughput(context.Background(), nodes[2].Address(), 1<<20); err != nil || d <= 0 {
		t.Fatalf("throughput: %v %v", d, err)
	}
	if s := z.relay.Stats(); s.Nodes != 4 || s.Signals == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestAddressesSurviveRestarts(t *testing.T) {
	dir := t.TempDir()
	relayDB := filepath.Join(dir, "relay.db")
	rs := relaytest.OpenBolt(t, relayDB)
	nodeStore := store.NewMemory()
	z := newZone(t, rs, Config{})
	first := z.join(nodeStore).Address()
	key := z.relay.Key()
	z.stop()
	rs.Close()

	// The relay restarts from its data folder; the node comes back.
	rs = relaytest.OpenBolt(t, relayDB)
	z2 := newZone(t, rs, Config{})
	if z2.relay.Key() != key {
		t.Fatal("relay key changed across a restart")
	}
	if again := z2.join(nodeStore).Address(); again != first {
		t.Fatalf("address %s after restarts, was %s", again, first)
	}
	if other := z2.join(store.NewMemory()).Address(); other == first {
		t.Fatal("a different identity got the same address")
	}
}

// The redirect names a loopback port nobody serves: the node follows it
// and gets nowhere, without any traffic leaving the machine.
func TestZoneFullRefuses(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{MaxNodes: 1, Redirect: "http://127.0.0.1:9/"})
	z.join(store.NewMemory())
	n, err := node.New(node.Config{Relay: z.srv.URL, Store: store.NewMemory(), Transport: z.net.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan node.Event, 16)
	n.Subscribe(func(e node.Event) {
		select {
		case events <- e:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The node hears why, then follows the redirect at once.
	timeout := time.After(10 * time.Second)
	for refused, redirected := false, false; !redirected; {
		select {
		case e := <-events:
			switch {
			case e.State == node.StateRefused && !refused:
				if !strings.Contains(e.Detail, "full") || !strings.Contains(e.Detail, "http://127.0.0.1:9/") {
					t.Fatalf("refusal %+v", e)
				}
				refused = true
			case e.State == node.StateConnecting && refused:
				if !strings.Contains(e.Detail, "http://127.0.0.1:9/") {
					t.Fatalf("after the refusal: %+v", e)
				}
				redirected = true
			}
		case <-timeout:
			t.Fatal("no refusal and redirect within 10 s")
		}
	}
	if s := z.relay.Stats(); s.Refused != 1 || s.Nodes != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// rawClient speaks the relay protocol by hand, to misbehave.
type rawClient struct {
	t  testing.TB
	c  *websocket.Conn
	id *identity.Identity
	ch *wire.Challenge
}

func dialRaw(t testing.TB, z *testZone) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(z.srv.URL, "http", "ws", 1)+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	r := &rawClient{t: t, c: c}
	m := r.read()
	var ok bool
	if r.ch, ok = m.(*wire.Challenge); !ok {
		t.Fatalf("first message %T", m)
	}
	r.id, _ = identity.New()
	return r
}

func (r *rawClient) read() wire.Message {
	r.t.Helper()
	m, err := r.tryRead()
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *rawClient) tryRead() (wire.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := r.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	return wire.Unmarshal(b)
}

func (r *rawClient) write(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.c.Write(ctx, websocket.MessageBinary, b)
}

func (r *rawClient) send(m wire.Message) {
	r.t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) hello(sign bool) {
	h := &wire.Hello{SignKey: r.id.SignKey(), AgreeKey: r.id.AgreeKey()}
	if sign {
		h.Sig = r.id.Sign(wire.HelloSignedBytes(r.ch, h.SignKey, h.AgreeKey, false))
	}
	r.send(h)
}

// expectError reads until an Error with code arrives.
func (r *rawClient) expectError(code wire.Code) {
	r.t.Helper()
	for {
		m := r.read()
		if e, ok := m.(*wire.Error); ok {
			if e.Code != code {
				r.t.Fatalf("error %v, want code %d", e.Err(), code)
			}
			return
		}
	}
}

// expectClosed reads until the relay closes the connection.
func (r *rawClient) expectClosed() {
	r.t.Helper()
	for i := 0; i < 1000; i++ {
		if _, err := r.tryRead(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				r.t.Fatal("connection still open")
			}
			return
		}
	}
	r.t.Fatal("connection still open")
}

func TestBadClients(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	good1, good2 := z.join(store.NewMemory()), z.join(store.NewMemory())

	t.Run("garbage instead of hello", func(t *testing.T) {
		r := dialRaw(t, z)
		r.write([]byte{wire.Version, 250, 1, 2, 3})
		r.expectError(wire.CodeMalformed)
		r.expectClosed()
	})
	t.Run("bad signature", func(t *testing.T) {
		r := dialRaw(t, z)
		r.hello(false)
		r.expectError(wire.CodeBadSignature)
		r.expectClosed()
	})
	t.Run("signal to a stranger", func(t *testing.T) {
		r := dialRaw(t, z)
		r.hello(true)
		if _, ok := r.read().(*wire.Admitted); !ok {
			t.Fatal("not admitted")
		}
		r.send(&wire.Signal{Peer: id.Address{9}, Kind: wire.SignalOffer, Data: "x"})
		r.expectError(wire.CodeUnknownPeer)
		// Still connected: a valid signal reaches its target's relay link.
		r.send(&wire.Signal{Peer: good1.Address(), Kind: wire.SignalBye, Session: 1})
		r.send(&wire.Hello{})
		r.expectError(wire.CodeProtocol)
	})
	t.Run("oversized frame", func(t *testing.T) {
		r := dialRaw(t, z)
		r.hello(true)
		r.read()
		r.write(make([]byte, wire.MaxFrame+100))
		r.expectClosed()
	})
	t.Run("malformed after admission", func(t *testing.T) {
		r := dialRaw(t, z)
		r.hello(true)
		r.read()
		r.write([]byte{wire.Version, byte(wire.TypeSignal), 0xff})
		r.expectError(wire.CodeMalformed)
		r.expectClosed()
	})
	t.Run("flood", func(t *testing.T) {
		r := dialRaw(t, z)
		r.hello(true)
		r.read()
		b, _ := wire.Marshal(&wire.Signal{Peer: good2.Address(), Kind: wire.SignalBye, Session: 7})
		limited := false
		for i := 0; i < 5000; i++ {
			if err := r.write(b); err != nil {
				break // cut off
			}
		}
		for {
			m, err := r.tryRead()
			if err != nil {
				break
			}
			if e, ok := m.(*wire.Error); ok && e.Code == wire.CodeRateLimited {
				limited = true
			}
		}
		if !limited {
			t.Fatal("flood was never rate limited")
		}
	})
	// Everyone else is still served.
	if _, err := good1.Ping(context.Background(), good2.Address()); err != nil {
		t.Fatalf("good nodes lost each other: %v", err)
	}
	if s := z.relay.Stats(); s.Dropped == 0 || s.Nodes < 2 {
		t.Fatalf("stats %+v", s)
	}
	late := z.join(store.NewMemory())
	wait.Until(t, wait.Default, "a newcomer still joins", func() bool { return peerSet(late)[good1.Address()] })
}

// FuzzRelayFrame sends one arbitrary frame from an admitted node: the relay
// answers with an error, forwards it, or closes that one link, and keeps
// serving everyone else.
func FuzzRelayFrame(f *testing.F) {
	z := newZone(f, store.NewMemory(), Config{})
	good := z.join(store.NewMemory())
	someone, _ := identity.New()
	lease := someone.IssueLease(someone.SignKey(), someone.AgreeKey(), [16]byte{1}, "test", time.Now(), zone.LeaseTTL)
	claim, _ := names.NewClaim(someone, &lease, "alice", 1)
	for _, m := range []wire.Message{
		&wire.Signal{Peer: good.Address(), Session: 1, Kind: wire.SignalBye},
		&wire.Signal{Peer: id.Address{1}, Session: 1, Kind: wire.SignalOffer, Data: "v=0"},
		&wire.Hello{},
		&wire.Ping{ID: 1},
		&wire.NameClaim{ID: 1, Claim: *claim},
		&wire.NameLookup{ID: 2, Hash: names.Hash("alice")},
		&wire.NameResult{ID: 3, Code: wire.CodeNameTaken},
		&wire.RelayNameClaim{ID: 4, Lease: lease, Claim: *claim},
	} {
		b, _ := wire.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{wire.Version, byte(wire.TypeSignal), 0xff, 0xff})
	f.Add([]byte{wire.Version, byte(wire.TypeNameClaim), 9, 17, 'x'})                   // a name longer than any
	f.Add([]byte{wire.Version, byte(wire.TypeNameClaim), 0xff, 0xff, 0xff, 0xff, 0x7f}) // an ID out of range
	f.Fuzz(func(t *testing.T, frame []byte) {
		r := dialRaw(t, z)
		r.hello(true)
		if _, ok := r.read().(*wire.Admitted); !ok {
			t.Fatal("not admitted")
		}
		if err := r.write(frame); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		for {
			if _, _, err := r.c.Read(ctx); err != nil {
				break
			}
		}
	})
	late := z.join(store.NewMemory())
	wait.Until(f, wait.Default, "a newcomer still meets the zone", func() bool { return peerSet(late)[good.Address()] })
}

func TestAcceptsEncoding(t *testing.T) {
	for _, c := range []struct {
		header, enc string
		want        bool
	}{
		{"gzip, deflate, br, zstd", "br", true},
		{"gzip;q=0.5, br;q=0", "br", false},
		{"gzip;q=0.5", "gzip", true},
		{"br;q=0.0", "br", false},
		{"*", "br", true},
		{"", "gzip", false},
		{"identity", "gzip", false},
	} {
		r := httptest.NewRequest("GET", "/ddt.wasm", nil)
		r.Header.Set("Accept-Encoding", c.header)
		if got := acceptsEncoding(r, c.enc); got != c.want {
			t.Errorf("Accept-Encoding %q, %s: got %v", c.header, c.enc, got)
		}
	}
}

func TestURLs(t *testing.T) {
	for _, c := range []struct{ listen, acme, scheme, want string }{
		{"127.0.0.1:8080", "", "http", "http://127.0.0.1:8080"},
		{"0.0.0.0:8081", "", "http", "http://127.0.0.1:8081"},
		{"[::]:8082", "", "https", "https://127.0.0.1:8082"},
		{":8083", "", "http", "http://127.0.0.1:8083"},
		{"[::1]:8084", "", "http", "http://[::1]:8084"},
		{"192.0.2.7:80", "", "http", "http://192.0.2.7:80"},
		{"[::]:443", "relay.example", "https", "https://relay.example"},
		{"0.0.0.0:8443", "relay.example", "https", "https://relay.example:8443"},
	} {
		if got := publicURL(c.listen, c.acme, c.scheme); got != c.want {
			t.Errorf("publicURL(%q, %q) = %q, want %q", c.listen, c.acme, got, c.want)
		}
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":       "ws://127.0.0.1:8080/federate",
		"http://127.0.0.1:8080/":      "ws://127.0.0.1:8080/federate",
		"https://relay.example/ddt/":  "wss://relay.example/ddt/federate",
		"wss://relay.example":         "wss://relay.example/federate",
		"ftp://relay.example":         "",
		"http://[::1]:9/":             "ws://[::1]:9/federate",
		"https://b.example:8443/base": "wss://b.example:8443/base/federate",
	} {
		got, err := FedURL(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("FedURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
