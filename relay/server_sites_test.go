package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ddt/shared/site"
	"ddt/shared/store"
	"ddt/web/extension"
)

// Which hosts are a site's: <label>.ddt.localhost at any port, and
// <label>.ddt.<sites domain> when the relay has one; a look-alike under
// another parent is the page's (so it gets the page, never a site's
// frames), and a site host whose label is no DDT domain is still a site's
// (so it never gets the page).
func TestSiteHosts(t *testing.T) {
	hosts := siteHosts{Domain: "sites.example.org"}
	for _, c := range []struct {
		host, domain string
		site         bool
	}{
		{"example.ddt.localhost:8080", "example.ddt", true},
		{"EXAMPLE.DDT.LOCALHOST.", "example.ddt", true},
		{"my-blog.ddt.localhost", "my-blog.ddt", true},
		{"blog.ddt.sites.example.org", "blog.ddt", true},
		{"blog.ddt.sites.example.org:443", "blog.ddt", true},
		{"127.0.0.1:8080", "", false},
		{"localhost:8080", "", false},
		{"[::1]:8080", "", false},
		{"ddt.localhost", "", false},
		{"www.localhost", "", false},
		{"sites.example.org", "", false},
		{"blog.ddt.sites.example.org.evil.test", "", false},
		{"blog.ddt.localhost.evil.test", "", false},
		{"blog.ddt.example.org", "", false},
		{"a.b.ddt.localhost", "", true},
		{"-x.ddt.localhost", "", true},
		{"a_b.ddt.localhost:8080", "", true},
		{".ddt.localhost", "", true},
	} {
		d, site := hosts.domain(c.host)
		if d != c.domain || site != c.site {
			t.Errorf("%q: domain %q, site host %v; want %q, %v", c.host, d, site, c.domain, c.site)
		}
	}
	if _, site := (siteHosts{}).domain("blog.ddt.sites.example.org"); site {
		t.Error("a relay without a sites domain takes blog.ddt.sites.example.org for a site host")
	}
}

// A site host gets the DDT frames under /.ddt/ and the boot page at every
// other path, and nothing else of the relay: not the page, not ddt.wasm,
// not /ws or /healthz. The page's host gets none of the frames.
func TestSiteRoutes(t *testing.T) {
	get := siteServer(t, "sites.example.org", nil)
	const siteHost = "example.ddt.localhost:8080"

	// The worker: allowed to control the whole origin, always revalidated.
	resp, body := get(siteHost, "/.ddt/sw.js")
	if resp.StatusCode != 200 || resp.Header.Get("Service-Worker-Allowed") != "/" || resp.Header.Get("Cache-Control") != "no-cache" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(body, "addEventListener('fetch'") {
		t.Errorf("sw.js: %s %v", resp.Status, resp.Header)
	}
	for path, want := range map[string]string{
		"/.ddt/connect":    "/.ddt/connect.js",
		"/.ddt/connect.js": "serviceWorker",
		"/.ddt/boot.js":    "location.reload",
		"/.ddt/page.js":    "ancestorOrigins",
	} {
		if resp, body := get(siteHost, path); resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %s, body without %q", path, resp.Status, want)
		}
	}
	// Every other path is the boot page, naming the DDT page, never cached.
	for _, path := range []string{"/", "/index.html", "/docs/", "/ws", "/healthz", "/ddt.wasm", "/app.js", "/v/123/ddt.wasm", "/ledger/checkpoint"} {
		resp, body := get(siteHost, path)
		if resp.StatusCode != 200 || !strings.Contains(body, `/.ddt/boot.js`) || !strings.Contains(body, `content="http://127.0.0.1:8080"`) ||
			resp.Header.Get("Cache-Control") != "no-store" || strings.Contains(body, "asm-secret") {
			t.Errorf("%s on a site host: %s %v, want the boot page", path, resp.Status, resp.Header)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Origin-Agent-Cluster") != "?1" {
			t.Errorf("%s on a site host lacks nosniff or Origin-Agent-Cluster: %v", path, resp.Header)
		}
	}
	// A WebSocket upgrade on a site host is the boot page too, not a node socket.
	if resp, _ := get(siteHost, "/ws", "Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="); resp.StatusCode == http.StatusSwitchingProtocols {
		t.Error("a site host upgraded /ws")
	}
	if resp, _ := get(siteHost, "/.ddt/nothing"); resp.StatusCode != 404 {
		t.Errorf("/.ddt/nothing: %s, want 404", resp.Status)
	}
	if resp, _ := get("blog.ddt.sites.example.org", "/.ddt/sw.js"); resp.StatusCode != 200 {
		t.Errorf("sw.js under the sites domain: %s", resp.Status)
	}
	if resp, body := get("a_b.ddt.localhost:8080", "/"); resp.StatusCode != 404 || !strings.Contains(body, "not a DDT site") {
		t.Errorf("a site host with a bad label: %s %q", resp.Status, body)
	}

	// The page's host: the page (naming the sites domain), and none of the
	// sites' frames.
	resp, body = get("127.0.0.1:8080", "/")
	if resp.StatusCode != 200 || !strings.Contains(body, `<meta name="ddt-sites-domain" content="sites.example.org">`) {
		t.Errorf("the page: %s, without the sites domain", resp.Status)
	}
	for _, path := range []string{"/site/sw.js", "/site/boot.html", "/site/connect.js", "/.ddt/sw.js"} {
		if resp, _ := get("127.0.0.1:8080", path); resp.StatusCode != 404 {
			t.Errorf("%s on the page's host: %s, want 404", path, resp.Status)
		}
	}
	if resp, _ := get("127.0.0.1:8080", "/healthz"); resp.StatusCode != 200 {
		t.Errorf("/healthz on the page's host: %s", resp.Status)
	}
}

