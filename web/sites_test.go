package web_test

// End to end in Chromium: DDT sites published by one page and browsed in
// others, each site in an origin of its own, served by its service worker
// from the node in the DDT page.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"sort"
	"strings"
	"testing"
	"time"

	"ddt/shared/wait"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// siteOrigin is the origin of domain's site under relay r's page.
func siteOrigin(r *relay, domain string) string {
	_, port, _ := strings.Cut(r.addr, ":")
	return "http://" + domain + ".localhost:" + port
}

// frameTarget waits for an out-of-process frame of p whose URL begins
// with prefix (a cross-site frame runs in a process of its own, which the
// page's DOM does not reach) and returns its id. Chromium lists one
// target for the frames of one site, so it may be the site's connect
// frame rather than the site frame itself.
func frameTarget(t testing.TB, p *page, prefix string) target.ID {
	t.Helper()
	var id target.ID
	wait.For(t, 60*time.Second, "a frame at "+prefix, func() error {
		ts, err := chromedp.Targets(p.ctx)
		if err != nil {
			return err
		}
		var seen []string
		for _, ti := range ts {
			if ti.Type == "iframe" && strings.HasPrefix(ti.URL, prefix) {
				id = ti.TargetID
				return nil
			}
			seen = append(seen, ti.Type+" "+ti.URL)
		}
		return fmt.Errorf("frames: %v", seen)
	})
	return id
}

// jsSiteWindow finds, from any frame of a site's origin, the DDT page's
// site frame when it shows that origin (same origin, so reachable).
const jsSiteWindow = `(() => {
  for (let i = 0; i < parent.frames.length; i++) {
    const f = parent.frames[i];
    try {
      if (f.location.origin === location.origin && !f.location.pathname.startsWith('/.ddt/connect')) return f;
    } catch {}
  }
  return null;
})()`

// inFrame evaluates expr (awaited if a promise) in p's site frame when
// it shows origin.
func inFrame[T any](p *page, origin, expr string) (T, error) {
	var zero T
	id := frameTarget(p.t, p, origin+"/")
	ctx, cancel := chromedp.NewContext(p.ctx, chromedp.WithTargetID(id), chromedp.WithDetachOnCancel())
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	js := `(() => { const w = ` + jsSiteWindow + `; if (!w) throw new Error('the site frame does not show ' + location.origin); return w.eval(` + quote(expr) + `); })()`
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		return zero, err
	}
	return v, nil
}

// waitFrame waits until expr, evaluated in p's site frame showing
// origin, is want.
func waitFrame(t testing.TB, p *page, origin, expr, want string) {
	t.Helper()
	wait.For(t, 90*time.Second, fmt.Sprintf("%s in the frame is %q", expr, want), func() error {
		got, err := inFrame[string](p, origin, expr)
		if err == nil && got != want {
			err = fmt.Errorf("it is %q", got)
		}
		return err
	})
}

// openSite opens ddt://domain/path in p (the DDT page of r, admitted).
func openSite(p *page, domain, path string) {
	p.t.Helper()
	mustEval[bool](p, `location.hash = `+quote("ddt://"+domain+path)+`, true`)
}

