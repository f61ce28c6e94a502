//go:build js && wasm

package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall/js"
	"unicode/utf8"

	"github.com/hack-pad/go-indexeddb/idb"
)

var (
	_ Durable = (*IndexedDB)(nil)
	_ Scanner = (*IndexedDB)(nil)
)

// idbObjectStore is the one object store, inside the database, that holds
// every record: keys are strings, values Uint8Arrays.
const idbObjectStore = "kv"

// IndexedDB is a Store kept in the browser's IndexedDB, for nodes running
// as Go wasm in a page.
//
// Its methods block until IndexedDB answers, which needs the JavaScript
// event loop to run: call them from ordinary goroutines, never directly
// inside a js.FuncOf callback, where they would hang forever. Each method
// is one IndexedDB transaction whose requests are issued back to back.
type IndexedDB struct {
	mu sync.RWMutex // held for reading by every call, for writing by Close
	db *idb.Database
	// name is the database's name, for error messages.
	name string

	writes group[kvWrite] // puts at once share a transaction
}

// OpenIndexedDB opens (creating it if needed) the IndexedDB database name
// with its object store "kv". Where the runtime has no IndexedDB (node, a
// worker without it) it returns an error wrapping ErrUnavailable.
func OpenIndexedDB(name string) (*IndexedDB, error) {
	db, err := openIDB(name, idbObjectStore)
	if err != nil {
		return nil, err
	}
	return &IndexedDB{db: db, name: name, writes: group[kvWrite]{max: maxGroupedPuts}}, nil
}

// openIDB opens (creating it if needed, at version 1, with the object
// stores named) the IndexedDB database name.
func openIDB(name string, objectStores ...string) (*idb.Database, error) {
	factory, err := idbFactory()
	if err != nil {
		return nil, err
	}
	req, err := factory.Open(context.Background(), name, 1, func(db *idb.Database, oldVersion, _ uint) error {
		if oldVersion >= 1 {
			return nil
		}
		for _, os := range objectStores {
			if _, err := db.CreateObjectStore(os, idb.ObjectStoreOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: open IndexedDB %q: %w", name, err)
	}
	db, err := req.Await(context.Background())
	if err != nil {
		return nil, fmt.Errorf("store: open IndexedDB %q: %w", name, err)
	}
	return db, nil
}

// idbFactory returns the global IndexedDB factory. idb.Global panics when
// there is none; that becomes ErrUnavailable.
func idbFactory() (f *idb.Factory, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: no IndexedDB in this runtime: %v", ErrUnavailable, r)
		}
	}()
	return idb.Global(), nil
}

// Get implements Store.
func (s *IndexedDB) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var v js.Value
	err := s.txn(idb.TransactionReadOnly, func(txn *idb.Transaction, kv *idb.ObjectStore) error {
		req, err := kv.Get(js.ValueOf(key))
		if err != nil {
			return err
		}
		v, err = req.Await(context.Background())
		return err
	})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	if v.IsUndefined() {
		return nil, ErrNotFound
	}
	if !v.InstanceOf(js.Global().Get("Uint8Array")) {
		return nil, fmt.Errorf("store: get %q from IndexedDB %q: value is a %s, not a Uint8Array", key, s.name, v.Type())
	}
	b := make([]byte, v.Length())
	js.CopyBytesToGo(b, v)
	return b, nil
}

// Put implements Store, with the browser's default durability.
func (s *IndexedDB) Put(key string, value []byte) error {
	return s.put(key, value, idb.DurabilityDefault)
}

// PutDurable implements Durable: the transaction asks for strict
// durability, so it completes only once the browser has flushed it to
// disk (the default may report success before, and lose it to a crash).
func (s *IndexedDB) PutDurable(key string, value []byte) error {
	return s.put(key, value, idb.DurabilityStrict)
}

