package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"ddt/shared/site"
	"ddt/shared/transport"
	"ddt/web"
)

// asset is a file served from memory in up to three encodings.
type asset struct {
	name    string
	ctype   string
	raw     []byte
	gz, br  []byte
	etag    string
	modTime time.Time
}

// loadAsset reads path and its precompressed siblings path.gz and path.br
// (made by scripts/compress); gzip is made here when missing.
func loadAsset(path, ctype string) (*asset, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, _ := os.Stat(path)
	sum := sha256.Sum256(raw)
	a := &asset{name: filepath.Base(path), ctype: ctype, raw: raw, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, modTime: st.ModTime()}
	fresh := func(p string) []byte {
		s, err := os.Stat(p)
		if err != nil || s.ModTime().Before(st.ModTime()) {
			return nil
		}
		b, _ := os.ReadFile(p)
		return b
	}
	a.br = fresh(path + ".br")
	if a.gz = fresh(path + ".gz"); a.gz == nil {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(raw)
		zw.Close()
		a.gz = buf.Bytes()
	}
	return a, nil
}

// acceptsEncoding reports whether the request's Accept-Encoding allows enc
// (listed by name with a weight above zero; "*" counts).
func acceptsEncoding(r *http.Request, enc string) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.TrimSpace(name)
		if !strings.EqualFold(name, enc) && name != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}

func (a *asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Vary", "Accept-Encoding")
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", "no-cache")
	}
	h.Set("ETag", a.etag)
	h.Set("X-Uncompressed-Length", strconv.Itoa(len(a.raw)))
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.raw
	switch {
	case a.br != nil && acceptsEncoding(r, "br"):
		h.Set("Content-Encoding", "br")
		body = a.br
	case acceptsEncoding(r, "gzip"):
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// newMux wires the relay's HTTP endpoints: a request for a site host
// (see siteHosts; Config.SitesDomain) gets only the DDT frames of
// siteFrameRoutes, every other the page and the relay's endpoints.
// extensions are the origins of DDT extensions' pages that sites' frames
// trust as DDT pages besides the relay's own (see extensionOrigins).
func newMux(r *Relay, webDir string, extensions []string, log *slog.Logger) (http.Handler, error) {
	hosts := siteHosts{Domain: r.cfg.SitesDomain}
	mux := http.NewServeMux()
	if err := pageRoutes(mux, webDir, hosts.Domain, log); err != nil {
		return nil, err
	}
	r.Routes(mux, log)
	sites, err := siteFrameRoutes(r.cfg.URL, extensions)
	if err != nil {
		return nil, err
	}
	return hosts.route(sites, mux), nil
}

// pageRoutes serves the page, its files, ddt.wasm and wasm_exec.js (from
// webDir). sitesDomain, if set, is named in the page (a meta element
// ddt-sites-domain) for ddt.siteURL. The files of sites' frames
// (static/site/) are not among the page's: they are served only on site
// hosts.
func pageRoutes(mux *http.ServeMux, webDir, sitesDomain string, log *slog.Logger) error {
	static, err := pageFiles(withoutSiteFrames{web.Static()})
	if err != nil {
		return err
	}
	static.sitesDomain = sitesDomain
	files := map[string]http.Handler{}
	hash := sha256.New()
	for _, f := range []struct{ name, ctype string }{
		{"ddt.wasm", "application/wasm"},
		{"wasm_exec.js", "text/javascript; charset=utf-8"},
	} {
		a, err := loadAsset(filepath.Join(webDir, f.name), f.ctype)
		if err != nil {
			return fmt.Errorf("%w (build it with 'make build')", err)
		}
		log.Info("serving", "file", f.name, "raw", len(a.raw), "gzip", len(a.gz), "brotli", len(a.br))
		mux.Handle("GET /"+f.name, anyOrigin(a))
		files[f.name] = a
		hash.Write([]byte(a.etag))
	}
	hash.Write([]byte(static.version))
	version := hex.EncodeToString(hash.Sum(nil)[:6])
	page, err := static.page(version)
	if err != nil {
		return err
	}
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /index.html", page)
	mux.Handle("GET /", anyOrigin(static))
	// The page's own copies of its files, under its version: cached for
	// good, so a returning browser asks for none of them again (on HTTP/1.1
	// a dozen revalidations cost a return visit a tenth of its time); a new
	// build is a new version, which index.html (never cached) names.
	mux.HandleFunc("GET /v/{version}/{path...}", func(w http.ResponseWriter, req *http.Request) {
		if req.PathValue("version") == version {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		}
		name := req.PathValue("path")
		req.URL.Path = "/" + name
		if h := files[name]; h != nil {
			anyOrigin(h).ServeHTTP(w, req)
			return
		}
		anyOrigin(static).ServeHTTP(w, req)
	})
	log.Info("serving the page", "version", version)
	return nil
}

// staticFiles serves the page's files with an ETag each (embedded files
// have no modification time), so a browser revalidates them with a 304
// instead of downloading them again; TypeScript declarations are served
// as text (the system's table may say Qt Linguist).
type staticFiles struct {
	files       fs.FS
	etags       map[string]string
	version     string // a hash of every file
	server      http.Handler
	sitesDomain string // named in index.html when set
}

func pageFiles(files fs.FS) (*staticFiles, error) {
	sf := &staticFiles{files: files, etags: map[string]string{}, server: http.FileServerFS(files)}
	all := sha256.New()
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		sf.etags["/"+p] = `"` + hex.EncodeToString(sum[:8]) + `"`
		all.Write([]byte(p))
		all.Write(sum[:])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the page's files: %w", err)
	}
	sf.version = hex.EncodeToString(all.Sum(nil)[:8])
	return sf, nil
}

