package web_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// The extension's benchmarks of `make bench`: they measure and print, and
// assert nothing about speed.

// jsCallTimes runs call n times, one after another, in the host it is
// evaluated in, and resolves with each call's ms.
const jsCallTimes = `(async (n, call) => {
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    out.push(performance.now() - t0);
  }
  return out;
})`

// TestBenchExtension: the extension's node in Chromium. How long its
// offscreen document takes from creation to admission (the browser's
// start); after the document is closed, how long until the node is back
// and admitted at its address (as the popup sees it); and what a call
// costs through the popup's window.ddt (a MessagePort to the offscreen
// node) against the same call in the offscreen document itself.
func TestBenchExtension(t *testing.T) {
	benchOnly(t)
	r := startRelay(t, "-zone", "bench-ext", "-log", "warn")
	dir := buildExtension(t, r)
	const runs = 5
	var cold, back, viaPopup, direct, putPopup, putDirect []float64
	for i := 0; i < runs; i++ {
		b := newExtBrowser(t, dir)
		off := b.targetOf("background_page", "offscreen.html", "")
		offscreen := b.attach(off, "offscreen")
		offscreen.ready()
		// performance.now() in the offscreen document counts from its creation.
		ms, err := evalFor[float64](offscreen, time.Minute, `(async () => { await ddt.ready; return performance.getEntriesByName('ddt:admitted')[0].startTime; })()`)
		if err != nil {
			t.Fatal(err)
		}
		cold = append(cold, ms)

		popup := b.openTab("popup.html")
		addr := popup.ready()
		mustEval[bool](popup, `window.__back = new Promise((resolve) => {
		  window.__arm = () => {
		    const t0 = performance.now();
		    const off = ddt.on('state', (e) => {
		      if (e.state === 'admitted' && ddt.address === `+quote(addr)+`) { off(); resolve(performance.now() - t0); }
		    });
		  };
		}), true`)
		mustEval[bool](popup, `__arm(), true`)
		if _, err := cdp.Call(b.ctx, chromedp.FromContext(b.ctx).Browser, target.CloseTarget, target.CloseTargetParams{TargetID: off}); err != nil {
			t.Fatal(err)
		}
		ms, err = evalFor[float64](popup, time.Minute, `window.__back`)
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, ms)

		offscreen = b.attach(b.targetOf("background_page", "offscreen.html", off), "offscreen")
		offscreen.ready()
		const calls = 50
		viaPopup = append(viaPopup, mustEval[[]float64](popup, fmt.Sprintf(`(%s)(%d, () => ddt.storage())`, jsCallTimes, calls))...)
		direct = append(direct, mustEval[[]float64](offscreen, fmt.Sprintf(`(%s)(%d, () => ddt.storage())`, jsCallTimes, calls))...)
		// 16 MiB made beforehand; each put changes its first bytes, so each
		// is new content.
		const data = `window.__data = new Uint8Array(16 << 20).map((_, i) => (i * 2654435761) >>> 24), true`
		const put = `(%s)(3, () => { __data[0]++; __data[1] = %d; return ddt.put(__data); })`
		mustEval[bool](popup, data)
		mustEval[bool](offscreen, data)
		putPopup = append(putPopup, mustEval[[]float64](popup, fmt.Sprintf(put, jsCallTimes, 2*i))...)
		putDirect = append(putDirect, mustEval[[]float64](offscreen, fmt.Sprintf(put, jsCallTimes, 2*i+1))...)
		b.close()
	}
	mibps := func(ms float64) float64 { return 16 / (ms / 1000) }
	fmt.Printf("\n### The browser extension: its node in an offscreen document, in Chromium (%d browsers)\n\n", runs)
	fmt.Printf("| measure | median | runs |\n|---|---|---|\n")
	fmt.Printf("| the browser's start: offscreen document created → node admitted | %.0f ms | %s |\n", median(cold), fmtList(cold))
	fmt.Printf("| offscreen document closed → node back and admitted at its address (as the popup sees it) | %.0f ms | %s |\n", median(back), fmtList(back))
	fmt.Printf("| a call through the popup's window.ddt (ddt.storage()) | %.2f ms | in the offscreen document itself: %.2f ms |\n", median(viaPopup), median(direct))
	fmt.Printf("| ddt.put of 16 MiB through the popup's window.ddt | %.0f ms (%.0f MiB/s) | in the offscreen document itself: %.0f ms (%.0f MiB/s) |\n",
		median(putPopup), mibps(median(putPopup)), median(putDirect), mibps(median(putDirect)))
}
