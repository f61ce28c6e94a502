package web_test

// The end-to-end harness: real relay and native-node processes built by
// `make build`, and real headless Chromium driven over CDP. Every test
// here starts WebRTC, so it refuses to run outside a network namespace
// whose only interface is loopback (`make test` makes one).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ddt/shared/node"
	"ddt/shared/wait"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// buildDir is where `make build` put the relay binary and the web files.
func buildDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("DDT_BUILD")
	if dir == "" {
		t.Skip("end-to-end tests need DDT_BUILD (the build folder) and a loopback-only namespace: run `make test`")
	}
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Name != "lo" {
			t.Fatalf("refusing to start WebRTC with interface %s present: run inside `unshare -n` with only lo up (make test does)", i.Name)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a child process whose output is kept for the test log.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func start(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			p.mu.Lock()
			p.out.WriteString(s.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { p.cmd.Wait(); w.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- output of %s %s:\n%s", filepath.Base(name), strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// relay is a relay process.
type relay struct {
	t    testing.TB
	bin  string
	web  string
	addr string
	data string
	args []string
	p    *proc
}

func startRelay(t testing.TB, args ...string) *relay {
	t.Helper()
	r := newRelay(t, args...)
	r.start()
	return r
}

// newRelay prepares a relay with its address chosen but does not start
// it, so that relays can name each other before either runs.
func newRelay(t testing.TB, args ...string) *relay {
	t.Helper()
	return newRelayIn(t, buildDir(t), args...)
}

// newRelayIn is newRelay for the build in dir (another build's folder).
func newRelayIn(t testing.TB, dir string, args ...string) *relay {
	t.Helper()
	return &relay{t: t, bin: filepath.Join(dir, "ddt-relay"), web: filepath.Join(dir, "web"), addr: freePort(t), data: t.TempDir(), args: args}
}

// startRelayIn starts a relay of the build in dir.
func startRelayIn(t testing.TB, dir string, args ...string) *relay {
	t.Helper()
	buildDir(t) // the namespace check
	r := newRelayIn(t, dir, args...)
	r.start()
	return r
}

func (r *relay) url() string { return "http://" + r.addr }

func (r *relay) start() {
	r.t.Helper()
	args := append([]string{"-addr", r.addr, "-data", r.data, "-web", r.web, "-log", "debug"}, r.args...)
	r.p = start(r.t, r.bin, args...)
	wait.For(r.t, 15*time.Second, "relay health", func() error {
		_, err := r.stats()
		return err
	})
}

func (r *relay) stop() { r.p.stop() }

type relayStats struct {
	Zone     string `json:"zone"`
	Nodes    int    `json:"nodes"`
	Admitted int64  `json:"admitted"`
	Refused  int64  `json:"refused"`
	Signals  int64  `json:"signals"`
	Dropped  int64  `json:"dropped"`
}

func (r *relay) stats() (relayStats, error) {
	var s relayStats
	return s, getJSON(r.url()+"/healthz", &s)
}

func getJSON(url string, v any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	return decodeJSON(url, resp, err, v)
}

// decodeJSON reads a JSON reply into v; a status other than 200 is an
// error that quotes the body.
func decodeJSON(what string, resp *http.Response, err error, v any) error {
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s: %s", what, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// nativeNode is a headless native node process with a status endpoint.
type nativeNode struct {
	p      *proc
	status string
}

// peerInfo is a peer as ddt.peers() and the native node's /peers give
// it: the node's one definition of that shape.
type peerInfo = node.PeerView

// startNative runs a native node on r; args come after the defaults and
// override them (e.g. "-log", "warn").
func startNative(t testing.TB, r *relay, args ...string) *nativeNode {
	t.Helper()
	n := &nativeNode{status: freePort(t)}
	all := append([]string{"node", "-relay", r.url(), "-data", t.TempDir(), "-loopback", "-status", n.status, "-log", "debug"}, args...)
	n.p = start(t, r.bin, all...)
	wait.For(t, 15*time.Second, "native node admitted", func() error {
		st, err := n.state()
		if err == nil && st.State != "admitted" {
			err = fmt.Errorf("state %s", st.State)
		}
		return err
	})
	return n
}

type nodeStatus struct {
	Address string `json:"address"`
	Zone    string `json:"zone"`
	State   string `json:"state"`
}

func (n *nativeNode) state() (nodeStatus, error) {
	var s nodeStatus
	return s, getJSON("http://"+n.status+"/status", &s)
}

func (n *nativeNode) peers() ([]peerInfo, error) {
	var ps []peerInfo
	return ps, getJSON("http://"+n.status+"/peers", &ps)
}

// connect asks the native node to open a data channel to addr.
func (n *nativeNode) connect(addr string) (peerInfo, error) {
	var p peerInfo
	return p, n.post("/connect?address="+addr, &p)
}

// disconnect asks the native node to close its channel to addr.
func (n *nativeNode) disconnect(addr string) (bool, error) {
	var v struct{ Closed bool }
	return v.Closed, n.post("/disconnect?address="+addr, &v)
}

func (n *nativeNode) post(path string, v any) error {
	c := http.Client{Timeout: 60 * time.Second}
	resp, err := c.Post("http://"+n.status+path, "", nil)
	return decodeJSON(path, resp, err, v)
}

func (n *nativeNode) ping(addr string) (float64, error) {
	var v struct{ MS float64 }
	return v.MS, getJSON("http://"+n.status+"/ping?address="+addr, &v)
}

// page is one Chromium browser (its own profile, so its own identity)
// with one tab.
type page struct {
	t       testing.TB
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	console []string
	closed  bool
}

func newPage(t testing.TB, profile string) *page {
	t.Helper()
	if profile == "" {
		profile = t.TempDir()
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), browserOptions(profile)...)
	ctx, cancel := chromedp.NewContext(actx)
	p := &page{t: t, ctx: ctx, cancel: func() { cancel(); acancel() }}
	t.Cleanup(func() {
		p.close()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("--- console of %s:\n%s", profile, strings.Join(p.console, "\n"))
			p.mu.Unlock()
		}
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok {
			line := consoleLine(e)
			p.mu.Lock()
			p.console = append(p.console, line)
			p.mu.Unlock()
		}
	})
	return p
}

// browserOptions are the tests' Chromium flags for a browser with this
// profile folder, and extra ones.
func browserOptions(profile string, extra ...chromedp.ExecAllocatorOption) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Env("TMPDIR="+profile),
	)
	return append(opts, extra...)
}

// consoleLine is a console call as a failed test's log shows it: the
// time, the kind and the arguments.
func consoleLine(e *runtime.EventConsoleAPICalled) string {
	var parts []string
	for _, a := range e.Args {
		if len(a.Value) > 0 {
			parts = append(parts, string(a.Value))
		} else {
			parts = append(parts, a.Description)
		}
	}
	return time.Now().Format("15:04:05.000 ") + string(e.Type) + ": " + strings.Join(parts, " ")
}

// open grants the origin the media permission Chromium needs before it
// gathers loopback ICE candidates, then loads the page.
func (p *page) open(url string) {
	p.t.Helper()
	c := chromedp.FromContext(p.ctx)
	_, err := cdp.Call(p.ctx, c.Browser, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "microphone"},
		Setting:    browser.PermissionSettingGranted,
		Origin:     url,
	})
	if err != nil {
		p.t.Fatalf("grant permission: %v", err)
	}
	if err := chromedp.Do(p.ctx, chromedp.Navigate(url)); err != nil {
		p.t.Fatalf("navigate: %v", err)
	}
}

