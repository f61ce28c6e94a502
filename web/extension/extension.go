// Package extension is DDT as a browser extension (Manifest V3): the Go
// node runs in an offscreen document, so it stays up while the browser
// runs, not only while a DDT tab is open; the popup and a full DDT page
// inside the extension use it through the same window.ddt API a page's
// own node offers; and the omnibox keyword "ddt" opens DDT sites.
//
// The extension's files (files/):
//
//   - background.js, the service worker: it keeps exactly one offscreen
//     document (re-created whenever it is gone), hands each extension
//     page a MessagePort to it, and answers the omnibox.
//   - offscreen.html and offscreen.js: the node's host. It starts the node
//     with the page's loader (node/ddt.js, node/ddt.wasm) and serves the
//     API on every port it is handed.
//   - ddt.js: the client a page of the extension starts instead of the
//     loader: the same start(config, {onProgress}) and the same API,
//     backed by the offscreen node, plus setRelay.
//   - popup.html, popup.js, popup.css: the toolbar popup.
//
// [Assemble] lays these out with the DDT page (web/static: index.html
// without its inline compile, app.js, the views) and the wasm build into a
// folder Chromium loads unpacked; `make extension` runs it.
//
// The manifest carries a public key, so the extension's ID, and with it its
// origin ([Origin]), is the same wherever it is loaded unpacked: relays
// trust that origin as a DDT page for sites' frames.
package extension

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

//go:embed files
var files embed.FS

// Files returns the extension's own files (those under files/).
func Files() fs.FS {
	sub, err := fs.Sub(files, "files")
	if err != nil {
		panic(err) // "files" is a constant
	}
	return sub
}

// ID is the extension's ID as Chromium derives it from the manifest's
// key: the first 128 bits of the key's SHA-256, each hex digit written as
// a letter a–p.
func ID() string {
	id, err := idOf(Files())
	if err != nil {
		panic(err) // the embedded manifest is tested
	}
	return id
}

// Origin is the origin of the extension's pages, chrome-extension://ID.
func Origin() string { return "chrome-extension://" + ID() }

func idOf(fsys fs.FS) (string, error) {
	b, err := fs.ReadFile(fsys, "manifest.json")
	if err != nil {
		return "", err
	}
	var m struct{ Key string }
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("manifest.json: %w", err)
	}
	der, err := base64.StdEncoding.DecodeString(m.Key)
	if err != nil || len(der) == 0 {
		return "", fmt.Errorf("manifest.json: the key is not base64 DER: %v", err)
	}
	sum := sha256.Sum256(der)
	var id strings.Builder
	for _, c := range fmt.Sprintf("%x", sum[:16]) {
		d := strings.IndexRune("0123456789abcdef", c)
		id.WriteByte(byte('a' + d))
	}
	return id.String(), nil
}

// Options say what to build the extension for.
type Options struct {
	// Relay is the relay the node uses until its user picks another (an
	// http or https URL); required.
	Relay string
	// Version is the extension's version: one to four dot-separated
	// numbers (default "0.1.0").
	Version string
	// Page is the DDT page's files (web.Static()).
	Page fs.FS
	// Build is the folder with ddt.wasm and wasm_exec.js (build/web).
	Build string
}

