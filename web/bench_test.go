package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"ddt/shared/wait"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The benchmarks of the join issue, printed as tables by `make bench`.
// They measure and print; they assert nothing about speed.

func benchOnly(t *testing.T) {
	if os.Getenv("DDT_BENCH") == "" {
		t.Skip("benchmarks run with `make bench`")
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtList(xs []float64) string {
	var parts []string
	for _, x := range xs {
		if x < 100 {
			parts = append(parts, fmt.Sprintf("%.1f", x))
		} else {
			parts = append(parts, fmt.Sprintf("%.0f", x))
		}
	}
	return strings.Join(parts, ", ")
}

// markTimes records, relative to navigation start, when the page's node is
// admitted and when its first data channel opens.
const markTimes = `window.__bench = {};
addEventListener('ddt:loaded', () => {
  __bench.loaded = performance.now();
  const w = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/ddt.wasm'));
  if (w) __bench.wasm = w.responseEnd;
  const c = performance.getEntriesByName('ddt:compiled')[0];
  if (c) __bench.compiled = c.startTime;
  ddt.ready.then(() => { __bench.ready = performance.now(); });
  ddt.on('peer', () => { if (!__bench.peer) __bench.peer = performance.now(); });
});`

// joinTimes are milestones in ms since navigation start.
type joinTimes struct{ Wasm, Compiled, Loaded, Ready, Peer float64 }

func waitJoined(t *testing.T, p *page) joinTimes {
	t.Helper()
	var m joinTimes
	wait.For(t, 30*time.Second, "first peer", func() error {
		var err error
		m, err = eval[joinTimes](p, `window.__bench || {}`)
		if err == nil && m.Peer == 0 {
			err = fmt.Errorf("no peer yet")
		}
		return err
	})
	return m
}

// onNewDocument runs src at the start of every document the page loads.
func onNewDocument(t *testing.T, p *page, src string) {
	t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Action[cdppage.AddScriptToEvaluateOnNewDocumentResult](
		func(ctx context.Context, tg *chromedp.Target) (cdppage.AddScriptToEvaluateOnNewDocumentResult, error) {
			return cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: src})
		}))
	if err != nil {
		t.Fatal(err)
	}
}

// build is one build under test: this one, or the baseline `make bench`
// builds from an earlier commit (BASELINE) to run beside it.
type build struct {
	name  string
	relay *relay
}

// builds starts a relay of this build and, if DDT_BASELINE names the
// baseline's build folder, one of the baseline, each with args.
func builds(t *testing.T, args ...string) []build {
	t.Helper()
	out := []build{{"this build", startRelay(t, args...)}}
	if dir := os.Getenv("DDT_BASELINE"); dir != "" {
		out = append(out, build{"baseline", startRelayIn(t, dir, args...)})
	}
	return out
}

// ratio formats this build's figure over the baseline's.
func ratio(this, base float64) string {
	if base == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", this/base)
}

