package web_test

// End to end in Chromium: DDT sites published by one page and browsed in
// others, each site in an origin of its own, served by its service worker
// from the node in the DDT page.

import (
	"context"
	"fmt"
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
}
