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
	testLibraryRestartOver(t,
		func() (store.Chunks, error) { return store.OpenDiskChunks(filepath.Join(dir, "chunks")) },
		func() (store.Store, error) { return store.OpenBolt(filepath.Join(dir, "meta.db")) })
}
