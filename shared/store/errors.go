package store

import "errors"

var (
	// ErrNotFound is returned by Get when no record has the key.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by every method but Close once the store is closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalidKey is returned for an empty key, a key longer than
	// MaxKeySize or a key that is not valid UTF-8.
	ErrInvalidKey = errors.New("store: invalid key")
	// ErrValueTooLarge is returned by Put for a value longer than MaxValueSize.
	ErrValueTooLarge = errors.New("store: value too large")
	// ErrLocked is returned by OpenBolt when another opener holds the file.
	ErrLocked = errors.New("store: locked by another opener")
	// ErrUnavailable is returned by OpenIndexedDB where the runtime has no IndexedDB.
	ErrUnavailable = errors.New("store: backend unavailable")
)
