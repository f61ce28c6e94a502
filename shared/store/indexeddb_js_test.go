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

	"ddt/shared/identity"
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

// putSpy records, for every IDBObjectStore.put the page makes, the key
// and the durability its transaction was created with, as Chromium
// reports it (IDBTransaction.durability: "strict", "relaxed" or
// "default"). The real put still runs.
type putSpy struct{ v js.Value }

func spyOnPuts(t *testing.T) putSpy {
	install := js.Global().Get("Function").New(`
		const proto = IDBObjectStore.prototype, orig = proto.put, seen = [];
		proto.put = function (value, key) {
			seen.push({key: String(key), durability: this.transaction.durability});
			return orig.apply(this, arguments);
		};
		return {seen, restore() { proto.put = orig; }};`)
	s := putSpy{install.Invoke()}
	t.Cleanup(func() { s.v.Call("restore") })
	return s
}

// durability returns the durability of the last put of key, "" if none.
func (s putSpy) durability(key string) string {
	seen := s.v.Get("seen")
	for i := seen.Length() - 1; i >= 0; i-- {
		if e := seen.Index(i); e.Get("key").String() == key {
			return e.Get("durability").String()
		}
	}
	return ""
}

// The node's identity and its username record are written in
// transactions of strict durability (committed to disk before the write
// returns, so a crash or power loss right after cannot lose them), as the
// node writes them: the identity at the root of the store, the record
// through the username capability's namespace. Other writes keep the
// browser's default. All of it is there after the database is opened
// again.
func TestIndexedDBDurableWrites(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	if !hasProperty(js.Global().Get("IDBTransaction").Get("prototype"), "durability") {
		t.Fatal("this browser does not expose IDBTransaction.durability")
	}
	name := freshIndexedDB(t)
	s, err := store.OpenIndexedDB(name)
	if err != nil {
		t.Fatal(err)
	}
	spy := spyOnPuts(t)
	me, created, err := identity.Open(s, "identity")
	if err != nil || !created {
		t.Fatalf("identity.Open: created %v, %v", created, err)
	}
	ns, err := store.NewNamespace(s, "names/")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutDurable(ns, "record", []byte("alice's record")); err != nil {
		t.Fatal(err)
	}
	if err := ns.Put("chunk", []byte("bulk")); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"identity": "strict", "names/record": "strict"} {
		if got := spy.durability(key); got != want {
			t.Errorf("the put of %q ran in a transaction of durability %q, want %q", key, got, want)
		}
	}
	if got := spy.durability("names/chunk"); got == "" || got == "strict" {
		t.Errorf("a plain Put ran with durability %q, want the browser's default", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	again, err := store.OpenIndexedDB(name)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	back, created, err := identity.Open(again, "identity")
	if err != nil || created || back.SignKey() != me.SignKey() {
		t.Fatalf("reopened: created %v, same key %v, %v", created, err == nil && back.SignKey() == me.SignKey(), err)
	}
	for key, want := range map[string]string{"names/record": "alice's record", "names/chunk": "bulk"} {
		if v, err := again.Get(key); err != nil || string(v) != want {
			t.Errorf("reopened: %q = %q, %v; want %q", key, v, err, want)
		}
	}
}

func hasProperty(v js.Value, name string) bool {
	return js.Global().Get("Reflect").Call("has", v, name).Bool()
}
