package site

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/wire"
)

// NavigateMaxAge is how old a cached domain record a page load (Navigate)
// accepts: a reload a moment after an update shows the new version, while
// the requests of one page (its styles, scripts, images) resolve once.
const NavigateMaxAge = time.Second

// MaxCachedSites is how many decoded site manifests are kept, by content
// id, so that the requests of a page do not decode its site's manifest
// each time.
const MaxCachedSites = 64

// DefaultType is the media type of a file whose type the manifest does
// not say and its extension does not tell.
const DefaultType = "application/octet-stream"

// OpenOptions shape an Open.
type OpenOptions struct {
	Range    string // the request's Range header, "" for the whole file
	Navigate bool   // a page load: resolve the domain again if the cached record is not fresh
	// Progress, if set, is told how fetching the file goes.
	Progress func(FetchProgress)
}

// FetchProgress is how far an Open is on a first visit.
type FetchProgress struct {
	Phase  string `json:"phase"` // "resolving", "manifest", "fetching", "done"
	Path   string `json:"path"`
	Done   int64  `json:"done"` // bytes of the file held so far
	Total  int64  `json:"total"`
	Chunks int    `json:"chunks"` // chunks held so far
	Of     int    `json:"of"`     // chunks in all
}

// Response is a site's answer to one request.
type Response struct {
	Status  int    // 200, or 206 for a Range
	Type    string // media type
	Total   int64  // the file's size
	Start   int64  // first byte of the body
	End     int64  // last byte of the body (inclusive); Start-1 for an empty file
	Version uint64 // the domain record's version served
	Path    string // the file served ("docs/index.html" for "docs/")
	Body    io.ReadCloser
}

// RangeError is the cause of a CodeBadRange error: the size of the file
// the range missed, for a 416's Content-Range ("bytes */Size").
type RangeError struct {
	Size int64
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("the range is outside the file's %d bytes", e.Size)
}

// Open answers a request for path of domain's site. path is as it
// appears in a URL: percent-escapes are decoded here, a leading slash and
// a query or fragment are ignored. "" and a path ending in "/" are the
// folder's index.html; a path naming a folder without the slash is that
// folder's index.html too (Response.Path says which file was served).
// o.Range is the request's Range header: a satisfiable single range is a
// 206 of it, an unsatisfiable one CodeBadRange (with a *RangeError
// cause), any other (several ranges, another unit) is ignored as HTTP
// allows. Errors: CodeUnknownDomain, CodeNoFile, CodeInvalid (a path no
// site may have, a manifest that does not decode), content's codes.
// The caller closes Response.Body.
func (s *Service) Open(ctx context.Context, domain, path string, o OpenOptions) (*Response, error) {
	if s.files == nil || s.h == nil {
		return nil, node.Errorf(node.CodeNotAdmitted, nil, "the sites service is not attached to a node with content")
	}
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	p, err := requestPath(path)
	if err != nil {
		return nil, err
	}
	if o.Progress != nil {
		o.Progress(FetchProgress{Phase: "resolving", Path: p})
	}
	ro := ResolveOptions{}
	if o.Navigate {
		ro.MaxAge = NavigateMaxAge
	}
	rec, err := s.Resolve(ctx, domain, ro)
	if err != nil {
		return nil, err
	}
	return s.serve(ctx, rec, p, o)
}

// requestPath is a URL path as a site's paths are written: unescaped,
// without the leading slash, the query or the fragment. "" is the root;
// a trailing slash is kept (a folder).
func requestPath(raw string) (string, error) {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	p, err := url.PathUnescape(strings.TrimPrefix(raw, "/"))
	if err != nil {
		return "", errInvalidf("%q is not a path: %v", raw, err)
	}
	if p == "" {
		return "", nil
	}
	if err := CheckPath(strings.TrimSuffix(p, "/")); err != nil {
		return "", err
	}
	return p, nil
}

