package web_test

// End to end in Chromium: the DDT extension, loaded unpacked, its node in
// the offscreen document, joining a real relay.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ddt/shared/wait"
	"ddt/web"
	"ddt/web/extension"

	"github.com/chromedp/cdproto/cdp"
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
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		// Loopback ICE candidates: an offscreen document cannot be granted
		// the microphone the way a page is (Browser.setPermission), and
		// without it Chromium hides host candidates behind mDNS names.
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("disable-extensions-except", dir),
		chromedp.Flag("load-extension", dir),
		chromedp.Env("TMPDIR="+profile),
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

func TestExtension(t *testing.T) {
	r := startRelay(t, "-zone", "ext")
	dir := buildExtension(t, r)
	b := newExtBrowser(t, dir)
	b.targetOf("service_worker", "background.js", "")
	off := b.targetOf("background_page", "offscreen.html", "")
	t.Logf("offscreen %s", off)
	popup := b.openTab("popup.html")
	addr := popup.ready()
	t.Logf("extension node %s", addr)

	// A page of the relay sees the extension's node among its peers.
	p := newPage(t, "")
	p.open(r.url())
	pageAddr := p.ready()
	wait.For(t, 60*time.Second, "the extension's node in the page's peers", func() error {
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
	_ = pageAddr

	// The offscreen document killed: the worker makes it again, and the
	// node rejoins with the same address.
	killed := time.Now()
	if _, err := cdp.Call(b.ctx, chromedp.FromContext(b.ctx).Browser, target.CloseTarget, target.CloseTargetParams{TargetID: off}); err != nil {
		t.Fatal(err)
	}
	off2 := b.targetOf("background_page", "offscreen.html", off)
	wait.For(t, 30*time.Second, "the node back", func() error {
		st, err := eval[string](popup, `ddt.state + ' ' + ddt.address`)
		if err == nil && st != "admitted "+addr {
			err = fmt.Errorf("%s", st)
		}
		return err
	})
	t.Logf("offscreen %s back and admitted after %v", off2, time.Since(killed))
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
	waitText(t, popup, "#storage", "used")
	shot(t, popup, filepath.Join(dir, "extension-popup.png"))

	full := b.openTab("index.html")
	full.ready()
	waitText(t, full, "#state", "admitted")
	shot(t, full, filepath.Join(dir, "extension-page.png"))

	r.stop()
	waitText(t, popup, "#state", "retrying")
	shot(t, popup, filepath.Join(dir, "extension-popup-retrying.png"))
}
