package web_test

// End to end in Chromium: the DDT extension, loaded unpacked, its node in
// the offscreen document, joining a real relay.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ddt/shared/wait"
	"ddt/web"
	"ddt/web/extension"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// extBrowser is a Chromium with the DDT extension loaded unpacked.
type extBrowser struct {
	*page
	dir string // the unpacked extension
	id  string // its ID
}

// buildExtension assembles the extension for relay r into a temporary
// folder, as make extension does.
func buildExtension(t testing.TB, r *relay) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "extension")
	err := extension.Assemble(dir, extension.Options{Relay: r.url(), Page: web.Static(), Build: filepath.Join(buildDir(t), "web")})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// newExtBrowser starts Chromium with the extension in dir (and a profile
// of its own); its first tab shows about:blank.
func newExtBrowser(t testing.TB, dir string) *extBrowser {
	t.Helper()
	profile := t.TempDir()
	opts := browserOptions(profile,
		// Loopback ICE candidates: an offscreen document cannot be granted
		// the microphone the way a page is (Browser.setPermission), and
		// without it Chromium hides host candidates behind mDNS names.
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("disable-extensions-except", dir),
		chromedp.Flag("load-extension", dir),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &extBrowser{page: &page{t: t, ctx: ctx, cancel: func() { cancel(); acancel() }}, dir: dir, id: extension.ID()}
	t.Cleanup(func() {
		b.close()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("--- console of the extension's pages:\n%s", strings.Join(b.console, "\n"))
			b.mu.Unlock()
		}
	})
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// url is the URL of the extension's file name.
func (b *extBrowser) url(name string) string { return "chrome-extension://" + b.id + "/" + name }

// targetOf waits for the extension's target of this type and file.
func (b *extBrowser) targetOf(typ, name string, not target.ID) target.ID {
	b.t.Helper()
	var id target.ID
	wait.For(b.t, 30*time.Second, typ+" "+name, func() error {
		ts, err := chromedp.Targets(b.ctx)
		if err != nil {
			return err
		}
		var seen []string
		for _, ti := range ts {
			if ti.Type == typ && strings.HasPrefix(ti.URL, b.url(name)) && ti.TargetID != not {
				id = ti.TargetID
				return nil
			}
			seen = append(seen, ti.Type+" "+ti.URL)
		}
		return fmt.Errorf("targets: %v", seen)
	})
	return id
}

// attach is a page for target id of b (its console kept with b's).
func (b *extBrowser) attach(id target.ID, what string) *page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
	p := &page{t: b.t, ctx: ctx, cancel: cancel}
	b.t.Cleanup(p.close)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`true`)); err != nil {
		b.t.Fatalf("attach to %s: %v", what, err)
	}
	chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok {
			b.mu.Lock()
			b.console = append(b.console, what+" "+consoleLine(e))
			b.mu.Unlock()
		}
	})
	return p
}

// openTab opens the extension's page name in a new tab.
func (b *extBrowser) openTab(name string) *page {
	b.t.Helper()
	tab := b.newTab()
	chromedp.Listen(tab.ctx, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok {
			b.mu.Lock()
			b.console = append(b.console, name+" "+consoleLine(e))
			b.mu.Unlock()
		}
	})
	if err := chromedp.Do(tab.ctx, chromedp.Navigate(b.url(name))); err != nil {
		b.t.Fatalf("open %s: %v", name, err)
	}
	return tab
}

