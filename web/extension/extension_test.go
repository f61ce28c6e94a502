package extension

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"ddt/web"
)

// fakeBuild is a build folder (make build's build/web) with small
// stand-ins for the wasm and Go's wasm_exec.js.
func fakeBuild(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"ddt.wasm": "\x00asm\x01\x00\x00\x00 a node", "wasm_exec.js": "// Go's wasm_exec.js\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// assembled builds the extension into a temporary folder and returns it.
func assembled(t *testing.T, o Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "extension")
	if err := Assemble(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The folder Chromium loads: a manifest it accepts for an MV3 extension
// whose node runs WebAssembly in an offscreen document, every file the
// manifest names, the relay it was built for, the DDT page on the
// extension's client with nothing inline for the extension's CSP to
// refuse, the page's own loader for the offscreen document, and icons of
// the sizes named.
func TestAssemble(t *testing.T) {
	build := fakeBuild(t)
	dir := filepath.Join(t.TempDir(), "extension")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stale.js"), []byte("// an earlier build's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Assemble(dir, Options{Relay: "https://relay.example.org/?x=1", Version: "1.2.3", Page: web.Static(), Build: build}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "stale.js")); !os.IsNotExist(err) {
		t.Errorf("a file of an earlier build is still there: %v", err)
	}

	var m struct {
		ManifestVersion int    `json:"manifest_version"`
		Version         string `json:"version"`
		Key             string `json:"key"`
		Background      struct {
			ServiceWorker string `json:"service_worker"`
			Type          string `json:"type"`
		} `json:"background"`
		Permissions []string `json:"permissions"`
		Action      struct {
			DefaultPopup string            `json:"default_popup"`
			DefaultIcon  map[string]string `json:"default_icon"`
		} `json:"action"`
		Icons   map[string]string `json:"icons"`
		Omnibox struct {
			Keyword string `json:"keyword"`
		} `json:"omnibox"`
		CSP struct {
			ExtensionPages string `json:"extension_pages"`
		} `json:"content_security_policy"`
	}
	if err := json.Unmarshal(read(t, dir, "manifest.json"), &m); err != nil {
		t.Fatalf("manifest.json is not JSON: %v", err)
	}
	if m.ManifestVersion != 3 || m.Version != "1.2.3" {
		t.Errorf("manifest version %d, extension version %q; want 3 and 1.2.3", m.ManifestVersion, m.Version)
	}
	if !strings.Contains(m.CSP.ExtensionPages, "'wasm-unsafe-eval'") || !strings.Contains(m.CSP.ExtensionPages, "script-src 'self'") {
		t.Errorf("the pages' CSP %q does not let them run the wasm (and only their own scripts)", m.CSP.ExtensionPages)
	}
	if !slices.Contains(m.Permissions, "offscreen") {
		t.Errorf("permissions %v lack offscreen", m.Permissions)
	}
	if m.Background.ServiceWorker != "background.js" || m.Background.Type != "module" {
		t.Errorf("background %+v, want the module worker background.js", m.Background)
	}
	if m.Omnibox.Keyword != "ddt" {
		t.Errorf("omnibox keyword %q, want ddt", m.Omnibox.Keyword)
	}
	named := []string{m.Background.ServiceWorker, m.Action.DefaultPopup, "offscreen.html", "index.html", "app.js", "config.js", "node/ddt.wasm", "node/wasm_exec.js"}
	for _, f := range m.Icons {
		named = append(named, f)
	}
	for _, f := range m.Action.DefaultIcon {
		named = append(named, f)
	}
	for _, f := range named {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			t.Errorf("the extension lacks %s: %v", f, err)
		}
	}
	for size, f := range m.Icons {
		img, err := png.Decode(bytes.NewReader(read(t, dir, f)))
		if err != nil {
			t.Errorf("icon %s: %v", f, err)
			continue
		}
		if b := img.Bounds(); b.Dx() != b.Dy() || strconv.Itoa(b.Dx()) != size {
			t.Errorf("icon %s for size %s is %v", f, size, b)
		}
	}
	if len(m.Icons) != 4 {
		t.Errorf("icons %v, want 16, 32, 48 and 128", m.Icons)
	}

	config := string(read(t, dir, "config.js"))
	if !strings.Contains(config, `"relay":"https://relay.example.org"`) || !strings.Contains(config, `"version":"1.2.3"`) || !strings.HasPrefix(strings.TrimSpace(config[strings.Index(config, "export"):]), "export default {") {
		t.Errorf("config.js does not name the relay and version as a module's default:\n%s", config)
	}

	page := string(read(t, dir, "index.html"))
	for _, tag := range regexp.MustCompile(`<script\b[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, " src=") {
			t.Errorf("index.html keeps an inline script (%s), which the extension's CSP refuses", tag)
		}
	}
	if regexp.MustCompile(`<link[^>]*ddt\.wasm`).MatchString(page) || strings.Contains(page, `href="wasm_exec.js"`) {
		t.Error("index.html still preloads the wasm or wasm_exec.js: the node is the offscreen document's")
	}
	if !regexp.MustCompile(`<script type="module"[^>]* src="app.js"></script>`).MatchString(page) {
		t.Error("index.html no longer loads app.js")
	}
	if !strings.Contains(page, "This browser is a node.") || strings.Contains(page, "Closing the tab takes it offline") {
		t.Error("index.html still says the tab is the node")
	}

	loader, _ := fs.ReadFile(web.Static(), "ddt.js")
	client, _ := fs.ReadFile(Files(), "ddt.js")
	if !bytes.Equal(read(t, dir, "node/ddt.js"), loader) {
		t.Error("node/ddt.js is not the page's loader")
	}
	if !bytes.Equal(read(t, dir, "ddt.js"), client) {
		t.Error("ddt.js is not the extension's client")
	}
	if string(read(t, dir, "node/ddt.wasm")) != "\x00asm\x01\x00\x00\x00 a node" {
		t.Error("node/ddt.wasm is not the build's")
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, ".d.ts") || strings.HasPrefix(filepath.Base(p), "sw.js") || strings.Contains(filepath.ToSlash(p), "/site/")) {
			t.Errorf("the extension carries %s (types, or the relay's site frames)", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A relay that is no http(s) URL, or a version Chromium would refuse,
// is refused with a sentence saying what is wanted, and nothing is
// written.
func TestAssembleRefuses(t *testing.T) {
	build := fakeBuild(t)
	for _, c := range []struct {
		relay, version, says string
	}{
		{"", "", "must be an http or https URL"},
		{"ftp://relay.example.org", "", "must be an http or https URL"},
		{"http://", "", "must be an http or https URL"},
		{"relay.example.org", "", "must be an http or https URL"},
		{"http://127.0.0.1:8080", "1.2.3.4.5", "one to four dot-separated numbers"},
		{"http://127.0.0.1:8080", "1.02", "one to four dot-separated numbers"},
		{"http://127.0.0.1:8080", "1..2", "one to four dot-separated numbers"},
		{"http://127.0.0.1:8080", "v1", "one to four dot-separated numbers"},
		{"http://127.0.0.1:8080", "123456", "one to four dot-separated numbers"},
	} {
		dir := filepath.Join(t.TempDir(), "extension")
		err := Assemble(dir, Options{Relay: c.relay, Version: c.version, Page: web.Static(), Build: build})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("relay %q, version %q: %v; want an error saying it %s", c.relay, c.version, err, c.says)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("relay %q, version %q: the folder was written", c.relay, c.version)
		}
	}
	err := Assemble(filepath.Join(t.TempDir(), "extension"), Options{Relay: "http://127.0.0.1:8080", Page: web.Static(), Build: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("without a build: %v; want it to say to run make build", err)
	}
	dir := assembled(t, Options{Relay: "http://127.0.0.1:8080", Page: web.Static(), Build: build})
	var m struct{ Version string }
	if err := json.Unmarshal(read(t, dir, "manifest.json"), &m); err != nil || m.Version != "0.1.0" {
		t.Errorf("the default version: %q, %v; want 0.1.0", m.Version, err)
	}
}

// The zip holds exactly the folder's files, byte for byte.
func TestZip(t *testing.T) {
	dir := assembled(t, Options{Relay: "http://127.0.0.1:8080", Page: web.Static(), Build: fakeBuild(t)})
	var buf bytes.Buffer
	if err := Zip(dir, &buf); err != nil {
		t.Fatal(err)
	}
	z, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	var inZip, inDir []string
	for _, f := range z.File {
		inZip = append(inZip, f.Name)
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if !bytes.Equal(b, read(t, dir, f.Name)) {
			t.Errorf("%s differs in the zip", f.Name)
		}
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			inDir = append(inDir, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(inDir)
	if !slices.Equal(inZip, inDir) {
		t.Errorf("the zip holds %v, the folder %v", inZip, inDir)
	}
	if !slices.Contains(inZip, "manifest.json") {
		t.Error("the zip has no manifest.json at its root")
	}
}

// The ID is Chromium's derivation from the manifest's key, so the
// extension has the same origin wherever it is loaded, and relays trust
// that origin by default: a fixed vector, and the derivation done again
// here.
func TestID(t *testing.T) {
	const want = "iolmimilmgpabedjlaegbkfdhmpgjfaf"
	if ID() != want || Origin() != "chrome-extension://"+want {
		t.Fatalf("ID %q, origin %q; want %q (did the manifest's key change? relays trust the old origin by default)", ID(), Origin(), want)
	}
	var m struct{ Key string }
	b, _ := fs.ReadFile(Files(), "manifest.json")
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(m.Key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	derived := strings.Map(func(r rune) rune {
		if r <= '9' {
			return 'a' + r - '0'
		}
		return 'k' + r - 'a'
	}, hex.EncodeToString(sum[:16]))
	if derived != want {
		t.Errorf("the key derives %q, not %q", derived, want)
	}
	// A manifest whose key is not base64 is refused.
	bad := fstest.MapFS{"manifest.json": {Data: []byte(`{"key": "not base64!"}`)}}
	if _, err := idOf(bad); err == nil || !strings.Contains(err.Error(), "not base64") {
		t.Errorf("a bad key: %v", err)
	}
}
