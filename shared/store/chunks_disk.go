//go:build !js

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"ddt/shared/chunk"
)

var _ Chunks = (*DiskChunks)(nil)

// diskTempSuffix ends the name of a chunk being written. Such files are
// never listed or read, and OpenDiskChunks removes those a crash left.
const diskTempSuffix = ".tmp"

// DiskChunks is a Chunks kept as files, for native nodes and relays: chunk
// h is the file dir/<first 2 hex digits>/<64 hex digits>. A chunk is
// written to a temporary file beside it, synced, and renamed into place,
// so a crash never leaves a partial chunk under its name.
type DiskChunks struct {
	dir    string
	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool
}

// OpenDiskChunks opens (creating it if needed) the chunk directory dir and
// removes the temporary files of writes a crash interrupted.
func OpenDiskChunks(dir string) (*DiskChunks, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open chunk directory %s: %w", dir, err)
	}
	s := &DiskChunks{dir: dir}
	subs, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("store: open chunk directory %s: %w", dir, err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || !isHex(sub.Name(), 2) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, sub.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: open chunk directory %s: %w", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f.Name(), diskTempSuffix) {
				os.Remove(filepath.Join(dir, sub.Name(), f.Name())) // best effort; it is never read
			}
		}
	}
	return s, nil
}

// path is where chunk h lives.
func (s *DiskChunks) path(h chunk.Hash) string {
	x := h.String()
	return filepath.Join(s.dir, x[:2], x)
}

// Put implements Chunks.
func (s *DiskChunks) Put(h chunk.Hash, data []byte) error {
	if err := chunk.Verify(h, data, -1); err != nil {
		return fmt.Errorf("store: put chunk %s: %w", h.Short(), err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	path := s.path(h)
	if _, err := os.Stat(path); err == nil {
		return nil // held already, and a file under its name is whole
	}
	if err := s.write(path, data); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("%w: the disk under %s is full (chunk %s, %d bytes): %v", ErrQuota, s.dir, h.Short(), len(data), err)
		}
		return fmt.Errorf("store: put chunk %s: %w", h.Short(), err)
	}
	return nil
}

// write puts data at path through a synced temporary file and a rename,
// then syncs the directory so the rename itself survives a crash.
func (s *DiskChunks) write(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*"+diskTempSuffix)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // the chunk is in place; only its durability is weaker
	}
	d.Sync()
	d.Close()
	return nil
}

// ReadAt implements Chunks.
func (s *DiskChunks) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("store: read chunk %s at negative offset %d", h.Short(), off)
	}
	f, err := os.Open(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: read chunk %s: %w", h.Short(), err)
	}
	defer f.Close()
	return f.ReadAt(p, off)
}

// Size implements Chunks.
func (s *DiskChunks) Size(h chunk.Hash) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	fi, err := os.Stat(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, fmt.Errorf("store: size of chunk %s: %w", h.Short(), err)
	}
	return int(fi.Size()), nil
}

// Delete implements Chunks.
func (s *DiskChunks) Delete(h chunk.Hash) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: delete chunk %s: %w", h.Short(), err)
	}
	return nil
}

// List implements Chunks. Files whose names are not chunk names (temporary
// files, anything else put there) are skipped.
func (s *DiskChunks) List() (map[chunk.Hash]int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	out := make(map[chunk.Hash]int)
	subs, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("store: list chunks in %s: %w", s.dir, err)
	}
	for _, sub := range subs {
		if !sub.IsDir() || !isHex(sub.Name(), 2) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.dir, sub.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: list chunks in %s: %w", s.dir, err)
		}
		for _, f := range files {
			name := f.Name()
			if !f.Type().IsRegular() || !strings.HasPrefix(name, sub.Name()) {
				continue
			}
			h, err := chunk.Parse(name)
			if err != nil || h.String() != name {
				continue // not a chunk (or not in our lower-case spelling)
			}
			fi, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted while listing
			}
			if err != nil {
				return nil, fmt.Errorf("store: list chunks in %s: %w", s.dir, err)
			}
			out[h] = int(fi.Size())
		}
	}
	return out, nil
}

// Close implements Chunks; the files stay.
func (s *DiskChunks) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// isHex reports whether s is n lower-case hex digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
