package store

import (
	"fmt"
	"io"
	"sync"

	"ddt/shared/chunk"
)

var _ Chunks = (*MemoryChunks)(nil)

// MemoryChunks is a Chunks held in a map, for tests and nodes that keep
// nothing across restarts. The zero value is not usable; call
// NewMemoryChunks.
type MemoryChunks struct {
	mu sync.RWMutex
	m  map[chunk.Hash][]byte // nil once closed
}

// NewMemoryChunks returns an empty MemoryChunks.
func NewMemoryChunks() *MemoryChunks {
	return &MemoryChunks{m: make(map[chunk.Hash][]byte)}
}

// Put implements Chunks. It verifies before it takes the lock, so a slow
// hash never blocks readers.
func (s *MemoryChunks) Put(h chunk.Hash, data []byte) error {
	if err := chunk.Verify(h, data, -1); err != nil {
		return fmt.Errorf("store: put chunk %s: %w", h.Short(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return ErrClosed
	}
	if _, ok := s.m[h]; !ok {
		s.m[h] = append([]byte{}, data...)
	}
	return nil
}

// ReadAt implements Chunks.
func (s *MemoryChunks) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return 0, ErrClosed
	}
	b, ok := s.m[h]
	if !ok {
		return 0, ErrNotFound
	}
	return readAt(b, p, off)
}

// readAt is io.ReaderAt over b.
func readAt(b, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: read at negative offset %d", off)
	}
	if off >= int64(len(b)) {
		if len(p) == 0 && off == int64(len(b)) {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size implements Chunks.
func (s *MemoryChunks) Size(h chunk.Hash) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return 0, ErrClosed
	}
	b, ok := s.m[h]
	if !ok {
		return 0, ErrNotFound
	}
	return len(b), nil
}

// Delete implements Chunks.
func (s *MemoryChunks) Delete(h chunk.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return ErrClosed
	}
	delete(s.m, h)
	return nil
}

// List implements Chunks.
func (s *MemoryChunks) List() (map[chunk.Hash]int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return nil, ErrClosed
	}
	out := make(map[chunk.Hash]int, len(s.m))
	for h, b := range s.m {
		out[h] = len(b)
	}
	return out, nil
}

// Close implements Chunks; the chunks are dropped.
func (s *MemoryChunks) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = nil
	return nil
}
