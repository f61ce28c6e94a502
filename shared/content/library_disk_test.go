//go:build !js

package content

import (
	"path/filepath"
	"testing"

	"ddt/shared/store"
)

// TestLibraryRestartDisk is TestLibraryRestart over the stores a native
// node keeps: chunk files and a bbolt meta file, closed and reopened
// between the library's lives.
func TestLibraryRestartDisk(t *testing.T) {
	dir := t.TempDir()
	chunks := &reopening{open: func() (store.Chunks, error) { return store.OpenDiskChunks(filepath.Join(dir, "chunks")) }}
	meta := &reopeningMeta{open: func() (store.Store, error) { return store.OpenBolt(filepath.Join(dir, "meta.db")) }}
	if err := chunks.reopen(); err != nil {
		t.Fatal(err)
	}
	if err := meta.reopen(); err != nil {
		t.Fatal(err)
	}
	env := newEnvOn(t, chunks, meta, 4*kib)
	env.reopen = func() {
		if err := chunks.reopen(); err != nil {
			t.Fatal(err)
		}
		if err := meta.reopen(); err != nil {
			t.Fatal(err)
		}
	}
	testLibraryRestart(t, env)
	chunks.Close()
	meta.Close()
}

// reopening is a store.Chunks that a test can close and open again under
// the same value, as a process restart would.
type reopening struct {
	store.Chunks
	open func() (store.Chunks, error)
}

func (r *reopening) reopen() error {
	if r.Chunks != nil {
		r.Chunks.Close()
	}
	c, err := r.open()
	r.Chunks = c
	return err
}

type reopeningMeta struct {
	store.Store
	open func() (store.Store, error)
}

func (r *reopeningMeta) reopen() error {
	if r.Store != nil {
		r.Store.Close()
	}
	s, err := r.open()
	r.Store = s
	return err
}
