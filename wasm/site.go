//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"ddt/shared/bridge"
	"ddt/shared/chunk"
	"ddt/shared/node"
	"ddt/shared/site"
	"ddt/shared/wire"
)

// Limits of window.ddt's sites: what one page (or a site's worker, through
// its port) can make this node hold.
const (
	// MaxRequestPath is the longest URL path, in UTF-16 code units, a
	// worker's open names (a site's path of site.MaxPath bytes, escaped);
	// longer is refused before it is copied.
	MaxRequestPath = 3 * site.MaxPath
	// MaxSiteRange is the longest Range header a worker's open passes on.
	MaxSiteRange = 128
	// MaxSiteStreams is the most requests one port has open at once
	// (opening, or with a body not yet read to its end); beyond it an
	// open is answered rate-limited. A page loads a few dozen files at a
	// time; a site's script that opens more and never reads them runs
	// into this and not into the node's memory.
	MaxSiteStreams = 128
	// MaxSiteOpening is how many of a port's requests resolve and fetch at
	// once; the rest wait their turn.
	MaxSiteOpening = 32
	// SitePiece is the most bytes one pull carries.
	SitePiece = 256 << 10
	// SiteStreamIdle is how long a body may go unpulled before it is
	// released (a request the browser gave up on without a cancel).
	SiteStreamIdle = 2 * time.Minute
)

// sites is window.ddt's share of DDT websites: publishSite, resolveDomain,
// siteURL and serveSite over the sites service.
type sites struct {
	svc   *site.Service
	relay string // the node's configured relay, for siteOrigin outside a page
	// relaySites is what the relay's /healthz said (nil until it has
	// answered or failed once): see askRelaySites.
	relaySites atomic.Pointer[relaySites]
}

// methods are the window.ddt members sites defines.
func (s *sites) methods() map[string]func([]js.Value) any {
	return map[string]func([]js.Value) any{
		"publishSite":   s.publish,
		"resolveDomain": s.resolve,
		"siteURL":       s.siteURL,
		"serveSite":     s.serve,
	}
}

// domainArg reads a domain argument, refusing a long string before it is
// copied into wasm memory.
func domainArg(args []js.Value) (string, error) {
	if len(args) < 1 || args[0].Type() != js.TypeString {
		return "", node.Errorf(site.CodeInvalid, nil, "a domain must be a string such as \"example.ddt\"")
	}
	if n := stringLen(args[0]); n > 2*wire.MaxDomain {
		return "", node.Errorf(site.CodeInvalid, nil, "a domain is at most %d characters before .ddt, not %d", wire.MaxDomain, n)
	}
	return site.NormalizeDomain(args[0].String())
}

// publishSite(domain, files, {onProgress, signal}) → Promise of {domain,
// version, manifest}. files is an array of {path, data, type} (data a
// Blob, an ArrayBuffer, a typed array or a string) or a FileList from a
// folder picker (paths from webkitRelativePath, the picked folder's own
// name left out).
func (s *sites) publish(args []js.Value) any {
	domain, err := domainArg(args)
	var files []site.File
	if err == nil {
		var v js.Value
		if len(args) > 1 {
			v = args[1]
		}
		files, err = siteFiles(v)
	}
	report := throttled(option(args, 2, "onProgress"), func(p site.PublishProgress) (string, bool) {
		return p.Phase, p.Phase == "done"
	}, func(p site.PublishProgress) (js.Value, error) { return bridge.Value(p) })
	ctx, aborted, stop := abortable(option(args, 2, "signal"))
	return promise(func() (any, error) {
		defer stop()
		if err != nil {
			return nil, err
		}
		pub, err := s.svc.Publish(ctx, domain, files, site.PublishOptions{Progress: report})
		if err != nil {
			if aborted() {
				return nil, errAborted("publication", err)
			}
			return nil, err
		}
		return bridge.Object(map[string]any{"domain": pub.Domain, "version": pub.Version, "manifest": pub.Manifest.String()}), nil
	})
}

