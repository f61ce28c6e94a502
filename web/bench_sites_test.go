package web_test

import (
	"fmt"
	"testing"
	"time"
)

// The sites benchmarks of `make bench`: they measure and print, and
// assert nothing about speed.

// jsTimeSite opens ddt://domain/ in the DDT page and resolves with the
// ms from then to the site frame's load event (the page and everything
// it loads: styles, scripts, images, the font).
const jsTimeSite = `((domain) => new Promise((resolve) => {
  const f = document.getElementById('site-frame');
  const t0 = performance.now();
  f.addEventListener('load', () => resolve(performance.now() - t0), {once: true});
  location.hash = 'ddt://' + domain + '/';
}))`

// jsTimeHTTP loads url in a frame of the page and resolves with the ms
// to its load event.
const jsTimeHTTP = `((url) => new Promise((resolve) => {
  const f = document.createElement('iframe');
  const t0 = performance.now();
  f.onload = () => { resolve(performance.now() - t0); f.remove(); };
  f.src = url;
  document.body.append(f);
}))`

// TestBenchSites: the example site of TestSites (31 files, its home page
// loading 13 of them) hosted by a native node after its publisher left:
// a cold load in a new browser (the site's worker installing, the domain
// resolved, every file fetched from peers) against the same files over
// plain HTTP from a loopback server in this process, in the same run; a
// warm load (the worker running, the files in this node's store); and
// how long resolving a domain takes, asked afresh and from the cache.
func TestBenchSites(t *testing.T) {
	benchOnly(t)
	r := startRelay(t, "-zone", "bench-sites", "-log", "warn")
	const domain = "example.ddt"
	site := exampleSite(t, 1, siteOrigin(r, "other.ddt"))
	srv := serveFolder(t, site)
	a := newPage(t, "")
	a.open(r.url())
	a.ready()
	mustPublish(t, a, srv, site, domain, 1)
	n := startNative(t, r, "-host", domain, "-log", "warn")
	n.hosted(t, domain, 1, site)
	a.close()

	const runs = 5
	var cold, plain, warm, fresh, cached []float64
	for i := 0; i < runs; i++ {
		// Taking turns, so that both see the machine alike.
		h := newPage(t, "")
		h.open(r.url())
		ms, err := evalFor[float64](h, time.Minute, fmt.Sprintf(`(%s)(%s)`, jsTimeHTTP, quote(srv.URL+"/")))
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, ms)
		h.close()

		b := newPage(t, "")
		b.open(r.url())
		b.ready()
		ms, err = evalFor[float64](b, 2*time.Minute, fmt.Sprintf(`(%s)(%s)`, jsTimeSite, quote(domain)))
		if err != nil {
			t.Fatal(err)
		}
		cold = append(cold, ms)
		checkHome(t, b, siteOrigin(r, domain), 1)
		// Back to the node's cards, and to the site again: its worker
		// runs and its files are stored here.
		mustEval[bool](b, `document.getElementById('browse-back').click(), true`)
		ms, err = evalFor[float64](b, time.Minute, fmt.Sprintf(`(%s)(%s)`, jsTimeSite, quote(domain)))
		if err != nil {
			t.Fatal(err)
		}
		warm = append(warm, ms)
		ms, err = evalFor[float64](b, time.Minute, `(async () => { const t0 = performance.now(); await ddt.resolveDomain('example.ddt', {fresh: true}); return performance.now() - t0; })()`)
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, ms)
		ms, err = evalFor[float64](b, time.Minute, `(async () => { const t0 = performance.now(); await ddt.resolveDomain('example.ddt'); return performance.now() - t0; })()`)
		if err != nil {
			t.Fatal(err)
		}
		cached = append(cached, ms)
		b.close()
	}
	fmt.Printf("\n### DDT sites: the example site (%d files, %.1f MB; its home page loads 13 of them), hosted by a native node\n\n", len(site), float64(site.bytes())/1e6)
	fmt.Printf("| measure | median ms | runs (ms) | target |\n|---|---|---|---|\n")
	fmt.Printf("| cold load from peers in a new browser (worker install, resolve, every file fetched), to the frame's load event | %.0f | %s | |\n", median(cold), fmtList(cold))
	fmt.Printf("| the same files over plain HTTP (loopback server), to the frame's load event | %.0f | %s | |\n", median(plain), fmtList(plain))
	fmt.Printf("| ratio cold / plain HTTP | %.2f | | ≤ 2 |\n", median(cold)/median(plain))
	fmt.Printf("| warm load (worker running, files stored here) | %.0f | %s | |\n", median(warm), fmtList(warm))
	fmt.Printf("| ratio warm / plain HTTP | %.2f | | |\n", median(warm)/median(plain))
	fmt.Printf("| domain resolve, fresh (DHT or relay, verified) | %.1f | %s | |\n", median(fresh), fmtList(fresh))
	fmt.Printf("| domain resolve, cached | %.2f | %s | |\n", median(cached), fmtList(cached))
}
