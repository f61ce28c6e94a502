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
	testLibraryRestartOver(t,
		func() (store.Chunks, error) { return store.OpenIndexedDBChunks(name) },
		func() (store.Store, error) { return store.OpenIndexedDB(name) })
}
