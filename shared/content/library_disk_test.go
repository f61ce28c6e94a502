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
