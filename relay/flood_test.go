package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/internal/relaytest"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/wire"
)

// The flood benchmark: a relay in a process of its own (this test binary
// run again as TestFloodRelayProcess), so its heap and goroutines are
// its alone, measured while honest nodes join and signal, without and
// then with hostile clients flooding it.
const (
	floodHonest   = 100 // honest nodes per condition
	floodHostile  = 100 // hostile clients, a fifth of each kind
	floodPings    = 20  // signal round trips per honest node
	floodRounds   = 3   // rounds per condition: the median rate, every round trip
	floodRelayEnv = "DDT_FLOOD_RELAY_DIR"
)

// runtimeStats is what the relay process reports of itself.
type runtimeStats struct {
	HeapInuse  uint64 `json:"heapInuse"`
	Goroutines int    `json:"goroutines"`
}

// TestFloodRelayProcess is the relay of TestBenchFlood: it runs only when
// that benchmark starts it, serves the relay's real routes and
// /bench/runtime on a loopback port it prints, and stops when its stdin
// closes.
func TestFloodRelayProcess(t *testing.T) {
	dir := os.Getenv(floodRelayEnv)
	if dir == "" {
		t.Skip("the relay process of TestBenchFlood")
	}
	st := relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	r, err := NewRelay(Config{Zone: "flood", URL: url, MaxNodes: 1024, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	mux := http.NewServeMux()
	r.Routes(mux, r.log)
	mux.HandleFunc("GET /bench/runtime", func(w http.ResponseWriter, _ *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		json.NewEncoder(w).Encode(runtimeStats{HeapInuse: ms.HeapInuse, Goroutines: runtime.NumGoroutine()})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("listening on %s\n", url)
	io.Copy(io.Discard, os.Stdin)
}

// floodRelay is the relay process, seen from the benchmark.
type floodRelay struct {
	t   *testing.T
	url string
	ws  string
}

func startFloodRelay(t *testing.T) *floodRelay {
	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodRelayProcess$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), floodRelayEnv+"="+t.TempDir(), "DDT_BENCH=")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if u, ok := strings.CutPrefix(lines.Text(), "listening on "); ok {
			go io.Copy(io.Discard, stdout)
			return &floodRelay{t: t, url: u, ws: strings.Replace(u, "http", "ws", 1) + "/ws"}
		}
	}
	t.Fatal("the relay process did not start")
	return nil
}

func (f *floodRelay) get(path string, v any) error {
	resp, err := http.Get(f.url + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// mustGet is get on the test's goroutine.
func (f *floodRelay) mustGet(path string, v any) {
	if err := f.get(path, v); err != nil {
		f.t.Fatal(err)
	}
}

// sampler polls the relay's heap and goroutines until stopped and keeps
// the peaks.
type sampler struct {
	stop chan struct{}
	done chan struct{}
	peak runtimeStats
}

func (f *floodRelay) sample() *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			var rs runtimeStats
			if f.get("/bench/runtime", &rs) != nil {
				continue
			}
			s.peak.HeapInuse = max(s.peak.HeapInuse, rs.HeapInuse)
			s.peak.Goroutines = max(s.peak.Goroutines, rs.Goroutines)
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *sampler) end() runtimeStats { close(s.stop); <-s.done; return s.peak }

// wsClient is a node played over a raw WebSocket, honest or not.
type wsClient struct {
	c    *websocket.Conn
	id   *identity.Identity
	addr id.Address
}

// dialFlood opens /ws, retrying while the relay answers 503; it returns
// the connection and its challenge.
func dialFlood(ctx context.Context, url string) (*websocket.Conn, *wire.Challenge, error) {
	for {
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusServiceUnavailable && ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			return nil, nil, err
		}
		c.SetReadLimit(2 * wire.MaxFrame)
		_, b, err := c.Read(ctx)
		if err != nil {
			c.CloseNow()
			return nil, nil, err
		}
		m, err := wire.Unmarshal(b)
		ch, ok := m.(*wire.Challenge)
		if err != nil || !ok {
			c.CloseNow()
			return nil, nil, fmt.Errorf("first frame %T %v", m, err)
		}
		return c, ch, nil
	}
}

// joinFlood admits ident over a new connection.
func joinFlood(ctx context.Context, url string, ident *identity.Identity) (*wsClient, error) {
	c, ch, err := dialFlood(ctx, url)
	if err != nil {
		return nil, err
	}
	h := &wire.Hello{SignKey: ident.SignKey(), AgreeKey: ident.AgreeKey()}
	h.Sig = ident.Sign(wire.HelloSignedBytes(ch, h.SignKey, h.AgreeKey, false))
	b, _ := wire.Marshal(h)
	if err := c.Write(ctx, websocket.MessageBinary, b); err != nil {
		c.CloseNow()
		return nil, err
	}
	_, b, err = c.Read(ctx)
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	m, _ := wire.Unmarshal(b)
	adm, ok := m.(*wire.Admitted)
	if !ok {
		c.CloseNow()
		return nil, fmt.Errorf("not admitted: %T %+v", m, m)
	}
	return &wsClient{c: c, id: ident, addr: adm.Lease.Address}, nil
}

func (w *wsClient) send(ctx context.Context, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return w.c.Write(ctx, websocket.MessageBinary, b)
}

// honestRun is one condition's measurements.
type honestRun struct {
	admissionsPerSec float64
	rtts             []time.Duration
	lost             int
	peak             runtimeStats
}

// rounds runs runHonest floodRounds times and pools them: the median
// admission rate, every round trip, the peaks.
func rounds(t *testing.T, f *floodRelay, addrs *atomic.Pointer[[]id.Address]) honestRun {
	var all honestRun
	var rates []float64
	for range floodRounds {
		r := runHonest(t, f, addrs)
		rates = append(rates, r.admissionsPerSec)
		all.rtts = append(all.rtts, r.rtts...)
		all.lost += r.lost
		all.peak.HeapInuse = max(all.peak.HeapInuse, r.peak.HeapInuse)
		all.peak.Goroutines = max(all.peak.Goroutines, r.peak.Goroutines)
	}
	all.admissionsPerSec = medianFloat(rates)
	return all
}

// runHonest joins floodHonest fresh nodes at once, then has each ping
// others through the relay floodPings times: a Signal that the receiver
// echoes back with the same session. It returns the measurements and
// leaves again.
func runHonest(t *testing.T, f *floodRelay, addrs *atomic.Pointer[[]id.Address]) honestRun {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	s := f.sample()
	var run honestRun
	nodes := make([]*wsClient, floodHonest)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ident, _ := identity.New()
			n, err := joinFlood(ctx, f.ws, ident)
			if err != nil {
				t.Errorf("honest node %d: %v", i, err)
				return
			}
			nodes[i] = n
		}()
	}
	wg.Wait()
	run.admissionsPerSec = floodHonest / time.Since(start).Seconds()
	if t.Failed() {
		return run
	}
	all := make([]id.Address, len(nodes))
	for i, n := range nodes {
		all[i] = n.addr
	}
	addrs.Store(&all)
	// Every node reads all the time: echoes pings, hands echoes to the
	// pinger, and drops the rest (a flood's signals among it).
	echoes := make([]chan uint64, len(nodes))
	var readers sync.WaitGroup
	for i, n := range nodes {
		echoes[i] = make(chan uint64, 64)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, b, err := n.c.Read(ctx)
				if err != nil {
					return
				}
				m, _ := wire.Unmarshal(b)
				sig, ok := m.(*wire.Signal)
				switch {
				case !ok || sig.Data != "bench":
				case sig.Kind == wire.SignalCandidate:
					n.send(ctx, &wire.Signal{Peer: sig.Peer, Session: sig.Session, Kind: wire.SignalAnswer, Data: "bench"})
				case sig.Kind == wire.SignalAnswer:
					select {
					case echoes[i] <- sig.Session:
					default:
					}
				}
			}
		}()
	}
	var mu sync.Mutex
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < floodPings; k++ {
				to := nodes[(i+1+rand.IntN(len(nodes)-1))%len(nodes)]
				session := uint64(k + 1)
				t0 := time.Now()
				if err := n.send(ctx, &wire.Signal{Peer: to.addr, Session: session, Kind: wire.SignalCandidate, Data: "bench"}); err != nil {
					mu.Lock()
					run.lost += floodPings - k
					mu.Unlock()
					return
				}
				got := false
				timeout := time.NewTimer(5 * time.Second)
			echo:
				for {
					select {
					case s := <-echoes[i]:
						if s == session {
							got = true
							break echo
						}
					case <-timeout.C:
						break echo
					}
				}
				timeout.Stop()
				mu.Lock()
				if got {
					run.rtts = append(run.rtts, time.Since(t0))
				} else {
					run.lost++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	run.peak = s.end()
	addrs.Store(&[]id.Address{})
	for _, n := range nodes {
		n.c.CloseNow()
	}
	cancel()
	readers.Wait()
	return run
}

// hostile runs one kind of hostile client until ctx ends, counting the
// frames it got out and the connections it made.
func hostile(ctx context.Context, url string, kind int, addrs *atomic.Pointer[[]id.Address], frames, conns *atomic.Int64) {
	ident, _ := identity.New()
	for ctx.Err() == nil {
		conns.Add(1)
		if kind == 4 { // half-open: takes the challenge and never answers
			c, _, err := dialFlood(ctx, url)
			if err == nil {
				c.Read(ctx) // until the relay gives up on it
				c.CloseNow()
			}
			continue
		}
		w, err := joinFlood(ctx, url, ident)
		if err != nil {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		closed := make(chan struct{})
		go func() { // read whatever comes, so the relay's queue to us drains, until it closes
			defer close(closed)
			for {
				if _, _, err := w.c.Read(ctx); err != nil {
					return
				}
			}
		}()
		write := func(b []byte) bool {
			if w.c.Write(ctx, websocket.MessageBinary, b) != nil {
				return false
			}
			frames.Add(1)
			return true
		}
		switch kind {
		case 0: // malformed: a Signal that does not decode
			write([]byte{wire.Version, byte(wire.TypeSignal), 0xff})
		case 1: // oversized
			write(make([]byte, wire.MaxFrame+1))
		case 2: // signaling flood at the honest nodes, or at nobody
			for i := uint64(0); ; i++ {
				to := w.addr
				if all := *addrs.Load(); len(all) > 0 {
					to = all[rand.IntN(len(all))]
				}
				b, _ := wire.Marshal(&wire.Signal{Peer: to, Session: i, Kind: wire.SignalCandidate, Data: strings.Repeat("x", 512)})
				if !write(b) {
					break
				}
			}
		case 3: // username lookup flood
			for i := uint32(1); ; i++ {
				var h [32]byte
				h[0], h[1] = byte(i), byte(i>>8)
				b, _ := wire.Marshal(&wire.NameLookup{ID: i, Hash: h})
				if !write(b) {
					break
				}
			}
		}
		<-closed
		w.c.CloseNow()
	}
}

// TestBenchFlood prints the relay's behaviour under a flood (make bench
// sets DDT_BENCH=1): honest admissions per second and signal round trips
// with and without 100 hostile clients, and the relay's heap and
// goroutines in both.
func TestBenchFlood(t *testing.T) {
	if os.Getenv("DDT_BENCH") == "" {
		t.Skip("set DDT_BENCH=1 to run the flood benchmark")
	}
	f := startFloodRelay(t)
	var addrs atomic.Pointer[[]id.Address]
	addrs.Store(&[]id.Address{})
	var idle runtimeStats
	f.mustGet("/bench/runtime", &idle)
	calm := rounds(t, f, &addrs)

	ctx, stop := context.WithCancel(context.Background())
	var frames, conns atomic.Int64
	var hwg sync.WaitGroup
	for i := range floodHostile {
		hwg.Add(1)
		go func() { defer hwg.Done(); hostile(ctx, f.ws, i%5, &addrs, &frames, &conns) }()
	}
	time.Sleep(2 * time.Second) // the flood builds up
	var before Stats
	f.mustGet("/healthz", &before)
	flooded := rounds(t, f, &addrs)
	var during Stats
	f.mustGet("/healthz", &during)
	stop()
	hwg.Wait()

	p := func(rtts []time.Duration, q float64) time.Duration {
		if len(rtts) == 0 {
			return 0
		}
		s := slices.Clone(rtts)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	mib := func(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	var b strings.Builder
	fmt.Fprintf(&b, "### Relay under a flood (one relay process on bbolt, %d honest raw-WebSocket nodes joining at once, then %d signal round trips each through the relay, %d rounds per condition (median admission rate, every round trip pooled, peaks sampled every 100 ms); the clients share the machine; flood: %d hostile clients, a fifth each sending malformed frames, oversized frames, signaling floods, username lookup floods, half-open joins; %d CPUs)\n\n",
		floodHonest, floodPings, floodRounds, floodHostile, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "| condition | honest admissions/s | signal round trip p50 | p99 | lost | relay heap in use (peak) | relay goroutines (peak) |\n|---|---|---|---|---|---|---|\n")
	row := func(name string, r honestRun) {
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %d | %s | %d |\n", name, r.admissionsPerSec, ms(p(r.rtts, 0.5)), ms(p(r.rtts, 0.99)), r.lost, mib(r.peak.HeapInuse), r.peak.Goroutines)
	}
	row("no flood", calm)
	row("flood", flooded)
	fmt.Fprintf(&b, "| flood ÷ no flood | %s | %s | %s | | %s | %s |\n",
		ratio(flooded.admissionsPerSec, calm.admissionsPerSec),
		ratio(float64(p(flooded.rtts, 0.5)), float64(p(calm.rtts, 0.5))),
		ratio(float64(p(flooded.rtts, 0.99)), float64(p(calm.rtts, 0.99))),
		ratio(float64(flooded.peak.HeapInuse), float64(calm.peak.HeapInuse)),
		ratio(float64(flooded.peak.Goroutines), float64(calm.peak.Goroutines)))
	l, l0 := during.Limits, before.Limits
	fmt.Fprintf(&b, "\nIdle relay: %s heap, %d goroutines. While the honest nodes of the flood rounds joined and signaled, the flood made %d connections and got %d frames out; the relay refused %d connections busy (503), closed %d for no hello in time, rate-limited %d signals, cut %d links at 50 refusals, closed %d for oversized frames; %d bytes were queued to nodes at the end; %d lease records.\n",
		mib(idle.HeapInuse), idle.Goroutines, conns.Load(), frames.Load(),
		l.Busy-l0.Busy, l.HelloTimeouts-l0.HelloTimeouts, l.RateLimited-l0.RateLimited, l.Cut-l0.Cut, l.Oversized-l0.Oversized, l.QueuedBytes, l.LeaseRecords)
	fmt.Print(b.String())
}
