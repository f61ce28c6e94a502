//go:build js && wasm

package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"syscall/js"

	"github.com/hack-pad/go-indexeddb/idb"

	"ddt/shared/bridge"
	"ddt/shared/chunk"
)

var _ Chunks = (*IndexedDBChunks)(nil)

const (
	// idbBlobs holds the chunks: key the hash in hex, value a Blob.
	idbBlobs = "blobs"
	// idbSizes holds each chunk's length under the same key, so List
	// reads numbers instead of opening every Blob.
	idbSizes = "sizes"
	// idbChunksSuffix ends the name of a chunk database, so it never
	// meets the node's record store of the same name.
	idbChunksSuffix = "-chunks"
	// IndexedDBReadAhead is how many chunks' bytes ReadAt keeps (in the
	// JavaScript heap, not wasm memory): each IndexedDB read costs 5–25 ms
	// however little it reads, so a read that misses fetches the rest of
	// its chunk and the reads after it are served from memory.
	IndexedDBReadAhead = 3
	// webCryptoMin mirrors package chunk: below it Go's SHA-256 is faster
	// than a WebCrypto round trip.
	webCryptoMin = 64 << 10
)

// IndexedDBChunks is a Chunks in the browser's IndexedDB, for nodes
// running as Go wasm in a page: one Blob per chunk, written in one
// transaction, read by blob.slice. Like IndexedDB its methods block until
// the browser answers: call them from ordinary goroutines, never inside a
// js.FuncOf callback.
type IndexedDBChunks struct {
	name      string
	mu        sync.RWMutex // held for reading by every call, for writing by Close
	db        *idb.Database
	persisted atomic.Bool

	cacheMu sync.Mutex
	cache   []*readAhead // most recently used first

	writes group[blobWrite] // chunks written at once share a transaction
}

// maxGroupedChunks is how many chunks one transaction writes at most
// (their Blobs are in the browser's memory already, up to 4 MiB each).
const maxGroupedChunks = 16

// readAhead is bytes [off, off+buf.length) of chunk h, in JavaScript.
type readAhead struct {
	h   chunk.Hash
	off int64
	buf js.Value // Uint8Array
}

// OpenIndexedDBChunks opens (creating it if needed) the IndexedDB database
// name+"-chunks". It asks the browser, once, to make the origin's storage
// persistent (navigator.storage.persist) so that chunks are not evicted
// under storage pressure; Persisted reports the answer. Where the runtime
// has no IndexedDB it returns an error wrapping ErrUnavailable.
func OpenIndexedDBChunks(name string) (*IndexedDBChunks, error) {
	dbName := name + idbChunksSuffix
	db, err := openIDB(dbName, idbBlobs, idbSizes)
	if err != nil {
		return nil, err
	}
	s := &IndexedDBChunks{name: dbName, db: db, writes: group[blobWrite]{max: maxGroupedChunks}}
	go s.persist()
	return s, nil
}

// persist asks for persistent storage. A browser may refuse (Chromium
// decides by the site's engagement) or ask the user (Firefox), so the open
// does not wait for it; refusal only means the browser may evict the
// origin's data under pressure.
func (s *IndexedDBChunks) persist() {
	storage := js.Global().Get("navigator").Get("storage")
	if storage.IsUndefined() || storage.Get("persist").IsUndefined() {
		return
	}
	p, err := bridge.Call(storage, "persist")
	if err != nil {
		return
	}
	v, err := bridge.Await(p)
	if err == nil && v.Type() == js.TypeBoolean {
		s.persisted.Store(v.Bool())
	}
}

// Persisted reports whether the browser granted persistent storage to the
// origin: false if it refused, or has not answered yet.
func (s *IndexedDBChunks) Persisted() bool { return s.persisted.Load() }

// Put implements Chunks. The bytes are copied once, into the Uint8Array
// that WebCrypto hashes and the Blob is made of.
func (s *IndexedDBChunks) Put(h chunk.Hash, data []byte) error {
	if len(data) > chunk.MaxSize {
		return fmt.Errorf("store: put chunk %s: %w: %d bytes, a chunk is at most %d", h.Short(), chunk.ErrTooLarge, len(data), chunk.MaxSize)
	}
	// A chunk held already is written again rather than looked up
	// first: the lookup, a transaction of its own, cost as much as the
	// write it might save (measured in Chromium: a 4 MiB Put took 48 ms
	// with it, 33 ms without; the write alone 15–18 ms), and callers
	// that know what they hold (the content Library) do not put it twice.
	arr := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(arr, data)
	var got chunk.Hash
	if len(data) < webCryptoMin {
		got = chunk.SumGo(data)
	} else {
		var err error
		if got, err = chunk.SumJS(arr); err != nil {
			return fmt.Errorf("store: put chunk %s: %w", h.Short(), err)
		}
	}
	if got != h {
		return fmt.Errorf("store: put chunk %s: %w: its bytes hash to %s", h.Short(), chunk.ErrCorrupt, got.Short())
	}
	blob := js.Global().Get("Blob").New([]any{arr})
	return s.putBlob(h, blob, len(data))
}

