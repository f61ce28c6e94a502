package site

import (
	"bytes"
	"context"
	"io"
	"path"
	"slices"
	"sort"

	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/node"
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
	Site     *Manifest          // the site's files, as published
}

// PublishedView is a publication as window.ddt's publishSite and the
// native node's POST /publish-site answer it.
type PublishedView struct {
	Domain   string `json:"domain"`   // "example.ddt"
	Version  uint64 `json:"version"`  // the domain record's version
	Manifest string `json:"manifest"` // the site manifest's content id
	Files    int    `json:"files"`
}

// View is p's PublishedView.
func (p *Published) View() PublishedView {
	return PublishedView{Domain: p.Domain, Version: p.Version, Manifest: p.Manifest.String(), Files: len(p.Site.Entries)}
}

// IDs is the content a site is made of: its manifest's id and each
// file's, once.
func (p *Published) IDs() []chunk.Hash { return siteIDs(p.Manifest, p.Site) }

// Publish puts files as this node's content (pinned, announced and
// replicated as public content), publishes their site manifest (content
// of type ManifestType) and claims domain for it, at the version after
// the current one. Every path is checked (CheckPath) before anything is
// stored. If a file cannot be put, or the claim fails, the domain is left
// as it was; the files put so far stay this node's content (pinned), so
// that publishing again stores nothing twice.
func (s *Service) Publish(ctx context.Context, domain string, files []File, o PublishOptions) (*Published, error) {
	if s.files == nil || s.h == nil {
		return nil, node.Errorf(node.CodeNotAdmitted, nil, "the sites service is not attached to a node with content")
	}
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	report := func(p PublishProgress) {
		if o.Progress != nil {
			o.Progress(p)
		}
	}
	mid, m, prog, err := s.putSite(ctx, domain, files, report)
	if err != nil {
		return nil, err
	}
	prog.Phase = "claim"
	report(prog)
	rec, err := s.Claim(ctx, domain, mid)
	if err != nil {
		return nil, err
	}
	prog.Phase = "done"
	report(prog)
	return &Published{Domain: domain, Version: rec.Claim.Version, Manifest: mid, Record: rec, Site: m}, nil
}

// putSite checks files, puts each, then their manifest, and returns the
// manifest's content id: Publish but the claim.
func (s *Service) putSite(ctx context.Context, domain string, files []File, progress func(PublishProgress)) (chunk.Hash, *Manifest, PublishProgress, error) {
	var prog PublishProgress
	fail := func(err error) (chunk.Hash, *Manifest, PublishProgress, error) { return chunk.Hash{}, nil, prog, err }
	if len(files) == 0 {
		return fail(errInvalidf("a site needs at least one file"))
	}
	if len(files) > MaxFiles {
		return fail(errInvalidf("a site of %d files; at most %d", len(files), MaxFiles))
	}
	files = slices.Clone(files)
	// (sort.Slice: a generic sort of a struct type is ~25 KB of wasm.)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	prog = PublishProgress{Phase: "files", TotalFiles: len(files)}
	for i, f := range files {
		if err := CheckPath(f.Path); err != nil {
			return fail(err)
		}
		if i > 0 && files[i-1].Path == f.Path {
			return fail(errInvalidf("two files have the path %q", f.Path))
		}
		if f.Size < 0 || f.Size > chunk.MaxContent {
			return fail(errInvalidf("%s: a size of %d bytes; at most %d", f.Path, f.Size, chunk.MaxContent))
		}
		if err := checkType(f.Type); err != nil {
			return fail(errInvalidf("%s: %v", f.Path, err))
		}
		if f.Open == nil {
			return fail(errInvalidf("%s: nothing to read it from", f.Path))
		}
		prog.TotalBytes += f.Size
	}
	report := func() { progress(prog) }
	report()
	put := func(r io.Reader, size int64, po content.PutOptions) (chunk.Hash, error) {
		before := prog.Bytes
		po.Progress = func(p content.Progress) {
			if p.Phase == "storing" {
				prog.Bytes = before + p.Bytes
				report()
			}
		}
		id, err := s.files.Put(ctx, r, size, po)
		prog.Bytes = before + size
		return id, err
	}
	m := Manifest{Entries: make([]Entry, len(files))}
	for i, f := range files {
		typ := f.Type
		if typ == "" {
			typ = TypeOf(f.Path)
		}
		id, err := s.putFile(f, typ, put)
		if err != nil {
			return fail(err)
		}
		m.Entries[i] = Entry{Path: f.Path, ID: id, Type: typ, Size: f.Size}
		prog.Files = i + 1
		report()
	}
	raw, err := m.Marshal()
	if err != nil {
		return fail(err)
	}
	prog.Phase = "manifest"
	report()
	mid, err := s.files.Put(ctx, bytes.NewReader(raw), int64(len(raw)), content.PutOptions{Name: domain, Type: ManifestType})
	if err != nil {
		return fail(err)
	}
	return mid, &m, prog, nil
}

// putFile opens f and puts it with put, of media type typ, checking
// that it holds the bytes it said.
func (s *Service) putFile(f File, typ string, put func(io.Reader, int64, content.PutOptions) (chunk.Hash, error)) (chunk.Hash, error) {
	rc, err := f.Open()
	if err != nil {
		return chunk.Hash{}, node.Errorf(CodeInvalid, []error{err}, "%s cannot be read: %v", f.Path, err)
	}
	defer rc.Close()
	id, err := put(rc, f.Size, content.PutOptions{Name: path.Base(f.Path), Type: typ})
	if err != nil {
		return chunk.Hash{}, node.Errorf(node.Explain(err).Code, []error{err}, "%s: %v", f.Path, err)
	}
	return id, nil
}
