package main

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ddt/shared/store"
)

// siteNode is a node of the test zone with the sites service and its
// HTTP API (every API node has it).
type siteNode = apiNode

func startSiteNode(t *testing.T, z *testZone) *siteNode {
	t.Helper()
	return startAPINode(t, z)
}

// multipartSite is a POST /publish-site body: a part per file, its
// filename the path, as a browser's FormData or curl -F send it.
func multipartSite(t *testing.T, files map[string]string, types map[string]string) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, p))
		typ := types[p]
		if typ == "" {
			typ = "application/octet-stream"
		}
		h.Set("Content-Type", typ)
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, files[p])
	}
	mw.Close()
	return &buf, mw.FormDataContentType()
}

func (a *apiNode) post(t *testing.T, path string, body io.Reader, typ string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", a.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", typ)
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// POST /publish-site refuses, with {error, code} and 400, what no site
// may hold — a path that climbs out, an absolute one, one under .ddt/, a
// body that is not multipart, a bad domain — before claiming anything or
// storing a byte.
func TestNodeAPIPublishRefused(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-site-refused"})
	a := startSiteNode(t, z)
	before := a.files.Storage().UsedBytes
	for name, files := range map[string]map[string]string{
		"traversal": {"index.html": "<p>hi", "../../etc/passwd": "x"},
		"absolute":  {"/etc/passwd": "x"},
		"encoded":   {"a%2f..%2fb": "x"},
		"reserved":  {".ddt/sw.js": "x"},
		"backslash": {"a\\..\\b": "x"},
	} {
		body, typ := multipartSite(t, files, nil)
		status, b := a.post(t, "/publish-site?domain=example.ddt", body, typ)
		if status != 400 || !strings.Contains(string(b), `"code":"invalid"`) {
			t.Errorf("%s: %d %s; want 400 with code invalid", name, status, b)
		}
	}
	body, typ := multipartSite(t, map[string]string{"index.html": "x"}, nil)
	if status, b := a.post(t, "/publish-site?domain=not_a_domain", body, typ); status != 400 || !strings.Contains(string(b), "not a DDT domain") {
		t.Errorf("a bad domain: %d %s", status, b)
	}
	if status, b := a.post(t, "/publish-site?domain=example.ddt", strings.NewReader("hello"), "text/plain"); status != 400 || !strings.Contains(string(b), "multipart") {
		t.Errorf("a body that is not multipart: %d %s", status, b)
	}
	if status, e, b := a.call(t, "GET", "/publish-site?domain=example.ddt", nil); status != 405 || e.Code != CodeMethod {
		t.Errorf("GET /publish-site: %d %s", status, b)
	}
	if used := a.files.Storage().UsedBytes; used != before {
		t.Errorf("refused publications stored %d bytes", used-before)
	}
}

// A folder becomes a site's files: paths relative to it with slashes,
// nested folders walked, dot-files skipped (.well-known kept); a missing
// folder, a file given as the folder and an empty folder are refused
// with a sentence, as are the publish command's missing arguments.
func TestPublishFolder(t *testing.T) {
	dir := t.TempDir()
	for p, data := range map[string]string{
		"index.html": "<h1>hi", "css/site.css": "body{}", "a/b/c.txt": "deep", ".git/config": "secret", ".DS_Store": "x",
		".well-known/security.txt": "contact",
	} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, skipped, err := folderFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if int64(len(b)) != f.Size {
			t.Errorf("%s: %d bytes, size %d", f.Path, len(b), f.Size)
		}
	}
	slices.Sort(paths)
	if want := []string{".well-known/security.txt", "a/b/c.txt", "css/site.css", "index.html"}; !slices.Equal(paths, want) || skipped != 2 {
		t.Errorf("folder files %v (skipped %d); want %v (skipped 2)", paths, skipped, want)
	}
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(dir, "nope")}, "does not exist"},
		{[]string{filepath.Join(dir, "index.html")}, "is not a folder"},
		{[]string{empty}, "no files"},
	} {
		if _, _, err := folderFiles(tc.args[0]); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("folderFiles(%s): %v, want %q", tc.args[0], err, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{dir}, "-domain is missing"},
		{[]string{"-domain", "example.ddt"}, "folder to publish is missing"},
		{[]string{"-domain", "example.ddt", dir, "-relay", "x"}, "flags go before the folder"},
		{[]string{"-domain", "Not A Domain", dir}, "not a DDT domain"},
		{[]string{"-domain", "example.ddt", filepath.Join(dir, "nope")}, "does not exist"},
	} {
		err := runPublish(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("publish %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// A relay nobody answers at is reported as such, within -timeout, and
// the command fails.
func TestPublishUnreachableRelay(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hi"), 0o644)
	err := runPublish([]string{"-relay", "http://127.0.0.1:1", "-loopback", "-timeout", "1s", "-data", t.TempDir(), "-domain", "example.ddt", dir}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "could not join through the relay at http://127.0.0.1:1") {
		t.Fatalf("publish through no relay: %v", err)
	}
}
