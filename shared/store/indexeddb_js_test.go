//go:build js && wasm

package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall/js"
	"testing"

	"github.com/hack-pad/go-indexeddb/idb"

	"ddt/shared/store"
	"ddt/shared/store/storetest"
)

func haveIndexedDB() bool { return !js.Global().Get("indexedDB").IsUndefined() }

var dbSeq atomic.Int64

// freshIndexedDB picks a database name no other test uses and deletes the
// database when the test ends.
func freshIndexedDB(t *testing.T) string {
	name := fmt.Sprintf("ddt-storetest-%d-%s", dbSeq.Add(1), t.Name())
	t.Cleanup(func() {
		req, err := idb.Global().DeleteDatabase(name)
		if err == nil {
			err = req.Await(context.Background())
		}
		if err != nil {
			t.Errorf("delete database %q: %v", name, err)
		}
	})
	return name
}

func TestIndexedDB(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenIndexedDB(freshIndexedDB(t))
		if err != nil {
			t.Fatalf("OpenIndexedDB: %v", err)
		}
		return s
	})
}

func TestIndexedDBPersistent(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	storetest.RunPersistent(t, func(t *testing.T) func() (store.Store, error) {
		name := freshIndexedDB(t)
		return func() (store.Store, error) { return store.OpenIndexedDB(name) }
	})
}

// TestIndexedDBUnavailable checks that a runtime without IndexedDB (node)
// gets an error, not idb's panic.
func TestIndexedDBUnavailable(t *testing.T) {
	if haveIndexedDB() {
		t.Skip("this runtime has IndexedDB")
	}
	s, err := store.OpenIndexedDB("ddt-unavailable")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("OpenIndexedDB = %v, %v; want ErrUnavailable", s, err)
	}
}

// TestIndexedDBFromCallback shows the supported way to use the store from
// a JavaScript callback: start a goroutine there, never block in it.
func TestIndexedDBFromCallback(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	s, err := store.OpenIndexedDB(freshIndexedDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	cb := js.FuncOf(func(js.Value, []js.Value) any {
		go func() { done <- s.Put("from-callback", []byte("ok")) }()
		return nil
	})
	defer cb.Release()
	js.Global().Call("setTimeout", cb, 0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get("from-callback"); err != nil || string(v) != "ok" {
		t.Fatalf("Get = %q, %v", v, err)
	}
}