// TestExtension: Chromium loads the unpacked extension; its node, in the
// offscreen document, joins the relay and shows in a page's peers; the
// popup's window.ddt is the page's API, backed by that node (calls with
// callbacks, events, the sync members); the omnibox handler, called as
// the browser calls it, opens a published DDT site in the extension's DDT
// page, served by the extension's node through the site's own origin;
// after the offscreen document is closed the node is back with the same
// address; and setRelay moves it to another relay.
func TestExtension(t *testing.T) {
	r := startRelay(t, "-zone", "ext")
	b := newExtBrowser(t, buildExtension(t, r))
	sw := b.attach(b.targetOf("service_worker", "background.js", ""), "worker")
	off := b.targetOf("background_page", "offscreen.html", "")
	popup := b.openTab("popup.html")
	addr := popup.ready()
	t.Logf("the extension's node: %s", addr)

	// A page of the relay finds the extension's node among its peers.
	p := newPage(t, "")
	p.open(r.url())
	p.ready()
	hasPeer := func(what string, p *page, addr string) {
		t.Helper()
		wait.For(t, 60*time.Second, what, func() error {
			ps, err := p.peers()
			if err != nil {
				return err
			}
			for _, x := range ps {
				if x.Address == addr {
					return nil
				}
			}
			return fmt.Errorf("peers %v", ps)
		})
	}
	hasPeer("the extension's node in the page's peers", p, addr)

	// The popup shows the node: its peers, its storage, its username and
	// friends (a friend request from the page, accepted in the popup's
	// window.ddt, read back by its sync friends()).
	wait.For(t, 30*time.Second, "the popup counting the page among its peers", func() error {
		n, err := eval[string](popup, `document.getElementById('peers').textContent`)
		if err == nil && (n == "" || n == "0") {
			err = fmt.Errorf("it shows %q peers", n)
		}
		return err
	})
	waitText(t, popup, "#storage", "lent to others")
	mustEval[bool](popup, `ddt.register('extnode').then(() => true)`)
	mustEval[bool](p, `ddt.register('pagenode').then(() => true)`)
	waitText(t, popup, "#username", "@extnode")
	mustEval[bool](p, `window.__answer = ddt.befriend('extnode'), true`)
	wait.For(t, 60*time.Second, "the friend request in the popup's ddt.requests()", func() error {
		ok, err := eval[bool](popup, `ddt.requests().some((r) => r.from === 'pagenode')`)
		if err == nil && !ok {
			err = fmt.Errorf("not yet")
		}
		return err
	})
	mustEval[bool](popup, `ddt.accept('pagenode').then(() => true)`)
	if got := mustEval[string](p, `window.__answer`); got != "accepted" {
		t.Errorf("the page's befriend: %q", got)
	}
	waitText(t, popup, "#friend-list", "@pagenode")
	waitText(t, popup, "#friends", "1")

	// The same API as a page's, and setRelay.
	keys := mustEval[[]string](popup, `Object.keys(ddt)`)
	pageKeys := mustEval[[]string](p, `Object.keys(ddt)`)
	same(t, "members: the popup's window.ddt vs a page's and the README's extension table", keys, append(pageKeys, extensionMembers(t)...))
	offscreen := b.attach(off, "offscreen")
	for _, c := range [][2]string{
		{`'example.ddt'`, `'/a b/c.html'`}, {`'Example'`, `''`}, {`'my-site.ddt'`, `'x?y#z'`}, {`'bad_name'`, `'/'`}, {`'-x.ddt'`, `''`},
		{`'a.ddt'`, `'a,b;c'`}, {`'a.ddt'`, `"a(b)!*'.html"`}, {`'a.ddt'`, `'$&+:=@/ü/%41'`}, {`'a.ddt'`, `'x'.repeat(1025)`}, {`'a.ddt'`, `'x'.repeat(1024)`},
		{`'a.ddt'`, `7`}, {`'a.ddt'`, `undefined`}, {`'a.ddt'`, `null`}, {`'A.DDT '`, `'/'`},
	} {
		expr := fmt.Sprintf(`String(ddt.siteURL(%s, %s))`, c[0], c[1])
		if got, want := mustEval[string](popup, expr), mustEval[string](offscreen, expr); got != want {
			t.Errorf("siteURL(%q, %q): the popup says %q, the node %q", c[0], c[1], got, want)
		}
	}
	// A call with a callback and a File back; an event.
	type putGot struct {
		ID       string
		Progress int
		Text     string
		Name     string
	}
	got := mustEval[putGot](popup, `(async () => {
	  let progress = 0;
	  const id = await ddt.put('hello from the popup', {name: 'hello.txt', onProgress: () => progress++});
	  const f = await ddt.get(id);
	  return {id, progress, text: await f.text(), name: f.name};
	})()`)
	if len(got.ID) != 64 || got.Progress == 0 || got.Text != "hello from the popup" || got.Name != "hello.txt" {
		t.Errorf("put and get through the popup: %+v", got)
	}
	aborted := mustEval[string](popup, `(async () => {
	  const c = new AbortController();
	  try {
	    await ddt.put(new Uint8Array(48 << 20), {signal: c.signal, onProgress: () => c.abort()});
	    return 'resolved';
	  } catch (e) { return e.code || e.name; }
	})()`)
	if aborted != "aborted" {
		t.Errorf("a put aborted from the popup ended with %q, want code aborted", aborted)
	}
	mustEval[bool](popup, `window.peerEvents = [], ddt.on('peer', (e) => peerEvents.push(e.address)), true`)

	// The omnibox opens a published site, served by the extension's node.
	const domain = "example.ddt"
	origin := siteOrigin(r, domain)
	site := exampleSite(t, 1, siteOrigin(r, "other.ddt"))
	mustPublish(t, p, serveFolder(t, site), site, domain, 1)
	mustEval[bool](sw, `ddtOmnibox('example.ddt/docs/', 'newForegroundTab'), true`)
	tab := b.attach(b.targetOf("page", "index.html#ddt://example.ddt/docs/", ""), "omnibox tab")
	waitFrame(t, tab, origin, `location.pathname + ' ' + document.getElementById('title')?.textContent`, "/docs/ Docs index")
	waitValue(t, tab, "#browse-address", "ddt://"+domain+"/docs/")
	// The site's script, at its own origin, cannot reach the extension's
	// page, nor through it the node.
	if got, err := inFrame[string](tab, origin, `(() => { try { return String(parent.ddt.address); } catch (e) { return e.name; } })()`); err != nil || got != "SecurityError" {
		t.Errorf("the site reading the extension page's ddt: %q, %v; want a SecurityError", got, err)
	}
	// What the address bar takes as a site's address, any way it is typed.
	for in, want := range map[string]string{" ddt://example.ddt/x ": "ddt://example.ddt/x", "web+ddt://a.ddt": "ddt://a.ddt", "": ""} {
		if got := mustEval[string](popup, `import('./address.js').then((m) => m.siteAddress(`+quote(in)+`))`); got != want {
			t.Errorf("the omnibox takes %q as %q, want %q", in, got, want)
		}
	}
	// A site nobody holds: the page says so.
	mustEval[bool](sw, `ddtOmnibox('nobody-here.ddt', 'newForegroundTab'), true`)
	nobody := b.attach(b.targetOf("page", "index.html#ddt://nobody-here.ddt", ""), "omnibox tab 2")
	waitText(t, nobody, "#browse-status", "Nobody holds nobody-here.ddt")

	// A page of the extension that closes is let go of: its
	// subscriptions, sites and timer.
	pages := mustEval[int](offscreen, `ddtPages()`)
	nobody.close()
	wait.For(t, 30*time.Second, "the closed tab's connection ended", func() error {
		n, err := eval[int](offscreen, `ddtPages()`)
		if err == nil && n != pages-1 {
			err = fmt.Errorf("%d pages served, were %d", n, pages)
		}
		return err
	})

	// The offscreen document closed: it is made again, and the node
	// rejoins with the same address; the page finds it again.
	// The popup's badge, every text it shows from now on.
	mustEval[bool](popup, `(() => {
	  const el = document.getElementById('state');
	  window.badges = [el.textContent];
	  new MutationObserver(() => badges.push(el.textContent)).observe(el, {childList: true, characterData: true, subtree: true});
	  return true;
	})()`)
	killed := time.Now()
	if _, err := cdp.Call(b.ctx, chromedp.FromContext(b.ctx).Browser, target.CloseTarget, target.CloseTargetParams{TargetID: off}); err != nil {
		t.Fatal(err)
	}
	mustEval[bool](popup, `peerEvents.length = 0, true`) // only the events after the restart count
	off2 := b.targetOf("background_page", "offscreen.html", off)
	wait.For(t, 30*time.Second, "the node back at its address", func() error {
		st, err := eval[string](popup, `ddt.state + ' ' + ddt.address`)
		if err == nil && st != "admitted "+addr {
			err = fmt.Errorf("%s", st)
		}
		return err
	})
	t.Logf("the offscreen document (now %s) was back and admitted %v after it was closed", off2, time.Since(killed).Round(time.Millisecond))
	waitText(t, popup, "#state", "online")
	if badges := mustEval[[]string](popup, `badges`); !slices.Contains(badges, "starting") {
		t.Errorf("while its node was away the popup's badge read %q, never \"starting\"", badges)
	}
	hasPeer("the extension's node back in the page's peers", p, addr)
	// The site open in the extension's DDT page carries on, on the same
	// port, served by the node that came back.
	wait.For(t, 60*time.Second, "the site's next request after the restart", func() error {
		got, err := inFrame[string](tab, origin, `fetch('/docs/guide.html').then(async (r) => r.status + ' ' + (await r.text()).includes('The guide'))`)
		if err == nil && got != "200 true" {
			err = fmt.Errorf("%s", got)
		}
		return err
	})
	// The popup's API carries on: its subscription holds, calls work.
	wait.For(t, 30*time.Second, "a peer event after the restart", func() error {
		n, err := eval[int](popup, `peerEvents.length`)
		if err == nil && n == 0 {
			err = fmt.Errorf("no peer event yet")
		}
		return err
	})
	if n := mustEval[int](popup, `ddt.peers().then((ps) => ps.length)`); n == 0 {
		t.Error("no peers through the popup after the restart")
	}

	// Another relay: the node starts again there.
	r2 := startRelay(t, "-zone", "ext2")
	mustEval[bool](popup, `ddt.setRelay(`+quote(r2.url())+`).then(() => true)`)
	wait.For(t, 30*time.Second, "the node on the new relay", func() error {
		st, err := eval[string](popup, `ddt.state + ' ' + ddt.relay`)
		if err == nil && st != "admitted "+r2.url() {
			err = fmt.Errorf("%s", st)
		}
		return err
	})
	waitValue(t, popup, "#relay-input", r2.url())
	if msg := mustEval[string](popup, `ddt.setRelay('ftp://x').then(() => 'set', (e) => e.message)`); !strings.Contains(msg, "http or https") {
		t.Errorf("setRelay of an ftp URL: %q", msg)
	}
	mustEval[bool](popup, `ddt.setRelay('').then(() => true)`)
	wait.For(t, 30*time.Second, "the node back on the built-in relay", func() error {
		st, err := eval[string](popup, `ddt.state + ' ' + ddt.relay`)
		if err == nil && st != "admitted "+r.url() {
			err = fmt.Errorf("%s", st)
		}
		return err
	})

	// The popup opens the full DDT page, on the same node.
	mustEval[bool](popup, `document.getElementById('open-page').click(), true`)
	full := b.attach(b.targetOf("page", "index.html", chromedp.FromContext(tab.ctx).Target.TargetID), "the DDT page")
	if got := full.ready(); got != addr {
		t.Errorf("the extension's DDT page shows node %s, want the extension's %s", got, addr)
	}
	waitText(t, full, "#address", addr)

	// A folder picked in the extension's DDT page (a FileList, carried to
	// the node as it is) publishes a site, which the omnibox then opens.
	folder := t.TempDir()
	for name, body := range map[string]string{
		"index.html": `<!doctype html><meta charset="utf-8"><title>Picked</title><h1 id="title">Published from the extension</h1>`,
		"about.html": `<!doctype html><meta charset="utf-8"><h1 id="title">About the picked site</h1>`,
	} {
		if err := os.WriteFile(filepath.Join(folder, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// CDP sets files, not a folder: the picker as a plain multiple-file
	// input gives the same FileList, with names for paths.
	mustEval[bool](full, `document.getElementById('publish-input').removeAttribute('webkitdirectory'), true`)
	if _, err := chromedp.Run(full.ctx, chromedp.SetUploadFiles(chromedp.CSS("#publish-input"), []string{filepath.Join(folder, "index.html"), filepath.Join(folder, "about.html")})); err != nil {
		t.Fatal(err)
	}
	mustEval[bool](full, `(() => { const d = document.getElementById('publish-domain'); d.value = 'picked'; d.dispatchEvent(new Event('input')); return true; })()`)
	wait.For(t, 30*time.Second, "the Publish button enabled", func() error {
		ok, err := eval[bool](full, `!document.getElementById('publish-go').disabled`)
		if err == nil && !ok {
			st, _ := eval[string](full, `[document.getElementById('publish-input').disabled, document.getElementById('publish-files').textContent, document.getElementById('publish-domain').value, ddt.state].join(' | ')`)
			err = fmt.Errorf("still disabled: %s", st)
		}
		return err
	})
	mustEval[bool](full, `document.getElementById('publish-go').click(), true`)
	waitText(t, full, "#publish-result-domain", "picked.ddt")
	mustEval[bool](sw, `ddtOmnibox('picked.ddt/about.html', 'newForegroundTab'), true`)
	picked := b.attach(b.targetOf("page", "index.html#ddt://picked.ddt/about.html", ""), "omnibox tab 3")
	waitFrame(t, picked, siteOrigin(r, "picked.ddt"), `document.getElementById('title')?.textContent`, "About the picked site")
}

// TestScreenshotsExtension saves PNGs of the popup (admitted; with its
// relay unreachable) and of the extension's DDT page.
func TestScreenshotsExtension(t *testing.T) {
	dir := shotsDir(t)
	r := startRelay(t, "-zone", "shots")
	b := newExtBrowser(t, buildExtension(t, r))
	popup := b.openTab("popup.html")
	popup.ready()
	if _, err := chromedp.Run(popup.ctx, chromedp.EmulateViewport(360, 640)); err != nil {
		t.Fatal(err)
	}
	waitText(t, popup, "#state", "online")
	waitText(t, popup, "#storage", "lent to others")
	shot(t, popup, filepath.Join(dir, "extension-popup.png"))

	full := b.openTab("index.html")
	full.ready()
	waitText(t, full, "#state", "admitted")
	shot(t, full, filepath.Join(dir, "extension-page.png"))

	r.stop()
	waitText(t, popup, "#state", "retrying")
	shot(t, popup, filepath.Join(dir, "extension-popup-retrying.png"))

	// A node that cannot start: its wasm broken on disk.
	r2 := startRelay(t, "-zone", "shots2")
	ext := buildExtension(t, r2)
	if err := os.WriteFile(filepath.Join(ext, "node", "ddt.wasm"), []byte("broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := newExtBrowser(t, ext).openTab("popup.html")
	if _, err := chromedp.Run(broken.ctx, chromedp.EmulateViewport(360, 640)); err != nil {
		t.Fatal(err)
	}
	waitText(t, broken, "#detail", "Trying again")
	shot(t, broken, filepath.Join(dir, "extension-popup-failed.png"))
}

// TestExtensionComesBack: the popup says what is wrong, never a blank,
// and the node comes back by itself — from a relay that cannot be
// reached (it rejoins once the relay is up), and from a stored identity
// that cannot be read (a new one, and the popup says so).
func TestExtensionComesBack(t *testing.T) {
	r := newRelay(t, "-zone", "late") // its address chosen; not running yet
	b := newExtBrowser(t, buildExtension(t, r))
	popup := b.openTab("popup.html")
	waitText(t, popup, "#state", "retrying")
	waitText(t, popup, "#detail", "relay")
	t.Logf("with no relay, the popup says: %s", mustEval[string](popup, `document.getElementById('detail').textContent`))
	r.start()
	waitText(t, popup, "#state", "online")
	old := mustEval[string](popup, `ddt.address`)

	// The identity in the node's IndexedDB made unreadable, and the node
	// killed: it is back with a new identity, and says so.
	off := b.targetOf("background_page", "offscreen.html", "")
	offscreen := b.attach(off, "offscreen")
	mustEval[bool](offscreen, `new Promise((resolve, reject) => {
	  const open = indexedDB.open('ddt');
	  open.onerror = () => reject(open.error);
	  open.onsuccess = () => {
	    const tx = open.result.transaction('kv', 'readwrite');
	    tx.objectStore('kv').put(new Uint8Array([1, 2, 3]), 'identity');
	    tx.oncomplete = () => resolve(true);
	    tx.onerror = () => reject(tx.error);
	  };
	})`)
	if _, err := cdp.Call(b.ctx, chromedp.FromContext(b.ctx).Browser, target.CloseTarget, target.CloseTargetParams{TargetID: off}); err != nil {
		t.Fatal(err)
	}
	b.targetOf("background_page", "offscreen.html", off)
	waitText(t, popup, "#detail", "stored identity could not be read, so it has a new one")
	waitText(t, popup, "#state", "online")
	if now := mustEval[string](popup, `ddt.address`); now == old || len(now) != 40 {
		t.Errorf("after its identity was replaced the node is at %q (was %q)", now, old)
	}
}

// TestExtensionStartFails: a node that cannot start says why in the
// popup and tries again by itself; once what failed is mended (here the
// wasm, broken on disk and then put back), it runs.
func TestExtensionStartFails(t *testing.T) {
	r := startRelay(t, "-zone", "broken")
	dir := buildExtension(t, r)
	wasm := filepath.Join(dir, "node", "ddt.wasm")
	good, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wasm, []byte("not a wasm module"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newExtBrowser(t, dir)
	popup := b.openTab("popup.html")
	waitText(t, popup, "#state", "not running")
	waitText(t, popup, "#detail", "The node could not start")
	waitText(t, popup, "#detail", "Trying again in")
	t.Logf("with a broken wasm, the popup says: %s", mustEval[string](popup, `document.getElementById('detail').textContent`))
	if err := os.WriteFile(wasm, good, 0o644); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 60*time.Second, "the node running once its wasm is back", func() error {
		s, err := eval[string](popup, `document.getElementById('state').textContent`)
		if err == nil && s != "online" {
			err = fmt.Errorf("the popup says %q", s)
		}
		return err
	})
	if a := mustEval[string](popup, `ddt.address`); len(a) != 40 {
		t.Errorf("the popup's address after the node started: %q", a)
	}
}

// TestExtensionRefused: a relay that will not admit the node (its zone
// full) — the popup says refused and why, and the node is admitted by
// itself once there is room.
func TestExtensionRefused(t *testing.T) {
	r := startRelay(t, "-zone", "small", "-max-nodes", "1")
	n := startNative(t, r)
	b := newExtBrowser(t, buildExtension(t, r))
	popup := b.openTab("popup.html")
	waitText(t, popup, "#state", "refused")
	waitText(t, popup, "#detail", "full")
	t.Logf("refused, the popup says: %s", mustEval[string](popup, `document.getElementById('detail').textContent`))
	n.p.stop()
	wait.For(t, 90*time.Second, "the node admitted once the zone has room", func() error {
		s, err := eval[string](popup, `document.getElementById('state').textContent`)
		if err == nil && s != "online" {
			err = fmt.Errorf("the popup says %q", s)
		}
		return err
	})
}

// TestExtensionFrozenPage: a page of the extension frozen (as Chromium
// freezes a background tab; a hidden one's timers run once a minute) is
// not let go of by the node — it holds its Web Lock — and what happened
// meanwhile reaches it when it wakes: the events, and its calls answer.
func TestExtensionFrozenPage(t *testing.T) {
	r := startRelay(t, "-zone", "frozen")
	b := newExtBrowser(t, buildExtension(t, r))
	popup := b.openTab("popup.html")
	popup.ready()
	offscreen := b.attach(b.targetOf("background_page", "offscreen.html", ""), "offscreen")
	served := mustEval[int](offscreen, `ddtPages()`)
	mustEval[bool](popup, `window.peers = [], ddt.on('peer', (e) => peers.push(e.address)), true`)
	lifecycle := func(state cdppage.SetWebLifecycleStateState) {
		t.Helper()
		_, err := chromedp.Run(popup.ctx, chromedp.Action[cdp.Empty](func(ctx context.Context, tg *chromedp.Target) (cdp.Empty, error) {
			return cdp.Call(ctx, tg, cdppage.SetWebLifecycleState, cdppage.SetWebLifecycleStateParams{State: state})
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	lifecycle(cdppage.SetWebLifecycleStateStateFrozen)
	// While it is frozen, a peer arrives.
	n := startNative(t, r)
	st, err := n.state()
	if err != nil {
		t.Fatal(err)
	}
	wait.For(t, 60*time.Second, "the new peer at the extension's node", func() error {
		ps, err := eval[[]peerInfo](offscreen, `ddt.peers()`)
		if err == nil && !slices.ContainsFunc(ps, func(p peerInfo) bool { return p.Address == st.Address }) {
			err = fmt.Errorf("peers %v", ps)
		}
		return err
	})
	if n := mustEval[int](offscreen, `ddtPages()`); n != served {
		t.Errorf("with the popup frozen the node serves %d pages, was %d", n, served)
	}
	lifecycle(cdppage.SetWebLifecycleStateStateActive)
	wait.For(t, 30*time.Second, "the peer event in the woken page", func() error {
		got, err := eval[[]string](popup, `peers`)
		if err == nil && !slices.Contains(got, st.Address) {
			err = fmt.Errorf("peer events %v", got)
		}
		return err
	})
	if got := mustEval[int](popup, `ddt.peers().then((ps) => ps.length)`); got == 0 {
		t.Error("the woken popup's ddt.peers() has none")
	}

	// A page that goes without a word (a crash: no bye; here its bye is
	// held back) is let go of when its Web Lock is.
	other := b.openTab("popup.html")
	other.ready()
	wait.For(t, 30*time.Second, "the second popup served", func() error {
		n, err := eval[int](offscreen, `ddtPages()`)
		if err == nil && n != served+1 {
			err = fmt.Errorf("%d pages served", n)
		}
		return err
	})
	mustEval[bool](other, `(() => {
	  const post = MessagePort.prototype.postMessage;
	  MessagePort.prototype.postMessage = function (m, ...rest) { if (!(m && m.op === 'bye')) post.call(this, m, ...rest); };
	  return true;
	})()`)
	other.close()
	wait.For(t, 30*time.Second, "the node letting go of the page that went without a word", func() error {
		n, err := eval[int](offscreen, `ddtPages()`)
		if err == nil && n != served {
			err = fmt.Errorf("%d pages served, want %d", n, served)
		}
		return err
	})
}
