package content

import (
	"context"
	"errors"
	"fmt"
	"io"

	"ddt/shared/chunk"
	"ddt/shared/node"
)

// Reader reads content held here: an io.ReadSeekCloser (and io.ReaderAt)
// over its chunks, which it holds (they are not evicted) until Close.
type Reader struct {
	s       *Service
	m       *chunk.Manifest
	off     int64
	release func()
}

// Open returns a Reader of content id, whose every chunk must be held
// here (Fetch first): CodeNotFound otherwise.
func (s *Service) Open(ctx context.Context, id chunk.Hash) (*Reader, error) {
	if s.lib == nil {
		return nil, node.Errorf(node.CodeNotAdmitted, nil, "the content service is not attached to a node")
	}
	release := s.lib.Hold(id)
	if !s.lib.Has(id) {
		release()
		return nil, node.Errorf(CodeNotFound, nil, "content %s is not held here", id)
	}
	raw, err := s.readLocal(id)
	var m chunk.Manifest
	if err == nil {
		err = m.Unmarshal(raw)
	}
	if err != nil {
		release()
		return nil, boundary(ctx, err)
	}
	hold := s.lib.Hold(m.Chunks...)
	for i, h := range m.Chunks {
		if !s.lib.Has(h) {
			hold()
			release()
			return nil, node.Errorf(CodeNotFound, nil, "chunk %d of content %s is not held here", i, id)
		}
	}
	return &Reader{s: s, m: &m, release: func() { hold(); release() }}, nil
}

// Manifest is the content's manifest.
func (r *Reader) Manifest() *chunk.Manifest { return r.m }

// Size is the content's length.
func (r *Reader) Size() int64 { return r.m.Size }

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("content: negative offset")
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.m.Size {
			return n, io.EOF
		}
		i := int(pos / int64(r.m.ChunkSize))
		in := pos - r.m.Offset(i)
		k := min(len(p)-n, r.m.ChunkLen(i)-int(in))
		got, err := r.s.lib.ReadAt(r.m.Chunks[i], p[n:n+k], in)
		n += got
		if got < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("content: read chunk %d: %w", i, err)
		}
	}
	return n, nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.off >= r.m.Size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.m.Size-r.off)]
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.m.Size + offset
	default:
		return 0, errors.New("content: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("content: seek before the start")
	}
	r.off = abs
	return abs, nil
}

// Close releases the content's chunks.
func (r *Reader) Close() error {
	r.release()
	return nil
}