// eval runs expr in the page, awaiting it if it is a promise.
func eval[T any](p *page, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func mustEval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := eval[T](p, expr)
	if err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}

// ready waits for window.ddt and its admission; it returns the address.
func (p *page) ready() string {
	p.t.Helper()
	wait.For(p.t, 30*time.Second, "window.ddt", func() error {
		ok, err := eval[bool](p, `typeof window.ddt === "object"`)
		if err == nil && !ok {
			err = fmt.Errorf("not yet")
		}
		return err
	})
	info := mustEval[struct{ Address, Zone string }](p, `ddt.ready`)
	if len(info.Address) != 40 {
		p.t.Fatalf("ready gave address %q", info.Address)
	}
	return info.Address
}

func (p *page) peers() ([]peerInfo, error) { return eval[[]peerInfo](p, `ddt.peers()`) }

func (p *page) close() {
	p.mu.Lock()
	done := p.closed
	p.closed = true
	p.mu.Unlock()
	if !done {
		p.cancel()
	}
}

// samePeers reports a difference between got and the wanted addresses.
func samePeers(got []peerInfo, want ...string) error {
	have := map[string]bool{}
	for _, p := range got {
		have[p.Address] = true
	}
	for _, w := range want {
		if !have[w] {
			return fmt.Errorf("missing %s in %v", w[:8], got)
		}
	}
	if len(have) != len(want) {
		return fmt.Errorf("have %d peers, want %d: %v", len(have), len(want), got)
	}
	return nil
}

// newTab opens another tab in p's browser: same profile, same IndexedDB.
func (p *page) newTab() *page {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	tab := &page{t: p.t, ctx: ctx, cancel: cancel}
	p.t.Cleanup(tab.close)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		p.t.Fatalf("new tab: %v", err)
	}
	return tab
}

// dhtGet asks the native node for the values the DHT holds under key
// (40 hex digits), as any node could.
func (n *nativeNode) dhtGet(key string) ([][]byte, error) {
	var r struct{ Values [][]byte }
	return r.Values, getJSON("http://"+n.status+"/dht?key="+key, &r)
}
