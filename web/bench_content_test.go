package web_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	mathrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"ddt/shared/wait"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The content benchmarks of `make bench`: they measure and print, and
// assert nothing about speed.

// captureWasmMemory keeps the Go instance's linear memory where a
// benchmark can read it (window.__wasmMemory), by wrapping
// WebAssembly.instantiate before the page's loader calls it: a test aid
// that needs no hook in the node.
const captureWasmMemory = `(() => {
  const instantiate = WebAssembly.instantiate;
  WebAssembly.instantiate = async function (...args) {
    const r = await instantiate.apply(this, args);
    const inst = r instanceof WebAssembly.Instance ? r : r.instance;
    if (inst && inst.exports && inst.exports.mem) window.__wasmMemory = inst.exports.mem;
    return r;
  };
})();`

// benchPledge is what the benchmarks' downloaders and extra holders
// pledge: too little for any 4 MiB chunk, so no replica lands on them
// unasked and each provider count is the one the benchmark set up (a get
// with pin: true keeps its chunks outside the pledge).
const benchPledge = 1 << 20

// benchPage opens a DDT page with pledge bytes pledged and its wasm
// memory captured.
func benchPage(t *testing.T, r *relay, pledge int) (*page, string) {
	t.Helper()
	p := newPage(t, "")
	onNewDocument(t, p, captureWasmMemory)
	if pledge > 0 {
		onNewDocument(t, p, fmt.Sprintf("window.DDT_PLEDGE = %d;", pledge))
	}
	p.open(r.url())
	return p, p.ready()
}

// timedGet is one download: its throughput, its time to first byte, the
// most providers it used at once.
type timedGet struct {
	MiBPerSec, TTFBms float64
	Providers         int
	Code, Error, Sum  string
}

// jsTimedGet gets id with pin: true, times it and its first byte, checks
// its SHA-256 against want, then unpins it (so the next run downloads it
// again: with the benchmarks' small pledge, the chunks are evicted).
const jsTimedGet = `(async (id, want) => {
  const t0 = performance.now();
  let first = 0, providers = 0;
  try {
    const f = await ddt.get(id, {pin: true, onProgress: (p) => {
      if (!first && p.bytes > 0 && p.phase === 'downloading') first = performance.now();
      providers = Math.max(providers, p.providers);
    }});
    const ms = performance.now() - t0;
    const sum = await ` + jsSum + `(f);
    await ddt.unpin(id);
    return {miBPerSec: f.size / (1 << 20) / (ms / 1000), ttfbMs: (first || performance.now()) - t0, providers, sum: sum === want ? '' : sum};
  } catch (e) {
    return {code: e.code || 'none', error: String(e.message || e)};
  }
})`

func benchGet(t *testing.T, p *page, put putResult) timedGet {
	t.Helper()
	// The last run's chunks, unpinned, are cache over the pledge: the
	// download starts once they are gone.
	wait.For(t, 30*time.Second, "the last run's chunks evicted", func() error {
		s, err := stat(p, put.ID)
		if err == nil && s.Local {
			err = fmt.Errorf("still local: %+v", s)
		}
		return err
	})
	g, err := evalFor[timedGet](p, 5*time.Minute, fmt.Sprintf(`(%s)(%q, %q)`, jsTimedGet, put.ID, put.Sum))
	if err != nil {
		t.Fatal(err)
	}
	if g.Code != "" {
		t.Fatalf("get %s: %s: %s", put.ID[:8], g.Code, g.Error)
	}
	if g.Sum != "" {
		t.Fatalf("get %s: SHA-256 %s, want %s", put.ID[:8], g.Sum, put.Sum)
	}
	return g
}

