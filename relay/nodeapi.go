package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/site"
	"ddt/shared/unicast"
	"ddt/shared/username"
)

// Codes of the native node's HTTP API refusals, in {error, code} answers.
const (
	// CodeCrossSite: the request came from a web page of another origin
	// (its Origin or Sec-Fetch-Site header says so).
	CodeCrossSite = "cross-site"
	// CodeBadHost: the request's Host is not the address the API is bound
	// to, as when a page's name was rebound to it (DNS rebinding).
	CodeBadHost = "bad-host"
	// CodeMethod: a state-changing call other than by POST, or a query by
	// anything but GET.
	CodeMethod = "method-not-allowed"
)

// serveStatus serves the native node's HTTP API (statusMux) on addr behind
// the guard. An address that is not loopback is refused unless public is
// set: anyone who can reach the port could drive the node.
func serveStatus(addr string, public bool, n *node.Node, users *username.Client, files *content.Service, log *slog.Logger) (*http.Server, net.Listener, error) {
	return serveAPI(addr, public, apiServices{n: n, users: users, files: files}, log)
}

// apiServices are what the native node's HTTP API drives: the node and
// its capabilities (a nil one has no routes).
type apiServices struct {
	n     *node.Node
	users *username.Client
	files *content.Service
	sites *site.Service
	chat  *unicast.Service
}

// serveAPI is serveStatus over every service the node has.
func serveAPI(addr string, public bool, svc apiServices, log *slog.Logger) (*http.Server, net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-status %q is not host:port: %v", addr, err)
	}
	if !public && !isLoopbackHost(host) {
		return nil, nil, fmt.Errorf("-status %s is not a loopback address: anyone who can reach it could drive this node (register names, connect, disconnect); "+
			"use 127.0.0.1:PORT, or add -status-public to serve it on %s anyway", addr, addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: guard(ln.Addr(), log, apiMux(svc)), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, ln, nil
}

// isLoopbackHost reports whether host (from host:port) names only the
// loopback interface. An empty host means every interface.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// guard refuses, with 403 and {error, code}, what a web page could make a
// browser send to the API: a request whose Origin is not the API's own or
// whose Sec-Fetch-Site is anything but same-origin or none (a drive-by
// fetch or form from any page), and a request whose Host is not the
// address bound (a page whose name was rebound to it). Clients that are
// not browsers (curl, the tests) send neither header and pass. Each
// refusal is logged: a web page tried to drive the node.
func guard(bound net.Addr, log *slog.Logger, h http.Handler) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tcp, _ := bound.(*net.TCPAddr)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		no := func(code, msg string) {
			log.Warn("HTTP API request refused", "method", r.Method, "path", r.URL.Path, "host", r.Host,
				"origin", r.Header.Get("Origin"), "fetchSite", r.Header.Get("Sec-Fetch-Site"), "code", code)
			refuse(w, http.StatusForbidden, code, msg)
		}
		if tcp == nil || !allowedHost(tcp, r.Host) {
			no(CodeBadHost, fmt.Sprintf("refused: Host %q is not this node's address (%s); a page whose name points here (DNS rebinding) may not drive the node", r.Host, bound))
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host {
			no(CodeCrossSite, fmt.Sprintf("refused: a request from another origin (%s) may not drive this node", o))
			return
		}
		if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
			no(CodeCrossSite, fmt.Sprintf("refused: a %s request from a web page may not drive this node", s))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// allowedHost reports whether a request's Host names the bound address:
// its IP (any IP if bound to every interface) or localhost for a loopback
// bind, at its port. A DNS name other than localhost never passes, so a
// rebound name cannot reach the API.
func allowedHost(bound *net.TCPAddr, host string) bool {
	h, port, err := net.SplitHostPort(host)
	if err != nil || port != fmt.Sprint(bound.Port) {
		return false
	}
	if strings.EqualFold(h, "localhost") {
		return bound.IP.IsLoopback() || bound.IP.IsUnspecified()
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.Equal(bound.IP) || bound.IP.IsUnspecified())
}

// reply answers v as JSON.
func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fail answers err as {error, code}, with the status of its code.
func fail(w http.ResponseWriter, err error) {
	e := node.Explain(err)
	refuse(w, errorStatus(e.Code), e.Code, e.Error)
}

// refuse answers {error, code} with status.
func refuse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(node.ErrorView{Error: msg, Code: code})
}

// handleOnly registers h for pattern ("METHOD /path"), and for every
// other method on that path a 405 with {error, code}: state-changing
// calls are POST only, queries GET only.
func handleOnly(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	method, path, _ := strings.Cut(pattern, " ")
	mux.HandleFunc(pattern, h)
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		refuse(w, http.StatusMethodNotAllowed, CodeMethod, fmt.Sprintf("%s %s is not allowed: use %s", r.Method, r.URL.Path, method))
	})
}

