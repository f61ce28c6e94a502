package web_test

// End to end in Chromium: content shared by one page and fetched by
// others, through a real relay, real native nodes and, for the hostile
// provider, a node built in this process with a disk that lies.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"

	"github.com/chromedp/chromedp"
)

// jsHex is a function, in the page, from an ArrayBuffer to lowercase hex.
const jsHex = `((buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join(''))`

// jsSum is a function, in the page, from a Blob to the hex SHA-256 of its
// bytes; above 128 MiB (more than Chromium reads into one ArrayBuffer
// from a paged-out Blob) it is "tree:" and the SHA-256 of the SHA-256s of
// its 4 MiB slices, as strong a check and read a slice at a time.
const jsSum = `(async (blob) => {
  const hex = ` + jsHex + `;
  if (blob.size <= (128 << 20)) return hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
  const sums = [];
  for (let o = 0; o < blob.size; o += 4 << 20) sums.push(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.slice(o, o + (4 << 20)).arrayBuffer())));
  return 'tree:' + hex(await crypto.subtle.digest('SHA-256', await new Blob(sums).arrayBuffer()));
})`

// jsPutRandom puts n random bytes (made in the page, 64 KiB at a time)
// and returns the content id and the SHA-256 of the bytes (jsSum),
// computed in the page.
const jsPutRandom = `(async (n, opts) => {
  const parts = [];
  for (let i = 0; i < n; i += 65536) {
    const b = new Uint8Array(Math.min(65536, n - i));
    crypto.getRandomValues(b);
    parts.push(b);
  }
  const blob = new Blob(parts, {type: 'application/octet-stream'});
  const sum = await ` + jsSum + `(blob);
  const id = await ddt.put(blob, opts);
  return {id, sum};
})`

// jsGet gets an item, keeping the last progress report (and the most
// providers seen) in window.__progress, and returns the SHA-256 of what
// it got, computed in the page, with its size, name and type; or the
// rejection's code and message.
const jsGet = `(async (id, opts) => {
  window.__progress = {bytes: 0, total: 0, providers: 0, maxProviders: 0};
  window.__penalties = window.__penalties || [];
  try {
    const f = await ddt.get(id, {...opts, onProgress: (p) => {
      window.__progress = {...p, maxProviders: Math.max(window.__progress.maxProviders, p.providers)};
    }});
    const sum = await ` + jsSum + `(f);
    return {sum, size: f.size, name: f.name, type: f.type, maxProviders: window.__progress.maxProviders};
  } catch (e) {
    return {code: e.code || 'none', error: String(e.message || e)};
  }
})`

// jsListenPenalties records the content.penalty events of the page.
const jsListenPenalties = `(() => { window.__penalties = []; ddt.on('content.penalty', (e) => window.__penalties.push(e)); return true; })()`

type putResult struct{ ID, Sum string }

type getResult struct {
	Sum, Name, Type, Code, Error string
	Size                         int64
	MaxProviders                 int
}

type progressView struct {
	Phase                 string
	Bytes, Total          int64
	Providers, ChunksDone int
	MaxProviders          int
	BytesPerSec           float64
}

type statView struct {
	ID, Name, Type   string
	Size             int64
	Chunks, Replicas int
	Local, Pinned    bool
}

