package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"ddt/shared/chunk"
	"ddt/shared/site"
	"ddt/shared/store"
	"ddt/shared/wait"
)

// get sends GET path with headers and returns the status, body and
// headers.
func (a *apiNode) get(t *testing.T, path string, headers map[string]string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest("GET", a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b, resp.Header
}

// The native node's sites API over a real relay and zone: A publishes a
// site with POST /publish-site; B resolves the domain and browses it with
// GET /site/… (folders by their index.html, types, a video seeked with
// Range, 404 and 416 with sentences); a host follows the domain and pins
// it; A publishes version 2 and B's next page load shows it; another key
// cannot take the domain.
func TestNodeAPISite(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-site"})
	a, b, h := startSiteNode(t, z), startSiteNode(t, z), startSiteNode(t, z)
	clip := make([]byte, chunk.MaxSize+500_000)
	r := rand.New(rand.NewPCG(5, 5))
	for i := range clip {
		clip[i] = byte(r.Uint32())
	}
	v1 := map[string]string{
		"index.html":      `<!doctype html><link rel=stylesheet href=css/site.css><p>version 1</p>`,
		"css/site.css":    `p { color: teal }`,
		"docs/index.html": `<h1>docs</h1>`,
		"media/clip.webm": string(clip),
	}
	body, typ := multipartSite(t, v1, nil)
	status, out := a.post(t, "/publish-site?domain=Example.DDT", body, typ)
	var pub site.PublishedView
	if json.Unmarshal(out, &pub); status != 200 || pub.Domain != "example.ddt" || pub.Version != 1 || len(pub.Manifest) != 64 || pub.Files != 4 {
		t.Fatalf("POST /publish-site: %d %s", status, out)
	}

	status, out, _ = b.get(t, "/resolve?domain=example.ddt", nil)
	var view site.View
	sign, _ := a.n.Keys()
	if json.Unmarshal(out, &view); status != 200 || view.Domain != "example.ddt" || view.Site != pub.Manifest || view.Version != 1 || view.Owner != hex.EncodeToString(sign[:]) {
		t.Fatalf("GET /resolve on B: %d %s (owner %x)", status, out, sign)
	}
	for _, tc := range []struct{ path, file, typ string }{
		{"/site/example.ddt/", "index.html", "text/html; charset=utf-8"},
		{"/site/example.ddt", "index.html", "text/html; charset=utf-8"},
		{"/site/example.ddt/docs", "docs/index.html", "text/html; charset=utf-8"},
		{"/site/example.ddt/css/site.css", "css/site.css", "text/css; charset=utf-8"},
		{"/site/example.ddt/media/clip.webm", "media/clip.webm", "video/webm"},
	} {
		status, got, hdr := b.get(t, tc.path, nil)
		if status != 200 || string(got) != v1[tc.file] || hdr.Get("Content-Type") != tc.typ || hdr.Get("Accept-Ranges") != "bytes" ||
			hdr.Get("X-DDT-Version") != "1" || hdr.Get("Content-Security-Policy") != "sandbox" {
			t.Errorf("GET %s on B: %d, %d bytes (want %d of %s), headers %v", tc.path, status, len(got), len(v1[tc.file]), tc.file, hdr)
		}
	}
	n := len(clip)
	status, got, hdr := b.get(t, "/site/example.ddt/media/clip.webm", map[string]string{"Range": "bytes=4194000-4194999"})
	if status != 206 || !bytes.Equal(got, clip[4194000:4195000]) || hdr.Get("Content-Range") != fmt.Sprintf("bytes 4194000-4194999/%d", n) || hdr.Get("Content-Length") != "1000" {
		t.Errorf("a seek in the video: %d, %d bytes, headers %v", status, len(got), hdr)
	}
	status, got, hdr = b.get(t, "/site/example.ddt/media/clip.webm", map[string]string{"Range": fmt.Sprintf("bytes=%d-", n)})
	if status != 416 || hdr.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) || !strings.Contains(string(got), site.CodeBadRange) {
		t.Errorf("a range past the end: %d %s, headers %v", status, got, hdr)
	}
	for _, tc := range []struct{ path, code string }{
		{"/site/example.ddt/nope.html", site.CodeNoFile},
		{"/site/nobody-here.ddt/", site.CodeUnknownDomain},
	} {
		status, e, out := b.call(t, "GET", tc.path, nil)
		if status != 404 || e.Code != tc.code || e.Error == "" {
			t.Errorf("GET %s: %d %s; want 404 with code %s", tc.path, status, out, tc.code)
		}
	}
	if status, e, out := b.call(t, "GET", "/site/example.ddt/..%2f..%2fetc/passwd", nil); status != 400 || e.Code != site.CodeInvalid {
		t.Errorf("a path climbing out of the site: %d %s", status, out)
	}

	// A host follows the domain: every file of the site is pinned there.
	host := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		hosting := make(chan error, 1)
		go func() { hosting <- h.sites.Host(ctx, "example.ddt") }()
		return sync.OnceFunc(func() { cancel(); <-hosting })
	}
	stop := host()
	t.Cleanup(stop)
	mid, _ := chunk.Parse(pub.Manifest)
	wait.Until(t, wait.Default, "the host pins the site", func() bool { return h.files.Library().Pinned(mid) })

	// Version 2, from the same key: the next page load on B shows it.
	v2 := map[string]string{"index.html": `<p>version 2</p>`, "css/site.css": v1["css/site.css"]}
	body, typ = multipartSite(t, v2, nil)
	status, out = a.post(t, "/publish-site?domain=example.ddt", body, typ)
	var pub2 site.PublishedView
	if json.Unmarshal(out, &pub2); status != 200 || pub2.Version != 2 || pub2.Manifest == pub.Manifest {
		t.Fatalf("POST /publish-site, version 2: %d %s", status, out)
	}
	wait.Until(t, wait.Default, "B shows version 2", func() bool {
		status, got, hdr := b.get(t, "/site/example.ddt/", nil)
		return status == 200 && string(got) == v2["index.html"] && hdr.Get("X-DDT-Version") == "2"
	})
	if status, e, out := b.call(t, "GET", "/site/example.ddt/docs/", nil); status != 404 || e.Code != site.CodeNoFile {
		t.Errorf("version 2 has no docs/: %d %s", status, out)
	}
	// The host, restarted (it would see version 2 within HostEvery
	// anyway), pins version 2 and lets go of version 1.
	stop()
	t.Cleanup(host())
	mid2, _ := chunk.Parse(pub2.Manifest)
	wait.Until(t, wait.Default, "the host follows version 2", func() bool {
		return h.files.Library().Pinned(mid2) && !h.files.Library().Pinned(mid)
	})

	// Another key cannot take the domain.
	body, typ = multipartSite(t, map[string]string{"index.html": "<p>mine now"}, nil)
	status, out = b.post(t, "/publish-site?domain=example.ddt", body, typ)
	if status != 409 || !strings.Contains(string(out), `"code":"`+site.CodeTaken+`"`) {
		t.Errorf("another key publishing example.ddt: %d %s; want 409 taken", status, out)
	}
}

// ddt-relay publish, as a user runs it: the first run claims the domain
// (version 1), a second run with the same -data publishes version 2 as
// the same owner, and a run with another identity is told the domain is
// taken.
func TestPublishCommand(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-publish"})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>one"), 0o644)
	data := t.TempDir()
	run := func(data string) (string, error) {
		var out bytes.Buffer
		err := runPublish([]string{"-relay", z.url, "-loopback", "-wait", "1s", "-data", data, "-domain", "cli.ddt", dir}, &out)
		return out.String(), err
	}
	out, err := run(data)
	if err != nil || !strings.Contains(out, "published cli.ddt version 1 manifest ") {
		t.Fatalf("first publish: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>two"), 0o644)
	if out, err = run(data); err != nil || !strings.Contains(out, "published cli.ddt version 2 manifest ") {
		t.Fatalf("second publish, same identity: %v\n%s", err, out)
	}
	if out, err = run(t.TempDir()); err == nil || !strings.Contains(err.Error(), "cli.ddt is taken") {
		t.Fatalf("publish with another identity: %v\n%s", err, out)
	}
}