// contentRoutes serves the content service: POST /put?name=&type= (the
// body, streamed, becomes content: {id}), GET /get?id= (the content's
// bytes, streamed as its chunks arrive), GET /stat?id=, GET /storage,
// POST /pin?id=, POST /unpin?id=. Failures are {error, code} with the
// code's status (404 not-found, 422 corrupt, 507 quota, 400 invalid).
func contentRoutes(handle func(string, http.HandlerFunc), files *content.Service) {
	idParam := func(w http.ResponseWriter, r *http.Request) (chunk.Hash, bool) {
		h, err := chunk.Parse(r.URL.Query().Get("id"))
		if err != nil {
			refuse(w, http.StatusBadRequest, node.CodeInvalid, "id: "+err.Error())
			return h, false
		}
		return h, true
	}
	handle("POST /put", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		typ := q.Get("type")
		if typ == "" {
			typ = r.Header.Get("Content-Type")
		}
		id, err := files.Put(r.Context(), r.Body, r.ContentLength, content.PutOptions{Name: q.Get("name"), Type: typ})
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, map[string]string{"id": id.String()})
	})
	handle("GET /get", func(w http.ResponseWriter, r *http.Request) {
		id, ok := idParam(w, r)
		if ok {
			streamContent(w, r, files, id)
		}
	})
	handle("GET /stat", func(w http.ResponseWriter, r *http.Request) {
		id, ok := idParam(w, r)
		if !ok {
			return
		}
		st, err := files.Stat(r.Context(), id)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, st)
	})
	handle("GET /storage", func(w http.ResponseWriter, r *http.Request) { reply(w, files.Storage()) })
	handle("POST /pin", func(w http.ResponseWriter, r *http.Request) {
		id, ok := idParam(w, r)
		if !ok {
			return
		}
		if err := files.Pin(r.Context(), id); err != nil {
			fail(w, err)
			return
		}
		reply(w, map[string]bool{"pinned": true})
	})
	handle("POST /unpin", func(w http.ResponseWriter, r *http.Request) {
		id, ok := idParam(w, r)
		if !ok {
			return
		}
		if err := files.Unpin(id); err != nil {
			fail(w, err)
			return
		}
		reply(w, map[string]bool{"pinned": false})
	})
}

// streamContent answers GET /get: it fetches content id in the
// background and writes each chunk, in order, as soon as it is held
// here, through a 64 KiB buffer, so the content never sits in memory
// whole. A failure before the first byte is {error, code}; after it, the
// connection is cut (the client sees fewer bytes than Content-Length).
func streamContent(w http.ResponseWriter, r *http.Request, files *content.Service, id chunk.Hash) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	fail := func(err error) {
		e := node.Explain(err)
		refuse(w, errorStatus(e.Code), e.Code, e.Error)
	}
	m, err := files.Manifest(ctx, id)
	if err != nil {
		fail(err)
		return
	}
	lib := files.Library()
	release := lib.Hold(m.Chunks...)
	defer release()
	var mu sync.Mutex
	ready := make([]bool, len(m.Chunks)) // at most chunk.MaxChunks
	wake := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := files.Fetch(ctx, id, content.GetOptions{OnChunk: func(i int) {
			mu.Lock()
			if i < len(ready) {
				ready[i] = true
			}
			mu.Unlock()
			select {
			case wake <- struct{}{}:
			default:
			}
		}})
		done <- err
	}()
	fetched := false
	var ferr error
	defer func() {
		cancel()
		if !fetched {
			<-done // the download ends before the handler does
		}
	}()
	wrote := false
	header := func() {
		wrote = true
		typ := m.Type
		if typ == "" {
			typ = "application/octet-stream"
		}
		w.Header().Set("Content-Type", typ)
		w.Header().Set("Content-Length", strconv.FormatInt(m.Size, 10))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// The type is the publisher's word: content typed text/html would
		// otherwise run its script in the API's own origin, where the
		// guard lets its requests drive the node. A sandbox gives it an
		// opaque origin and no script.
		w.Header().Set("Content-Security-Policy", "sandbox")
		w.WriteHeader(http.StatusOK)
	}
	buf := make([]byte, 64<<10)
	for i := 0; i < len(m.Chunks); {
		mu.Lock()
		has := ready[i]
		mu.Unlock()
		if !has {
			if fetched {
				break // the download ended without it: ferr says why
			}
			select {
			case <-wake:
			case ferr = <-done:
				fetched = true
			}
			continue
		}
		if !wrote {
			header()
		}
		h, n := m.Chunks[i], m.ChunkLen(i)
		for off := 0; off < n; {
			k := min(len(buf), n-off)
			if got, _ := lib.ReadAt(h, buf[:k], int64(off)); got < k {
				panic(http.ErrAbortHandler)
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return // the client went away
			}
			off += k
		}
		i++
	}
	if !fetched {
		ferr, fetched = <-done, true
	}
	if ferr != nil {
		if !wrote {
			fail(ferr)
			return
		}
		panic(http.ErrAbortHandler)
	}
	if !wrote {
		header() // empty content
	}
}

// Limits of POST /publish-site.
const (
	// MaxSiteUpload is the most bytes one POST /publish-site may carry.
	MaxSiteUpload = 1 << 30
	// PublishTimeout bounds one POST /publish-site.
	PublishTimeout = 10 * time.Minute
)