// siteServer serves a relay's HTTP endpoints (newMux) with sitesDomain
// and the trusted extensions' origins, and returns a GET of path with a
// Host header and other headers (name, value, …).
func siteServer(t *testing.T, sitesDomain string, extensions []string) func(host, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"ddt.wasm": "\x00asm-secret-node", "wasm_exec.js": "// go"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := NewRelay(Config{Zone: "sites", URL: "http://127.0.0.1:8080", MaxNodes: 8, Store: st, SitesDomain: sitesDomain})
	if err != nil {
		t.Fatal(err)
	}
	h, err := newMux(r, dir, extensions, slog.New(slog.DiscardHandler))
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); r.Close() })
	return func(host, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
}

// The frames a site's host serves name the extensions whose pages they
// trust as DDT pages: by default the DDT extension's (its ID fixed by the
// manifest's key), else those of -extension-origins, or none; page.js
// reads them. A flag naming something that is not an extension's origin
// stops the relay at startup with a sentence saying what is wanted.
func TestSiteFramesTrustExtensions(t *testing.T) {
	const ddtExtension = "chrome-extension://iolmimilmgpabedjlaegbkfdhmpgjfaf"
	const firefox = "moz-extension://0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	if got := extension.Origin(); got != ddtExtension {
		t.Fatalf("the DDT extension's origin is %q, want %q (the manifest's key changed?)", got, ddtExtension)
	}
	for _, c := range []struct {
		flag, meta string
	}{
		{extension.Origin(), ddtExtension}, // the flag's default
		{" CHROME-EXTENSION://IOLMIMILMGPABEDJLAEGBKFDHMPGJFAF/ , " + firefox + "," + ddtExtension, ddtExtension + " " + firefox},
		{firefox, firefox},
		{"", ""},
		{" , ", ""},
	} {
		origins, err := extensionOrigins(c.flag)
		if err != nil {
			t.Fatalf("-extension-origins %q: %v", c.flag, err)
		}
		get := siteServer(t, "", origins)
		want := `<meta name="ddt-extensions" content="` + c.meta + `">`
		for _, path := range []string{"/", "/.ddt/boot", "/.ddt/connect"} {
			if resp, body := get("example.ddt.localhost:8080", path); resp.StatusCode != 200 || !strings.Contains(body, want) || strings.Contains(body, "%DDT_") {
				t.Errorf("-extension-origins %q: %s is %s without %s:\n%s", c.flag, path, resp.Status, want, body)
			}
		}
	}
	for _, bad := range []string{
		"https://evil.example",
		"chrome-extension://iolmimilmgpabedjlaegbkfdhmpgjfa",    // 31 letters
		"chrome-extension://iolmimilmgpabedjlaegbkfdhmpgjfaz",   // z is no ID letter
		"chrome-extension://iolmimilmgpabedjlaegbkfdhmpgjfaf/x", // a path
		"chrome-extension://iolmimilmgpabedjlaegbkfdhmpgjfaf:1",
		"moz-extension://0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
		"moz-extension://0f1e2d3c44b5a-6978-8796-a5b4c3d2e1f0",
		"moz-extension://0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1g0",
		ddtExtension + " " + firefox, // space-separated is one bad origin
		"\"><script>alert(1)</script>",
	} {
		_, err := extensionOrigins(ddtExtension + "," + bad)
		if err == nil || !strings.Contains(err.Error(), "is not an extension's origin") {
			t.Errorf("-extension-origins %q: %v, want it refused", bad, err)
		}
		err = runRelay([]string{"-extension-origins", bad, "-data", filepath.Join(t.TempDir(), "data"), "-addr", "127.0.0.1:0"})
		if err == nil || !strings.Contains(err.Error(), "-extension-origins") {
			t.Errorf("the relay with -extension-origins %q: %v, want it refused at startup", bad, err)
		}
	}
}

