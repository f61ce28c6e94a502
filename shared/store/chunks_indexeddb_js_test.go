//go:build js && wasm

package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall/js"
	"testing"

	"github.com/hack-pad/go-indexeddb/idb"

	"ddt/shared/bridge"
	"ddt/shared/chunk"
	"ddt/shared/store"
	"ddt/shared/store/storetest"
)

// freshChunksDB picks a chunk database name no other test uses and
// deletes the database when the test ends.
func freshChunksDB(t testing.TB) string {
	name := fmt.Sprintf("ddt-chunktest-%d", dbSeq.Add(1))
	t.Cleanup(func() {
		req, err := idb.Global().DeleteDatabase(name + "-chunks")
		if err == nil {
			err = req.Await(context.Background())
		}
		if err != nil {
			t.Errorf("delete database %q: %v", name, err)
		}
	})
	return name
}

func openIDBChunks(t testing.TB) *store.IndexedDBChunks {
	t.Helper()
	s, err := store.OpenIndexedDBChunks(freshChunksDB(t))
	if err != nil {
		t.Fatalf("OpenIndexedDBChunks: %v", err)
	}
	return s
}

func TestIndexedDBChunks(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	storetest.RunChunks(t, func(t *testing.T) store.Chunks { return openIDBChunks(t) })
}

func TestIndexedDBChunksPersistent(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	storetest.RunChunksPersistent(t, func(t *testing.T) func() (store.Chunks, error) {
		name := freshChunksDB(t)
		return func() (store.Chunks, error) { return store.OpenIndexedDBChunks(name) }
	})
}

func TestIndexedDBChunksUnavailable(t *testing.T) {
	if haveIndexedDB() {
		t.Skip("this runtime has IndexedDB")
	}
	if _, err := store.OpenIndexedDBChunks("ddt-unavailable"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("OpenIndexedDBChunks = %v; want ErrUnavailable", err)
	}
}

// TestIndexedDBChunksBlob puts a Blob the page made and hashed itself and
// gets the stored Blob back, the bytes never passing through Go on the
// way in.
func TestIndexedDBChunksBlob(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	s := openIDBChunks(t)
	defer s.Close()
	data := bytes.Repeat([]byte("blob bytes "), 30000)
	arr := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(arr, data)
	blob := js.Global().Get("Blob").New([]any{arr}, map[string]any{"type": "text/plain"})
	h, err := chunk.SumJS(arr)
	if err != nil {
		t.Fatal(err)
	}
	if h != chunk.SumGo(data) {
		t.Fatal("SumJS and SumGo disagree")
	}
	if err := s.PutBlob(h, blob); err != nil {
		t.Fatalf("PutBlob: %v", err)
	}
	if n, err := s.Size(h); err != nil || n != len(data) {
		t.Fatalf("Size = %d, %v", n, err)
	}
	p := make([]byte, 100)
	if _, err := s.ReadAt(h, p, 12345); err != nil || !bytes.Equal(p, data[12345:12445]) {
		t.Fatalf("ReadAt of a put Blob: %v", err)
	}
	got, err := s.Blob(h)
	if err != nil {
		t.Fatalf("Blob: %v", err)
	}
	ab, err := bridge.Await(got.Call("arrayBuffer"))
	if err != nil {
		t.Fatal(err)
	}
	back := make([]byte, got.Get("size").Int())
	js.CopyBytesToGo(back, js.Global().Get("Uint8Array").New(ab))
	if !bytes.Equal(back, data) {
		t.Fatal("the stored Blob's bytes differ")
	}
	if _, err := s.Blob(chunk.SumGo([]byte("nothing"))); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Blob(missing) = %v, want ErrNotFound", err)
	}
	if err := s.PutBlob(h, js.ValueOf("not a blob")); err == nil {
		t.Fatal("PutBlob of a string succeeded")
	}
	big := js.Global().Get("Blob").New([]any{js.Global().Get("Uint8Array").New(chunk.MaxSize + 1)})
	if err := s.PutBlob(h, big); !errors.Is(err, chunk.ErrTooLarge) {
		t.Fatalf("PutBlob(MaxSize+1) = %v, want ErrTooLarge", err)
	}
	_ = s.Persisted() // the browser's answer, either way; nothing to assert headless
}

// TestIndexedDBChunksReadAhead reads a chunk in small sequential pieces,
// then others, interleaved: more chunks than the read-ahead keeps, so
// every path (hit, miss, eviction, a read before the cached range) runs.
func TestIndexedDBChunksReadAhead(t *testing.T) {
	if !haveIndexedDB() {
		t.Skip("no IndexedDB in this runtime; run under wasmbrowsertest for a real browser")
	}
	s := openIDBChunks(t)
	defer s.Close()
	const n = 256 << 10
	var datas [][]byte
	var hs []chunk.Hash
	for i := range store.IndexedDBReadAhead + 2 {
		d := bytes.Repeat([]byte{byte(i)}, n)
		d[i] = 0xff
		h := chunk.SumGo(d)
		if err := s.Put(h, d); err != nil {
			t.Fatal(err)
		}
		datas, hs = append(datas, d), append(hs, h)
	}
	for off := 0; off < n; off += 16 << 10 {
		for i, h := range hs {
			p := make([]byte, 20<<10) // overlaps the next piece; the last runs past the end
			got, err := s.ReadAt(h, p, int64(off))
			want := min(len(p), n-off)
			if got != want || (want < len(p)) != (err == io.EOF) || (err != nil && err != io.EOF) {
				t.Fatalf("chunk %d ReadAt(%d) = %d, %v; want %d", i, off, got, err, want)
			}
			if !bytes.Equal(p[:got], datas[i][off:off+got]) {
				t.Fatalf("chunk %d ReadAt(%d): wrong bytes", i, off)
			}
		}
	}
	// Back to the start of a chunk whose read-ahead began later.
	p := make([]byte, 10)
	if _, err := s.ReadAt(hs[0], p, 0); err != nil || !bytes.Equal(p, datas[0][:10]) {
		t.Fatalf("ReadAt before the read-ahead: %v", err)
	}
}

// TestIndexedDBChunksQuotaMessage checks what a user sees when the
// browser refuses for space: the DOMException IndexedDB raises becomes
// ErrQuota with a sentence saying what to do. (Filling a real origin's
// quota headless would take gigabytes; the exception is the browser's own.)
func TestIndexedDBChunksQuotaMessage(t *testing.T) {
	exc := js.Global().Get("DOMException").New("The quota has been exceeded.", "QuotaExceededError")
	err := store.QuotaErrorForTest(bridge.ErrorOf(exc))
	if !errors.Is(err, store.ErrQuota) {
		t.Fatalf("QuotaExceededError became %v, want ErrQuota", err)
	}
	err = store.QuotaErrorForTest(idb.NewDOMException("QuotaExceededError"))
	if !errors.Is(err, store.ErrQuota) {
		t.Fatalf("idb's QuotaExceededError became %v, want ErrQuota", err)
	}
	if err := store.QuotaErrorForTest(idb.NewDOMException("DataError")); errors.Is(err, store.ErrQuota) {
		t.Fatalf("a DataError became ErrQuota: %v", err)
	}
}

// jsBlob is a Blob of data's bytes.
func jsBlob(data []byte) js.Value {
	arr := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(arr, data)
	return js.Global().Get("Blob").New([]any{arr})
}
