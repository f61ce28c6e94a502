package site

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/leakcheck"
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
	"ddt/shared/wire"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// swarm is count linked nodes running content and sites; none takes
// replicas, so what a reader serves it fetched for the request.
type swarm struct {
	*nodetest.Swarm
	files []*content.Service
	sites []*Service
}

func newSwarm(t *testing.T, count int) *swarm {
	t.Helper()
	sw := &swarm{}
	sw.Swarm = nodetest.New(t, count, nodetest.Options{Config: func(i int, c *node.Config) {
		f := content.New(content.Config{Policy: content.Policy{Types: []string{"x-none/"}}})
		s := New(Config{Files: f})
		sw.files = append(sw.files, f)
		sw.sites = append(sw.sites, s)
		c.Capabilities = []node.Capability{f, s}
	}})
	for i, a := range sw.Nodes {
		for _, b := range sw.Nodes[i+1:] {
			sw.Link(a, b)
		}
	}
	return sw
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// testSite is a small site: pages, a folder with an index, styles, a
// file without an extension, one with a type of its own, and a clip
// larger than a chunk.
func testSite() map[string][]byte {
	return map[string][]byte{
		"index.html":      []byte(`<!doctype html><link rel=stylesheet href=css/site.css><a href=docs/>docs</a>`),
		"css/site.css":    []byte(`body { color: rebeccapurple }`),
		"docs/index.html": []byte(`<h1>docs</h1>`),
		"docs/a b.html":   []byte(`<p>spaced</p>`),
		"LICENSE":         []byte("do what you like"),
		"data.bin":        []byte{1, 2, 3},
		"media/clip.webm": randomBytes(chunk.MaxSize+300_000, 1),
	}
}

func filesOf(site map[string][]byte, types map[string]string) []File {
	var out []File
	for p, b := range site {
		out = append(out, File{Path: p, Type: types[p], Size: int64(len(b)), Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }})
	}
	return out
}

// record is the domain record DOMAINS' Resolve would return for mid.
func record(label string, mid chunk.Hash, version uint64) *wire.DomainRecord {
	return &wire.DomainRecord{Claim: wire.DomainClaim{Domain: label, Site: mid, Version: version}}
}

