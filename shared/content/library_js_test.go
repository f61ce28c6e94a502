//go:build js && wasm

package content

import (
	"context"
	"fmt"
	"syscall/js"
	"testing"

	"github.com/hack-pad/go-indexeddb/idb"

	"ddt/shared/store"
)

// TestLibraryRestartIndexedDB is TestLibraryRestart over the stores a tab
// keeps: chunks and records in IndexedDB, closed and reopened between the
// library's lives. It needs a browser (wasmbrowsertest).
func TestLibraryRestartIndexedDB(t *testing.T) {
	if js.Global().Get("indexedDB").IsUndefined() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	name := fmt.Sprintf("ddt-librarytest-%s", t.Name())
	t.Cleanup(func() {
		for _, db := range []string{name, name + "-chunks"} {
			if req, err := idb.Global().DeleteDatabase(db); err == nil {
				req.Await(context.Background())
			}
		}
	})
	chunks := &reopening{open: func() (store.Chunks, error) { return store.OpenIndexedDBChunks(name) }}
	meta := &reopeningMeta{open: func() (store.Store, error) { return store.OpenIndexedDB(name) }}
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