// evalFor is eval with a deadline of d instead of 30 s.
func evalFor[T any](p *page, d time.Duration, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

func putRandom(t testing.TB, p *page, n int, opts string) putResult {
	t.Helper()
	r, err := evalFor[putResult](p, 2*time.Minute, fmt.Sprintf(`(%s)(%d, %s)`, jsPutRandom, n, opts))
	if err != nil {
		t.Fatalf("put %d bytes: %v", n, err)
	}
	if len(r.ID) != 64 {
		t.Fatalf("put gave id %q", r.ID)
	}
	return r
}

func getIn(t testing.TB, p *page, id, opts string, d time.Duration) getResult {
	t.Helper()
	r, err := evalFor[getResult](p, d, fmt.Sprintf(`(%s)(%q, %s)`, jsGet, id, opts))
	if err != nil {
		t.Fatalf("get %s: %v", id[:8], err)
	}
	return r
}

// mustGet gets id in p and checks it is the put's bytes.
func mustGet(t testing.TB, p *page, put putResult, size int) getResult {
	t.Helper()
	g := getIn(t, p, put.ID, "{}", 3*time.Minute)
	if g.Code != "" {
		t.Fatalf("get %s: %s: %s", put.ID[:8], g.Code, g.Error)
	}
	if g.Sum != put.Sum || g.Size != int64(size) {
		t.Fatalf("get %s: %d bytes with SHA-256 %s, want %d bytes with %s", put.ID[:8], g.Size, g.Sum[:16], size, put.Sum[:16])
	}
	return g
}

func stat(p *page, id string) (statView, error) {
	return eval[statView](p, fmt.Sprintf(`ddt.stat(%q)`, id))
}

// waitReplicas waits until p counts at least n live replicas of id.
func waitReplicas(t testing.TB, p *page, id string, n int) {
	t.Helper()
	wait.For(t, 90*time.Second, fmt.Sprintf("%d replicas of %s", n, id[:8]), func() error {
		s, err := stat(p, id)
		if err == nil && s.Replicas < n {
			err = fmt.Errorf("%d replicas", s.Replicas)
		}
		return err
	})
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// The native node's content API (GET /get, POST /pin; POST /put in putStream).

func (n *nativeNode) url(path string) string { return "http://" + n.status + path }

// getBytes is GET /get?id=: the item's bytes, streamed.
func (n *nativeNode) getBytes(id string) ([]byte, error) {
	c := http.Client{Timeout: 3 * time.Minute}
	resp, err := c.Get(n.url("/get?id=" + id))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /get: %s: %s", resp.Status, b)
	}
	return b, err
}

// pin is POST /pin?id=: the node fetches the item and keeps it.
func (n *nativeNode) pin(id string) error {
	c := http.Client{Timeout: 3 * time.Minute}
	resp, err := c.Post(n.url("/pin?id="+id), "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST /pin: %s: %s", resp.Status, b)
	}
	return nil
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestContent: page A puts 20 MiB; page B gets it byte-identical (SHA-256
// computed in each page); once at least 3 replicas are counted and both
// native nodes hold every chunk, A and B close and a new page C still
// gets it, from the replicas alone; and a native node's GET /get serves
// the same bytes. Two native nodes beside B make the three replica
// holders besides A.
func TestContent(t *testing.T) {
	r := startRelay(t, "-zone", "content")
	n1 := startNative(t, r, "-log", "info")
	n2 := startNative(t, r, "-log", "info")
	a, b := newPage(t, ""), newPage(t, "")
	a.open(r.url())
	a.ready()
	b.open(r.url())
	b.ready()

	const size = 20 << 20
	put := putRandom(t, a, size, `{name: "twenty.bin", type: "application/octet-stream"}`)
	st, err := stat(a, put.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Local || !st.Pinned || st.Size != size || st.Chunks != 5 || st.Name != "twenty.bin" {
		t.Fatalf("publisher's stat: %+v", st)
	}

	g := mustGet(t, b, put, size)
	if g.Name != "twenty.bin" || g.Type != "application/octet-stream" {
		t.Errorf("B got name %q type %q", g.Name, g.Type)
	}

	waitReplicas(t, a, put.ID, 3)
	for i, n := range []*nativeNode{n1, n2} {
		wait.For(t, 90*time.Second, fmt.Sprintf("native node %d holding a replica of every chunk", i+1), func() error {
			var u struct {
				UsedBytes int64 `json:"usedBytes"`
			}
			if err := getJSON(n.url("/storage"), &u); err != nil {
				return err
			}
			if u.UsedBytes < size {
				return fmt.Errorf("%d bytes held", u.UsedBytes)
			}
			return nil
		})
	}
	// Neither the publisher nor the page that downloaded it is left.
	a.close()
	b.close()
	c := newPage(t, "")
	c.open(r.url())
	c.ready()
	mustGet(t, c, put, size)

	// The native HTTP API: the same bytes from GET /get.
	got, err := n1.getBytes(put.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != size || sha(got) != put.Sum {
		t.Fatalf("GET /get: %d bytes with SHA-256 %s, want %d with %s", len(got), sha(got)[:16], size, put.Sum[:16])
	}

	// An id nobody published: not-found, and a bad one: invalid.
	miss := getIn(t, c, strings.Repeat("ab", 32), "{}", 3*time.Minute)
	if miss.Code != "not-found" {
		t.Errorf("get of an id nobody holds: %+v, want code not-found", miss)
	}
	bad := getIn(t, c, "xyz", "{}", 30*time.Second)
	if bad.Code != "invalid" {
		t.Errorf("get of id xyz: %+v, want code invalid", bad)
	}
}

// TestContentAbort: a get whose signal aborts rejects with code aborted,
// and one aborted before it starts never starts.
func TestContentAbort(t *testing.T) {
	r := startRelay(t, "-zone", "content")
	a, b := newPage(t, ""), newPage(t, "")
	a.open(r.url())
	a.ready()
	b.open(r.url())
	b.ready()
	put := putRandom(t, a, 40<<20, `{unicast: true}`)
	res := mustEval[getResult](b, fmt.Sprintf(`(async () => {
	  const ctl = new AbortController();
	  const got = (%s)(%q, {signal: ctl.signal});
	  const t0 = Date.now();
	  while (!(window.__progress.bytes > 0) && Date.now() - t0 < 20000) await new Promise((r) => setTimeout(r, 20));
	  ctl.abort();
	  return got;
	})()`, jsGet, put.ID))
	if res.Code != "aborted" {
		t.Errorf("aborted get: %+v, want code aborted", res)
	}
	pre := mustEval[getResult](b, fmt.Sprintf(`(%s)(%q, {signal: AbortSignal.abort()})`, jsGet, put.ID))
	if pre.Code != "aborted" {
		t.Errorf("get with an aborted signal: %+v, want code aborted", pre)
	}
	// A put cancelled half way rejects with aborted, and what it stored is
	// not pinned for good.
	type putResult struct{ Code, Error string }
	before := mustEval[float64](a, `ddt.storage().then((s) => s.pinnedBytes)`)
	cut := mustEval[putResult](a, `(async () => {
	  const ctl = new AbortController();
	  const big = new Blob([new Uint8Array(24 << 20).fill(7), new Uint8Array(24 << 20).fill(9)]);
	  const putting = ddt.put(big, {signal: ctl.signal, onProgress: (p) => { if (p.bytes > 0) ctl.abort(); }});
	  try { await putting; return {Code: 'none', Error: ''}; } catch (e) { return {Code: e.code, Error: String(e.message)}; }
	})()`)
	if cut.Code != "aborted" {
		t.Errorf("cancelled put: %+v, want code aborted", cut)
	}
	if after := mustEval[float64](a, `ddt.storage().then((s) => s.pinnedBytes)`); after != before {
		t.Errorf("a cancelled put left %v bytes pinned (were %v)", after, before)
	}
	if pre := mustEval[putResult](a, `ddt.put("x", {signal: AbortSignal.abort()}).then(() => ({Code: 'none'}), (e) => ({Code: e.code, Error: e.message}))`); pre.Code != "aborted" {
		t.Errorf("put with an aborted signal: %+v, want code aborted", pre)
	}
}

// lyingChunks is a disk that returns corrupt bytes: every read of a data
// chunk has one byte flipped. What it stores is stored right; what it
// serves is not. Manifests (small chunks) read true, so the node itself
// still knows what it holds and announces it.
type lyingChunks struct{ store.Chunks }

func (l lyingChunks) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	n, err := l.Chunks.ReadAt(h, p, off)
	if size, _ := l.Chunks.Size(h); size > 64<<10 && n > 0 {
		p[n/2] ^= 0x55
	}
	return n, err
}

// startHostile runs, in this process, a native node on r whose chunk store
// lies (lyingChunks), restricted to loopback; it returns its address and
// service.
func startHostile(t *testing.T, r *relay) (string, *content.Service) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("DDT_DEBUG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tr, err := transport.NewWebRTC(transport.Config{LoopbackOnly: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	svc := content.New(content.Config{Chunks: lyingChunks{store.NewMemoryChunks()}, Pledge: 256 << 20})
	n, err := node.New(node.Config{Relay: r.url(), Store: store.NewMemory(), Transport: tr, Native: true, Agent: "ddt-hostile-test", Logger: log,
		Capabilities: []node.Capability{svc}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wait.For(t, 15*time.Second, "hostile node admitted", func() error {
		if st, _ := n.State(); st != node.StateAdmitted {
			return fmt.Errorf("state %s", st)
		}
		return nil
	})
	return n.Address().String(), svc
}

// TestContentCorruptProvider: a provider whose every served chunk is
// corrupt is caught by the hash check, penalised (the page hears
// content.penalty naming it) and routed around: the download completes
// byte-identical from the honest holder.
func TestContentCorruptProvider(t *testing.T) {
	r := startRelay(t, "-zone", "content")
	hostile, svc := startHostile(t, r)
	a := newPage(t, "")
	a.open(r.url())
	a.ready()
	const size = 20 << 20
	put := putRandom(t, a, size, `{unicast: true}`)
	id, err := chunk.Parse(put.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The hostile node fetches the item honestly (it checks what it gets),
	// so it becomes a provider; only its serving lies.
	if _, err := svc.Fetch(ctx, id, content.GetOptions{Pin: true}); err != nil {
		t.Fatalf("hostile node's fetch: %v", err)
	}
	// A downloader may happen to ask only the honest holder; fresh pages
	// try until one has met the liar (each page's penalties are its own).
	for attempt := 1; ; attempt++ {
		b := newPage(t, "")
		b.open(r.url())
		b.ready()
		mustEval[bool](b, jsListenPenalties)
		mustGet(t, b, put, size)
		type penalty struct{ Peer, Reason string }
		ps := mustEval[[]penalty](b, `window.__penalties`)
		for _, p := range ps {
			if p.Peer != hostile {
				t.Errorf("page penalised %s (%s), not the hostile node %s", p.Peer[:8], p.Reason, hostile[:8])
			}
		}
		if len(ps) > 0 {
			t.Logf("attempt %d: penalised the hostile node: %s", attempt, ps[0].Reason)
			break
		}
		if attempt == 4 {
			t.Fatalf("in %d downloads no page asked the hostile node %s for a chunk", attempt, hostile[:8])
		}
		b.close()
	}
}

// TestContentProviderLeaves: two native nodes hold an item; a page
// downloads it from both at once, and one of them stops while the
// download is under way; the download completes byte-identical from the
// other.
func TestContentProviderLeaves(t *testing.T) {
	r := startRelay(t, "-zone", "content")
	n1 := startNative(t, r, "-log", "info", "-pledge", "512MiB")
	n2 := startNative(t, r, "-log", "info", "-pledge", "512MiB")
	a := newPage(t, "")
	a.open(r.url())
	a.ready()
	const size = 96 << 20
	put := putRandom(t, a, size, `{unicast: true}`)
	for _, n := range []*nativeNode{n1, n2} {
		if err := n.pin(put.ID); err != nil {
			t.Fatal(err)
		}
	}
	a.close()
	b := newPage(t, "")
	b.open(r.url())
	b.ready()
	done := make(chan getResult, 1)
	go func() {
		// pin: 96 MiB is more than the default pledge holds as cache.
		g, err := evalFor[getResult](b, 5*time.Minute, fmt.Sprintf(`(%s)(%q, {pin: true})`, jsGet, put.ID))
		if err != nil {
			g.Code, g.Error = "eval", err.Error()
		}
		done <- g
	}()
	var at progressView
	wait.For(t, 2*time.Minute, "the download under way from both", func() error {
		var err error
		at, err = eval[progressView](b, `window.__progress || {}`)
		if err == nil && (at.Providers < 2 || at.Bytes < 8<<20) {
			err = fmt.Errorf("progress %+v", at)
		}
		return err
	})
	if at.Bytes >= at.Total {
		t.Fatalf("the download finished before a provider could leave: %+v", at)
	}
	n1.p.stop()
	t.Logf("stopped a provider at %d of %d bytes", at.Bytes, at.Total)
	g := <-done
	if g.Code != "" {
		t.Fatalf("get after a provider left: %s: %s", g.Code, g.Error)
	}
	if g.Sum != put.Sum || g.Size != size {
		t.Fatalf("got %d bytes with SHA-256 %s, want %s", g.Size, g.Sum[:16], put.Sum[:16])
	}
}

// TestContentPutKinds: ddt.put takes a string, a Uint8Array, an
// ArrayBuffer, a Blob and a File, each read back by ddt.get with its
// bytes, name and type; anything else is refused with code invalid and
// stores nothing.
func TestContentPutKinds(t *testing.T) {
	r := startRelay(t, "-zone", "content")
	p := newPage(t, "")
	p.open(r.url())
	p.ready()
	type back struct {
		Size             int
		Name, Type, Text string
		Code             string
	}
	for _, c := range []struct {
		in   string
		want back
	}{
		{`"héllo"`, back{Size: 6, Type: "text/plain;charset=utf-8", Text: "héllo"}},
		{`new TextEncoder().encode("bytes")`, back{Size: 5, Text: "bytes"}},
		{`new TextEncoder().encode("buffer").buffer`, back{Size: 6, Text: "buffer"}},
		{`new Blob(["blob"], {type: "text/x-blob"})`, back{Size: 4, Type: "text/x-blob", Text: "blob"}},
		{`new File(["file"], "notes.txt", {type: "text/plain"})`, back{Size: 4, Name: "notes.txt", Type: "text/plain", Text: "file"}},
		{`""`, back{Size: 0, Type: "text/plain;charset=utf-8"}},
		{`42`, back{Code: "invalid"}},
		{`null`, back{Code: "invalid"}},
		{`{length: 3}`, back{Code: "invalid"}},
	} {
		got := mustEval[back](p, `ddt.put(`+c.in+`).then(async (id) => {
		  const f = await ddt.get(id);
		  return {size: f.size, name: f.name, type: f.type, text: await f.text()};
		}, (e) => ({code: e.code}))`)
		if got != c.want {
			t.Errorf("put(%s) and get: %+v, want %+v", c.in, got, c.want)
		}
	}
	// A name the manifest cannot carry is refused before anything is stored.
	before := mustEval[int](p, `ddt.storage().then((s) => s.chunks)`)
	code := mustEval[string](p, `ddt.put("x", {name: "n".repeat(256)}).then(() => "stored", (e) => e.code)`)
	after := mustEval[int](p, `ddt.storage().then((s) => s.chunks)`)
	if code != "invalid" || after != before {
		t.Errorf("put with a 256-byte name: %s, chunks %d → %d; want invalid and nothing stored", code, before, after)
	}
}
