package store_test

import (
	"errors"
	"slices"
	"testing"

	"ddt/shared/store"
	"ddt/shared/store/storetest"
)

func TestNamespace(t *testing.T) {
	storetest.RunLimited(t, store.MaxKeySize-len("names/"), func(*testing.T) store.Store {
		ns, err := store.NewNamespace(store.NewMemory(), "names/")
		if err != nil {
			t.Fatal(err)
		}
		return ns
	})
}

func TestNamespacesDoNotCollide(t *testing.T) {
	root := store.NewMemory()
	a, _ := store.NewNamespace(root, "a/")
	b, _ := store.NewNamespace(root, "b/")
	if err := a.Put("record", []byte("a's")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get("record"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b sees a's record: %v", err)
	}
	if v, err := root.Get("a/record"); err != nil || string(v) != "a's" {
		t.Fatalf("root holds %q, %v", v, err)
	}
	if keys, _ := root.Keys(""); !slices.Equal(keys, []string{"a/record"}) {
		t.Fatalf("root keys %v", keys)
	}
	a.Close()
	if _, err := root.Get("a/record"); err != nil {
		t.Fatalf("closing a namespace closed its parent: %v", err)
	}
	if _, err := store.NewNamespace(root, ""); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("empty prefix: %v", err)
	}
}