// An address nobody holds shows the worker's 404 page in the frame, and
// the DDT page says so: the whole chain — the connect frame registering
// the worker, the port from the DDT page, the node's answer — is there.
func TestSitesUnknownDomain(t *testing.T) {
	r := startRelay(t, "-zone", "sites")
	startNative(t, r)
	p := newPage(t, "")
	p.open(r.url())
	p.ready()
	openSite(p, "nobody-here.ddt", "/")
	origin := siteOrigin(r, "nobody-here.ddt")
	waitFrame(t, p, origin, `document.querySelector('[data-ddt-error]')?.dataset.ddtError || document.body.innerText`, "unknown-domain")
	if s := mustEval[string](p, `document.querySelector('#browse-address').value`); s != "ddt://nobody-here.ddt/" {
		t.Errorf("the address bar reads %q", s)
	}
	waitText(t, p, "#browse-status", "Nobody holds nobody-here.ddt")
	// The frame is the site's origin, not the page's: its script cannot
	// reach the page.
	got, err := inFrame[string](p, origin, `(() => { try { return String(parent.ddt); } catch (e) { return e.name; } })()`)
	if err != nil || got != "SecurityError" {
		t.Errorf("the site frame reading parent.ddt: %q, %v; want a SecurityError", got, err)
	}
	// A site sending its frame to a domain nobody holds (a link, or a
	// script walking made-up names) gets a plain refusal from the DDT
	// page, not a worker registered for that name.
	other := siteOrigin(r, "made-up-name.ddt")
	mustEval[bool](p, `document.getElementById('site-frame').contentWindow.location = `+quote(other+"/x.html")+`, true`)
	waitText(t, p, "#browse-failed-title", "made-up-name.ddt cannot be shown")
	waitText(t, p, "#browse-failed-text", "Nobody holds made-up-name.ddt")
	waitFrame(t, p, other, `document.body.innerText.split('\n')[0]`, "This site could not start")
}

// testSite is a site's files by path.
type testSite map[string][]byte

// exampleSite is the site of the end-to-end tests: 31 files — HTML in
// nested folders with relative links, CSS, a script module importing
// another, images, a font, a 5 MiB "video" (two chunks, served as
// video/webm: what matters is that a Range gets the right bytes with a
// 206) and data files. version goes into the home page's title; other is
// the origin the link to another site points at.
func exampleSite(t testing.TB, version int, other string) testSite {
	t.Helper()
	font, err := os.ReadFile("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf")
	if err != nil {
		t.Fatalf("a font for the site: %v (make deps installs fonts-liberation)", err)
	}
	s := testSite{
		"index.html": []byte(fmt.Sprintf(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Example v%d</title>
<link rel="stylesheet" href="css/site.css"><link rel="stylesheet" href="css/print.css" media="print"></head>
<body><h1 id="title">Example site v%[1]d</h1>
<p id="ran">the script did not run</p>
<p class="font">Set in the site's own font.</p>
<img id="logo" src="img/logo.png" alt="logo"> <img src="img/photo.svg" alt="photo" width="32">
%s
<nav><a id="to-docs" href="docs/">Docs</a> <a id="to-about" href="about.html">About</a> <a id="to-deep" href="nested/deep/page.html">Deep</a> <a id="to-other" href="%s/">Another DDT site</a></nav>
<video id="clip" src="video/clip.webm" preload="none"></video>
<script type="module" src="js/app.js"></script>
</body></html>`, version, icons(), other)),
		"about.html":            []byte(`<!doctype html><meta charset="utf-8"><title>About</title><link rel="stylesheet" href="css/site.css"><h1 id="title">About this site</h1><a href="./">home</a>`),
		"css/site.css":          []byte("@font-face { font-family: DDTTest; src: url(../fonts/site.ttf) format('truetype'); }\nbody { color: rgb(10, 20, 30); font-family: DDTTest, sans-serif; }\nh1 { margin-top: 37px; }\n"),
		"css/print.css":         []byte("body { color: black; }\n"),
		"js/app.js":             []byte("import { mark } from './lib/util.js';\nmark(document.getElementById('ran'));\nfetch('data/3.json').then((r) => r.json()).then((j) => { document.body.dataset.data = String(j.n); });\n"),
		"js/lib/util.js":        []byte("export function mark(el) { el.textContent = 'script ran'; }\n"),
		"img/logo.png":          pngOf(t, 64, 32),
		"img/photo.svg":         []byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#256a5c"/></svg>`),
		"fonts/site.ttf":        font,
		"video/clip.webm":       randomBytes(t, 5<<20),
		"docs/index.html":       []byte(`<!doctype html><meta charset="utf-8"><title>Docs</title><link rel="stylesheet" href="../css/site.css"><h1 id="title">Docs index</h1><a id="to-guide" href="guide.html">Guide</a> <a href="api/">API</a>`),
		"docs/guide.html":       []byte(`<!doctype html><meta charset="utf-8"><title>Guide</title><h1 id="title">The guide</h1><a href="../">up</a>`),
		"docs/api/index.html":   []byte(`<!doctype html><meta charset="utf-8"><title>API</title><h1 id="title">The API</h1>`),
		"nested/deep/page.html": []byte(`<!doctype html><meta charset="utf-8"><title>Deep</title><link rel="stylesheet" href="../../css/site.css"><h1 id="title">A deep page</h1><a id="to-guide" href="../../docs/guide.html">Guide</a>`),
		"robots.txt":            []byte("User-agent: *\n"),
	}
	for i := 1; i <= 8; i++ {
		s[fmt.Sprintf("img/icons/%d.png", i)] = pngOf(t, 8+i, 8+i)
		s[fmt.Sprintf("data/%d.json", i)] = []byte(fmt.Sprintf(`{"n": %d}`, i))
	}
	return s
}

func icons() string {
	var b strings.Builder
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, `<img class="icon" src="img/icons/%d.png" alt="">`, i)
	}
	return b.String()
}

