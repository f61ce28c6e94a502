package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ddt/shared/wait"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestScreenshots saves full-page PNGs of the DDT page in its main states
// (booting, admitted with a peer, with a username and a found user,
// retrying, no WebAssembly)
// to the folder DDT_SHOTS names, for a person to look at (before and after
// a change to the page, say). It asserts nothing about how the page looks.
func TestScreenshots(t *testing.T) {
	dir := shotsDir(t)
	r := startRelay(t, "-zone", "shots")

	// Booting: the wasm arrives at 400 kB/s, so the progress bar is caught
	// part way.
	b := newPage(t, "")
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	_, err := chromedp.Run(b.ctx, chromedp.Action[network.EmulateNetworkConditionsByRuleResult](
		func(ctx context.Context, tg *chromedp.Target) (network.EmulateNetworkConditionsByRuleResult, error) {
			return cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
				MatchedNetworkConditions: []*network.Conditions{{URLPattern: r.url() + "/v/*/ddt.wasm", DownloadThroughput: 400e3, UploadThroughput: -1}},
			})
		}))
	if err != nil {
		t.Fatal(err)
	}
	mustEval[bool](b, `location.href = `+quote(r.url())+`, true`) // no waiting for the load event
	wait.For(t, 30*time.Second, "the download part way", func() error {
		s, err := eval[string](b, `document.querySelector('#boot-status')?.textContent || ''`)
		if err == nil && !regexp.MustCompile(`\(([2-8]\d)%\)`).MatchString(s) {
			err = fmt.Errorf("boot status reads %q", s)
		}
		return err
	})
	shot(t, b, filepath.Join(dir, "0-booting.png"))
	b.close()

	p := newPage(t, "")
	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	p.open(r.url())
	p.ready()
	startNative(t, r)
	wait.For(t, 30*time.Second, "the page lists the native node", func() error {
		n, err := eval[int](p, `document.querySelectorAll('#peers [data-address]').length`)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d peers shown", n)
		}
		return err
	})
	time.Sleep(2500 * time.Millisecond) // a poll paints the round-trip times and the routing table
	shot(t, p, filepath.Join(dir, "1-admitted.png"))

	fillAndClick(t, p, "#username-input", "#username-register", "alice")
	waitText(t, p, "#me-name", "@alice")
	fillAndClick(t, p, "#find-user-input", "#find-user-go", "alice")
	waitText(t, p, "#find-user-result", "verified")
	shot(t, p, filepath.Join(dir, "2-username.png"))

	r.stop()
	waitText(t, p, "#state", "retrying")
	shot(t, p, filepath.Join(dir, "3-retrying.png"))

	q := newPage(t, "")
	if err := chromedp.Do(q.ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	onNewDocument(t, q, `delete globalThis.WebAssembly`)
	r.start()
	q.open(r.url())
	waitText(t, q, "#error", "WebAssembly")
	shot(t, q, filepath.Join(dir, "4-no-wasm.png"))
}

// waitText waits until the element sel's text contains want.
func waitText(t *testing.T, p *page, sel, want string) {
	t.Helper()
	wait.For(t, 30*time.Second, sel+" shows "+want, func() error {
		s, err := eval[string](p, `document.querySelector(`+quote(sel)+`)?.textContent || ''`)
		if err == nil && !strings.Contains(s, want) {
			err = fmt.Errorf("%s reads %q", sel, s)
		}
		return err
	})
}

// shotsDir is the folder DDT_SHOTS names, made if need be; the test is
// skipped without it.
func shotsDir(t *testing.T) string {
	dir := os.Getenv("DDT_SHOTS")
	if dir == "" {
		t.Skip("set DDT_SHOTS to a folder to save screenshots of the page")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func shot(t *testing.T, p *page, path string) {
	t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
}
