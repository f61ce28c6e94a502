package store

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// Namespace is a view of a parent store in which every key has prefix
// before it: what a node hands each of its capabilities, so that their
// records never collide. Keys are at most MaxKeySize−len(prefix) bytes.
// Closing a Namespace ends the view, not the parent.
type Namespace struct {
	parent Store
	prefix string
	closed atomic.Bool
}

var (
	_ Durable = (*Namespace)(nil)
	_ Scanner = (*Namespace)(nil)
)

// NewNamespace returns the view of parent under prefix (non-empty, valid
// UTF-8, shorter than MaxKeySize).
func NewNamespace(parent Store, prefix string) (*Namespace, error) {
	if err := checkKey(prefix); err != nil || len(prefix) >= MaxKeySize {
		return nil, fmt.Errorf("%w: namespace prefix %q", ErrInvalidKey, prefix)
	}
	return &Namespace{parent: parent, prefix: prefix}, nil
}

// MaxKey is the longest key the namespace takes.
func (s *Namespace) MaxKey() int { return MaxKeySize - len(s.prefix) }

func (s *Namespace) key(k string) (string, error) {
	if s.closed.Load() {
		return "", ErrClosed
	}
	if err := checkKey(k); err != nil {
		return "", err
	}
	if len(k) > s.MaxKey() {
		return "", fmt.Errorf("%w: %d bytes, limit %d in namespace %q", ErrInvalidKey, len(k), s.MaxKey(), s.prefix)
	}
	return s.prefix + k, nil
}

// Get implements Store.
func (s *Namespace) Get(key string) ([]byte, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	return s.parent.Get(k)
}

// Put implements Store.
func (s *Namespace) Put(key string, value []byte) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if err := checkPut(key, value); err != nil {
		return err
	}
	return s.parent.Put(k, value)
}

// PutDurable implements Durable, durably where the parent can.
func (s *Namespace) PutDurable(key string, value []byte) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if err := checkPut(key, value); err != nil {
		return err
	}
	return PutDurable(s.parent, k, value)
}

// Delete implements Store.
func (s *Namespace) Delete(key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	return s.parent.Delete(k)
}

// Keys implements Store.
func (s *Namespace) Keys(prefix string) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	keys, err := s.parent.Keys(s.prefix + prefix)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		keys[i] = strings.TrimPrefix(k, s.prefix)
	}
	return keys, nil
}

// Scan implements Scanner, in one read of the parent where it is a
// Scanner.
func (s *Namespace) Scan(prefix string) (map[string][]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	recs, err := Scan(s.parent, s.prefix+prefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(recs))
	for k, v := range recs {
		out[strings.TrimPrefix(k, s.prefix)] = v
	}
	return out, nil
}

// Close ends the view; the parent stays open.
func (s *Namespace) Close() error {
	s.closed.Store(true)
	return nil
}