// Assemble writes the unpacked extension into dir (emptied first).
func Assemble(dir string, o Options) error {
	u, err := url.Parse(o.Relay)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("extension: the relay %q must be an http or https URL", o.Relay)
	}
	relay := strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/")
	if o.Version == "" {
		o.Version = "0.1.0"
	}
	if !validVersion(o.Version) {
		return fmt.Errorf("extension: version %q must be one to four dot-separated numbers", o.Version)
	}
	out := map[string][]byte{}
	// The extension's own files.
	err = fs.WalkDir(Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, ".d.ts") {
			return nil // types, for make types
		}
		b, err := fs.ReadFile(Files(), p)
		out[p] = b
		return err
	})
	if err != nil {
		return err
	}
	manifest, err := setVersion(out["manifest.json"], o.Version)
	if err != nil {
		return err
	}
	out["manifest.json"] = manifest
	cfg, _ := json.Marshal(map[string]string{"relay": relay, "version": o.Version})
	out["config.js"] = []byte("// Written by make extension: the relay this extension was built for.\nexport default " + string(cfg) + ";\n")
	for size, png := range icons() {
		out[fmt.Sprintf("icons/ddt-%d.png", size)] = png
	}
	// The DDT page, on the extension's client instead of the loader.
	err = fs.WalkDir(o.Page, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch {
		case p == "ddt.js":
			p = "node/ddt.js" // the real loader, for the offscreen document
		case p == "index.html", p == "app.js", p == "style.css", strings.HasPrefix(p, "views/"):
		default:
			return nil // site frames are the relay's; types are not run
		}
		b, err := fs.ReadFile(o.Page, p)
		if p == "node/ddt.js" {
			b, err = fs.ReadFile(o.Page, "ddt.js")
		}
		out[p] = b
		return err
	})
	if err != nil {
		return fmt.Errorf("extension: the page: %w", err)
	}
	if out["index.html"], err = extensionPage(out["index.html"]); err != nil {
		return err
	}
	for _, name := range []string{"ddt.wasm", "wasm_exec.js"} {
		b, err := os.ReadFile(filepath.Join(o.Build, name))
		if err != nil {
			return fmt.Errorf("extension: %w (build it with 'make build')", err)
		}
		out["node/"+name] = b
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for p, b := range out {
		f := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Zip writes the folder Assemble made as a zip archive (what a store or
// a drag onto chrome://extensions takes), its files in name order.
func Zip(dir string, w io.Writer) error {
	z := zip.NewWriter(w)
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return err
		}
		method := zip.Deflate
		if path.Ext(name) == ".png" {
			method = zip.Store
		}
		fw, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		if err != nil {
			return err
		}
		if _, err := fw.Write(b); err != nil {
			return err
		}
	}
	return z.Close()
}

func validVersion(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 5 || strings.Trim(p, "0123456789") != "" || (len(p) > 1 && p[0] == '0') {
			return false
		}
	}
	return true
}

// setVersion writes version into the manifest, keeping its layout.
func setVersion(manifest []byte, version string) ([]byte, error) {
	const field = `"version": "0.0.0"`
	if bytes.Count(manifest, []byte(field)) != 1 {
		return nil, errors.New(`extension: manifest.json must say "version": "0.0.0" once, for the build to set`)
	}
	return bytes.Replace(manifest, []byte(field), []byte(`"version": "`+version+`"`), 1), nil
}

// extensionPage is the DDT page as the extension serves it: its inline
// script (the early compile: the extension's CSP runs no inline script,
// and the node is the offscreen document's) and the preloads of the wasm
// and wasm_exec.js are left out; the footer says where the node runs.
func extensionPage(page []byte) ([]byte, error) {
	s := string(page)
	cut := func(start, end string) error {
		i := strings.Index(s, start)
		j := strings.Index(s[max(i, 0):], end)
		if i < 0 || j < 0 {
			return fmt.Errorf("extension: index.html has no %q…%q to leave out", start, end)
		}
		s = s[:i] + s[i+j+len(end):]
		return nil
	}
	for _, c := range [][2]string{
		{`<link rel="preload" href="ddt.wasm"`, ">\n"},
		{"<script>\n", "</script>\n"},
		{`<link rel="modulepreload" href="wasm_exec.js"`, ">\n"},
	} {
		if err := cut(c[0], c[1]); err != nil {
			return nil, err
		}
	}
	const foot = "Your node stays connected while this tab is open. Closing the tab takes it offline."
	if !strings.Contains(s, foot) {
		return nil, fmt.Errorf("extension: index.html's footer no longer says %q", foot)
	}
	s = strings.Replace(s, foot, "This page shows the DDT extension's node, which runs while the browser does: closing the tab leaves it online.", 1)
	s = strings.Replace(s, "A peer-to-peer web. This tab is a node.", "A peer-to-peer web. This browser is a node.", 1)
	return []byte(s), nil
}