// /healthz names the relay's sites domain, for a node whose host is not a
// page of the relay (an extension's offscreen document) to derive sites'
// origins from; a relay without one says nothing of it.
func TestHealthzSitesDomain(t *testing.T) {
	for _, domain := range []string{"sites.example.org", ""} {
		_, body := siteServer(t, domain, nil)("127.0.0.1:8080", "/healthz")
		var stats map[string]any
		if err := json.Unmarshal([]byte(body), &stats); err != nil {
			t.Fatalf("/healthz: %v: %s", err, body)
		}
		got, named := stats["sitesDomain"]
		if domain == "" && named {
			t.Errorf("/healthz of a relay without a sites domain names %v", got)
		}
		if domain != "" && got != domain {
			t.Errorf("/healthz sitesDomain = %v, want %q", got, domain)
		}
	}
}

// FuzzSiteHosts: any Host header is either the page's or a site's; a
// site's domain is a normalized DDT domain whose label the host begins
// with, so no host names a domain it does not spell.
func FuzzSiteHosts(f *testing.F) {
	for _, s := range []string{"example.ddt.localhost:8080", "127.0.0.1:8080", "a.b.ddt.localhost", "blog.ddt.sites.example.org", "x.ddt.localhost.evil", "[::1]:80", ".ddt.localhost", "ddt.localhost", "EX.DDT.LOCALHOST."} {
		f.Add(s)
	}
	hosts := siteHosts{Domain: "sites.example.org"}
	f.Fuzz(func(t *testing.T, host string) {
		d, isSite := hosts.domain(host)
		if d == "" {
			return
		}
		if !isSite {
			t.Fatalf("%q: domain %q on the page's host", host, d)
		}
		if n, err := site.NormalizeDomain(d); err != nil || n != d {
			t.Fatalf("%q: domain %q is not normalized (%q, %v)", host, d, n, err)
		}
		if !strings.HasPrefix(strings.ToLower(host), strings.TrimSuffix(d, ".ddt")+".ddt.") {
			t.Fatalf("%q names %q", host, d)
		}
	})
}