// TestBenchContentTransfer: download throughput browser↔browser beside
// the raw data-channel throughput of the same two pages (ddt.throughput,
// provider → downloader) in the same run; the speed-up with 2 and 4
// providers (the publishing page and native nodes that pinned the item);
// time to first byte; and WebCrypto's SHA-256 in the page.
func TestBenchContentTransfer(t *testing.T) {
	benchOnly(t)
	const size = 64 << 20
	const runs = 5
	r := startRelay(t, "-zone", "bench", "-log", "warn")
	pledge := fmt.Sprintf("%d", benchPledge)
	var natives []*nativeNode
	for i := 0; i < 3; i++ {
		natives = append(natives, startNative(t, r, "-log", "warn", "-pledge", pledge))
	}
	a, _ := benchPage(t, r, benchPledge)
	b, bAddr := benchPage(t, r, benchPledge)
	put := putRandom(t, a, size, `{name: "bench.bin", unicast: true}`)
	if _, err := a.connectTo(bAddr); err != nil {
		t.Fatal(err)
	}

	var raw, one []float64
	var ttfb []float64
	for i := 0; i < runs; i++ {
		d := mustEval[struct{ MiBPerSec float64 }](a, fmt.Sprintf(`ddt.throughput(%q, %d)`, bAddr, size))
		raw = append(raw, d.MiBPerSec)
		g := benchGet(t, b, put)
		one = append(one, g.MiBPerSec)
		ttfb = append(ttfb, g.TTFBms)
	}
	type row struct {
		holders   int
		mibs      []float64
		providers []float64
	}
	rows := []row{{holders: 1, mibs: one}}
	held := 0
	for _, k := range []int{2, 4} {
		for ; held < k-1; held++ {
			if err := natives[held].pin(put.ID); err != nil {
				t.Fatal(err)
			}
		}
		rw := row{holders: k}
		for i := 0; i < runs; i++ {
			g := benchGet(t, b, put)
			rw.mibs = append(rw.mibs, g.MiBPerSec)
			rw.providers = append(rw.providers, float64(g.Providers))
		}
		rows = append(rows, rw)
	}
	hash := mustEval[[]float64](a, `(async () => {
	  const b = new Uint8Array(4 << 20); crypto.getRandomValues(b.subarray(0, 65536));
	  const out = [];
	  for (let i = 0; i < 16; i++) { const t0 = performance.now(); await crypto.subtle.digest('SHA-256', b); out.push((4 << 20) / 1e6 / ((performance.now() - t0) / 1000)); }
	  return out;
	})()`)

	fmt.Printf("\n### Content transfer in Chromium: %d MiB, loopback, %d runs each\n\n", size>>20, runs)
	fmt.Printf("| measure | median | runs | target |\n|---|---|---|---|\n")
	fmt.Printf("| raw data channel, provider page → downloader page (ddt.throughput), MiB/s | %.1f | %s | |\n", median(raw), fmtList(raw))
	fmt.Printf("| download browser↔browser (ddt.get, 1 provider), MiB/s | %.1f | %s | |\n", median(one), fmtList(one))
	fmt.Printf("| ratio download / raw | %.2f | | ≥ 0.8 |\n", median(one)/median(raw))
	for _, rw := range rows[1:] {
		fmt.Printf("| download with %d holders (the page + %d native), MiB/s | %.1f | %s | |\n", rw.holders, rw.holders-1, median(rw.mibs), fmtList(rw.mibs))
		fmt.Printf("| speed-up with %d holders over 1 (most providers used at once: %s) | %.2f | | |\n", rw.holders, fmtList(rw.providers), median(rw.mibs)/median(one))
	}
	fmt.Printf("| time to first byte (ddt.get → first bytes downloaded), ms | %.0f | %s | |\n", median(ttfb), fmtList(ttfb))
	fmt.Printf("| WebCrypto SHA-256 of 4 MiB in the page, MB/s | %.0f | %s | |\n", median(hash), fmtList(hash))
}

// connectTo opens a data channel from p to addr (if none is open yet).
func (p *page) connectTo(addr string) (peerInfo, error) {
	return eval[peerInfo](p, fmt.Sprintf(`ddt.connect(%q)`, addr))
}

// memSample is one look at a tab's memory.
type memSample struct {
	Wasm, Heap, Buffers float64 // bytes
}

