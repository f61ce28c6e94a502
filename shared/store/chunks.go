package store

import (
	"errors"

	"ddt/shared/chunk"
)

// ErrQuota: the platform refused to store more (the browser's quota for
// the origin, a full disk). Nothing was stored.
var ErrQuota = errors.New("store: out of storage space")

// Chunks keeps content chunks by their hash: IndexedDB in the browser
// (one Blob per chunk), files on disk for native nodes, memory in tests.
// It checks every chunk against its hash before it keeps it, so a store
// never holds corrupt bytes. Accounting (pins, the pledge, eviction) is
// the content capability's; a Chunks only keeps bytes. Implementations
// are safe for concurrent use; after Close every method returns
// ErrClosed.
type Chunks interface {
	// Put stores data as the chunk h after checking that it hashes to h
	// (chunk.Verify): a mismatch is chunk.ErrCorrupt and stores nothing.
	// Putting a chunk already held is not an error. A platform out of
	// space gives an error wrapping ErrQuota.
	Put(h chunk.Hash, data []byte) error
	// ReadAt reads len(p) bytes of chunk h from off, as io.ReaderAt
	// does (io.EOF when fewer remain); ErrNotFound if h is not held.
	ReadAt(h chunk.Hash, p []byte, off int64) (int, error)
	// Size is the length of chunk h, or ErrNotFound.
	Size(h chunk.Hash) (int, error)
	// Delete removes chunk h; a missing chunk is not an error.
	Delete(h chunk.Hash) error
	// List returns every chunk held, with its size, in no set order.
	List() (map[chunk.Hash]int, error)
	// Close releases the store.
	Close() error
}
