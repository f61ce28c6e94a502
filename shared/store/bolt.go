//go:build !js

package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var _ Store = (*Bolt)(nil)

// boltBucket is the one bucket that holds every record.
var boltBucket = []byte("kv")

// boltOpenTimeout bounds how long OpenBolt waits for another opener to let
// go of the file's lock.
const boltOpenTimeout = time.Second

// Bolt is a Store kept in one bbolt file. Only one Bolt, in one process,
// may have a file open at a time.
type Bolt struct {
	db *bolt.DB
}

// OpenBolt opens the bbolt file at path, creating it and its parent
// directories if needed. If another opener holds the file, OpenBolt gives
// up after a second with an error wrapping ErrLocked.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: boltOpenTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s: gave up after %v", ErrLocked, path, boltOpenTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Get implements Store.
func (s *Bolt) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		// A cursor tells an empty value from a missing one, which
		// Bucket.Get does not promise to.
		k, val := tx.Bucket(boltBucket).Cursor().Seek([]byte(key))
		if !bytes.Equal(k, []byte(key)) {
			return ErrNotFound
		}
		v = append([]byte{}, val...) // val is only valid inside the transaction
		return nil
	})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return v, nil
}

// Put implements Store.
func (s *Bolt) Put(key string, value []byte) error {
	if err := checkPut(key, value); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(boltBucket).Put([]byte(key), value)
	})
	return s.wrap("put", key, err)
}

// Delete implements Store.
func (s *Bolt) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(boltBucket).Delete([]byte(key))
	})
	return s.wrap("delete", key, err)
}

// Keys implements Store. bbolt orders keys by their bytes, so the result
// comes out sorted.
func (s *Bolt) Keys(prefix string) ([]string, error) {
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		p := []byte(prefix)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			keys = append(keys, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("keys", prefix, err)
	}
	return keys, nil
}

// Close closes the file, waiting for running transactions to finish.
func (s *Bolt) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.db.Path(), err)
	}
	return nil
}

// wrap gives err the operation's context, turning bbolt's "not open" into
// ErrClosed and leaving ErrNotFound bare.
func (s *Bolt) wrap(op, key string, err error) error {
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		return err
	case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
		return ErrClosed
	}
	return fmt.Errorf("store: %s %q: %w", op, key, err)
}