func (sf *staticFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	if tag, ok := sf.etags[p]; ok {
		w.Header().Set("ETag", tag)
		if w.Header().Get("Cache-Control") == "" {
			w.Header().Set("Cache-Control", "no-cache")
		}
	}
	if strings.HasSuffix(p, ".ts") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	sf.server.ServeHTTP(w, r)
}

// page serves index.html with its files under /v/<version>/: a <base>
// right after <head> makes every relative URL of the page (its styles,
// modules, ddt.wasm, wasm_exec.js) the version's. index.html itself is
// revalidated on every visit.
func (sf *staticFiles) page(version string) (http.Handler, error) {
	b, err := fs.ReadFile(sf.files, "index.html")
	if err != nil {
		return nil, err
	}
	const head = "<head>"
	i := bytes.Index(b, []byte(head))
	if i < 0 {
		return nil, errors.New("the page's index.html has no <head>")
	}
	insert := "\n<base href=\"/v/" + version + "/\">"
	if sf.sitesDomain != "" {
		insert += "\n<meta name=\"ddt-sites-domain\" content=\"" + html.EscapeString(sf.sitesDomain) + "\">"
	}
	page := slices.Concat(b[:i+len(head)], []byte(insert), b[i+len(head):])
	sum := sha256.Sum256(page)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", etag)
		// The node's page runs in an agent cluster of its own origin, so no
		// site under a sibling host can relax document.domain to reach it.
		w.Header().Set("Origin-Agent-Cluster", "?1")
		// Nobody frames the node's page: a site, or any page, that did
		// could dress it up and have its user click publish or connect.
		w.Header().Set("Content-Security-Policy", "frame-ancestors 'self'")
		w.Header().Set("X-Frame-Options", "SAMEORIGIN")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(page)))
		if r.Method != http.MethodHead {
			w.Write(page)
		}
	}), nil
}

// anyOrigin lets pages of any origin load what h serves (the page's files,
// the loader ddt.js, ddt.wasm, wasm_exec.js), so that another site can run
// a node from this relay; X-Uncompressed-Length is exposed for the
// loader's progress.
func anyOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "X-Uncompressed-Length")
		h.ServeHTTP(w, r)
	})
}

