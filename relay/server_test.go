package main

import (
	"net/http"
	"net/http/httptest"
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