// siteFiles reads publishSite's files argument.
func siteFiles(v js.Value) ([]site.File, error) {
	g := bridge.Global()
	bad := node.Errorf(site.CodeInvalid, nil, "ddt.publishSite(domain, files): files must be an array of {path, data, type} or a FileList")
	if v.Type() != js.TypeObject || v.IsNull() {
		return nil, bad
	}
	list := g.Get("FileList")
	isList := list.Type() == js.TypeFunction && v.InstanceOf(list)
	if !isList && !g.Get("Array").Call("isArray", v).Bool() {
		return nil, bad
	}
	n := v.Get("length").Int()
	if n == 0 {
		return nil, node.Errorf(site.CodeInvalid, nil, "ddt.publishSite: a site needs at least one file")
	}
	if n > site.MaxFiles {
		return nil, node.Errorf(site.CodeInvalid, nil, "ddt.publishSite: %d files, at most %d", n, site.MaxFiles)
	}
	files := make([]site.File, 0, n)
	for i := 0; i < n; i++ {
		var f site.File
		var blob js.Value
		var err error
		if isList {
			file := v.Call("item", i)
			p := file.Get("webkitRelativePath")
			if p.Type() != js.TypeString || p.String() == "" {
				p = file.Get("name")
			}
			if f.Path, err = boundedString(p, "a file's path", site.MaxPath); err != nil {
				return nil, err
			}
			f.Type, blob = file.Get("type").String(), file
		} else {
			f, blob, err = siteFile(v.Index(i))
			if err != nil {
				return nil, node.Errorf(site.CodeInvalid, []error{err}, "ddt.publishSite: file %d: %v", i, err)
			}
		}
		f.Size = int64(blob.Get("size").Float())
		f.Open = func() (io.ReadCloser, error) { return io.NopCloser(&blobReader{blob: blob, size: f.Size}), nil }
		files = append(files, f)
	}
	if isList {
		stripFolder(files)
	}
	return files, nil
}

// siteFile reads one {path, data, type} of publishSite's array; data
// that is not a Blob is copied into one, so a caller that reuses its
// buffer cannot change what is published.
func siteFile(o js.Value) (site.File, js.Value, error) {
	var f site.File
	if o.Type() != js.TypeObject || o.IsNull() {
		return f, js.Value{}, errors.New("not an object {path, data, type}")
	}
	var err error
	if f.Path, err = boundedString(o.Get("path"), "path", site.MaxPath); err != nil {
		return f, js.Value{}, err
	}
	if t := o.Get("type"); t.Type() != js.TypeUndefined && t.Type() != js.TypeNull {
		if f.Type, err = boundedString(t, "type", chunk.MaxType); err != nil {
			return f, js.Value{}, err
		}
	}
	g := bridge.Global()
	data := o.Get("data")
	var blob js.Value
	switch {
	case data.Type() == js.TypeObject && data.InstanceOf(g.Get("Blob")):
		blob = data
		if f.Type == "" {
			f.Type = data.Get("type").String()
		}
	case data.Type() == js.TypeString,
		data.Type() == js.TypeObject && (data.InstanceOf(g.Get("ArrayBuffer")) || g.Get("ArrayBuffer").Call("isView", data).Bool()):
		if blob, err = bridge.New(g.Get("Blob"), []any{data}); err != nil {
			return f, js.Value{}, err
		}
	default:
		return f, js.Value{}, errors.New("data must be a Blob, an ArrayBuffer, a typed array or a string")
	}
	return f, blob, nil
}

// boundedString is v as a Go string, refused by its length before it is
// copied when longer than max.
func boundedString(v js.Value, what string, max int) (string, error) {
	if v.Type() != js.TypeString {
		return "", node.Errorf(site.CodeInvalid, nil, "%s must be a string", what)
	}
	if n := stringLen(v); n > max {
		return "", node.Errorf(site.CodeInvalid, nil, "%s is %d characters, at most %d", what, n, max)
	}
	return v.String(), nil
}

// stripFolder leaves out the picked folder's name: a folder picker names
// every file "folder/index.html", and the site's root is the folder.
func stripFolder(files []site.File) {
	first, _, ok := strings.Cut(files[0].Path, "/")
	if !ok {
		return
	}
	for _, f := range files {
		if !strings.HasPrefix(f.Path, first+"/") {
			return
		}
	}
	for i := range files {
		files[i].Path = files[i].Path[len(first)+1:]
	}
}

// resolveDomain(domain, {fresh}) → Promise of the verified site.View;
// fresh asks the network whatever the cache holds.
func (s *sites) resolve(args []js.Value) any {
	domain, err := domainArg(args)
	fresh := option(args, 1, "fresh").Truthy()
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		o := site.ResolveOptions{}
		if fresh {
			o.MaxAge = -1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rec, err := s.svc.Resolve(ctx, domain, o)
		if err != nil {
			return nil, err
		}
		return bridge.Value(site.ViewOf(rec))
	})
}