func pngOf(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(4 * x), uint8(8 * y), 0x5c, 0xff})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (s testSite) paths() []string {
	ps := make([]string, 0, len(s))
	for p := range s {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

func (s testSite) bytes() int64 {
	var n int64
	for _, b := range s {
		n += int64(len(b))
	}
	return n
}

// serveFolder serves a site's files over plain HTTP from this process
// (loopback), to any origin: what a page publishes from, and the plain
// HTTP baseline of the benchmark.
func serveFolder(t testing.TB, s testSite) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/")
		if strings.HasSuffix(p, "/") || p == "" {
			p += "index.html"
		}
		b, ok := s[p]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, path.Base(p), time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// jsPublish publishes the files at base (paths, fetched by the page)
// under domain with ddt.publishSite; the video's type is given, the
// others' inferred by the node from their paths.
const jsPublish = `(async (base, paths, domain) => {
  const files = await Promise.all(paths.map(async (p) => {
    const r = await fetch(base + '/' + p);
    return {path: p, data: await r.blob(), type: p.endsWith('.webm') ? 'video/webm' : undefined};
  }));
  try {
    return await ddt.publishSite(domain, files);
  } catch (e) {
    return {code: e.code || 'none', error: String(e.message || e)};
  }
})`

type published struct {
	Domain, Manifest, Code, Error string
	Version                       int
}

func publish(t testing.TB, p *page, srv *httptest.Server, s testSite, domain string) published {
	t.Helper()
	paths, _ := json.Marshal(s.paths())
	r, err := evalFor[published](p, 3*time.Minute, fmt.Sprintf(`(%s)(%s, %s, %s)`, jsPublish, quote(srv.URL), paths, quote(domain)))
	if err != nil {
		t.Fatalf("publish %s: %v", domain, err)
	}
	return r
}

func mustPublish(t testing.TB, p *page, srv *httptest.Server, s testSite, domain string, version int) published {
	t.Helper()
	r := publish(t, p, srv, s, domain)
	if r.Error != "" || r.Version != version || r.Domain != domain || len(r.Manifest) != 64 {
		t.Fatalf("publish %s: %+v, want version %d", domain, r, version)
	}
	return r
}

// hosted waits until the native node n holds version of domain's site
// pinned: it resolves that version, and its pinned bytes cover the site.
func (n *nativeNode) hosted(t testing.TB, domain string, version int, s testSite) {
	t.Helper()
	wait.For(t, 2*time.Minute, fmt.Sprintf("the native node hosting %s v%d", domain, version), func() error {
		var v struct{ Version int }
		if err := getJSON(n.url("/resolve?domain="+domain), &v); err != nil {
			return err
		}
		var st struct{ PinnedBytes int64 }
		if err := getJSON(n.url("/storage"), &st); err != nil {
			return err
		}
		if v.Version != version || st.PinnedBytes < s.bytes() {
			return fmt.Errorf("version %d, %d bytes pinned of %d", v.Version, st.PinnedBytes, s.bytes())
		}
		return nil
	})
}

// siteChecks is what the test reads of the example site's home page in a
// frame: its content, its style applied, its script run, its image and
// its font loaded.
const jsSiteChecks = `(async () => {
  const until = async (f) => { for (let i = 0; i < 300 && !f(); i++) await new Promise((r) => setTimeout(r, 100)); return f(); };
  await until(() => document.readyState === 'complete' && document.body.dataset.data);
  await document.fonts.ready;
  const logo = document.getElementById('logo');
  return {
    title: document.getElementById('title')?.textContent || '',
    color: getComputedStyle(document.body).color,
    margin: getComputedStyle(document.getElementById('title')).marginTop,
    ran: document.getElementById('ran')?.textContent || '',
    data: document.body.dataset.data || '',
    logo: logo ? logo.naturalWidth + 'x' + logo.naturalHeight : '',
    icons: [...document.querySelectorAll('img.icon')].filter((i) => i.naturalWidth > 0).length,
    font: [...document.fonts].filter((f) => f.family === 'DDTTest').map((f) => f.status).join(),
  };
})()`

type siteChecks struct {
	Title, Color, Margin, Ran, Data, Logo, Font string
	Icons                                       int
}

func checkHome(t testing.TB, p *page, origin string, version int) {
	t.Helper()
	want := siteChecks{Title: fmt.Sprintf("Example site v%d", version), Color: "rgb(10, 20, 30)", Margin: "37px", Ran: "script ran", Data: "3", Logo: "64x32", Font: "loaded", Icons: 8}
	wait.For(t, 90*time.Second, fmt.Sprintf("the home page v%d in the frame", version), func() error {
		got, err := inFrame[siteChecks](p, origin, jsSiteChecks)
		if err == nil && got != want {
			err = fmt.Errorf("got %+v, want %+v", got, want)
		}
		return err
	})
}

// jsRange reads a byte range of a file of the site (from its frame) and
// says what came back: the status, the headers, the SHA-256 of the body.
const jsRange = `(async (path, range) => {
  const r = await fetch(path, {headers: range ? {Range: range} : {}});
  const body = await r.arrayBuffer();
  const sum = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', body)), (b) => b.toString(16).padStart(2, '0')).join('');
  return {status: r.status, range: r.headers.get('Content-Range') || '', accept: r.headers.get('Accept-Ranges') || '', type: r.headers.get('Content-Type') || '', length: body.byteLength, sum};
})`

type rangeResult struct {
	Status              int
	Range, Accept, Type string
	Length              int
	Sum                 string
}

// TestSites: page A publishes a site of 31 files with a native genesis
// node hosting it; page B browses it (content, style, script, images,
// font, folders, relative links, a Range answered with a 206, a link to
// another DDT site); A closes and B and a new page C still browse it; A,
// back, publishes version 2 and a reload shows it; another key's update
// is refused; a missing file shows the 404 page.
func TestSites(t *testing.T) {
	r := startRelay(t, "-zone", "sites")
	const domain, otherDomain = "example.ddt", "other.ddt"
	origin, otherOrigin := siteOrigin(r, domain), siteOrigin(r, otherDomain)
	v1 := exampleSite(t, 1, otherOrigin)
	srv1 := serveFolder(t, v1)
	other := testSite{"index.html": []byte(`<!doctype html><meta charset="utf-8"><title>Other</title><h1 id="title">The other site</h1><a id="back" href="` + origin + `/about.html">back</a>`)}
	srvOther := serveFolder(t, other)

	profileA := t.TempDir()
	a := newPage(t, profileA)
	a.open(r.url())
	a.ready()
	pub := mustPublish(t, a, srv1, v1, domain, 1)
	mustPublish(t, a, srvOther, other, otherDomain, 1)
	n := startNative(t, r, "-host", domain+","+otherDomain)
	n.hosted(t, domain, 1, v1)
	t.Logf("published %s v1: manifest %s, %d files, %d bytes; hosted by the native node", domain, pub.Manifest[:12], len(v1), v1.bytes())

	b := newPage(t, "")
	b.open(r.url())
	b.ready()
	openSite(b, domain, "/")
	checkHome(t, b, origin, 1)
	waitText(t, b, "#browse-status", "version 1")

	// A Range across the video's chunk boundary: a 206 with the bytes.
	video := v1["video/clip.webm"]
	lo, hi := 4<<20-500, 4<<20+499
	rr, err := inFrame[rangeResult](b, origin, fmt.Sprintf(`(%s)('video/clip.webm', 'bytes=%d-%d')`, jsRange, lo, hi))
	if err != nil {
		t.Fatal(err)
	}
	if want := (rangeResult{Status: 206, Range: fmt.Sprintf("bytes %d-%d/%d", lo, hi, len(video)), Accept: "bytes", Type: "video/webm", Length: hi - lo + 1, Sum: sha(video[lo : hi+1])}); rr != want {
		t.Errorf("a Range of the video: %+v, want %+v", rr, want)
	}
	rr, err = inFrame[rangeResult](b, origin, fmt.Sprintf(`(%s)('video/clip.webm', 'bytes=-1000')`, jsRange))
	if err != nil || rr.Status != 206 || rr.Sum != sha(video[len(video)-1000:]) {
		t.Errorf("the video's last 1000 bytes: %+v, %v", rr, err)
	}
	rr, err = inFrame[rangeResult](b, origin, fmt.Sprintf(`(%s)('video/clip.webm', '')`, jsRange))
	if err != nil || rr.Status != 200 || rr.Length != len(video) || rr.Sum != sha(video) {
		t.Errorf("the whole video: %+v, %v", rr, err)
	}
	rr, err = inFrame[rangeResult](b, origin, fmt.Sprintf(`(%s)('video/clip.webm', 'bytes=%d-')`, jsRange, len(video)+10))
	if err != nil || rr.Status != 416 {
		t.Errorf("a Range past the end: %+v, %v; want 416", rr, err)
	}
	rr, err = inFrame[rangeResult](b, origin, fmt.Sprintf(`(%s)('fonts/site.ttf', '')`, jsRange))
	if err != nil || rr.Status != 200 || rr.Sum != sha(v1["fonts/site.ttf"]) || !strings.HasPrefix(rr.Type, "font/") {
		t.Errorf("the font: %+v, %v", rr, err)
	}
	head, err := inFrame[string](b, origin, `fetch('video/clip.webm', {method: 'HEAD'}).then((r) => r.status + ' ' + r.headers.get('Content-Length'))`)
	if want := fmt.Sprintf("200 %d", len(video)); err != nil || head != want {
		t.Errorf("HEAD of the video: %q, %v; want %q", head, err, want)
	}

	// Folders and relative links, the address bar following the frame.
	mustFrame(t, b, origin, `document.getElementById('to-docs').click()`)
	waitFrame(t, b, origin, `location.pathname + ' ' + document.getElementById('title')?.textContent`, "/docs/ Docs index")
	waitValue(t, b, "#browse-address", "ddt://"+domain+"/docs/")
	mustFrame(t, b, origin, `document.getElementById('to-guide').click()`)
	waitFrame(t, b, origin, `location.pathname + ' ' + document.getElementById('title')?.textContent`, "/docs/guide.html The guide")
	openSite(b, domain, "/nested/deep/page.html")
	waitFrame(t, b, origin, `document.getElementById('title')?.textContent + ' ' + getComputedStyle(document.body).color`, "A deep page rgb(10, 20, 30)")
	openSite(b, domain, "/docs")
	waitFrame(t, b, origin, `document.getElementById('title')?.textContent`, "Docs index")

	// A link to another DDT site: the frame goes to its origin, which
	// boots (its worker, its port) and shows it.
	openSite(b, domain, "/")
	checkHome(t, b, origin, 1)
	mustFrame(t, b, origin, `document.getElementById('to-other').click()`)
	waitFrame(t, b, otherOrigin, `document.getElementById('title')?.textContent`, "The other site")
	waitValue(t, b, "#browse-address", "ddt://"+otherDomain+"/")
	mustFrame(t, b, otherOrigin, `document.getElementById('back').click()`)
	waitFrame(t, b, origin, `document.getElementById('title')?.textContent`, "About this site")
	waitValue(t, b, "#browse-address", "ddt://"+domain+"/about.html")

	// The publisher leaves: B and a new page C browse on, from the native
	// node (and from each other).
	a.close()
	openSite(b, domain, "/docs/api/")
	waitFrame(t, b, origin, `document.getElementById('title')?.textContent`, "The API")
	c := newPage(t, "")
	c.open(r.url())
	c.ready()
	openSite(c, domain, "/")
	checkHome(t, c, origin, 1)

	// A comes back (its identity is in its profile) and publishes
	// version 2; B's reload shows it.
	v2 := exampleSite(t, 2, otherOrigin)
	srv2 := serveFolder(t, v2)
	a2 := newPage(t, profileA)
	a2.open(r.url())
	a2.ready()
	mustPublish(t, a2, srv2, v2, domain, 2)
	openSite(b, domain, "/")
	mustEval[bool](b, `document.getElementById('browse-reload').click(), true`)
	checkHome(t, b, origin, 2)
	waitText(t, b, "#browse-status", "version 2")

	// Another key's update is refused, and changes nothing.
	forged := publish(t, c, srv1, v1, domain)
	if forged.Code != "taken" {
		t.Errorf("another key publishing %s: %+v, want code taken", domain, forged)
	}
	mustEval[bool](b, `document.getElementById('browse-reload').click(), true`)
	checkHome(t, b, origin, 2)

	// A missing file: the 404 page, and the DDT page says so.
	openSite(b, domain, "/missing.html")
	waitFrame(t, b, origin, `document.querySelector('[data-ddt-error]')?.dataset.ddtError + ' ' + document.querySelector('.code')?.textContent`, "not-found 404")
	waitText(t, b, "#browse-status", "has no page /missing.html")
}

// mustFrame evaluates expr in p's site frame showing origin.
func mustFrame(t testing.TB, p *page, origin, expr string) {
	t.Helper()
	if _, err := inFrame[any](p, origin, `(() => { `+expr+`; return true; })()`); err != nil {
		t.Fatalf("in the frame of %s: %s: %v", origin, expr, err)
	}
}

// waitValue waits until the input sel's value is want.
func waitValue(t testing.TB, p *page, sel, want string) {
	t.Helper()
	wait.For(t, 30*time.Second, sel+" reads "+want, func() error {
		s, err := eval[string](p, `document.querySelector(`+quote(sel)+`)?.value || ''`)
		if err == nil && s != want {
			err = fmt.Errorf("%s reads %q", sel, s)
		}
		return err
	})
}

// evilScript is a hostile site's script: it tries to read the DDT
// origin's IndexedDB (the node's keys and chunks), to call the hosting
// page's ddt, to read another site's files (directly, through its own
// worker with crafted paths, in a frame of its own), to put a worker of
// its own in place, and to hand the other site's connect frame a port of
// its own; it writes what it got into document.body.dataset.result.
const evilScript = `
const res = {};
const secret = location.protocol + '//secret.ddt.localhost:' + location.port;
try { res.dbs = (await indexedDB.databases()).map((d) => d.name); } catch (e) { res.dbs = [e.name]; }
res.stores = await new Promise((resolve) => {
  const r = indexedDB.open('ddt');
  r.onsuccess = () => { const n = r.result.objectStoreNames.length; r.result.close(); resolve(n); };
  r.onerror = () => resolve(-1);
});
const reach = { parentDDT: () => parent.ddt.address, topDDT: () => top.ddt.publishSite, parentDoc: () => parent.document.title,
  parentLocation: () => parent.location.href, parentIDB: () => parent.indexedDB.databases };
for (const [k, f] of Object.entries(reach)) {
  try { res[k] = 'read: ' + String(f()); } catch (e) { res[k] = e.name; }
}
try { const r = await fetch(secret + '/secret.txt'); res.crossFetch = 'read: ' + await r.text(); } catch (e) { res.crossFetch = e.name; }
try { const r = await fetch(secret + '/secret.txt', {mode: 'no-cors'}); res.noCors = r.type + ' ' + (await r.text()).length; } catch (e) { res.noCors = e.name; }
res.own = {};
for (const p of ['/secret.txt', '/../secret.ddt/secret.txt', '/%2e%2e/secret.ddt/secret.txt', '/secret.ddt/secret.txt', '/%2F..%2Fsecret.txt', '/..%5Csecret.txt']) {
  try { const r = await fetch(p); const t = await r.text(); res.own[p] = r.status + (t.includes('the-secret-') ? ' LEAK' : ''); } catch (e) { res.own[p] = e.name; }
}
res.nestedFrame = await new Promise((resolve) => {
  const f = document.createElement('iframe');
  f.src = secret + '/secret.txt';
  f.onload = () => resolve(f.contentDocument === null ? 'blocked' : 'read: ' + f.contentDocument.body.innerText);
  document.body.append(f);
  setTimeout(() => resolve('timeout'), 20000);
});
try { await navigator.serviceWorker.register('/evil-sw.js', {scope: '/'}); res.ownWorker = 'registered'; } catch (e) { res.ownWorker = e.name; }
try { top.location.href = location.origin + '/hijacked'; res.topNav = 'navigated'; } catch (e) { res.topNav = e.name; }
res.portReplies = 0;
for (let i = 0; i < parent.frames.length; i++) {
  const ch = new MessageChannel();
  ch.port1.onmessage = () => { res.portReplies++; };
  try { parent.frames[i].postMessage({ddt: 'port'}, '*', [ch.port2]); } catch {}
}
parent.postMessage({ddt: 'need-port', domain: 'secret.ddt'}, '*');
parent.postMessage({ddt: 'connected'}, '*');
await new Promise((r) => setTimeout(r, 3000));
document.body.dataset.result = JSON.stringify(res);
`

type evilResult struct {
	DBs                                                     []string `json:"dbs"`
	Stores                                                  int
	ParentDDT, TopDDT, ParentDoc, ParentLocation, ParentIDB string
	CrossFetch, NoCors, NestedFrame, OwnWorker, TopNav      string
	Own                                                     map[string]string
	PortReplies                                             int
}

// TestSitesIsolation: a hostile site, shown in the DDT page right after
// another site, reads nothing of the DDT origin (its IndexedDB, its
// window.ddt, its document) nor of the other site (its files, its frame,
// its port), and cannot replace its own worker; the other site is served
// as it was.
func TestSitesIsolation(t *testing.T) {
	r := startRelay(t, "-zone", "sites")
	startNative(t, r)
	secretSite := testSite{"secret.txt": []byte("the-secret-3f9c1a"), "index.html": []byte(`<!doctype html><meta charset="utf-8"><h1 id="title">Secret</h1>`)}
	evilSite := testSite{
		"index.html": []byte(`<!doctype html><meta charset="utf-8"><title>Evil</title><h1 id="title">Evil</h1><script type="module" src="evil.js"></script>`),
		"evil.js":    []byte(evilScript),
		"evil-sw.js": []byte("self.addEventListener('fetch', (e) => e.respondWith(new Response('owned')));"),
	}
	a := newPage(t, "")
	a.open(r.url())
	a.ready()
	mustPublish(t, a, serveFolder(t, secretSite), secretSite, "secret.ddt", 1)
	mustPublish(t, a, serveFolder(t, evilSite), evilSite, "evil.ddt", 1)

	b := newPage(t, "")
	b.open(r.url())
	b.ready()
	pageDBs := mustEval[[]string](b, `indexedDB.databases().then((l) => l.map((d) => d.name))`)
	if len(pageDBs) == 0 {
		t.Fatal("the DDT page has no IndexedDB database to protect: the test would prove nothing")
	}
	secretOrigin, evilOrigin := siteOrigin(r, "secret.ddt"), siteOrigin(r, "evil.ddt")
	openSite(b, "secret.ddt", "/")
	waitFrame(t, b, secretOrigin, `document.getElementById('title')?.textContent`, "Secret")
	openSite(b, "evil.ddt", "/")
	waitFrame(t, b, evilOrigin, `document.body.dataset.result ? 'done' : 'running'`, "done")
	raw, err := inFrame[string](b, evilOrigin, `document.body.dataset.result`)
	if err != nil {
		t.Fatal(err)
	}
	var got evilResult
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	t.Logf("the hostile site got: %s", raw)
	for _, db := range got.DBs {
		for _, mine := range pageDBs {
			if db == mine {
				t.Errorf("the hostile site lists the DDT origin's database %q", db)
			}
		}
	}
	if got.Stores != 0 {
		t.Errorf("the hostile site opened a database \"ddt\" with %d object stores: the node's", got.Stores)
	}
	for what, v := range map[string]string{"parent.ddt": got.ParentDDT, "top.ddt": got.TopDDT, "parent.document": got.ParentDoc,
		"parent.location.href": got.ParentLocation, "parent.indexedDB": got.ParentIDB} {
		if v != "SecurityError" {
			t.Errorf("the hostile site reading %s: %q, want a SecurityError", what, v)
		}
	}
	if got.CrossFetch != "TypeError" {
		t.Errorf("the hostile site fetching the other site's file: %q, want a TypeError (no CORS)", got.CrossFetch)
	}
	if got.NoCors != "opaque 0" {
		t.Errorf("the hostile site fetching the other site's file without CORS: %q, want an opaque, empty response", got.NoCors)
	}
	if len(got.Own) != 6 {
		t.Errorf("the hostile site's crafted paths: %v", got.Own)
	}
	for p, v := range got.Own {
		if !(strings.HasPrefix(v, "40") && len(v) == 3) {
			t.Errorf("the hostile site fetching %s through its worker: %q, want a 400 or a 404 with nothing of the other site", p, v)
		}
	}
	if got.NestedFrame != "blocked" {
		t.Errorf("the hostile site reading the other site in a frame of its own: %q", got.NestedFrame)
	}
	if got.OwnWorker == "registered" {
		t.Error("the hostile site registered a worker of its own in place of the DDT one")
	}
	if got.TopNav != "SecurityError" {
		t.Errorf("the hostile site navigating the DDT page: %q, want a SecurityError", got.TopNav)
	}
	if u := mustEval[string](b, `location.origin + location.pathname`); u != r.url()+"/" {
		t.Errorf("the DDT page is at %s after the hostile site ran", u)
	}
	if got.PortReplies != 0 {
		t.Errorf("the hostile site's ports got %d messages", got.PortReplies)
	}
	// Its frame of the other site moved nothing of the DDT page.
	if s := mustEval[string](b, `document.querySelector('#browse-address').value`); s != "ddt://evil.ddt/" {
		t.Errorf("after the hostile site framed another, the address bar reads %q", s)
	}
	// The other site is still served by the node, not by a port the
	// hostile site slipped its connect frame.
	openSite(b, "secret.ddt", "/secret.txt")
	waitFrame(t, b, secretOrigin, `document.body.innerText.trim()`, "the-secret-3f9c1a")
}