// siteRoutes serves the sites service: POST /publish-site?domain=D (a
// multipart/form-data body, a part per file whose filename is its path:
// {domain, version, manifest, files}), GET /site/{domain}/{path...} (a
// file of the site, with its media type, Range honoured). GET
// /resolve?domain=D is resolveDomain. Failures are {error, code}: 404 for
// an unknown domain or a missing file, 416 for a range outside the file,
// 409 for a domain another key holds.
func siteRoutes(handle func(string, http.HandlerFunc), sites *site.Service) {
	handle("POST /publish-site", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), PublishTimeout)
		defer cancel()
		files, cleanup, err := uploadedSite(w, r)
		defer cleanup()
		if err != nil {
			fail(w, err)
			return
		}
		pub, err := sites.Publish(ctx, r.URL.Query().Get("domain"), files, site.PublishOptions{})
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(pub.View())
	})
	handle("GET /site/", func(w http.ResponseWriter, r *http.Request) {
		rest := strings.TrimPrefix(r.URL.EscapedPath(), "/site/")
		domain, p, _ := strings.Cut(rest, "/")
		rng := r.Header.Get("Range")
		resp, err := sites.Open(r.Context(), domain, p, site.OpenOptions{Range: rng, Navigate: rng == ""})
		if err != nil {
			var re *site.RangeError
			if errors.As(err, &re) {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", re.Size))
			}
			fail(w, err)
			return
		}
		defer resp.Body.Close()
		h := w.Header()
		h.Set("Content-Type", resp.Type)
		h.Set("Content-Length", strconv.FormatInt(resp.End-resp.Start+1, 10))
		h.Set("Accept-Ranges", "bytes")
		h.Set("X-DDT-Version", strconv.FormatUint(resp.Version, 10))
		h.Set("X-DDT-Path", url.PathEscape(resp.Path))
		h.Set("X-Content-Type-Options", "nosniff")
		// A site's page served in the API's own origin could drive the
		// node: a sandbox gives it an opaque origin and no script.
		h.Set("Content-Security-Policy", "sandbox")
		if resp.Status == http.StatusPartialContent {
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", resp.Start, resp.End, resp.Total))
		}
		w.WriteHeader(resp.Status)
		io.Copy(w, resp.Body)
	})
}

// resolveDomain answers GET /resolve?domain=D with the verified record's
// site.View (fresh=1: not from the cache).
func resolveDomain(w http.ResponseWriter, r *http.Request, sites *site.Service) {
	q := r.URL.Query()
	o := site.ResolveOptions{}
	if q.Get("fresh") == "1" || q.Get("fresh") == "true" {
		o.MaxAge = -1
	}
	rec, err := sites.Resolve(r.Context(), q.Get("domain"), o)
	if err != nil {
		e := node.Explain(err)
		refuse(w, errorStatus(e.Code), e.Code, e.Error)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(site.ViewOf(rec))
}

// uploadedSite reads a POST /publish-site body: each part of the
// multipart form is a file whose filename parameter is its path (kept
// whole: mime/multipart's FileName keeps only the last element), spooled
// to a temporary folder so memory stays flat. At most site.MaxFiles parts
// and MaxSiteUpload bytes. cleanup removes the spool.
func uploadedSite(w http.ResponseWriter, r *http.Request) (files []site.File, cleanup func(), err error) {
	cleanup = func() {}
	r.Body = http.MaxBytesReader(w, r.Body, MaxSiteUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, cleanup, node.Errorf(node.CodeInvalid, []error{err}, "the body is not multipart/form-data with a part per file: %v", err)
	}
	dir, err := os.MkdirTemp("", "ddt-publish-")
	if err != nil {
		return nil, cleanup, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return files, cleanup, nil
		}
		if err != nil {
			return nil, cleanup, uploadError(err)
		}
		_, params, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		name := params["filename"]
		if name == "" {
			part.Close()
			continue // a form field, not a file
		}
		if len(files) == site.MaxFiles {
			return nil, cleanup, node.Errorf(site.CodeInvalid, nil, "more than %d files; a site has at most %d", site.MaxFiles, site.MaxFiles)
		}
		if err := site.CheckPath(name); err != nil {
			return nil, cleanup, err
		}
		f, err := os.CreateTemp(dir, "part-")
		if err != nil {
			return nil, cleanup, err
		}
		n, err := io.Copy(f, part)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, cleanup, uploadError(err)
		}
		typ := part.Header.Get("Content-Type")
		if typ == "application/octet-stream" {
			typ = "" // what a client sends when it does not know: the extension says better
		}
		spooled := f.Name()
		files = append(files, site.File{Path: name, Type: typ, Size: n, Open: func() (io.ReadCloser, error) { return os.Open(spooled) }})
	}
}

// uploadError words a failure to read an upload.
func uploadError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return node.Errorf(site.CodeInvalid, []error{err}, "the site is more than %d bytes; publish it from the command line (ddt-relay publish)", MaxSiteUpload)
	}
	return node.Errorf(node.CodeInvalid, []error{err}, "the upload could not be read: %v", err)
}
