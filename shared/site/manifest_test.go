package site

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"ddt/shared/chunk"
	"ddt/shared/node"
)

func testManifest() *Manifest {
	return &Manifest{Entries: []Entry{
		{Path: "css/site.css", ID: chunk.SumGo([]byte("css")), Type: "text/css; charset=utf-8", Size: 3},
		{Path: "docs/index.html", ID: chunk.SumGo([]byte("docs")), Type: "", Size: 0},
		{Path: "index.html", ID: chunk.SumGo([]byte("index")), Type: "text/html; charset=utf-8", Size: 5},
		{Path: "media/clip 1.webm", ID: chunk.SumGo([]byte("clip")), Type: "video/webm", Size: 1 << 30},
	}}
}

func TestManifestRoundTrip(t *testing.T) {
	m := testManifest()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var got Manifest
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Fatalf("round trip: %+v, want %+v", got, m)
	}
	if e, ok := got.Find("docs/index.html"); !ok || e.ID != m.Entries[1].ID {
		t.Fatalf("Find docs/index.html: %+v %v", e, ok)
	}
	if _, ok := got.Find("docs"); ok {
		t.Fatal("Find found a folder")
	}
}

// Every path that could lead a reader outside the site, confuse a server
// along the way, or take the DDT frames' place is refused, by Publish's
// check and by the decoder alike; ordinary paths pass.
func TestCheckPath(t *testing.T) {
	for _, p := range []string{"index.html", "a/b/c.txt", "ünïcode/файл.html", "media/clip 1.webm", ".well-known/x", "a..b", "...", "100%.html", "%41.txt", "ddt/x", ".ddtx/a"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"", "/etc/passwd", "../secret", "a/../../b", "a/./b", ".", "..", "a//b", "a/", "a\\b", "..\\x",
		"a%2fb", "a%2F..", "%2e%2e/x", "a%2E", "a%5cb", "a%00", "a\x00b", "a\nb", "a\x7fb", "a\u0085b", ".ddt/connect", ".ddt",
		strings.Repeat("a", MaxPath+1), "bad\xffutf8"} {
		err := CheckPath(p)
		if err == nil {
			t.Errorf("CheckPath(%q) passed", p)
			continue
		}
		if node.Explain(err).Code != CodeInvalid || err.Error() == "" {
			t.Errorf("CheckPath(%q) = %v (code %s), want a sentence with code %s", p, err, node.Explain(err).Code, CodeInvalid)
		}
		m := Manifest{Entries: []Entry{{Path: p, ID: chunk.SumGo([]byte(p))}}}
		if raw := encodeUnchecked(&m); (&Manifest{}).Unmarshal(raw) == nil {
			t.Errorf("a manifest with the path %q decodes", p)
		}
	}
}

// encodeUnchecked is Marshal without Check: what a hostile publisher
// could write.
func encodeUnchecked(m *Manifest) []byte { return m.encode() }

// Manifests a hostile publisher could write are refused with a sentence:
// duplicates, disorder, header-breaking types, lies about counts and
// lengths, trailing bytes, oversize.
func TestManifestRefused(t *testing.T) {
	id := chunk.SumGo([]byte("x"))
	good := encodeUnchecked(testManifest())
	cases := map[string][]byte{
		"duplicate":      encodeUnchecked(&Manifest{Entries: []Entry{{Path: "a", ID: id}, {Path: "a", ID: id}}}),
		"unsorted":       encodeUnchecked(&Manifest{Entries: []Entry{{Path: "b", ID: id}, {Path: "a", ID: id}}}),
		"header split":   encodeUnchecked(&Manifest{Entries: []Entry{{Path: "a", ID: id, Type: "text/html\r\nSet-Cookie: x=1"}}}),
		"not a type":     encodeUnchecked(&Manifest{Entries: []Entry{{Path: "a", ID: id, Type: "html"}}}),
		"negative size":  encodeUnchecked(&Manifest{Entries: []Entry{{Path: "a", ID: id, Size: -1}}}),
		"huge count":     append([]byte(manifestMagic), binary.AppendUvarint(nil, 1<<40)...),
		"count > bytes":  append([]byte(manifestMagic), binary.AppendUvarint(nil, MaxFiles)...),
		"trailing bytes": append(bytes.Clone(good), 0),
		"truncated":      good[:len(good)-1],
		"no magic":       good[1:],
		"oversize":       append([]byte(manifestMagic), make([]byte, MaxManifest)...),
		"empty":          nil,
	}
	for name, raw := range cases {
		var m Manifest
		err := m.Unmarshal(raw)
		if err == nil || node.Explain(err).Code != CodeInvalid {
			t.Errorf("%s: Unmarshal = %v, want a CodeInvalid refusal", name, err)
		}
	}
	tooMany := &Manifest{Entries: make([]Entry, MaxFiles+1)}
	if _, err := tooMany.Marshal(); err == nil {
		t.Error("Marshal took more than MaxFiles files")
	}
}

