package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/store"
)

// send makes a request with a body and returns the status, the body and
// the response's headers.
func (a *apiNode) send(t *testing.T, method, path string, body io.Reader) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, b, resp.Header
}

// The native node's content API: a file POSTed to /put on A comes back
// byte-identical from GET /get on B (chunks on disk), with its type and length; /stat and
// /storage describe it; /pin and /unpin keep it or let it go; bad ids and
// unknown content get {error, code} with 400 and 404.
func TestNodeAPIContent(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-content"})
	a := startAPINode(t, z)
	// B keeps its chunks on disk, as `ddt-relay node` does.
	disk, err := store.OpenDiskChunks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	b := startAPINodeWith(t, z, content.Config{Chunks: disk})
	r := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 2*chunk.MaxSize+1000)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	status, body, _ := a.send(t, "POST", "/put?name=clip.bin&type=video/mp4", bytes.NewReader(data))
	if status != 200 {
		t.Fatalf("POST /put: %d %s", status, body)
	}
	var put struct{ ID string }
	if err := json.Unmarshal(body, &put); err != nil || len(put.ID) != 64 {
		t.Fatalf("POST /put answered %s", body)
	}

	status, body, _ = b.send(t, "GET", "/stat?id="+put.ID, nil)
	var st content.Stat
	if json.Unmarshal(body, &st); status != 200 || st.Size != int64(len(data)) || st.Type != "video/mp4" || st.Name != "clip.bin" || st.Chunks != 3 || st.Local {
		t.Fatalf("GET /stat on B before the download: %d %s", status, body)
	}
	status, got, hdr := b.send(t, "GET", "/get?id="+put.ID, nil)
	if status != 200 || !bytes.Equal(got, data) {
		t.Fatalf("GET /get on B: %d, %d bytes (%d put), identical %v", status, len(got), len(data), bytes.Equal(got, data))
	}
	if hdr.Get("Content-Type") != "video/mp4" || hdr.Get("Content-Length") != "8389608" {
		t.Fatalf("GET /get headers: %v", hdr)
	}
	// Content is the publisher's word on its type: served in the API's
	// own origin, text/html would run script that drives the node.
	if hdr.Get("Content-Security-Policy") != "sandbox" {
		t.Fatalf("GET /get serves content unsandboxed in the API's origin: %v", hdr)
	}
	status, body, _ = b.send(t, "GET", "/storage", nil)
	var u content.Usage
	if json.Unmarshal(body, &u); status != 200 || u.UsedBytes < int64(len(data)) || u.PinnedBytes != 0 {
		t.Fatalf("GET /storage on B after the download: %d %s", status, body)
	}
	if status, body, _ = b.send(t, "POST", "/pin?id="+put.ID, nil); status != 200 {
		t.Fatalf("POST /pin: %d %s", status, body)
	}
	if _, body, _ = b.send(t, "GET", "/storage", nil); json.Unmarshal(body, &u) != nil || u.PinnedBytes < int64(len(data)) {
		t.Fatalf("GET /storage after the pin: %s", body)
	}
	if status, body, _ = b.send(t, "POST", "/unpin?id="+put.ID, nil); status != 200 {
		t.Fatalf("POST /unpin: %d %s", status, body)
	}
	if _, body, _ = b.send(t, "GET", "/stat?id="+put.ID, nil); json.Unmarshal(body, &st) != nil || st.Pinned || !st.Local {
		t.Fatalf("GET /stat after the unpin: %s", body)
	}

	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/get?id=nothex", 400, "invalid"},
		{"GET", "/stat?id=", 400, "invalid"},
		{"POST", "/pin?id=" + strings.Repeat("ab", 31), 400, "invalid"},
		{"GET", "/get?id=" + strings.Repeat("ab", 32), 404, content.CodeNotFound},
		{"GET", "/stat?id=" + strings.Repeat("cd", 32), 404, content.CodeNotFound},
		{"GET", "/put", 405, CodeMethod},
		{"POST", "/get?id=" + put.ID, 405, CodeMethod},
	} {
		status, e, body := b.call(t, tc.method, tc.path, nil)
		if status != tc.status || e.Code != tc.code || e.Error == "" {
			t.Errorf("%s %s → %d %s; want %d with code %s", tc.method, tc.path, status, body, tc.status, tc.code)
		}
	}
}

// -pledge takes sizes as people write them.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "1GiB": 1 << 30, "1G": 1 << 30, "500MB": 500e6, "4096": 4096, " 2 KiB ": 2048, "0": 0} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1GiB", "1.5GiB", "GiB", "99999999999TiB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
	var f sizeFlag
	if err := f.Set("1GiB"); err != nil || f.String() != "1GiB" {
		t.Errorf("sizeFlag 1GiB: %v %q", err, f.String())
	}
}
