package site

// CONTRACT SKELETON: h21-sites replaces this file (and adds manifest.go,
// serve.go, host.go).

import (
	"context"
	"io"

	"ddt/shared/chunk"
	"ddt/shared/wire"
)

// File is one file of a site to publish.
type File struct {
	Path string // "index.html", "css/site.css": relative, slash-separated
	Type string // media type; "" to infer from the path's extension
	Size int64
	Open func() (io.ReadCloser, error)
}

// PublishOptions shape a Publish.
type PublishOptions struct {
	// Progress, if set, is told how the publication goes.
	Progress func(PublishProgress)
}

// PublishProgress is how far a Publish is.
type PublishProgress struct {
	Phase      string `json:"phase"` // "files", "manifest", "claim", "done"
	Files      int    `json:"files"` // files put so far
	TotalFiles int    `json:"totalFiles"`
	Bytes      int64  `json:"bytes"` // bytes put so far
	TotalBytes int64  `json:"totalBytes"`
}

// Published is a site publication's outcome.
type Published struct {
	Domain   string             // "example.ddt"
	Version  uint64             // the domain record's version
	Manifest chunk.Hash         // the site manifest's content id
	Record   *wire.DomainRecord // the verified record
}

// Publish puts files as this node's content, publishes their site
// manifest and claims domain for it (the next version).
func (s *Service) Publish(ctx context.Context, domain string, files []File, o PublishOptions) (*Published, error) {
	panic("contract: built by h21-sites")
}

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

// Open answers a request for path of domain's site.
func (s *Service) Open(ctx context.Context, domain, path string, o OpenOptions) (*Response, error) {
	panic("contract: built by h21-sites")
}

// Host keeps domain's current site pinned here and announced, following
// its updates, until ctx ends.
func (s *Service) Host(ctx context.Context, domain string) error {
	panic("contract: built by h21-sites")
}

// ParseAddress splits a DDT address as people type it — "ddt://example.ddt/a/b",
// "example.ddt/a/b", "example.ddt" — into its normalized domain and its
// path ("a/b", "" for the site's root).
func ParseAddress(addr string) (domain, path string, err error) {
	panic("contract: built by h21-sites")
}