// serve answers a request for path p (from requestPath) of the site rec
// points at.
func (s *Service) serve(ctx context.Context, rec *wire.DomainRecord, p string, o OpenOptions) (*Response, error) {
	report := func(fp FetchProgress) {
		if o.Progress != nil {
			fp.Path = p
			o.Progress(fp)
		}
	}
	domain := Label(rec.Claim.Domain) + Suffix
	report(FetchProgress{Phase: "manifest"})
	m, err := s.siteManifest(ctx, domain, rec.Claim.Site)
	if err != nil {
		return nil, err
	}
	e, ok := m.lookup(p)
	if !ok {
		return nil, node.Errorf(CodeNoFile, nil, "%s has no file /%s (version %d)", domain, p, rec.Claim.Version)
	}
	r, err := s.openFile(ctx, e.ID, s.manifests.sourcesOf(rec.Claim.Site), func(cp content.Progress) {
		report(FetchProgress{Phase: "fetching", Done: cp.Bytes, Total: cp.Total, Chunks: cp.ChunksDone, Of: cp.Chunks})
	})
	if err != nil {
		return nil, node.Errorf(node.Explain(err).Code, []error{err}, "%s/%s cannot be fetched: %v", domain, e.Path, err)
	}
	size := r.Size() // the content's own, which its id vouches for
	start, end, partial, err := parseRange(o.Range, size)
	if err != nil {
		r.Close()
		return nil, err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		r.Close()
		return nil, err
	}
	report(FetchProgress{Phase: "done", Done: size, Total: size, Chunks: len(r.Manifest().Chunks), Of: len(r.Manifest().Chunks)})
	typ := e.Type
	if typ == "" {
		typ = TypeOf(e.Path)
	}
	if typ == "" {
		typ = DefaultType
	}
	status := 200
	if partial {
		status = 206
	}
	return &Response{Status: status, Type: typ, Total: size, Start: start, End: end, Version: rec.Claim.Version, Path: e.Path,
		Body: body{io.LimitReader(r, end-start+1), r}}, nil
}

// body is a Response's Body: a range of a content's Reader, closing it.
type body struct {
	io.Reader
	io.Closer
}

// lookup finds the file a request for p names: "" and "dir/" are the
// folder's index.html, "dir" a file or else the folder's index.html.
func (m *Manifest) lookup(p string) (Entry, bool) {
	if p == "" || strings.HasSuffix(p, "/") {
		return m.Find(p + "index.html")
	}
	if e, ok := m.Find(p); ok {
		return e, true
	}
	return m.Find(p + "/index.html")
}

// openFile opens content id: at once if every chunk is held here, else
// after fetching it (progress reported), opened while the download still
// holds its chunks so that nothing evicts one in between.
func (s *Service) openFile(ctx context.Context, id chunk.Hash, sources []id.Address, progress func(content.Progress)) (*content.Reader, error) {
	r, err := s.files.Open(ctx, id)
	if err == nil || node.Explain(err).Code != content.CodeNotFound {
		return r, err
	}
	_, err = s.files.Fetch(ctx, id, content.GetOptions{Progress: progress, Sources: sources, Use: func(*chunk.Manifest) error {
		r, err = s.files.Open(ctx, id)
		return err
	}})
	if err != nil {
		if r != nil {
			r.Close()
		}
		return nil, err
	}
	return r, nil
}

// siteManifest is the site manifest with content id mid, of domain's
// site: decoded once (the cache), fetched if this node does not hold it.
// Its content is checked before any of it is fetched: of ManifestType,
// at most MaxManifest bytes, so that a record pointing at a large
// content costs its readers nothing.
func (s *Service) siteManifest(ctx context.Context, domain string, mid chunk.Hash) (*Manifest, error) {
	var srcs []id.Address // where it came from, if fetched now
	r, err := s.files.Open(ctx, mid)
	if err == nil {
		defer r.Close()
		if m := s.manifests.get(mid); m != nil {
			return m, nil
		}
	} else {
		if node.Explain(err).Code != content.CodeNotFound {
			return nil, err
		}
		// Where the site's manifest is, its files most likely are: those
		// providers are asked for them first, with no lookup of their own.
		srcs, _ = s.files.Providers(ctx, mid)
		cm, err := s.files.Manifest(ctx, mid, srcs...)
		if err != nil {
			return nil, node.Errorf(node.Explain(err).Code, []error{err}, "the site of %s (%s) cannot be found: %v", domain, mid.Short(), err)
		}
		if err := checkManifestContent(domain, cm); err != nil {
			return nil, err
		}
		if r, err = s.openFile(ctx, mid, srcs, nil); err != nil {
			return nil, node.Errorf(node.Explain(err).Code, []error{err}, "the site of %s (%s) cannot be fetched: %v", domain, mid.Short(), err)
		}
		defer r.Close()
	}
	if err := checkManifestContent(domain, r.Manifest()); err != nil {
		return nil, err
	}
	raw := make([]byte, r.Size())
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, err
	}
	var m Manifest
	if err := m.Unmarshal(raw); err != nil {
		return nil, node.Errorf(CodeInvalid, []error{err}, "the site of %s is refused: %v", domain, err)
	}
	s.manifests.put(mid, &m, srcs)
	return &m, nil
}