// Routes adds the relay's endpoints: /healthz, /relays and the zone
// ledger's /ledger/… (open to any origin), /ws for nodes and /federate
// for relays. A WebSocket becomes a transport.WebSocket (keepalive pings
// every 15 s) and goes to its engine's Serve. Node sockets are accepted
// from any Origin: admission is by signed challenge, and a page served by
// one relay may join another.
func (r *Relay) Routes(mux *http.ServeMux, log *slog.Logger) {
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, req *http.Request) { reply(w, r.Stats()) })
	mux.HandleFunc("GET /relays", func(w http.ResponseWriter, req *http.Request) { reply(w, r.Federation.Relays()) })
	r.Ledger.Routes(mux)
	accept := &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled, InsecureSkipVerify: true}
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, req *http.Request) {
		if !r.Zone.JoinSlot() {
			log.Warn("refusing a connection: too many joining at once", "remote", req.RemoteAddr)
			w.Header().Set("Retry-After", "2")
			http.Error(w, "relay busy: too many nodes joining at once; retry shortly", http.StatusServiceUnavailable)
			return
		}
		conn, err := websocket.Accept(w, req, accept)
		if err != nil {
			r.Zone.ReleaseSlot()
			log.Info("websocket upgrade failed", "remote", req.RemoteAddr, "err", err)
			return
		}
		r.Zone.Serve(req.Context(), r.cfg.Capture.Conn(transport.NewWebSocket(conn, websockets)), req.RemoteAddr)
	})
	mux.HandleFunc("GET /federate", func(w http.ResponseWriter, req *http.Request) {
		if !r.Federation.Slot() {
			log.Warn("refusing a relay connection: too many authenticating at once", "remote", req.RemoteAddr)
			w.Header().Set("Retry-After", "2")
			http.Error(w, "relay busy; retry shortly", http.StatusServiceUnavailable)
			return
		}
		conn, err := websocket.Accept(w, req, accept)
		if err != nil {
			r.Federation.ReleaseSlot()
			log.Info("federation upgrade failed", "remote", req.RemoteAddr, "err", err)
			return
		}
		r.Federation.Serve(req.Context(), r.cfg.Capture.Conn(transport.NewWebSocket(conn, websockets)), req.RemoteAddr)
	})
}

// siteHosts says which requests are for a DDT site: a site is served at
// an origin of its own, so that its scripts reach neither the node's page
// (its IndexedDB holds the node's keys and chunks, its window.ddt drives
// the node) nor another site. The origin of example.ddt is
// example.ddt.localhost (at any port) under a loopback page — browsers
// resolve *.localhost to loopback and treat it as secure — or
// example.ddt.<Domain> when the relay has a sites domain.
type siteHosts struct {
	// Domain is the sites domain ("sites.example.org"), "" for loopback
	// only. It should be a registrable domain apart from the page's, so
	// that sites are not even same-site with the node's page.
	Domain string
}

// siteLabelSuffix is what a site host's name ends with before the
// parent domain: "<label>.ddt." then "localhost" or the sites domain.
const siteLabelSuffix = site.Suffix + "."

// domain reports whether host (a request's Host, with or without a port)
// is a site host, and the domain it names: "example.ddt", or "" when the
// label is not a DDT domain (such a host is still a site's, never the
// page's).
func (s siteHosts) domain(host string) (domain string, ok bool) {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	var rest string
	for _, parent := range []string{"localhost", s.Domain} {
		if parent == "" {
			continue
		}
		if r, found := strings.CutSuffix(name, "."+parent); found {
			rest, ok = r, true
			break
		}
	}
	if !ok {
		return "", false
	}
	label, found := strings.CutSuffix(rest+".", siteLabelSuffix)
	if !found {
		// Another name under the parent ("ddt.localhost", "www.localhost")
		// is not a site: the page's own.
		return "", false
	}
	if strings.Contains(label, ".") {
		return "", true
	}
	d, err := site.NormalizeDomain(label)
	if err != nil {
		return "", true
	}
	return d, true
}

// route sends site hosts' requests to sites and every other to page.
func (s siteHosts) route(sites, page http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.domain(r.Host)
		if !ok {
			page.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Origin-Agent-Cluster", "?1")
		h.Set("Referrer-Policy", "same-origin")
		if d == "" {
			http.Error(w, fmt.Sprintf("%s is not a DDT site: a site's host is <name>.ddt.<parent>, its name 1–63 of a–z, 0–9 and inner hyphens.", r.Host), http.StatusNotFound)
			return
		}
		sites.ServeHTTP(w, r)
	})
}

// siteFrames is the folder of static/ that holds the frames of a site's
// origin; the page does not serve it.
const siteFrames = "site"

// withoutSiteFrames is the page's files without the sites' frames.
type withoutSiteFrames struct{ fs.FS }