// read opens path of rec's site at s and reads the whole body.
func read(t *testing.T, s *Service, rec *wire.DomainRecord, p string, o OpenOptions) (*Response, []byte) {
	t.Helper()
	rp, err := requestPath(p)
	if err != nil {
		t.Fatalf("path %q: %v", p, err)
	}
	resp, err := s.serve(testCtx(t), rec, rp, o)
	if err != nil {
		t.Fatalf("open %q: %v", p, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %q: %v", p, err)
	}
	return resp, b
}

// A publishes a site; B, which holds none of it, answers requests for it
// as a site's service worker asks them: folders by their index.html,
// media types by extension unless the publisher said otherwise, byte
// ranges as 206 with their bounds, missing files and impossible ranges
// refused with their codes. Once A is gone, C still browses what B read.
func TestServe(t *testing.T) {
	sw := newSwarm(t, 3)
	a, b, c := sw.sites[0], sw.sites[1], sw.sites[2]
	site := testSite()
	var progress []PublishProgress
	mid, _, _, err := a.putSite(testCtx(t), "example.ddt", filesOf(site, map[string]string{"data.bin": "application/x-ddt-test"}),
		func(p PublishProgress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, d := range site {
		total += int64(len(d))
	}
	last := progress[len(progress)-1]
	if last.Phase != "manifest" || last.Files != len(site) || last.TotalFiles != len(site) || last.Bytes != total || last.TotalBytes != total {
		t.Fatalf("the last progress of the put: %+v (files %d, bytes %d)", last, len(site), total)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Bytes < progress[i-1].Bytes || progress[i].Files < progress[i-1].Files {
			t.Fatalf("progress went back: %+v then %+v", progress[i-1], progress[i])
		}
	}
	rec := record("example", mid, 1)

	var mu sync.Mutex
	phases := map[string]bool{}
	onProgress := func(p FetchProgress) { mu.Lock(); phases[p.Phase] = true; mu.Unlock() }
	for _, tc := range []struct{ path, file, typ string }{
		{"", "index.html", "text/html; charset=utf-8"},
		{"/", "index.html", "text/html; charset=utf-8"},
		{"index.html?v=2#top", "index.html", "text/html; charset=utf-8"},
		{"docs", "docs/index.html", "text/html; charset=utf-8"},
		{"docs/", "docs/index.html", "text/html; charset=utf-8"},
		{"/docs/a%20b.html", "docs/a b.html", "text/html; charset=utf-8"},
		{"css/site.css", "css/site.css", "text/css; charset=utf-8"},
		{"LICENSE", "LICENSE", DefaultType},
		{"data.bin", "data.bin", "application/x-ddt-test"},
		{"media/clip.webm", "media/clip.webm", "video/webm"},
	} {
		resp, body := read(t, b, rec, tc.path, OpenOptions{Progress: onProgress})
		want := site[tc.file]
		if resp.Status != 200 || resp.Path != tc.file || resp.Type != tc.typ || !bytes.Equal(body, want) ||
			resp.Total != int64(len(want)) || resp.Start != 0 || resp.End != int64(len(want))-1 || resp.Version != 1 {
			t.Errorf("%q: status %d path %q type %q total %d [%d, %d] v%d, %d bytes (identical %v); want %s, %q, %d bytes",
				tc.path, resp.Status, resp.Path, resp.Type, resp.Total, resp.Start, resp.End, resp.Version, len(body), bytes.Equal(body, want), tc.file, tc.typ, len(want))
		}
	}
	for _, ph := range []string{"manifest", "fetching", "done"} {
		if !phases[ph] {
			t.Errorf("no %q progress while B fetched the site (saw %v)", ph, phases)
		}
	}

	// A video seeks: the ranges come back as 206 with exactly their bytes.
	clip := site["media/clip.webm"]
	n := int64(len(clip))
	for _, tc := range []struct {
		h          string
		start, end int64
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=100-199", 100, 199},
		{"bytes=4194000-4194999", 4194000, 4194999}, // across the chunk boundary
		{"bytes=4194304-", 4194304, n - 1},
		{"bytes=-10", n - 10, n - 1},
	} {
		resp, body := read(t, b, rec, "media/clip.webm", OpenOptions{Range: tc.h})
		if resp.Status != 206 || resp.Start != tc.start || resp.End != tc.end || resp.Total != n || !bytes.Equal(body, clip[tc.start:tc.end+1]) {
			t.Errorf("%s: %d [%d, %d] of %d, %d bytes; want 206 [%d, %d] of %d", tc.h, resp.Status, resp.Start, resp.End, resp.Total, len(body), tc.start, tc.end, n)
		}
	}
	for _, tc := range []struct {
		path, rng, code string
	}{
		{"media/clip.webm", "bytes=99999999-", CodeBadRange},
		{"nope.html", "", CodeNoFile},
		{"css/", "", CodeNoFile},
		{"css/site.css/x", "", CodeNoFile},
		{"Index.html", "", CodeNoFile},
	} {
		rp, _ := requestPath(tc.path)
		_, err := b.serve(testCtx(t), rec, rp, OpenOptions{Range: tc.rng})
		if e := node.Explain(err); e.Code != tc.code || e.Error == "" {
			t.Errorf("%q %s: %v (code %s), want code %s", tc.path, tc.rng, err, e.Code, tc.code)
		}
	}
	for _, p := range []string{"../index.html", "docs/../../x", "a%2f..%2f..%2fx", "%2e%2e/x", ".ddt/connect", "a\\b"} {
		if _, err := requestPath(p); node.Explain(err).Code != CodeInvalid {
			t.Errorf("the request path %q: %v, want code %s", p, err, CodeInvalid)
		}
	}

	// A leaves; C browses from B, which kept what it read as cache.
	sw.Nodes[0].Close()
	for _, p := range []string{"index.html", "css/site.css", "media/clip.webm"} {
		want := site[p]
		if _, body := read(t, c, rec, p, OpenOptions{}); !bytes.Equal(body, want) {
			t.Errorf("C, A gone: %s is %d bytes, want %d", p, len(body), len(want))
		}
	}
}

// A domain record pointing at content that is not a site manifest (a
// large video, say) is refused before any of that content is fetched: a
// stranger's record costs its readers nothing.
func TestServeNotASite(t *testing.T) {
	sw := newSwarm(t, 2)
	big := randomBytes(2*chunk.MaxSize, 3)
	id, err := sw.files[0].Put(testCtx(t), bytes.NewReader(big), int64(len(big)), content.PutOptions{Type: "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	lying, err := sw.files[0].Put(testCtx(t), strings.NewReader("not a manifest"), 14, content.PutOptions{Type: ManifestType})
	if err != nil {
		t.Fatal(err)
	}
	for _, mid := range []chunk.Hash{id, lying} {
		_, err := sw.sites[1].serve(testCtx(t), record("evil", mid, 1), "", OpenOptions{})
		if e := node.Explain(err); e.Code != CodeInvalid || e.Error == "" {
			t.Errorf("a record pointing at %s: %v (code %s), want %s", mid.Short(), err, e.Code, CodeInvalid)
		}
	}
	m, err := sw.files[1].Manifest(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	if lib := sw.files[1].Library(); slices.ContainsFunc(m.Chunks, lib.Has) {
		t.Error("B fetched chunks of a video a domain record pointed at")
	}
}

// A publication with a bad path, a repeated path or a file shorter than
// it said stores nothing of the site, and says which file is wrong.
func TestPublishRefused(t *testing.T) {
	sw := newSwarm(t, 1)
	a := sw.sites[0]
	before := sw.files[0].Storage().UsedBytes
	ok := testSite()
	for name, files := range map[string][]File{
		"traversal": append(filesOf(ok, nil), filesOf(map[string][]byte{"../escape.html": []byte("x")}, nil)...),
		"absolute":  append(filesOf(ok, nil), filesOf(map[string][]byte{"/etc/passwd": []byte("x")}, nil)...),
		"reserved":  append(filesOf(ok, nil), filesOf(map[string][]byte{".ddt/sw.js": []byte("x")}, nil)...),
		"repeated":  append(filesOf(ok, nil), filesOf(map[string][]byte{"index.html": []byte("x")}, nil)...),
		"bad type":  filesOf(map[string][]byte{"a.html": []byte("x")}, map[string]string{"a.html": "text/html\r\nX: y"}),
		"none":      nil,
	} {
		_, _, _, err := a.putSite(testCtx(t), "example.ddt", files, func(PublishProgress) {})
		if e := node.Explain(err); e.Code != CodeInvalid || e.Error == "" {
			t.Errorf("%s: %v (code %s), want %s", name, err, e.Code, CodeInvalid)
		}
	}
	if used := sw.files[0].Storage().UsedBytes; used != before {
		t.Errorf("refused publications stored %d bytes", used-before)
	}
	short := []File{{Path: "a.html", Size: 100, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("five!")), nil }}}
	_, _, _, err := a.putSite(testCtx(t), "example.ddt", short, func(PublishProgress) {})
	if err == nil || !strings.Contains(err.Error(), "a.html") {
		t.Errorf("a file shorter than it said: %v, want an error naming a.html", err)
	}
	unreadable := []File{{Path: "a.html", Size: 1, Open: func() (io.ReadCloser, error) { return nil, errors.New("permission denied") }}}
	if _, _, _, err := a.putSite(testCtx(t), "example.ddt", unreadable, func(PublishProgress) {}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("an unreadable file: %v", err)
	}
}

// A host follows its domain: version 1's manifest and files are pinned
// here; once version 2 is held whole, the files only version 1 had are
// unpinned and those both share stay pinned.
func TestHostFollows(t *testing.T) {
	sw := newSwarm(t, 2)
	pub, host := sw.sites[0], sw.sites[1]
	v1 := testSite()
	mid1, _, _, err := pub.putSite(testCtx(t), "example.ddt", filesOf(v1, nil), func(PublishProgress) {})
	if err != nil {
		t.Fatal(err)
	}
	v2 := testSite()
	v2["index.html"] = []byte("<h1>version 2</h1>")
	delete(v2, "LICENSE")
	mid2, _, _, err := pub.putSite(testCtx(t), "example.ddt", filesOf(v2, nil), func(PublishProgress) {})
	if err != nil {
		t.Fatal(err)
	}
	m1, err := pub.siteManifest(testCtx(t), "example.ddt", mid1)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := pub.siteManifest(testCtx(t), "example.ddt", mid2)
	if err != nil {
		t.Fatal(err)
	}
	lib := sw.files[1].Library()
	hs := &hosting{s: host, domain: "example.ddt"}
	if err := hs.follow(testCtx(t), record("example", mid1, 1)); err != nil {
		t.Fatal(err)
	}
	for _, id := range siteIDs(mid1, m1) {
		if !lib.Pinned(id) {
			t.Fatalf("after version 1, %s is not pinned on the host", id.Short())
		}
	}
	if err := hs.follow(testCtx(t), record("example", mid2, 2)); err != nil {
		t.Fatal(err)
	}
	ids2 := siteIDs(mid2, m2)
	for _, id := range ids2 {
		if !lib.Pinned(id) {
			t.Errorf("after version 2, %s is not pinned on the host", id.Short())
		}
	}
	for _, id := range siteIDs(mid1, m1) {
		if !slices.Contains(ids2, id) && lib.Pinned(id) {
			t.Errorf("after version 2, version 1's %s is still pinned", id.Short())
		}
	}
	if e, _ := m1.Find("css/site.css"); !lib.Pinned(e.ID) {
		t.Error("the file both versions share was unpinned")
	}
}
