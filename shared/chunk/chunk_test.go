package chunk

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	for _, size := range []int64{0, 1, MaxSize - 1, MaxSize, MaxSize + 1, 3*MaxSize + 5} {
		m := Manifest{Name: "holiday.mp4", Type: "video/mp4", Size: size, ChunkSize: MaxSize}
		for i := 0; i < Count(size, MaxSize); i++ {
			m.Chunks = append(m.Chunks, SumGo([]byte{byte(i)}))
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var got Manifest
		if err := got.Unmarshal(b); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if got.Size != size || got.Name != m.Name || got.Type != m.Type || len(got.Chunks) != len(m.Chunks) {
			t.Fatalf("size %d: got %+v", size, got)
		}
		var sum int64
		for i := range got.Chunks {
			sum += int64(got.ChunkLen(i))
		}
		if sum != size {
			t.Errorf("size %d: chunk lengths add to %d", size, sum)
		}
	}
}

// A manifest that lists more (or fewer) chunks than its size allows, or
// lies about its lengths, is refused.
func TestManifestLies(t *testing.T) {
	m := Manifest{Name: "a", Size: 2*MaxSize + 1, ChunkSize: MaxSize, Chunks: make([]Hash, 3)}
	good, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	more := append(bytes.Clone(good), make([]byte, HashLen)...)
	less := good[:len(good)-HashLen]
	m.Chunks = make([]Hash, 4)
	if _, err := m.Marshal(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Marshal of 4 chunks for 8 MiB + 1: %v", err)
	}
	for name, b := range map[string][]byte{
		"extra hash":   more,
		"missing hash": less,
		"not manifest": []byte("hello"),
		"huge name":    append([]byte(manifestMagic), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"truncated":    good[:len(manifestMagic)+1],
	} {
		var got Manifest
		if err := got.Unmarshal(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestVerify(t *testing.T) {
	data := []byte(strings.Repeat("ddt", 1000))
	h, _ := Sum(data)
	if err := Verify(h, data, len(data)); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[7] ^= 1
	if err := Verify(h, bad, -1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: %v", err)
	}
	if err := Verify(h, data, len(data)+1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("wrong size: %v", err)
	}
	if got, err := Parse(h.String()); err != nil || got != h {
		t.Errorf("Parse(String) = %v, %v", got, err)
	}
	if _, err := Parse("xyz"); !errors.Is(err, ErrBadHash) {
		t.Errorf("Parse(xyz): %v", err)
	}
}

// Sum agrees with Go's SHA-256 on every size, WebCrypto's path included
// (under js/wasm in Chromium).
func TestSumAgrees(t *testing.T) {
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, MaxSize} {
		b := bytes.Repeat([]byte{0x5a}, n)
		got, err := Sum(b)
		if err != nil {
			t.Fatal(err)
		}
		if got != SumGo(b) {
			t.Errorf("%d bytes: Sum %s, SumGo %s", n, got.Short(), SumGo(b).Short())
		}
	}
}

func FuzzManifest(f *testing.F) {
	m := Manifest{Name: "x.txt", Type: "text/plain", Size: 10, ChunkSize: MaxSize, Chunks: make([]Hash, 1)}
	b, _ := m.Marshal()
	f.Add(b)
	f.Add([]byte(manifestMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Manifest
		if err := m.Unmarshal(b); err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		var m2 Manifest
		if err := m2.Unmarshal(again); err != nil || m2.Size != m.Size || len(m2.Chunks) != len(m.Chunks) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