// checkManifestContent refuses content that cannot be a site manifest.
func checkManifestContent(domain string, cm *chunk.Manifest) error {
	switch {
	case cm.Type != ManifestType:
		return errInvalidf("%s points at content of type %q, not a site (%s)", domain, cm.Type, ManifestType)
	case cm.Size > MaxManifest:
		return errInvalidf("%s points at a site manifest of %d bytes; at most %d", domain, cm.Size, MaxManifest)
	}
	return nil
}

// manifestCache keeps decoded site manifests by content id, at most
// MaxCachedSites, the oldest going first. A node uses an entry only while
// it holds the manifest itself (see siteManifest).
type manifestCache struct {
	mu      sync.Mutex
	m       map[chunk.Hash]*Manifest
	sources map[chunk.Hash][]id.Address // the providers the manifest was fetched from
	order   []chunk.Hash                // oldest first
}

// sourcesOf are the providers site manifest id was fetched from, if this
// node fetched it: the first to ask for its files.
func (c *manifestCache) sourcesOf(mid chunk.Hash) []id.Address {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sources[mid]
}

func (c *manifestCache) get(id chunk.Hash) *Manifest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *manifestCache) put(mid chunk.Hash, m *Manifest, sources []id.Address) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[mid]; ok {
		return
	}
	if c.m == nil {
		c.m, c.sources = make(map[chunk.Hash]*Manifest), make(map[chunk.Hash][]id.Address)
	}
	if len(sources) > 0 {
		c.sources[mid] = sources
	}
	if len(c.order) >= MaxCachedSites {
		delete(c.m, c.order[0])
		delete(c.sources, c.order[0])
		c.order = c.order[1:]
	}
	c.m[mid] = m
	c.order = append(c.order, mid)
}

// parseRange reads a Range header for a file of size bytes as
// http.ServeContent does for a single range: "bytes=a-b", "bytes=a-",
// "bytes=-n" are the bytes [start, end] (partial); "" is the whole file;
// several ranges or another unit are ignored (the whole file), as is any
// range of an empty file. A malformed or unsatisfiable byte range is
// CodeBadRange.
func parseRange(h string, size int64) (start, end int64, partial bool, err error) {
	whole := func() (int64, int64, bool, error) { return 0, size - 1, false, nil }
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if h == "" || !ok || strings.Contains(spec, ",") || size == 0 {
		return whole()
	}
	bad := func(why string) (int64, int64, bool, error) {
		return 0, 0, false, node.Errorf(CodeBadRange, []error{&RangeError{Size: size}}, "Range %q: %s (the file has %d bytes)", h, why, size)
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if !ok {
		return bad("not a byte range")
	}
	num := func(s string) (int64, bool) {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if a == "" {
		n, ok := num(b)
		switch {
		case !ok:
			return bad("not a byte range")
		case n == 0:
			return bad("an empty suffix")
		}
		return max(size-n, 0), size - 1, true, nil
	}
	start, ok = num(a)
	if !ok {
		return bad("not a byte range")
	}
	if start >= size {
		return bad("it starts after the end")
	}
	end = size - 1
	if b != "" {
		e, ok := num(b)
		switch {
		case !ok:
			return bad("not a byte range")
		case e < start:
			return bad("it ends before it starts")
		}
		end = min(e, size-1)
	}
	return start, end, true, nil
}

// ParseAddress splits a DDT address as people type it — "ddt://example.ddt/a/b",
// "example.ddt/a/b", "example.ddt" — into its normalized domain and its
// path ("a/b", "" for the site's root), as it appears in a URL: escapes,
// a query and a fragment are left as typed, for Open.
func ParseAddress(addr string) (domain, path string, err error) {
	a := strings.TrimSpace(addr)
	if len(a) >= len("ddt://") && strings.EqualFold(a[:len("ddt://")], "ddt://") {
		a = a[len("ddt://"):]
	}
	host, path, _ := strings.Cut(a, "/")
	if i := strings.IndexAny(host, "?#"); i >= 0 {
		host, path = host[:i], host[i:]
	}
	if host == "" {
		return "", "", errInvalidf("%q is not a DDT address: it names no domain (example.ddt/page)", addr)
	}
	domain, err = NormalizeDomain(host)
	if err != nil {
		return "", "", err
	}
	return domain, path, nil
}