// PutBlob stores blob as chunk h, its bytes never entering Go: the caller
// has hashed it (chunk.SumJS) and vouches that it is chunk h. It is for
// the page's own files (ddt.put of a File), which are trusted; bytes from
// peers go through Put.
func (s *IndexedDBChunks) PutBlob(h chunk.Hash, blob js.Value) error {
	if blob.Type() != js.TypeObject || !blob.InstanceOf(js.Global().Get("Blob")) {
		return fmt.Errorf("store: put chunk %s: not a Blob", h.Short())
	}
	size := blob.Get("size").Int()
	if size > chunk.MaxSize {
		return fmt.Errorf("store: put chunk %s: %w: %d bytes, a chunk is at most %d", h.Short(), chunk.ErrTooLarge, size, chunk.MaxSize)
	}
	return s.putBlob(h, blob, size)
}

// putBlob writes a chunk and its size, in one transaction with the
// other chunks being written at the same time (see group).
func (s *IndexedDBChunks) putBlob(h chunk.Hash, blob js.Value, size int) error {
	err := s.writes.do(blobWrite{key: js.ValueOf(h.String()), blob: blob, size: size}, s.commitBlobs)
	return s.wrap("put chunk", h, err)
}

// blobWrite is one chunk to store.
type blobWrite struct {
	key  js.Value
	blob js.Value
	size int
}