// siteURL(domain, path) → the URL of path on domain's site origin, or
// null (with the reason on the console) for a domain that is not one or a
// page whose relay serves no sites.
func (s *sites) siteURL(args []js.Value) any {
	domain, err := domainArg(args)
	path := ""
	if err == nil && len(args) > 1 && args[1].Type() != js.TypeUndefined && args[1].Type() != js.TypeNull {
		path, err = boundedString(args[1], "a path", site.MaxPath)
	}
	var origin string
	if err == nil {
		origin, err = s.siteOrigin(domain)
	}
	if err != nil {
		bridge.Global().Get("console").Call("error", "ddt.siteURL: "+err.Error())
		return js.Null()
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return origin + "/" + strings.Join(segs, "/")
}

// siteOrigin is the origin domain's site is served at for this host (see
// site.Origin): under an http(s) page, the page's origin and the sites
// domain its relay names in it (a meta element ddt-sites-domain, from its
// -sites-domain flag); under any other host (an extension's offscreen
// document, at chrome-extension://), the node's relay and the sites
// domain its /healthz names.
func (s *sites) siteOrigin(domain string) (string, error) {
	g := bridge.Global()
	loc := g.Get("location")
	if loc.Type() != js.TypeObject {
		return "", node.Errorf(node.CodeUnsupported, nil, "this host has no location to serve sites under")
	}
	if p := loc.Get("protocol").String(); p == "http:" || p == "https:" {
		sitesDomain := ""
		if doc := g.Get("document"); doc.Type() == js.TypeObject {
			if m, err := bridge.Call(doc, "querySelector", `meta[name="ddt-sites-domain"]`); err == nil && m.Type() == js.TypeObject && !m.IsNull() {
				sitesDomain = m.Get("content").String()
			}
		}
		return site.Origin(loc.Get("origin").String(), sitesDomain, domain)
	}
	known := s.relaySites.Load()
	sitesDomain := ""
	if known != nil {
		sitesDomain = known.domain
	}
	origin, err := site.Origin(s.relay, sitesDomain, domain)
	switch {
	case err == nil:
		return origin, nil
	case known == nil:
		return "", node.Errorf(node.CodeUnavailable, nil, "the relay's sites domain is not known yet (this node is asking its /healthz): try again in a moment")
	case known.err != nil:
		return "", node.Errorf(node.CodeUnavailable, []error{known.err}, "could not ask the relay for its sites domain at its /healthz (asking again): %v", known.err)
	}
	return "", err
}

// relaySites is what the relay's /healthz said of its sites domain.
type relaySites struct {
	domain string
	err    error // the last ask failed (and is being retried)
}

// askRelaySites learns the relay's sites domain from its /healthz, for
// siteOrigin under a host that is no http(s) page, retrying (every few
// seconds, then every minute) until the relay answers. It does nothing
// under such a page, where the page names the domain.
func (s *sites) askRelaySites() {
	if p := bridge.Global().Get("location").Get("protocol").String(); p == "http:" || p == "https:" {
		return
	}
	for wait := 2 * time.Second; ; wait = min(2*wait, time.Minute) {
		domain, err := healthzSitesDomain(strings.TrimSuffix(s.relay, "/") + "/healthz")
		s.relaySites.Store(&relaySites{domain: domain, err: err})
		if err == nil {
			return
		}
		time.Sleep(wait)
	}
}

// healthzSitesDomain fetches a relay's /healthz and reads its sitesDomain
// ("" when it names none).
func healthzSitesDomain(u string) (string, error) {
	g := bridge.Global()
	p, err := bridge.Call(g, "fetch", u)
	if err == nil {
		p, err = bridge.Await(p)
	}
	if err == nil && !p.Get("ok").Bool() {
		err = fmt.Errorf("%s answered %d", u, p.Get("status").Int())
	}
	if err == nil {
		if p, err = bridge.Call(p, "json"); err == nil {
			p, err = bridge.Await(p)
		}
	}
	if err != nil {
		return "", err
	}
	if d := p.Get("sitesDomain"); d.Type() == js.TypeString {
		return d.String(), nil
	}
	return "", nil
}

// serveSite(domain, port, {onProgress}) answers a site's service worker
// on port (a MessagePort this page made and handed the worker through
// the site's connect frame) for domain, and only domain: no message on
// the port names one. It returns a function that stops it (closing the
// port and releasing every open body), or null (with the reason on the
// console) when domain is not one or port is not a MessagePort.
func (s *sites) serve(args []js.Value) any {
	domain, err := domainArg(args)
	g := bridge.Global()
	if err == nil && (len(args) < 2 || args[1].Type() != js.TypeObject || !args[1].InstanceOf(g.Get("MessagePort"))) {
		err = node.Errorf(site.CodeInvalid, nil, "ddt.serveSite(domain, port): port must be a MessagePort")
	}
	if err != nil {
		g.Get("console").Call("error", "ddt.serveSite: "+err.Error())
		return js.Null()
	}
	srv := &siteServer{svc: s.svc, domain: domain, port: args[1], onProgress: option(args, 2, "onProgress"),
		streams: map[int64]*siteStream{}, opening: make(chan struct{}, MaxSiteOpening)}
	srv.onMessage = js.FuncOf(func(_ js.Value, a []js.Value) any {
		if len(a) > 0 {
			srv.message(a[0].Get("data"))
		}
		return nil
	})
	srv.port.Set("onmessage", srv.onMessage)
	var stop js.Func
	stop = js.FuncOf(func(js.Value, []js.Value) any {
		srv.stop()
		stop.Release()
		return nil
	})
	return stop
}

// siteServer answers one port's requests (the protocol is sw.js's).
type siteServer struct {
	svc        *site.Service
	domain     string
	port       js.Value
	onProgress js.Value
	onMessage  js.Func
	opening    chan struct{} // a slot per Open under way

	mu      sync.Mutex
	streams map[int64]*siteStream
	closed  bool
}

// siteStream is one open request: its Open, then its body.
type siteStream struct {
	cancel context.CancelFunc
	idle   *time.Timer

	mu   sync.Mutex // held by the pull reading, and by the close
	body io.ReadCloser
	eof  bool

	// pulling is set while a pull runs: the worker asks for one piece at
	// a time, and a pull asked for meanwhile (a site's script holding
	// the port, flooding it) is dropped rather than given a goroutine and
	// a buffer of its own.
	pulling atomic.Bool
}

// message handles one message of the worker's. It runs on the page's
// event loop: it only reads the message and starts a goroutine.
func (s *siteServer) message(m js.Value) {
	if m.Type() != js.TypeObject || m.IsNull() {
		return
	}
	idv, opv := m.Get("id"), m.Get("op")
	if idv.Type() != js.TypeNumber || opv.Type() != js.TypeString || stringLen(opv) > 8 {
		return
	}
	f := idv.Float()
	if f < 0 || f > 1<<53 || f != math.Trunc(f) {
		return
	}
	id := int64(f)
	switch opv.String() {
	case "open":
		path, err := boundedString(m.Get("path"), "the path", MaxRequestPath)
		rng := ""
		if err == nil {
			if r := m.Get("range"); r.Type() == js.TypeString {
				rng, err = boundedString(r, "the Range", MaxSiteRange)
			}
		}
		if err != nil {
			s.fail(id, err)
			return
		}
		s.open(id, path, rng, m.Get("navigate").Truthy())
	case "pull":
		s.mu.Lock()
		st := s.streams[id]
		s.mu.Unlock()
		if st == nil {
			s.fail(id, node.Errorf(site.CodeInvalid, nil, "no open request %d", id))
			return
		}
		if !st.pulling.CompareAndSwap(false, true) {
			return
		}
		go func() {
			defer st.pulling.Store(false)
			s.pull(id, st)
		}()
	case "cancel":
		s.release(id)
	}
}

func (s *siteServer) open(id int64, path, rng string, navigate bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if s.streams[id] != nil {
		s.mu.Unlock()
		s.fail(id, node.Errorf(site.CodeInvalid, nil, "request %d is already open", id))
		return
	}
	if len(s.streams) >= MaxSiteStreams {
		s.mu.Unlock()
		s.fail(id, node.Errorf(node.CodeRateLimited, nil, "More than %d requests of this site are open at once.", MaxSiteStreams))
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := &siteStream{cancel: cancel}
	s.streams[id] = st
	s.mu.Unlock()
	go func() {
		if navigate {
			s.report(map[string]any{"phase": "open", "path": path})
		}
		select {
		case s.opening <- struct{}{}:
		case <-ctx.Done():
			return
		}
		resp, err := s.openFile(ctx, path, site.OpenOptions{Range: rng, Navigate: navigate, Progress: s.fetchProgress(navigate)})
		<-s.opening
		if err != nil {
			// A cancelled request has nobody to answer.
			if ctx.Err() == nil {
				s.fail(id, err)
			}
			s.release(id)
			if navigate {
				v := node.Explain(err)
				s.report(map[string]any{"phase": "error", "path": path, "code": v.Code, "message": v.Error})
			}
			return
		}
		s.mu.Lock()
		live := s.streams[id] == st
		if live {
			st.body = resp.Body
			st.idle = time.AfterFunc(SiteStreamIdle, func() { s.release(id) })
		}
		s.mu.Unlock()
		if !live {
			resp.Body.Close()
			return
		}
		s.post(map[string]any{"id": id, "status": resp.Status, "type": resp.Type, "total": resp.Total,
			"start": resp.Start, "end": resp.End, "version": resp.Version})
		if navigate {
			s.report(map[string]any{"phase": "served", "path": resp.Path, "status": resp.Status, "version": resp.Version})
		}
	}()
}

// openFile is the service's Open, a panic in it an error (as a promise's
// is, in bridge.Promise), so one bad request cannot stop the node.
func (s *siteServer) openFile(ctx context.Context, path string, o site.OpenOptions) (resp *site.Response, err error) {
	defer func() {
		if r := recover(); r != nil {
			resp, err = nil, node.Errorf(node.CodeError, nil, "The node failed to open %q: %v", path, r)
		}
	}()
	return s.svc.Open(ctx, s.domain, path, o)
}

// pull answers a pull with the body's next piece, or done at its end.
func (s *siteServer) pull(id int64, st *siteStream) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.body == nil {
		s.fail(id, node.Errorf(site.CodeInvalid, nil, "request %d has no body yet", id))
		return
	}
	if st.idle != nil {
		st.idle.Reset(SiteStreamIdle)
	}
	if st.eof {
		s.post(map[string]any{"id": id, "done": true})
		go s.release(id)
		return
	}
	buf := make([]byte, SitePiece)
	n, err := io.ReadFull(st.body, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		st.eof = true
	case err != nil:
		s.fail(id, err)
		go s.release(id)
		return
	}
	if n == 0 {
		s.post(map[string]any{"id": id, "done": true})
		go s.release(id)
		return
	}
	u8 := bridge.Global().Get("Uint8Array").New(n)
	js.CopyBytesToJS(u8, buf[:n])
	s.postTransfer(map[string]any{"id": id, "data": u8}, u8.Get("buffer"))
}

// release forgets request id and lets its Open and body go.
func (s *siteServer) release(id int64) {
	s.mu.Lock()
	st := s.streams[id]
	delete(s.streams, id)
	s.mu.Unlock()
	if st == nil {
		return
	}
	st.cancel()
	if st.idle != nil {
		st.idle.Stop()
	}
	go func() {
		// After a pull under way: a body is not closed under its reader.
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.body != nil {
			st.body.Close()
			st.body = nil
		}
	}()
}

func (s *siteServer) stop() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ids := make([]int64, 0, len(s.streams))
	for id := range s.streams {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.release(id)
	}
	s.port.Set("onmessage", js.Null())
	s.port.Call("close")
	s.onMessage.Release()
}

