package site

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"mime"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"ddt/shared/chunk"
	"ddt/shared/node"
)

// Site manifest limits. A manifest is what a stranger's domain record
// points every reader at: each limit bounds what decoding one costs.
const (
	// MaxFiles is the most files a site may have.
	MaxFiles = 10000
	// MaxPath is the longest path of a file, in bytes.
	MaxPath = 1024
	// MaxManifest is the largest encoded manifest, in bytes: one chunk,
	// so a manifest is fetched and checked in one piece.
	MaxManifest = chunk.MaxSize
)

// ManifestType is the media type of a site manifest's content.
const ManifestType = "application/vnd.ddt.site"

// manifestMagic starts every encoded site manifest (and versions it).
const manifestMagic = "ddt-site/1\n"

// Entry is one file of a site: its path, its content id, its media type
// ("" for "by the path's extension") and its size.
type Entry struct {
	Path string
	ID   chunk.Hash
	Type string
	Size int64
}

// Manifest is a site: its files, sorted by path, each path once.
//
// Encoding (Marshal), integers as uvarints:
//
//	"ddt-site/1\n" | count | count × (path length | path | ID (32 bytes) |
//	type length | type | size)
type Manifest struct {
	Entries []Entry
}

// Find returns the entry at path p (a path as CheckPath accepts it).
func (m *Manifest) Find(p string) (Entry, bool) {
	i, ok := slices.BinarySearchFunc(m.Entries, p, func(e Entry, p string) int { return strings.Compare(e.Path, p) })
	if !ok {
		return Entry{}, false
	}
	return m.Entries[i], true
}

// Check reports what makes m a manifest this package refuses: too many
// files, a path CheckPath refuses, paths out of order or repeated, a
// type that is not a media type, a size out of range.
func (m *Manifest) Check() error {
	if len(m.Entries) > MaxFiles {
		return errInvalidf("a site of %d files; at most %d", len(m.Entries), MaxFiles)
	}
	for i, e := range m.Entries {
		if err := CheckPath(e.Path); err != nil {
			return err
		}
		if i > 0 {
			switch c := strings.Compare(m.Entries[i-1].Path, e.Path); {
			case c == 0:
				return errInvalidf("the path %q is listed twice", e.Path)
			case c > 0:
				return errInvalidf("the paths are not sorted: %q before %q", m.Entries[i-1].Path, e.Path)
			}
		}
		if err := checkType(e.Type); err != nil {
			return errInvalidf("%s: %v", e.Path, err)
		}
		if e.Size < 0 || e.Size > chunk.MaxContent {
			return errInvalidf("%s: a size of %d bytes; at most %d", e.Path, e.Size, chunk.MaxContent)
		}
	}
	return nil
}

// Marshal encodes m after Check.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	b := m.encode()
	if len(b) > MaxManifest {
		return nil, errInvalidf("the site's manifest would be %d bytes; at most %d (fewer files, or shorter paths)", len(b), MaxManifest)
	}
	return b, nil
}

// encode is m's encoding, unchecked.
func (m *Manifest) encode() []byte {
	b := append([]byte(nil), manifestMagic...)
	b = binary.AppendUvarint(b, uint64(len(m.Entries)))
	for _, e := range m.Entries {
		b = binary.AppendUvarint(b, uint64(len(e.Path)))
		b = append(b, e.Path...)
		b = append(b, e.ID[:]...)
		b = binary.AppendUvarint(b, uint64(len(e.Type)))
		b = append(b, e.Type...)
		b = binary.AppendUvarint(b, uint64(e.Size))
	}
	return b
}

// Unmarshal decodes an encoded manifest into m and checks it (Check). It
// reads no length it has not bounded first, so a lying manifest costs
// nothing. The error is a *node.Error with code CodeInvalid.
func (m *Manifest) Unmarshal(b []byte) error {
	if len(b) > MaxManifest {
		return errInvalidf("a site manifest of %d bytes; at most %d", len(b), MaxManifest)
	}
	if !bytes.HasPrefix(b, []byte(manifestMagic)) {
		return errInvalidf("not a site manifest")
	}
	r := b[len(manifestMagic):]
	bad := func(what string) error { return errInvalidf("the site manifest is damaged: %s", what) }
	uv := func(what string, max uint64) (uint64, error) {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			return 0, bad(what + " cut short")
		}
		if v > max {
			return 0, bad(fmt.Sprintf("%s %d, at most %d", what, v, max))
		}
		r = r[n:]
		return v, nil
	}
	take := func(what string, n uint64) ([]byte, error) {
		if uint64(len(r)) < n {
			return nil, bad(what + " cut short")
		}
		v := r[:n]
		r = r[n:]
		return v, nil
	}
	count, err := uv("file count", MaxFiles)
	if err != nil {
		return err
	}
	// Each entry takes at least 35 bytes: no count the bytes cannot hold
	// is believed before allocating.
	if count > uint64(len(r))/(chunk.HashLen+3) {
		return bad(fmt.Sprintf("%d files in %d bytes", count, len(r)))
	}
	out := Manifest{Entries: make([]Entry, count)}
	for i := range out.Entries {
		e := &out.Entries[i]
		n, err := uv("path length", MaxPath)
		if err != nil {
			return err
		}
		p, err := take("path", n)
		if err != nil {
			return err
		}
		e.Path = string(p)
		id, err := take("content id", chunk.HashLen)
		if err != nil {
			return err
		}
		copy(e.ID[:], id)
		if n, err = uv("type length", chunk.MaxType); err != nil {
			return err
		}
		t, err := take("type", n)
		if err != nil {
			return err
		}
		e.Type = string(t)
		size, err := uv("size", uint64(chunk.MaxContent))
		if err != nil {
			return err
		}
		e.Size = int64(size)
	}
	if len(r) != 0 {
		return bad(fmt.Sprintf("%d bytes after the last file", len(r)))
	}
	if err := out.Check(); err != nil {
		return err
	}
	*m = out
	return nil
}

