package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ddt/web"
)

// The page's files carry ETags, so a returning browser gets a 304 for
// each instead of the file again; the loader and the types are served to
// any origin, the types as text.
func TestPageFiles(t *testing.T) {
	h, err := pageFiles(web.Static())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(anyOrigin(h))
	defer srv.Close()
	get := func(path, etag string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{"/", "/app.js", "/ddt.js", "/views/peers.js", "/style.css"} {
		resp := get(path, "")
		tag := resp.Header.Get("ETag")
		if resp.StatusCode != http.StatusOK || tag == "" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %s, ETag %q, headers %v", path, resp.Status, tag, resp.Header)
			continue
		}
		if again := get(path, tag); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %s, want 304", path, again.Status)
		}
	}
	if resp := get("/ddt.d.ts", ""); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("ddt.d.ts served as %q", resp.Header.Get("Content-Type"))
	}
	if resp := get("/app.js", ""); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("app.js served as %q", resp.Header.Get("Content-Type"))
	}
}

// The page names its files under its version: a <base> in index.html,
// which is revalidated every visit, while the files under the version are
// cached for good; another version's path is served but not cached.
func TestPageVersion(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"ddt.wasm": "\x00asm", "wasm_exec.js": "// go"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	if err := pageRoutes(mux, dir, "", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, html := get("/")
	m := regexp.MustCompile(`<base href="(/v/[0-9a-f]+/)">`).FindStringSubmatch(html)
	if resp.StatusCode != http.StatusOK || m == nil || resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
		t.Fatalf("index.html: %s, Cache-Control %q, base %v", resp.Status, resp.Header.Get("Cache-Control"), m)
	}
	// No other origin (a DDT site, any page) may frame the node's page.
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'self'") || resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" {
		t.Errorf("index.html may be framed by other origins: CSP %q, X-Frame-Options %q", csp, resp.Header.Get("X-Frame-Options"))
	}
	base := m[1]
	for _, path := range []string{"app.js", "views/peers.js", "style.css", "ddt.wasm", "wasm_exec.js"} {
		resp, _ := get(base + path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s%s: %s, Cache-Control %q", base, path, resp.Status, resp.Header.Get("Cache-Control"))
		}
	}
	if resp, _ := get("/v/0123456789ab/app.js"); resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("another version's app.js: %s, Cache-Control %q", resp.Status, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := get("/ddt.js"); resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("/ddt.js for other hosts: %v", resp.Header)
	}
}