func (s *IndexedDB) put(key string, value []byte, durability idb.TransactionDurability) error {
	if err := checkPut(key, value); err != nil {
		return err
	}
	arr := js.Global().Get("Uint8Array").New(len(value))
	js.CopyBytesToJS(arr, value)
	w := kvWrite{key: js.ValueOf(key), value: arr}
	commit := func(ws []kvWrite) error {
		return s.txnWith(idb.TransactionOptions{Mode: idb.TransactionReadWrite, Durability: durability}, func(txn *idb.Transaction, kv *idb.ObjectStore) error {
			for _, w := range ws {
				if _, err := kv.PutKey(w.key, w.value); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var err error
	if durability == idb.DurabilityDefault {
		// Puts at the same time (a library's records, say) share one
		// transaction; a durable one waits for its own flush to disk.
		err = s.writes.do(w, commit)
	} else {
		err = commit([]kvWrite{w})
	}
	return s.wrap("put", key, err)
}

// kvWrite is one key's new value.
type kvWrite struct{ key, value js.Value }

// maxGroupedPuts is how many values one transaction writes at most.
const maxGroupedPuts = 256

// Delete implements Store.
func (s *IndexedDB) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := s.txn(idb.TransactionReadWrite, func(txn *idb.Transaction, kv *idb.ObjectStore) error {
		_, err := kv.Delete(js.ValueOf(key))
		return err
	})
	return s.wrap("delete", key, err)
}

// Keys implements Store. IndexedDB orders string keys by UTF-16 code
// units, not by bytes, so the keys are filtered and sorted here; every
// key from the prefix on is fetched, which suits the small stores this
// package is for.
func (s *IndexedDB) Keys(prefix string) ([]string, error) {
	var raw []js.Value
	err := s.txn(idb.TransactionReadOnly, func(txn *idb.Transaction, kv *idb.ObjectStore) error {
		var req *idb.ArrayRequest
		var err error
		if prefix != "" && utf8.ValidString(prefix) {
			// Every key with this prefix sorts at or after it in UTF-16
			// order too. (An invalid prefix, such as half a character,
			// would be mangled on its way to JavaScript.)
			var lower *idb.KeyRange
			if lower, err = idb.NewKeyRangeLowerBound(js.ValueOf(prefix), false); err != nil {
				return err
			}
			req, err = kv.GetAllKeysRange(lower, 0)
		} else {
			req, err = kv.GetAllKeys()
		}
		if err != nil {
			return err
		}
		raw, err = req.Await(context.Background())
		return err
	})
	if err != nil {
		return nil, s.wrap("keys", prefix, err)
	}
	var keys []string
	for _, v := range raw {
		if k := v.String(); strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Scan implements Scanner: one read-only transaction walks a cursor from
// prefix on and stops at the first key without it (keys with a prefix are
// contiguous in IndexedDB's UTF-16 order as in byte order).
func (s *IndexedDB) Scan(prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.txn(idb.TransactionReadOnly, func(txn *idb.Transaction, kv *idb.ObjectStore) error {
		var req *idb.CursorWithValueRequest
		var err error
		if prefix != "" && utf8.ValidString(prefix) {
			var lower *idb.KeyRange
			if lower, err = idb.NewKeyRangeLowerBound(js.ValueOf(prefix), false); err != nil {
				return err
			}
			req, err = kv.OpenCursorRange(lower, idb.CursorNext)
		} else {
			req, err = kv.OpenCursor(idb.CursorNext)
		}
		if err != nil {
			return err
		}
		u8 := js.Global().Get("Uint8Array")
		// The callback runs on the event loop, inside the transaction: it
		// only copies, never waits.
		return req.Iter(context.Background(), func(c *idb.CursorWithValue) error {
			k, err := c.Key()
			if err != nil {
				return err
			}
			if k.Type() != js.TypeString {
				return nil
			}
			key := k.String()
			if !strings.HasPrefix(key, prefix) {
				if prefix != "" && utf8.ValidString(prefix) {
					return idb.ErrCursorStopIter
				}
				return nil
			}
			v, err := c.Value()
			if err != nil {
				return err
			}
			if !v.InstanceOf(u8) {
				return fmt.Errorf("store: scan %q in IndexedDB %q: value of %q is a %s, not a Uint8Array", prefix, s.name, key, v.Type())
			}
			b := make([]byte, v.Length())
			js.CopyBytesToGo(b, v)
			out[key] = b
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap("scan", prefix, err)
	}
	return out, nil
}

// Close closes the connection, after the calls already running finish.
func (s *IndexedDB) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
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

// txn runs fn inside one transaction on the object store. fn must issue its
// requests without yielding to the event loop in between, or the
// transaction commits under it; a read may then await its one request. A
// write's fn must not wait: txn commits it and waits for it to complete.
func (s *IndexedDB) txn(mode idb.TransactionMode, fn func(*idb.Transaction, *idb.ObjectStore) error) error {
	return s.txnWith(idb.TransactionOptions{Mode: mode}, fn)
}

// txnWith is txn with the transaction's options (its durability).
func (s *IndexedDB) txnWith(opts idb.TransactionOptions, fn func(*idb.Transaction, *idb.ObjectStore) error) error {
	mode := opts.Mode
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.db == nil {
		return ErrClosed
	}
	txn, err := s.db.TransactionWithOptions(opts, idbObjectStore)
	if err != nil {
		return err
	}
	kv, err := txn.ObjectStore(idbObjectStore)
	if err != nil {
		return err
	}
	if err := fn(txn, kv); err != nil {
		txn.Abort() // may fail if the transaction already ended; fn's error matters
		return err
	}
	if mode == idb.TransactionReadWrite {
		// Commit now rather than when the event loop finds the transaction
		// idle; a write counts only once the transaction completes.
		if err := txn.Commit(); err != nil {
			return err
		}
		return txn.Await(context.Background())
	}
	return nil
}

// wrap gives err the operation's context, leaving the package's own
// sentinels bare.
func (s *IndexedDB) wrap(op, key string, err error) error {
	switch err {
	case nil, ErrClosed, ErrNotFound:
		return err
	}
	return fmt.Errorf("store: %s %q in IndexedDB %q: %w", op, key, s.name, err)
}