func TestBenchJoin(t *testing.T) {
	benchOnly(t)
	bs := builds(t, "-zone", "bench", "-log", "warn")
	for _, b := range bs {
		resident := newPage(t, "")
		resident.open(b.relay.url())
		resident.ready()
	}

	const runs = 11
	type series struct {
		ready, peer, warmReady, warmPeer []float64
		phases, warmPhases               []joinTimes
	}
	got := make([]series, len(bs))
	for i := 0; i < runs; i++ {
		// The builds take turns, so both see the machine as it is.
		for k, b := range bs {
			s := &got[k]
			// A first visit: a new browser profile, nothing cached.
			p := newPage(t, "")
			onNewDocument(t, p, markTimes)
			p.open(b.relay.url())
			m := waitJoined(t, p)
			s.phases = append(s.phases, m)
			s.ready = append(s.ready, m.Ready)
			s.peer = append(s.peer, m.Peer)
			// A return visit: the same tab, after a few seconds of use, reloads
			// with the browser's caches (V8 writes its compiled-code cache for
			// the module a little after it starts, not at once).
			time.Sleep(5 * time.Second)
			reload(t, p)
			m = waitJoined(t, p)
			s.warmPhases = append(s.warmPhases, m)
			s.warmReady = append(s.warmReady, m.Ready)
			s.warmPeer = append(s.warmPeer, m.Peer)
			p.close()
		}
	}
	fmt.Printf("\n### Joining: navigation → admission → first data channel (loopback, %d runs", runs)
	if len(bs) > 1 {
		fmt.Printf(", alternating with the baseline build of %s", os.Getenv("DDT_BASELINE_REV"))
	}
	fmt.Printf(")\n\n| measure | median ms | runs (ms) | baseline median ms | ratio | target |\n|---|---|---|---|---|---|\n")
	for _, row := range []struct {
		name   string
		pick   func(series) []float64
		target string
	}{
		{"first visit: navigation → ddt.ready", func(s series) []float64 { return s.ready }, ""},
		{"first visit: navigation → first open data channel", func(s series) []float64 { return s.peer }, "≤ 700"},
		{"return visit: navigation → ddt.ready", func(s series) []float64 { return s.warmReady }, ""},
		{"return visit: navigation → first open data channel", func(s series) []float64 { return s.warmPeer }, "≤ 700"},
	} {
		this := row.pick(got[0])
		base, r := "—", "—"
		if len(bs) > 1 {
			base = fmt.Sprintf("%.0f", median(row.pick(got[1])))
			r = ratio(median(this), median(row.pick(got[1])))
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %s |\n", row.name, median(this), fmtList(this), base, r, row.target)
	}
	col := func(phases []joinTimes, f func(joinTimes) float64) string {
		var xs []float64
		for _, m := range phases {
			xs = append(xs, f(m))
		}
		return fmt.Sprintf("%.0f", median(xs))
	}
	fmt.Printf("\n| build, visit | wasm downloaded | compiled | node running | admitted | first channel |\n|---|---|---|---|---|---|\n")
	for k, b := range bs {
		for _, v := range []struct {
			name string
			ph   []joinTimes
		}{{"first", got[k].phases}, {"return", got[k].warmPhases}} {
			fmt.Printf("| %s, %s (median ms since navigation) | %s | %s | %s | %s | %s |\n", b.name, v.name,
				col(v.ph, func(m joinTimes) float64 { return m.Wasm }), col(v.ph, func(m joinTimes) float64 { return m.Compiled }),
				col(v.ph, func(m joinTimes) float64 { return m.Loaded }), col(v.ph, func(m joinTimes) float64 { return m.Ready }),
				col(v.ph, func(m joinTimes) float64 { return m.Peer }))
		}
	}

	fmt.Printf("\n### The wasm as served\n\n| encoding | bytes | MB | baseline MB | ratio | target |\n|---|---|---|---|---|---|\n")
	size := func(r *relay, enc string) (int, string) {
		req, _ := http.NewRequest("GET", r.url()+"/ddt.wasm", nil)
		req.Header.Set("Accept-Encoding", enc)
		resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return len(b), resp.Header.Get("Content-Encoding")
	}
	for _, enc := range []string{"identity", "gzip", "br"} {
		n, got := size(bs[0].relay, enc)
		target := ""
		if enc == "br" {
			target = "≤ 2 MB served"
		}
		base, r := "—", "—"
		if len(bs) > 1 {
			bn, _ := size(bs[1].relay, enc)
			base, r = fmt.Sprintf("%.2f", float64(bn)/1e6), ratio(float64(n), float64(bn))
		}
		fmt.Printf("| %s (%s) | %d | %.2f | %s | %s | %s |\n", enc, got, n, float64(n)/1e6, base, r, target)
	}
}

// The plain-JavaScript baseline: an RTCPeerConnection between the same two
// Chromium pages, signaled by the test, moving the same bytes in the same
// 60 KiB messages with the same buffer watermarks as the Go node.
const jsOffer = `(async () => {
  const pc = window.__pc = new RTCPeerConnection();
  const dc = window.__dc = pc.createDataChannel('bench', {ordered: true});
  dc.binaryType = 'arraybuffer';
  window.__open = new Promise(r => dc.onopen = r);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { const chk = () => pc.iceGatheringState === 'complete' && r(); pc.onicegatheringstatechange = chk; chk(); });
  return JSON.stringify(pc.localDescription);
})()`

const jsAnswer = `(async (offer) => {
  const pc = window.__pc = new RTCPeerConnection();
  pc.ondatachannel = e => {
    const dc = e.channel; dc.binaryType = 'arraybuffer'; let got = 0;
    dc.onmessage = m => {
      if (typeof m.data === 'string') { dc.send('done:' + got); got = 0; } else { got += m.data.byteLength; }
    };
  };
  await pc.setRemoteDescription(JSON.parse(offer));
  await pc.setLocalDescription(await pc.createAnswer());
  await new Promise(r => { const chk = () => pc.iceGatheringState === 'complete' && r(); pc.onicegatheringstatechange = chk; chk(); });
  return JSON.stringify(pc.localDescription);
})`

const jsSend = `(async (total) => {
  const dc = window.__dc, chunk = new Uint8Array(60 * 1024);
  dc.bufferedAmountLowThreshold = 1 << 20;
  const t0 = performance.now();
  for (let sent = 0; sent < total; ) {
    if (dc.bufferedAmount > (4 << 20)) await new Promise(r => dc.onbufferedamountlow = r);
    const n = Math.min(chunk.length, total - sent);
    dc.send(n === chunk.length ? chunk : chunk.subarray(0, n));
    sent += n;
  }
  const reply = new Promise(r => dc.onmessage = m => r(m.data));
  dc.send('end');
  const got = await reply;
  if (got !== 'done:' + total) throw new Error('receiver got ' + got);
  return performance.now() - t0;
})`

func TestBenchThroughput(t *testing.T) {
	benchOnly(t)
	const total = 64 << 20
	const runs = 5
	type result struct{ ddt, plain []float64 }
	bs := builds(t, "-zone", "bench", "-log", "warn")
	type pair struct{ a, b *page }
	pairs := make([]pair, len(bs))
	addrs := make([]string, len(bs))
	for k, bd := range bs {
		a, b := newPage(t, ""), newPage(t, "")
		a.open(bd.relay.url())
		a.ready()
		b.open(bd.relay.url())
		addrs[k] = b.ready()
		wait.For(t, 30*time.Second, "peers", func() error {
			ps, err := a.peers()
			if err == nil && len(ps) != 1 {
				err = fmt.Errorf("%d peers", len(ps))
			}
			return err
		})
		offer := mustEval[string](a, jsOffer)
		answer := mustEval[string](b, jsAnswer+`(`+quote(offer)+`)`)
		mustEval[bool](a, `__pc.setRemoteDescription(JSON.parse(`+quote(answer)+`)).then(() => __open).then(() => true)`)
		pairs[k] = pair{a, b}
	}
	res := make([]result, len(bs))
	for i := 0; i < runs; i++ {
		for k := range bs {
			a := pairs[k].a
			d := mustEval[struct{ MS float64 }](a, fmt.Sprintf(`ddt.throughput(%q, %d)`, addrs[k], total))
			res[k].ddt = append(res[k].ddt, float64(total)/(1<<20)/(d.MS/1000))
			ms := mustEval[float64](a, fmt.Sprintf(`(%s)(%d)`, jsSend, total))
			res[k].plain = append(res[k].plain, float64(total)/(1<<20)/(ms/1000))
		}
	}
	fmt.Printf("\n### Data-channel throughput, browser↔browser, 64 MiB, same two Chromium pages, alternating runs\n\n")
	fmt.Printf("| build | path | median MiB/s | runs (MiB/s) |\n|---|---|---|---|\n")
	for k, bd := range bs {
		fmt.Printf("| %s | DDT node (Go wasm, ddt.throughput) | %.1f | %s |\n", bd.name, median(res[k].ddt), fmtList(res[k].ddt))
		fmt.Printf("| %s | plain JavaScript RTCDataChannel | %.1f | %s |\n", bd.name, median(res[k].plain), fmtList(res[k].plain))
		fmt.Printf("| %s | ratio DDT / plain (target ≥ 0.9) | %.2f | |\n", bd.name, median(res[k].ddt)/median(res[k].plain))
	}
	if len(bs) > 1 {
		fmt.Printf("| | DDT node, this build / baseline | %s | |\n", ratio(median(res[0].ddt), median(res[1].ddt)))
	}
}

func quote(s string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`", "${", "\\${").Replace(s) + "`"
}

// TestBenchLookup measures DHT lookups from a browser tab in a swarm of
// native nodes, two ways: with a channel open to every contact (each query
// goes straight to its node), and with the tab keeping only two channels
// (queries to contacts without one are routed hop by hop through peers).
func TestBenchLookup(t *testing.T) {
	benchOnly(t)
	r := startRelay(t, "-zone", "bench", "-log", "warn")
	const natives = 16
	var targets []string
	for i := 0; i < natives; i++ {
		n := startNative(t, r, "-max-peers", "6", "-log", "warn")
		st, _ := n.state()
		targets = append(targets, st.Address)
	}
	type row struct {
		name           string
		ms, hops, msgs []float64
		found, total   int
		channels       int
	}
	var rows []row
	for _, budget := range []int{32, 2} {
		p := newPage(t, "")
		onNewDocument(t, p, fmt.Sprintf("window.DDT_MAX_PEERS = %d;", budget))
		p.open(r.url())
		p.ready()
		// Let the table fill and, for the small budget, the extra channels
		// be trimmed (new channels are safe from trimming for 30 s).
		wait.For(t, 90*time.Second, "table filled and budget reached", func() error {
			ps, err := p.peers()
			if err == nil && (len(ps) > budget || len(ps) == 0) {
				err = fmt.Errorf("%d channels", len(ps))
			}
			if err == nil {
				var n int
				if n, err = eval[int](p, `ddt.routing().then(r => r.contacts)`); err == nil && n < natives {
					err = fmt.Errorf("%d contacts", n)
				}
			}
			return err
		})
		rw := row{name: fmt.Sprintf("budget %d", budget)}
		for round := 0; round < 3; round++ {
			for _, target := range targets {
				res, err := eval[lookupResult](p, `ddt.lookup("`+target+`")`)
				if err != nil {
					rt, _ := eval[any](p, `ddt.routing()`)
					ps, _ := p.peers()
					t.Fatalf("lookup %s: %v\nrouting %v\npeers %v", target[:8], err, rt, ps)
				}
				rw.total++
				if res.Found {
					rw.found++
				} else if os.Getenv("DDT_DEBUG") != "" {
					ps, _ := p.peers()
					rt, _ := eval[any](p, `ddt.routing()`)
					t.Logf("not found %s: %+v; peers %v; routing %v", target[:8], res, ps, rt)
				}
				rw.ms = append(rw.ms, res.MS)
				rw.hops = append(rw.hops, float64(res.Hops))
				rw.msgs = append(rw.msgs, float64(res.Messages))
			}
		}
		ps, _ := p.peers()
		rw.channels = len(ps)
		rows = append(rows, rw)
		p.close()
	}
	fmt.Printf("\n### DHT lookup from a browser tab, %d native nodes + the tab, loopback\n\n", natives)
	fmt.Printf("(a budget-2 tab briefly keeps a few more channels: covering an empty bucket may use the slack until trimming)\n\n")
	fmt.Printf("| tab's connection budget | channels open at the end | lookups | found | median ms | p90 ms | median hops | median messages |\n|---|---|---|---|---|---|---|---|\n")
	for _, rw := range rows {
		fmt.Printf("| %s | %d | %d | %d | %.1f | %.1f | %.0f | %.0f |\n", rw.name, rw.channels, rw.total, rw.found,
			median(rw.ms), percentile(rw.ms, 0.9), median(rw.hops), median(rw.msgs))
	}
}

func percentile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// bringToFront makes p the active tab of its browser.
func bringToFront(t *testing.T, p *page) {
	t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Action[cdp.Empty](func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
		return cdp.Call(ctx, tg, cdppage.BringToFront, cdp.Empty{})
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// TestBenchNames: registration latency (claim → verified record) from
// tabs in zone A, whether the name's home relay is A itself or B across
// the federation link; and resolve latency from a tab in zone B, cold
// (fresh: DHT, verified) and cached.
func TestBenchNames(t *testing.T) {
	benchOnly(t)
	a, b := federatedPair(t, []string{"-log", "warn"}, []string{"-log", "warn"})
	const tabs = 8
	first := newPage(t, "")
	first.open(a.url())
	first.ready()
	ps := []*page{first}
	for len(ps) < tabs {
		tab := first.newTab()
		tab.open(a.url())
		tab.ready()
		ps = append(ps, tab)
	}
	type timed struct {
		MS     float64
		Record *userRecord
		Code   string
	}
	byHome := map[string][]float64{}
	var names []string
	for i, p := range ps {
		name := fmt.Sprintf("bench%d", i)
		bringToFront(t, p) // a background tab's timers are throttled, and Go's scheduler runs on them
		r := mustEval[timed](p, `(async () => { const t0 = performance.now();
			try { const r = await ddt.register("`+name+`"); return {ms: performance.now() - t0, record: r}; }
			catch (e) { return {ms: performance.now() - t0, code: e.code}; } })()`)
		if r.Record == nil {
			t.Fatalf("register %s: %+v", name, r)
		}
		byHome[r.Record.Ledger.Zone] = append(byHome[r.Record.Ledger.Zone], r.MS)
		names = append(names, name)
	}
	reader := newPage(t, "")
	reader.open(b.url())
	reader.ready()
	wait.For(t, 30*time.Second, "reader's routing table", func() error {
		n, err := eval[int](reader, `ddt.routing().then(r => r.contacts)`)
		if err == nil && n < tabs/2 {
			err = fmt.Errorf("%d contacts", n)
		}
		return err
	})
	resolve := func(name string, fresh bool) float64 {
		ms, err := eval[float64](reader, fmt.Sprintf(`(async () => { const t0 = performance.now();
			await ddt.resolve(%q, {fresh: %v}); return performance.now() - t0; })()`, name, fresh))
		if err != nil {
			t.Fatalf("resolve %s: %v", name, err)
		}
		return ms
	}
	var cold, cached []float64
	for round := 0; round < 3; round++ {
		for _, name := range names {
			cold = append(cold, resolve(name, true))
			cached = append(cached, resolve(name, false))
		}
	}
	fmt.Printf("\n### Usernames in Chromium: 2 federated relays, %d tabs register in zone A, a tab in zone B resolves\n\n", tabs)
	fmt.Printf("| measure | runs | median ms | p90 ms | all (ms) |\n|---|---|---|---|---|\n")
	for _, zone := range []string{"a", "b"} {
		if xs := byHome[zone]; len(xs) > 0 {
			where := "home relay is A (local)"
			if zone == "b" {
				where = "home relay is B (forwarded over the link)"
			}
			fmt.Printf("| register, claim → verified record, %s | %d | %.1f | %.1f | %s |\n", where, len(xs), median(xs), percentile(xs, 0.9), fmtList(xs))
		}
	}
	fmt.Printf("| resolve, cold (fresh: DHT get + open + verify) | %d | %.2f | %.2f | |\n", len(cold), median(cold), percentile(cold, 0.9))
	fmt.Printf("| resolve, cached | %d | %.3f | %.3f | |\n", len(cached), median(cached), percentile(cached, 0.9))
}
