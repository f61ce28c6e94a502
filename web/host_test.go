package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ddt/shared/wait"
)

// hostPage is a page that is not DDT's: a few lines of its own that import
// the loader from the relay (another origin) and start a node there. It
// first makes two mistakes, to see the loader's errors: a wasm that is not
// there, and a relay URL that is no URL.
const hostPage = `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Somebody else's page</title>
<h1>Not the DDT page</h1>
<script type="module">
import {start} from 'RELAY/ddt.js';
const relay = 'RELAY';
const seen = window.seen = {phases: [], received: 0, total: 0};
const onProgress = ({phase, received, total}) => {
  if (!seen.phases.includes(phase)) seen.phases.push(phase);
  seen.received = received;
  seen.total = total;
};
const failure = (e) => ({code: e.code, message: e.message});
seen.missing = await start({relay, wasmURL: relay + '/missing.wasm'}, {onProgress}).then(() => null, failure);
seen.badConfig = await start({relay: 'ftp://nowhere'}, {onProgress}).then(() => null, failure);
const ddt = await start({relay}, {onProgress});
seen.same = ddt === window.ddt;
window.host = ddt;
</script>
</html>`

// TestHostPage: a page of another origin (served by the test) loads the
// node with ddt.js from the relay, joins the relay's zone, and it and the
// DDT page (in another browser) list each other as peers.
func TestHostPage(t *testing.T) {
	r := startRelay(t, "-zone", "host")
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/" {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, strings.ReplaceAll(hostPage, "RELAY", r.url()))
	}))
	defer site.Close()
	if site.URL == r.url() {
		t.Fatal("the host page must be of another origin than the relay")
	}

	ddtPage := newPage(t, "")
	ddtPage.open(r.url())
	a := ddtPage.ready()

	host := newPage(t, "")
	host.open(site.URL) // grants the host's origin the microphone, for loopback ICE
	wait.For(t, 30*time.Second, "the host page's node", func() error {
		ok, err := eval[bool](host, `typeof window.host === "object"`)
		if err == nil && !ok {
			var seen any
			seen, err = eval[any](host, `window.seen`)
			if err == nil {
				err = fmt.Errorf("not yet; seen %v", seen)
			}
		}
		return err
	})
	type failure struct{ Code, Message string }
	seen := mustEval[struct {
		Phases            []string
		Received, Total   int
		Missing           *failure
		BadConfig         *failure
		Same              bool
		Origin, Relay     string
		Address, Address2 string
	}](host, `(async () => ({...window.seen, origin: location.origin, relay: host.relay,
		address: (await host.ready).address, address2: window.ddt.address}))()`)
	if seen.Origin != site.URL || seen.Relay != r.url() {
		t.Errorf("host page at %s runs a node on relay %q; want relay %s", seen.Origin, seen.Relay, r.url())
	}
	if !seen.Same || seen.Address != seen.Address2 || len(seen.Address) != 40 {
		t.Errorf("start() resolved with another object than window.ddt, or no address: %+v", seen)
	}
	if m := seen.Missing; m == nil || m.Code != "download" || !strings.Contains(m.Message, "HTTP 404") || !strings.Contains(m.Message, "/missing.wasm") {
		t.Errorf("start with a missing wasm: %+v; want code download saying HTTP 404 and the URL", m)
	}
	if b := seen.BadConfig; b == nil || b.Code != "start" || !strings.Contains(b.Message, "http or https") {
		t.Errorf("start with relay ftp://nowhere: %+v; want code start saying it must be http or https", b)
	}
	// X-Uncompressed-Length crossed origins: the progress had the total.
	wasm, err := os.Stat(filepath.Join(r.web, "ddt.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen.Phases, ",") != "download,start" || seen.Total != int(wasm.Size()) || seen.Received != seen.Total {
		t.Errorf("progress reports: phases %v, %d bytes of %d; want download then start, all %d bytes of the wasm",
			seen.Phases, seen.Received, seen.Total, wasm.Size())
	}

	wait.For(t, 30*time.Second, "the host page lists the DDT page", func() error {
		ps, err := eval[[]peerInfo](host, `host.peers()`)
		if err != nil {
			return err
		}
		return samePeers(ps, a)
	})
	wait.For(t, 30*time.Second, "the DDT page lists the host page", func() error {
		ps, err := ddtPage.peers()
		if err != nil {
			return err
		}
		return samePeers(ps, seen.Address)
	})
	if ms := mustEval[float64](host, `host.ping(`+quote(a)+`)`); ms <= 0 {
		t.Errorf("ping from the host page: %v ms", ms)
	}
	// The DDT page shows it, as any peer.
	wait.For(t, 10*time.Second, "the DDT page shows the host page", func() error {
		n, err := eval[int](ddtPage, `document.querySelectorAll('#peers [data-address="`+seen.Address+`"]').length`)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d rows", n)
		}
		return err
	})
}

// TestPageLoad: the DDT page downloads the wasm once (its preload is the
// early compile's fetch, so no second request and no wait for the module
// graph), its every module came from the relay under the page's version,
// and a return visit asks the relay for none of them again.
func TestPageLoad(t *testing.T) {
	r := startRelay(t, "-zone", "load")
	p := newPage(t, "")
	p.open(r.url())
	p.ready()
	type loaded struct {
		Base    string
		Wasm    []string
		Modules []string
		Sizes   []float64 // bytes over the network, per module
	}
	resources := `(() => {
		const res = performance.getEntriesByType('resource');
		const base = new URL(document.baseURI).pathname;
		return {
			base,
			wasm: res.filter((e) => e.name.endsWith('/ddt.wasm')).map((e) => e.initiatorType),
			modules: res.filter((e) => e.name.endsWith('.js')).map((e) => new URL(e.name).pathname),
			sizes: res.filter((e) => e.name.endsWith('.js')).map((e) => e.transferSize),
		};
	})()`
	// The cards' modules load once the node has started, a moment after
	// ready: the list is read once it has them, or at the deadline.
	var got loaded
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = mustEval[loaded](p, resources)
		if slices.Contains(got.Modules, got.Base+"views/peers.js") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.HasPrefix(got.Base, "/v/") {
		t.Fatalf("the page's base is %q, not its version's", got.Base)
	}
	if len(got.Wasm) != 1 {
		t.Errorf("ddt.wasm fetched %d times (initiators %v); want once, the preload", len(got.Wasm), got.Wasm)
	}
	for _, m := range []string{"wasm_exec.js", "app.js", "ddt.js", "views/peers.js"} {
		found := false
		for _, g := range got.Modules {
			found = found || g == got.Base+m
		}
		if !found {
			t.Errorf("the page did not load %s%s: %v", got.Base, m, got.Modules)
		}
	}
	// A return visit takes the page's modules from the browser's cache.
	reload(t, p)
	p.ready()
	again := mustEval[loaded](p, resources)
	for i, m := range again.Modules {
		if again.Sizes[i] != 0 {
			t.Errorf("on a return visit %s came over the network (%v bytes)", m, again.Sizes[i])
		}
	}
}