// commitBlobs stores ws in one transaction.
func (s *IndexedDBChunks) commitBlobs(ws []blobWrite) error {
	return s.txn(idb.TransactionReadWrite, func(txn *idb.Transaction) error {
		blobs, err := txn.ObjectStore(idbBlobs)
		if err != nil {
			return err
		}
		sizes, err := txn.ObjectStore(idbSizes)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if _, err := blobs.PutKey(w.key, w.blob); err != nil {
				return err
			}
			if _, err := sizes.PutKey(w.key, js.ValueOf(w.size)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Blob returns the stored Blob of chunk h (for ddt.get: a Blob backed by
// the browser's storage, so a large file never sits in wasm memory), or
// ErrNotFound.
func (s *IndexedDBChunks) Blob(h chunk.Hash) (js.Value, error) {
	var v js.Value
	err := s.txn(idb.TransactionReadOnly, func(txn *idb.Transaction) error {
		blobs, err := txn.ObjectStore(idbBlobs)
		if err != nil {
			return err
		}
		req, err := blobs.Get(js.ValueOf(h.String()))
		if err != nil {
			return err
		}
		v, err = req.Await(context.Background())
		return err
	})
	if err != nil {
		return js.Undefined(), s.wrap("read chunk", h, err)
	}
	if v.IsUndefined() {
		return js.Undefined(), ErrNotFound
	}
	if !v.InstanceOf(js.Global().Get("Blob")) {
		return js.Undefined(), fmt.Errorf("store: chunk %s in IndexedDB %q is a %s, not a Blob", h.Short(), s.name, v.Type())
	}
	return v, nil
}

// ReadAt implements Chunks: from the read-ahead cache if it covers
// [off, off+len(p)), else by reading blob.slice(off, size) into it.
func (s *IndexedDBChunks) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("store: read chunk %s at negative offset %d", h.Short(), off)
	}
	if n, err, ok := s.cached(h, p, off); ok {
		return n, err
	}
	blob, err := s.Blob(h)
	if err != nil {
		return 0, err
	}
	size := int64(blob.Get("size").Int())
	if off >= size {
		if off == size && len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	buf, err := bridge.Call(blob, "slice", off, size)
	if err == nil {
		buf, err = bridge.Call(buf, "arrayBuffer")
	}
	if err == nil {
		buf, err = bridge.Await(buf)
	}
	if err != nil {
		return 0, fmt.Errorf("store: read chunk %s from IndexedDB %q: %w", h.Short(), s.name, err)
	}
	u8 := js.Global().Get("Uint8Array").New(buf)
	ra := &readAhead{h: h, off: off, buf: u8}
	s.remember(ra)
	n := copyFrom(ra, p, off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// cached serves a read from the read-ahead cache, if it can.
func (s *IndexedDBChunks) cached(h chunk.Hash, p []byte, off int64) (n int, err error, ok bool) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for i, ra := range s.cache {
		if ra.h != h || off < ra.off {
			continue
		}
		end := ra.off + int64(ra.buf.Length()) // the chunk's end: a read-ahead runs to it
		if off > end {
			return 0, io.EOF, true
		}
		copy(s.cache[1:i+1], s.cache[:i])
		s.cache[0] = ra
		n := copyFrom(ra, p, off)
		if n < len(p) {
			return n, io.EOF, true
		}
		return n, nil, true
	}
	return 0, nil, false
}

// copyFrom copies what ra holds from off into p.
func copyFrom(ra *readAhead, p []byte, off int64) int {
	start := off - ra.off
	end := min(start+int64(len(p)), int64(ra.buf.Length()))
	if end <= start {
		return 0
	}
	return js.CopyBytesToGo(p, ra.buf.Call("subarray", start, end))
}

// remember puts ra first in the cache, dropping the least recently used.
func (s *IndexedDBChunks) remember(ra *readAhead) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	s.dropLocked(ra.h)
	s.cache = append([]*readAhead{ra}, s.cache...)
	if len(s.cache) > IndexedDBReadAhead {
		s.cache = s.cache[:IndexedDBReadAhead]
	}
}

// dropLocked forgets the cached bytes of chunk h.
func (s *IndexedDBChunks) dropLocked(h chunk.Hash) {
	s.cache = slices.DeleteFunc(s.cache, func(ra *readAhead) bool { return ra.h == h })
}

// Size implements Chunks.
func (s *IndexedDBChunks) Size(h chunk.Hash) (int, error) {
	var v js.Value
	err := s.txn(idb.TransactionReadOnly, func(txn *idb.Transaction) error {
		sizes, err := txn.ObjectStore(idbSizes)
		if err != nil {
			return err
		}
		req, err := sizes.Get(js.ValueOf(h.String()))
		if err != nil {
			return err
		}
		v, err = req.Await(context.Background())
		return err
	})
	if err != nil {
		return 0, s.wrap("size of chunk", h, err)
	}
	if v.Type() != js.TypeNumber {
		return 0, ErrNotFound
	}
	return v.Int(), nil
}

// Delete implements Chunks.
func (s *IndexedDBChunks) Delete(h chunk.Hash) error {
	s.cacheMu.Lock()
	s.dropLocked(h)
	s.cacheMu.Unlock()
	key := js.ValueOf(h.String())
	err := s.txn(idb.TransactionReadWrite, func(txn *idb.Transaction) error {
		for _, name := range []string{idbBlobs, idbSizes} {
			st, err := txn.ObjectStore(name)
			if err != nil {
				return err
			}
			if _, err := st.Delete(key); err != nil {
				return err
			}
		}
		return nil
	})
	// A read that began before the delete may have cached it again.
	s.cacheMu.Lock()
	s.dropLocked(h)
	s.cacheMu.Unlock()
	return s.wrap("delete chunk", h, err)
}

// List implements Chunks, by one cursor over the sizes.
func (s *IndexedDBChunks) List() (map[chunk.Hash]int, error) {
	out := make(map[chunk.Hash]int)
	err := s.txn(idb.TransactionReadOnly, func(txn *idb.Transaction) error {
		sizes, err := txn.ObjectStore(idbSizes)
		if err != nil {
			return err
		}
		req, err := sizes.OpenCursor(idb.CursorNext)
		if err != nil {
			return err
		}
		return req.Iter(context.Background(), func(c *idb.CursorWithValue) error {
			k, err := c.Key()
			if err != nil {
				return err
			}
			v, err := c.Value()
			if err != nil {
				return err
			}
			if k.Type() != js.TypeString || v.Type() != js.TypeNumber {
				return nil // not a record of ours
			}
			h, err := chunk.Parse(k.String())
			if err != nil {
				return nil
			}
			out[h] = v.Int()
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("list chunks", chunk.Hash{}, err)
	}
	return out, nil
}

// Close implements Chunks; the chunks stay in IndexedDB.
func (s *IndexedDBChunks) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cacheMu.Lock()
	s.cache = nil
	s.cacheMu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	if err != nil {
		return fmt.Errorf("store: close IndexedDB %q: %w", s.name, err)
	}
	return nil
}

// txn runs fn in one transaction over both object stores; see
// IndexedDB.txn for the rules fn must keep. A write is committed and
// waited for.
func (s *IndexedDBChunks) txn(mode idb.TransactionMode, fn func(*idb.Transaction) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	txn, err := s.db.Transaction(mode, idbBlobs, idbSizes)
	if err != nil {
		return err
	}
	if err := fn(txn); err != nil {
		txn.Abort()
		return err
	}
	if mode == idb.TransactionReadWrite {
		if err := txn.Commit(); err != nil {
			return err
		}
		return txn.Await(context.Background())
	}
	return nil
}

// wrap gives err the operation's context: the browser's quota error
// becomes ErrQuota with a message a user can act on; the package's own
// sentinels stay bare.
func (s *IndexedDBChunks) wrap(op string, h chunk.Hash, err error) error {
	switch {
	case err == nil, errors.Is(err, ErrClosed), errors.Is(err, ErrNotFound):
		return err
	case isQuotaError(err):
		return fmt.Errorf("%w: the browser's storage for this site is full (%s %s): free space, or let the site keep more in the browser's settings: %v", ErrQuota, op, h.Short(), err)
	}
	return fmt.Errorf("store: %s %s in IndexedDB %q: %w", op, h.Short(), s.name, err)
}

// isQuotaError reports whether err is the browser refusing for lack of
// space: a DOMException named QuotaExceededError, as IndexedDB reports it.
func isQuotaError(err error) bool {
	if errors.Is(err, idb.NewDOMException("QuotaExceededError")) {
		return true
	}
	var je *bridge.JSError
	return errors.As(err, &je) && je.Name == "QuotaExceededError"
}