func (s *siteServer) fail(id int64, err error) {
	v := node.Explain(err)
	s.post(map[string]any{"id": id, "error": map[string]any{"code": v.Code, "message": v.Error}})
}

func (s *siteServer) post(m map[string]any) { s.postTransfer(m, js.Undefined()) }

// postTransfer posts m on the port, transferring buf when it is set.
func (s *siteServer) postTransfer(m map[string]any, buf js.Value) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	v := js.ValueOf(m)
	if buf.IsUndefined() {
		bridge.Call(s.port, "postMessage", v)
		return
	}
	bridge.Call(s.port, "postMessage", v, []any{buf})
}

// report tells onProgress of a navigation: "open" as it starts, "served"
// (with the file that answered it) or "error" (with its code).
func (s *siteServer) report(fields map[string]any) {
	if s.onProgress.Type() != js.TypeFunction {
		return
	}
	fields["domain"] = s.domain
	fields["navigate"] = true
	callSafely("onProgress", s.onProgress, js.ValueOf(fields))
}

// fetchProgress is an Open's progress callback for onProgress.
func (s *siteServer) fetchProgress(navigate bool) func(site.FetchProgress) {
	return throttled(s.onProgress, func(p site.FetchProgress) (string, bool) {
		return p.Phase, p.Phase == "done"
	}, func(p site.FetchProgress) (js.Value, error) {
		v, err := bridge.Value(p)
		if err == nil {
			v.Set("domain", s.domain)
			v.Set("navigate", navigate)
		}
		return v, err
	})
}
