package chunk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// Manifest limits.
const (
	MaxName = 255 // bytes of a manifest's name (a file name)
	MaxType = 127 // bytes of its media type
	// MaxChunks is the most chunks one manifest lists: its encoding must
	// fit in one chunk (≈ 512 GiB of content).
	MaxChunks = (MaxSize - 512) / HashLen
	// MaxContent is the largest payload a manifest can describe.
	MaxContent = int64(MaxChunks) * MaxSize
)

// manifestMagic starts every encoded manifest (and versions it).
const manifestMagic = "ddt-manifest/1\n"

// Manifest describes one payload: its name and media type (both
// unverified labels the publisher chose), its size, and its chunks in
// order. Every chunk but the last is ChunkSize bytes; there are exactly
// as many as Size needs (none for an empty payload).
//
// Encoding (Marshal), integers as uvarints:
//
//	"ddt-manifest/1\n" | name length | name | type length | type |
//	size | chunk size | chunk count | count × Hash
type Manifest struct {
	Name      string
	Type      string
	Size      int64
	ChunkSize int // MaxSize unless the publisher chose smaller chunks
	Chunks    []Hash
}

// Count is how many chunks a payload of size bytes takes at chunkSize.
func Count(size int64, chunkSize int) int {
	if size <= 0 || chunkSize <= 0 {
		return 0
	}
	return int((size + int64(chunkSize) - 1) / int64(chunkSize))
}

// ChunkLen is the length of chunk i.
func (m *Manifest) ChunkLen(i int) int {
	if i < len(m.Chunks)-1 {
		return m.ChunkSize
	}
	return int(m.Size - int64(m.ChunkSize)*int64(len(m.Chunks)-1))
}

// Offset is where chunk i starts in the payload.
func (m *Manifest) Offset(i int) int64 { return int64(i) * int64(m.ChunkSize) }

// Check reports what makes m impossible, if anything: a name or type too
// long or not UTF-8, a size out of range, a chunk size over MaxSize, or a
// chunk list longer or shorter than Size needs.
func (m *Manifest) Check() error {
	switch {
	case len(m.Name) > MaxName:
		return fmt.Errorf("%w: name of %d bytes, at most %d", ErrCorrupt, len(m.Name), MaxName)
	case !utf8.ValidString(m.Name):
		return fmt.Errorf("%w: name is not UTF-8", ErrCorrupt)
	case len(m.Type) > MaxType:
		return fmt.Errorf("%w: type of %d bytes, at most %d", ErrCorrupt, len(m.Type), MaxType)
	case !utf8.ValidString(m.Type):
		return fmt.Errorf("%w: type is not UTF-8", ErrCorrupt)
	case m.Size < 0 || m.Size > MaxContent:
		return fmt.Errorf("%w: size %d, at most %d", ErrCorrupt, m.Size, MaxContent)
	case m.ChunkSize <= 0 || m.ChunkSize > MaxSize:
		return fmt.Errorf("%w: chunk size %d, between 1 and %d", ErrCorrupt, m.ChunkSize, MaxSize)
	}
	if want := Count(m.Size, m.ChunkSize); len(m.Chunks) != want {
		return fmt.Errorf("%w: %d bytes in chunks of %d need %d chunks, the manifest lists %d", ErrCorrupt, m.Size, m.ChunkSize, want, len(m.Chunks))
	}
	return nil
}

// Marshal encodes m after Check.
func (m *Manifest) Marshal() ([]byte, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(manifestMagic)+len(m.Name)+len(m.Type)+32+len(m.Chunks)*HashLen)
	b = append(b, manifestMagic...)
	b = binary.AppendUvarint(b, uint64(len(m.Name)))
	b = append(b, m.Name...)
	b = binary.AppendUvarint(b, uint64(len(m.Type)))
	b = append(b, m.Type...)
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = binary.AppendUvarint(b, uint64(m.ChunkSize))
	b = binary.AppendUvarint(b, uint64(len(m.Chunks)))
	for _, h := range m.Chunks {
		b = append(b, h[:]...)
	}
	return b, nil
}

// ID is the content id of m: the Hash of its encoding.
func (m *Manifest) ID() (Hash, error) {
	b, err := m.Marshal()
	if err != nil {
		return Hash{}, err
	}
	return SumGo(b), nil
}

// Unmarshal decodes an encoded manifest into m and checks it (Check). It
// reads no length it has not bounded first, so a lying manifest costs
// nothing.
func (m *Manifest) Unmarshal(b []byte) error {
	if len(b) > MaxSize {
		return fmt.Errorf("%w: manifest of %d bytes, at most %d", ErrTooLarge, len(b), MaxSize)
	}
	if !bytes.HasPrefix(b, []byte(manifestMagic)) {
		return fmt.Errorf("%w: not a manifest", ErrCorrupt)
	}
	r := b[len(manifestMagic):]
	bad := func(what string) error { return fmt.Errorf("%w: manifest: %s", ErrCorrupt, what) }
	uv := func(what string, max uint64) (uint64, error) {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			return 0, bad(what + " truncated")
		}
		if v > max {
			return 0, bad(fmt.Sprintf("%s %d, at most %d", what, v, max))
		}
		r = r[n:]
		return v, nil
	}
	str := func(what string, max int) (string, error) {
		n, err := uv(what+" length", uint64(max))
		if err != nil {
			return "", err
		}
		if uint64(len(r)) < n {
			return "", bad(what + " truncated")
		}
		s := string(r[:n])
		r = r[n:]
		return s, nil
	}
	var out Manifest
	var err error
	if out.Name, err = str("name", MaxName); err != nil {
		return err
	}
	if out.Type, err = str("type", MaxType); err != nil {
		return err
	}
	size, err := uv("size", uint64(MaxContent))
	if err != nil {
		return err
	}
	cs, err := uv("chunk size", MaxSize)
	if err != nil {
		return err
	}
	count, err := uv("chunk count", MaxChunks)
	if err != nil {
		return err
	}
	out.Size, out.ChunkSize = int64(size), int(cs)
	if want := Count(out.Size, out.ChunkSize); int(count) != want {
		return bad(fmt.Sprintf("%d bytes in chunks of %d need %d chunks, it lists %d", size, cs, want, count))
	}
	if uint64(len(r)) != count*HashLen {
		return bad(fmt.Sprintf("%d bytes of hashes for %d chunks", len(r), count))
	}
	out.Chunks = make([]Hash, count)
	for i := range out.Chunks {
		copy(out.Chunks[i][:], r[i*HashLen:])
	}
	if err := out.Check(); err != nil {
		return err
	}
	*m = out
	return nil
}