func TestTypeOf(t *testing.T) {
	for p, want := range map[string]string{
		"index.html": "text/html; charset=utf-8", "A/B.CSS": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
		"m.mjs": "text/javascript; charset=utf-8", "f.woff2": "font/woff2", "f.otf": "font/otf", "v.webm": "video/webm",
		"v.mp4": "video/mp4", "i.svg": "image/svg+xml", "w.wasm": "application/wasm", "README": "",
	} {
		if got := TypeOf(p); got != want {
			t.Errorf("TypeOf(%q) = %q, want %q", p, got, want)
		}
	}
}

// FuzzManifest: whatever the bytes, Unmarshal never panics, and what it
// accepts passes Check, encodes, and decodes to the same manifest.
func FuzzManifest(f *testing.F) {
	good, _ := testManifest().Marshal()
	f.Add(good)
	f.Add([]byte(manifestMagic))
	f.Add(append([]byte(manifestMagic), 0))
	f.Add(encodeUnchecked(&Manifest{Entries: []Entry{{Path: "../x"}}}))
	f.Add(encodeUnchecked(&Manifest{Entries: []Entry{{Path: "a%2fb"}}}))
	f.Add(encodeUnchecked(&Manifest{Entries: []Entry{{Path: "b"}, {Path: "a"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if m.Unmarshal(b) != nil {
			return
		}
		if err := m.Check(); err != nil {
			t.Fatalf("decoded a manifest Check refuses: %v", err)
		}
		for _, e := range m.Entries {
			if CheckPath(e.Path) != nil {
				t.Fatalf("decoded the path %q", e.Path)
			}
		}
		raw, err := m.Marshal()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var again Manifest
		if err := again.Unmarshal(raw); err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string][2]string{
		"ddt://example.ddt/a/b":   {"example.ddt", "a/b"},
		"DDT://Example.DDT/a/b":   {"example.ddt", "a/b"},
		"example.ddt/a/b":         {"example.ddt", "a/b"},
		"example.ddt":             {"example.ddt", ""},
		"example.ddt/":            {"example.ddt", ""},
		" example.ddt/docs/ ":     {"example.ddt", "docs/"},
		"example":                 {"example.ddt", ""},
		"example.ddt/a%20b?x=1#y": {"example.ddt", "a%20b?x=1#y"},
	} {
		d, p, err := ParseAddress(in)
		if err != nil || d != want[0] || p != want[1] {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", in, d, p, err, want[0], want[1])
		}
	}
	for _, in := range []string{"", "ddt://", "/a/b", "exa mple.ddt/x", "example.com/x", "http://example.ddt/", "-x.ddt"} {
		if d, p, err := ParseAddress(in); err == nil || node.Explain(err).Code != CodeInvalid {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want a CodeInvalid error", in, d, p, err)
		}
	}
}

func TestParseRange(t *testing.T) {
	type r struct {
		start, end int64
		partial    bool
	}
	for _, tc := range []struct {
		h    string
		size int64
		want r
	}{
		{"", 100, r{0, 99, false}},
		{"bytes=0-9", 100, r{0, 9, true}},
		{"bytes=90-", 100, r{90, 99, true}},
		{"bytes=-10", 100, r{90, 99, true}},
		{"bytes=-500", 100, r{0, 99, true}},
		{"bytes=50-5000", 100, r{50, 99, true}},
		{"bytes=0-0", 1, r{0, 0, true}},
		{"bytes=0-1,5-6", 100, r{0, 99, false}}, // several ranges: the whole file
		{"items=0-1", 100, r{0, 99, false}},
		{"bytes=0-", 0, r{0, -1, false}}, // an empty file: the range is ignored
	} {
		s, e, p, err := parseRange(tc.h, tc.size)
		if err != nil || (r{s, e, p}) != tc.want {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v, %v; want %+v", tc.h, tc.size, s, e, p, err, tc.want)
		}
	}
	for _, h := range []string{"bytes=100-", "bytes=200-300", "bytes=-0", "bytes=5-2", "bytes=x-", "bytes=+1-2", "bytes=1", "bytes=--1"} {
		_, _, _, err := parseRange(h, 100)
		var re *RangeError
		if node.Explain(err).Code != CodeBadRange || !errors.As(err, &re) || re.Size != 100 {
			t.Errorf("parseRange(%q, 100) = %v; want CodeBadRange with the size", h, err)
		}
	}
}