// TestBenchContentMemory: the downloading tab's memory — the Go instance's
// linear memory, the JS heap and the array buffers' backing store — while
// it downloads 512 MiB, against the same tab idle just before.
func TestBenchContentMemory(t *testing.T) {
	benchOnly(t)
	const size int64 = 512 << 20
	r := startRelay(t, "-zone", "bench", "-log", "warn")
	// The provider is a native node: Chromium will not read back a Blob of
	// 512 MiB made in a page (its blob storage refuses past a few hundred
	// MiB here), while the downloader's File is backed by IndexedDB and
	// reads slice by slice.
	n := startNative(t, r, "-log", "warn")
	put := putStream(t, n, size, "big.bin")
	b, _ := benchPage(t, r, benchPledge)
	st, err := n.state()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.connectTo(st.Address); err != nil {
		t.Fatal(err)
	}
	sample := func() memSample {
		var s memSample
		s.Wasm = mustEval[float64](b, `window.__wasmMemory ? window.__wasmMemory.buffer.byteLength : 0`)
		h, err := chromedp.Run(b.ctx, chromedp.Action[runtime.GetHeapUsageResult](func(ctx context.Context, tg *chromedp.Target) (runtime.GetHeapUsageResult, error) {
			return cdp.Call(ctx, tg, runtime.GetHeapUsage, cdp.Empty{})
		}))
		if err == nil {
			s.Heap, s.Buffers = h.UsedSize, h.BackingStorageSize
		}
		return s
	}
	time.Sleep(3 * time.Second)
	idle := sample()
	if idle.Wasm == 0 {
		t.Fatal("the wasm memory was not captured")
	}
	var mu sync.Mutex
	var during []memSample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				s := sample()
				mu.Lock()
				during = append(during, s)
				mu.Unlock()
			}
		}
	}()
	t0 := time.Now()
	g, err := evalFor[timedGet](b, 10*time.Minute, fmt.Sprintf(`(async (id) => {
	  const t0 = performance.now();
	  try {
	    const f = await ddt.get(id, {pin: true});
	    return {miBPerSec: f.size / (1 << 20) / ((performance.now() - t0) / 1000)};
	  } catch (e) { return {code: e.code || 'none', error: String(e.message || e)}; }
	})(%q)`, put.ID))
	close(stop)
	wg.Wait()
	if err != nil || g.Code != "" {
		t.Fatalf("get 512 MiB: %v %s %s", err, g.Code, g.Error)
	}
	elapsed := time.Since(t0)
	after := sample()
	// The bytes, checked once the sampling is over (the check reads every
	// slice into the page).
	sum := mustEvalFor[string](b, 5*time.Minute, fmt.Sprintf(`ddt.get(%q).then(%s)`, put.ID, jsSum))
	if sum != put.Sum {
		t.Fatalf("512 MiB download: SHA-256 %s, want %s", sum[:16], put.Sum[:16])
	}
	pick := func(f func(memSample) float64) (peak, med float64) {
		var xs []float64
		for _, s := range during {
			xs = append(xs, f(s))
		}
		if len(xs) == 0 {
			return 0, 0
		}
		return slices.Max(xs), median(xs)
	}
	mib := func(x float64) float64 { return x / (1 << 20) }
	fmt.Printf("\n### The downloading tab's memory, 512 MiB from a native node (%.1f MiB/s, %s, %d samples)\n\n", g.MiBPerSec, elapsed.Round(time.Second), len(during))
	fmt.Printf("| memory | idle MiB | median during MiB | peak during MiB | peak − idle MiB | after MiB | target |\n|---|---|---|---|---|---|---|\n")
	for _, m := range []struct {
		name   string
		f      func(memSample) float64
		target string
	}{
		{"wasm linear memory (Go instance)", func(s memSample) float64 { return s.Wasm }, "< 64 above idle"},
		{"JS heap used (Runtime.getHeapUsage)", func(s memSample) float64 { return s.Heap }, "< 64 above idle"},
		{"array buffers' backing store", func(s memSample) float64 { return s.Buffers }, ""},
	} {
		peak, med := pick(m.f)
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s |\n", m.name, mib(m.f(idle)), mib(med), mib(peak), mib(peak-m.f(idle)), mib(m.f(after)), m.target)
	}
}

// putStream puts size pseudo-random bytes on native node n by POST /put,
// generated as they are sent, and returns the id and the bytes' sum as
// jsSum computes it.
func putStream(t *testing.T, n *nativeNode, size int64, name string) putResult {
	t.Helper()
	src := io.LimitReader(mathrand.NewChaCha8([32]byte{1, 2, 3}), size)
	sum := treeSummer{whole: sha256.New(), tree: size > 128<<20}
	req, err := http.NewRequest("POST", n.url("/put?name="+name), io.TeeReader(src, &sum))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	resp, err := (&http.Client{Timeout: 10 * time.Minute}).Do(req)
	var v struct{ ID string }
	if err := decodeJSON("POST /put", resp, err, &v); err != nil {
		t.Fatal(err)
	}
	return putResult{ID: v.ID, Sum: sum.String()}
}

// treeSummer is jsSum in Go: the SHA-256 of the bytes, or with tree the
// SHA-256 of the SHA-256s of their 4 MiB slices, "tree:" before it.
type treeSummer struct {
	whole hash.Hash
	tree  bool
	slice []byte
	sums  []byte
}

func (s *treeSummer) Write(p []byte) (int, error) {
	if !s.tree {
		return s.whole.Write(p)
	}
	for rest := p; len(rest) > 0; {
		k := min(len(rest), 4<<20-len(s.slice))
		s.slice = append(s.slice, rest[:k]...)
		rest = rest[k:]
		if len(s.slice) == 4<<20 {
			s.flush()
		}
	}
	return len(p), nil
}

func (s *treeSummer) flush() {
	h := sha256.Sum256(s.slice)
	s.sums = append(s.sums, h[:]...)
	s.slice = s.slice[:0]
}

func (s *treeSummer) String() string {
	if !s.tree {
		return hex.EncodeToString(s.whole.Sum(nil))
	}
	if len(s.slice) > 0 {
		s.flush()
	}
	h := sha256.Sum256(s.sums)
	return "tree:" + hex.EncodeToString(h[:])
}

func mustEvalFor[T any](p *page, d time.Duration, expr string) T {
	p.t.Helper()
	v, err := evalFor[T](p, d, expr)
	if err != nil {
		p.t.Fatalf("eval %s: %v", expr, err)
	}
	return v
}
