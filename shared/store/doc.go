// Package store keeps small named records for DDT nodes and the relay:
// identity keys, address leases and similar state that must outlive a
// process or a page load.
//
// It owns the [Store] interface and its implementations:
//
//   - [Memory]: a map, for tests and for nodes that need no persistence;
//     builds everywhere.
//   - [Bolt]: one bbolt file with one bucket, for native nodes and the
//     relay (not built for js).
//   - [IndexedDB]: one IndexedDB database with one object store "kv", for
//     nodes running as Go wasm in a browser (built only for js/wasm).
//
// Data flows in one direction: callers hand a key and a value to Put, the
// store copies the value and replaces any earlier record atomically, and
// Get hands back a fresh copy. Nothing is shared between the caller and
// the store, so callers may reuse their buffers.
//
// Keys are non-empty, valid UTF-8 strings of at most [MaxKeySize] bytes and
// sort by their bytes; values are at most [MaxValueSize] bytes. Every
// implementation passes the same conformance suite in package
// ddt/shared/store/storetest.
package store
