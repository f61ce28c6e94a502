package store

import (
	"slices"
	"strings"
	"sync"
)

var _ Store = (*Memory)(nil)

// Memory is a Store held in a map. It keeps nothing across processes and is
// meant for tests and for nodes that need no persistence. The zero value is
// not usable; call NewMemory.
type Memory struct {
	mu sync.RWMutex
	m  map[string][]byte // nil once closed
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory {
	return &Memory{m: make(map[string][]byte)}
}

// Get implements Store.
func (s *Memory) Get(key string) ([]byte, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return nil, ErrClosed
	}
	v, ok := s.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(v), nil
}

// Put implements Store.
func (s *Memory) Put(key string, value []byte) error {
	if err := checkPut(key, value); err != nil {
		return err
	}
	v := append([]byte{}, value...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return ErrClosed
	}
	s.m[key] = v
	return nil
}

// Delete implements Store.
func (s *Memory) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		return ErrClosed
	}
	delete(s.m, key)
	return nil
}

// Keys implements Store.
func (s *Memory) Keys(prefix string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.m == nil {
		return nil, ErrClosed
	}
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Close drops every record; later calls other than Close return ErrClosed.
func (s *Memory) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = nil
	return nil
}
