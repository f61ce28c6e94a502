package store

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

const (
	// MaxKeySize is the largest key, in bytes, that a Store accepts.
	MaxKeySize = 1 << 10
	// MaxValueSize is the largest value, in bytes, that a Store accepts.
	MaxValueSize = 16 << 20
)

// Store keeps small named records. Keys are non-empty, valid UTF-8 strings
// of at most MaxKeySize bytes; values are at most MaxValueSize bytes.
// Implementations are safe for concurrent use.
//
// After Close every other method returns ErrClosed; Close itself may be
// called more than once.
type Store interface {
	// Get returns a copy of the value stored under key, or ErrNotFound.
	Get(key string) ([]byte, error)
	// Put stores a copy of value under key, atomically replacing any
	// earlier value. A nil value is stored as an empty one.
	Put(key string, value []byte) error
	// Delete removes the record under key; a missing key is not an error.
	Delete(key string) error
	// Keys returns the keys that start with prefix, sorted by their bytes.
	// The empty prefix lists every key.
	Keys(prefix string) ([]string, error)
	// Close releases the store's resources.
	Close() error
}

// Durable is a Store that can commit a write to persistent storage before
// it returns, where its plain Put may trade that for speed (IndexedDB's
// default, or "relaxed", durability may lose the last writes to a crash or
// power loss).
type Durable interface {
	Store
	// PutDurable is Put, committed to persistent storage before it returns.
	PutDurable(key string, value []byte) error
}

// PutDurable writes value under key with s.PutDurable if s is Durable,
// else with s.Put (the bbolt store syncs every write; the memory store
// keeps nothing). It is for records whose loss a user would notice: the
// node's identity, its username. Bulk data (chunks) keeps Put.
func PutDurable(s Store, key string, value []byte) error {
	if d, ok := s.(Durable); ok {
		return d.PutDurable(key, value)
	}
	return s.Put(key, value)
}

// checkKey reports why key cannot name a record, if it cannot.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeySize:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidKey, len(key), MaxKeySize)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	}
	return nil
}

// checkPut reports why key and value cannot be stored, if they cannot.
func checkPut(key string, value []byte) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrValueTooLarge, len(value), MaxValueSize)
	}
	return nil
}

// Scanner is a Store that reads every record under a prefix at once: one
// transaction in IndexedDB, where Keys and a Get per key would cost a
// transaction (milliseconds) each. For callers that load many small
// records as they start (the content library's index).
type Scanner interface {
	Store
	// Scan returns a copy of every record whose key starts with prefix.
	Scan(prefix string) (map[string][]byte, error)
}

// Scan returns every record of s whose key starts with prefix: by
// s.Scan if s is a Scanner, else by Keys and a Get per key (a record
// deleted between the two is left out).
func Scan(s Store, prefix string) (map[string][]byte, error) {
	if sc, ok := s.(Scanner); ok {
		return sc.Scan(prefix)
	}
	keys, err := s.Keys(prefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v, err := s.Get(k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}