func (f withoutSiteFrames) Open(name string) (fs.File, error) {
	if name == siteFrames || strings.HasPrefix(name, siteFrames+"/") {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return f.FS.Open(name)
}

func (f withoutSiteFrames) ReadDir(name string) ([]fs.DirEntry, error) {
	if name == siteFrames || strings.HasPrefix(name, siteFrames+"/") {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	es, err := fs.ReadDir(f.FS, name)
	if name == "." {
		es = slices.DeleteFunc(es, func(e fs.DirEntry) bool { return e.Name() == siteFrames })
	}
	return es, err
}

// siteFrameRoutes serves a site host: the DDT frames under /.ddt/ (the
// connect frame that registers the site's service worker and hands it
// the node's port, the worker, the boot page's script) and the boot page
// at every other path. Once the worker controls the site's frames, it
// answers every request but /.ddt/ from the node; the boot page is what a
// first visit gets before that (it connects and loads the path once) and
// what a site opened outside a DDT page gets (it sends the reader to the
// DDT page at pageURL, the relay's public URL). Nothing else of the
// relay is served there: no /ws, no page, no ddt.wasm.
//
// The frames answer only a parent that is a DDT page (page.js): the
// relay's page at pageURL (named in %DDT_PAGE%) and the pages of the DDT
// extensions whose origins are in extensions (%DDT_EXTENSIONS%,
// space-separated).
func siteFrameRoutes(pageURL string, extensions []string) (http.Handler, error) {
	frames, err := fs.Sub(web.Static(), siteFrames)
	if err != nil {
		return nil, err
	}
	read := func(name string) ([]byte, error) {
		b, err := fs.ReadFile(frames, name)
		if err != nil {
			return nil, fmt.Errorf("the sites' frames: %w", err)
		}
		return b, nil
	}
	serve := func(name, ctype string, extra map[string]string) (http.Handler, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		b = bytes.ReplaceAll(b, []byte("%DDT_PAGE%"), []byte(html.EscapeString(pageURL)))
		b = bytes.ReplaceAll(b, []byte("%DDT_EXTENSIONS%"), []byte(html.EscapeString(strings.Join(extensions, " "))))
		sum := sha256.Sum256(b)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", ctype)
			h.Set("Cache-Control", "no-cache")
			for k, v := range extra {
				h.Set(k, v)
			}
			h.Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			h.Set("Content-Length", strconv.Itoa(len(b)))
			if r.Method != http.MethodHead {
				w.Write(b)
			}
		}), nil
	}
	mux := http.NewServeMux()
	for _, f := range []struct {
		path, name, ctype string
		extra             map[string]string
	}{
		// The worker lives under /.ddt/ and controls the whole origin; it
		// is revalidated on every registration check, so a new relay's
		// worker replaces the old at once.
		{"/.ddt/sw.js", "sw.js", "text/javascript; charset=utf-8", map[string]string{"Service-Worker-Allowed": "/"}},
		{"/.ddt/connect", "connect.html", "text/html; charset=utf-8", nil},
		{"/.ddt/connect.js", "connect.js", "text/javascript; charset=utf-8", nil},
		{"/.ddt/boot.js", "boot.js", "text/javascript; charset=utf-8", nil},
		{"/.ddt/page.js", "page.js", "text/javascript; charset=utf-8", nil},
		{"/.ddt/frames.css", "frames.css", "text/css; charset=utf-8", nil},
	} {
		h, err := serve(f.name, f.ctype, f.extra)
		if err != nil {
			return nil, err
		}
		mux.Handle("GET "+f.path, h)
	}
	boot, err := serve("boot.html", "text/html; charset=utf-8", map[string]string{"Cache-Control": "no-store"})
	if err != nil {
		return nil, err
	}
	// The worker's copy, for a page load no DDT page serves yet.
	mux.Handle("GET /.ddt/boot", boot)
	mux.HandleFunc("GET /.ddt/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "No such DDT frame.", http.StatusNotFound)
	})
	// Every other path, of any method: the boot page (never cached: the
	// next visit is the worker's).
	mux.Handle("/", boot)
	return mux, nil
}

// extensionOrigins reads -extension-origins: comma-separated origins of
// DDT extensions' pages, each chrome-extension://<ID> (32 letters a–p, the
// ID Chromium derives from the extension's key) or moz-extension://<UUID>
// (Firefox's per-install UUID). Sites' frames trust these as DDT pages,
// as they trust the relay's own: a page there may show any site and speak
// for its reader, so each must be an extension its operator means to
// trust. An empty list trusts none.
func extensionOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
		if o == "" {
			continue
		}
		if !validExtensionOrigin(o) {
			return nil, fmt.Errorf("-extension-origins: %q is not an extension's origin: want chrome-extension://<its 32-letter ID, a to p> or moz-extension://<its UUID>", o)
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

func validExtensionOrigin(o string) bool {
	if id, ok := strings.CutPrefix(o, "chrome-extension://"); ok {
		return len(id) == 32 && strings.Trim(id, "abcdefghijklmnop") == ""
	}
	if id, ok := strings.CutPrefix(o, "moz-extension://"); ok {
		if len(id) != 36 {
			return false
		}
		for i, c := range id {
			if i == 8 || i == 13 || i == 18 || i == 23 {
				if c != '-' {
					return false
				}
			} else if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
		return true
	}
	return false
}