// CheckPath reports why p is not a path a site's file may have, if it is
// not: a site's paths are relative, slash-separated, of segments that are
// neither empty nor "." nor "..", with no backslash, no control
// character, no percent-encoded slash, backslash, dot or NUL (which a
// server along the way might decode into one), at most MaxPath bytes of
// UTF-8, and not under ReservedPrefix. Publish and Unmarshal both apply
// it; the error is a *node.Error with code CodeInvalid.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errInvalidf("a file with an empty path")
	case len(p) > MaxPath:
		return errInvalidf("a path of %d bytes; at most %d", len(p), MaxPath)
	case !utf8.ValidString(p):
		return errInvalidf("the path %q is not UTF-8", p)
	case p[0] == '/':
		return errInvalidf("the path %q is absolute; a site's paths are relative to its root", p)
	case strings.HasPrefix(p, ReservedPrefix) || p == strings.TrimSuffix(ReservedPrefix, "/"):
		return errInvalidf("the path %q is under %s, which the site's origin keeps for DDT itself", p, ReservedPrefix)
	}
	for i, r := range p {
		switch {
		case r == '\\':
			return errInvalidf("the path %q has a backslash; separate folders with /", p)
		case r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0:
			return errInvalidf("the path %q has a control character (at byte %d)", p, i)
		case r == '%' && encodedSeparator(p[i:]):
			return errInvalidf("the path %q has a percent-encoded %s", p, p[i:i+3])
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return errInvalidf("the path %q has an empty folder name (// or a trailing /)", p)
		case ".", "..":
			return errInvalidf("the path %q has a %q segment; a site may not point outside itself", p, seg)
		}
	}
	return nil
}

// encodedSeparator reports whether s begins with the percent-encoding of
// a slash, a backslash, a dot or NUL.
func encodedSeparator(s string) bool {
	if len(s) < 3 {
		return false
	}
	switch strings.ToLower(s[1:3]) {
	case "2f", "5c", "2e", "00":
		return true
	}
	return false
}

// checkType reports what makes t unfit to be sent as a Content-Type: too
// long, not a media type, or a character a header may not carry.
func checkType(t string) error {
	if t == "" {
		return nil
	}
	if len(t) > chunk.MaxType {
		return fmt.Errorf("a media type of %d bytes; at most %d", len(t), chunk.MaxType)
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7e {
			return fmt.Errorf("the media type %q has a character a header may not carry", t)
		}
	}
	if _, _, err := mime.ParseMediaType(t); err != nil || !strings.Contains(t, "/") {
		return fmt.Errorf("%q is not a media type", t)
	}
	return nil
}

// types are the media types of the extensions a website uses most, where
// mime.TypeByExtension has none (in a browser it knows only a handful) or
// another (it reads the system's tables, which disagree: .otf as a
// formula template, .webm as audio).
var types = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".mp4":         "video/mp4",
	".m4a":         "audio/mp4",
	".webm":        "video/webm",
	".ogg":         "audio/ogg",
	".ogv":         "video/ogg",
	".mp3":         "audio/mpeg",
	".wav":         "audio/wav",
	".txt":         "text/plain; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".xml":         "text/xml; charset=utf-8",
}

// TypeOf is the media type of a file at path p by its extension:
// the table above, else mime.TypeByExtension, else "" (unknown).
func TypeOf(p string) string {
	ext := strings.ToLower(path.Ext(p))
	if t, ok := types[ext]; ok {
		return t
	}
	if ext == "" {
		return ""
	}
	return mime.TypeByExtension(ext)
}

// invalidf is a CodeInvalid error.
func errInvalidf(format string, args ...any) error {
	return node.Errorf(CodeInvalid, nil, format, args...)
}
