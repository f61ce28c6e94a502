package store_test

import (
	"errors"
	"fmt"

	"ddt/shared/store"
)

func Example() {
	s := store.NewMemory() // or OpenBolt natively, OpenIndexedDB in a browser
	defer s.Close()

	s.Put("lease/alice", []byte("until 12:00"))
	s.Put("lease/bob", []byte("until 13:00"))
	s.Put("identity", []byte("key bytes"))

	v, _ := s.Get("lease/bob")
	fmt.Printf("%s\n", v)

	keys, _ := s.Keys("lease/")
	fmt.Println(keys)

	s.Delete("lease/alice")
	_, err := s.Get("lease/alice")
	fmt.Println(errors.Is(err, store.ErrNotFound))
	// Output:
	// until 13:00
	// [lease/alice lease/bob]
	// true
}
