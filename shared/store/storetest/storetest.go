// Package storetest is the conformance suite that every store.Store
// implementation must pass. An implementation's test calls Run, and
// RunPersistent too if its records outlive Close.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"ddt/shared/store"
)

// Run checks the behaviour every Store shares. open must return a new,
// empty store each time it is called; Run closes the stores it opens, and
// open may register cleanups with t for anything else.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	RunLimited(t, store.MaxKeySize, open)
}

// RunLimited is Run for a store whose keys may be at most maxKey bytes (a
// store.Namespace leaves room for its prefix).
func RunLimited(t *testing.T, maxKey int, open func(t *testing.T) store.Store) {
	t.Helper()
	limit := limits{maxKey: maxKey}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"EmptyValue", testEmptyValue},
		{"MaxSizes", limit.testMaxSizes},
		{"Keys", testKeys},
		{"Scan", testScan},
		{"CopySemantics", testCopySemantics},
		{"InvalidInput", limit.testInvalidInput},
		{"Closed", testClosed},
		{"Concurrent", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

// RunPersistent checks that records survive Close and a later open. fresh
// is called once per subtest and must pick a new, empty location (a file,
// a database name) and return a function that opens the store at that
// location each time it is called.
func RunPersistent(t *testing.T, fresh func(t *testing.T) (open func() (store.Store, error))) {
	t.Helper()
	t.Run("Reopen", func(t *testing.T) {
		open := fresh(t)
		s := mustOpen(t, open)
		mustPut(t, s, "id/key", []byte("secret"))
		mustPut(t, s, "lease/a", []byte("1"))
		mustPut(t, s, "lease/b", []byte("2"))
		mustPut(t, s, "lease/a", []byte("3"))
		mustPut(t, s, "gone", []byte("x"))
		if err := s.Delete("gone"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		big := pattern(1<<20, 7)
		mustPut(t, s, "big", big)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := s.Get("id/key"); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("Get on the closed handle = %v, want ErrClosed", err)
		}

		s = mustOpen(t, open)
		mustGet(t, s, "id/key", []byte("secret"))
		mustGet(t, s, "lease/a", []byte("3"))
		mustGet(t, s, "lease/b", []byte("2"))
		mustGet(t, s, "big", big)
		if _, err := s.Get("gone"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(deleted key) after reopen = %v, want ErrNotFound", err)
		}
		mustKeys(t, s, "", "big", "id/key", "lease/a", "lease/b")

		// A second round: changes made after a reopen persist too.
		mustPut(t, s, "lease/c", []byte("4"))
		if err := s.Delete("lease/b"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		s = mustOpen(t, open)
		defer s.Close()
		mustKeys(t, s, "lease/", "lease/a", "lease/c")
		mustGet(t, s, "lease/c", []byte("4"))
	})
	t.Run("FreshIsEmpty", func(t *testing.T) {
		s := mustOpen(t, fresh(t))
		defer s.Close()
		mustKeys(t, s, "")
	})
}

func testGetMissing(t *testing.T, s store.Store) {
	v, err := s.Get("missing")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(missing) = %q, %v; want ErrNotFound", v, err)
	}
}

func testPutGet(t *testing.T, s store.Store) {
	mustPut(t, s, "a", []byte("alpha"))
	mustPut(t, s, "b", []byte{0, 1, 2, 0xff})
	mustPut(t, s, "ключ/🔑", []byte("unicode key"))
	mustGet(t, s, "a", []byte("alpha"))
	mustGet(t, s, "b", []byte{0, 1, 2, 0xff})
	mustGet(t, s, "ключ/🔑", []byte("unicode key"))
}

func testOverwrite(t *testing.T, s store.Store) {
	mustPut(t, s, "k", []byte("a much longer first value"))
	mustPut(t, s, "k", []byte("short"))
	mustGet(t, s, "k", []byte("short"))
	mustKeys(t, s, "", "k")
}

func testDelete(t *testing.T, s store.Store) {
	mustPut(t, s, "k", []byte("v"))
	mustPut(t, s, "k2", []byte("v2"))
	if err := s.Delete("k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get("k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete("k"); err != nil {
		t.Fatalf("Delete twice: %v", err)
	}
	if err := s.Delete("never"); err != nil {
		t.Fatalf("Delete(missing): %v", err)
	}
	mustGet(t, s, "k2", []byte("v2"))
	mustKeys(t, s, "", "k2")
}

func testEmptyValue(t *testing.T, s store.Store) {
	mustPut(t, s, "nil", nil)
	mustPut(t, s, "empty", []byte{})
	mustGet(t, s, "nil", nil)
	mustGet(t, s, "empty", nil)
	mustKeys(t, s, "", "empty", "nil")
}

// limits are the sizes a store under test accepts.
type limits struct{ maxKey int }

func (l limits) testMaxSizes(t *testing.T, s store.Store) {
	key := strings.Repeat("k", l.maxKey)
	mustPut(t, s, key, []byte("longest key"))
	mustGet(t, s, key, []byte("longest key"))
	big := pattern(store.MaxValueSize, 3)
	mustPut(t, s, "big", big)
	mustGet(t, s, "big", big)
}

func testKeys(t *testing.T, s store.Store) {
	mustKeys(t, s, "")
	// Inserted out of order; includes keys whose byte order differs from
	// UTF-16 order (U+FFFD sorts before U+1F600 in UTF-8, after it in UTF-16).
	for _, k := range []string{"lease/b", "id", "lease/a", "lease", "leases", "lease/\U0001F600", "lease/\uFFFD", "lease/é", "z"} {
		mustPut(t, s, k, []byte(k))
	}
	mustKeys(t, s, "", "id", "lease", "lease/a", "lease/b", "lease/é", "lease/\uFFFD", "lease/\U0001F600", "leases", "z")
	mustKeys(t, s, "lease/", "lease/a", "lease/b", "lease/é", "lease/\uFFFD", "lease/\U0001F600")
	mustKeys(t, s, "lease", "lease", "lease/a", "lease/b", "lease/é", "lease/\uFFFD", "lease/\U0001F600", "leases")
	mustKeys(t, s, "lease/a", "lease/a")
	mustKeys(t, s, "nothing")
	mustKeys(t, s, "zz")
	// A prefix is a byte prefix, even when it cuts a character in two.
	mustKeys(t, s, "lease/\xc3", "lease/é")
}

// testScan: store.Scan (the store's own Scan where it has one) returns
// exactly the records under a prefix, with their values.
func testScan(t *testing.T, s store.Store) {
	keys := []string{"lease/b", "id", "lease/a", "lease", "leases", "lease/\U0001F600", "lease/\uFFFD", "lease/é", "z"}
	for _, k := range keys {
		mustPut(t, s, k, []byte("v:"+k))
	}
	for _, prefix := range []string{"", "lease/", "lease", "lease/a", "nothing", "zz", "lease/\xc3"} {
		got, err := store.Scan(s, prefix)
		if err != nil {
			t.Fatalf("Scan(%q): %v", prefix, err)
		}
		want := 0
		for _, k := range keys {
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			want++
			if v, ok := got[k]; !ok || string(v) != "v:"+k {
				t.Errorf("Scan(%q)[%q] = %q, %v; want %q", prefix, k, v, ok, "v:"+k)
			}
		}
		if len(got) != want {
			t.Errorf("Scan(%q) returned %d records, want %d: %q", prefix, len(got), want, slices.Sorted(maps.Keys(got)))
		}
	}
}

func testCopySemantics(t *testing.T, s store.Store) {
	in := []byte("original")
	mustPut(t, s, "k", in)
	copy(in, "mutated!")
	mustGet(t, s, "k", []byte("original"))

	out, err := s.Get("k")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	copy(out, "mutated!")
	mustGet(t, s, "k", []byte("original"))

	keys, err := s.Keys("")
	if err != nil {
		t.Fatalf("Keys: %v", err)
	}
	keys[0] = "changed"
	mustKeys(t, s, "", "k")
}

func (l limits) testInvalidInput(t *testing.T, s store.Store) {
	bad := []string{"", strings.Repeat("k", l.maxKey+1), "bad\xffutf8"}
	for _, key := range bad {
		name := key
		if len(name) > 20 {
			name = name[:20] + "…"
		}
		if _, err := s.Get(key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", name, err)
		}
		if err := s.Put(key, []byte("v")); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", name, err)
		}
		if err := s.Delete(key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", name, err)
		}
	}
	err := s.Put("big", make([]byte, store.MaxValueSize+1))
	if !errors.Is(err, store.ErrValueTooLarge) {
		t.Errorf("Put(too large) = %v, want ErrValueTooLarge", err)
	}
	// Rejected writes leave nothing behind.
	mustKeys(t, s, "")
}

func testClosed(t *testing.T, s store.Store) {
	mustPut(t, s, "k", []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Get("k"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close = %v, want ErrClosed", err)
	}
	if err := s.Put("k", []byte("v")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	if err := s.Delete("k"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Delete after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Keys(""); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Keys after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// testConcurrent has writers on their own keys and one shared key, with
// readers listing and reading alongside; run it under -race.
func testConcurrent(t *testing.T, s store.Store) {
	const workers, rounds = 4, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers*2)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				key := fmt.Sprintf("w%d/%02d", w, i)
				val := []byte(key)
				if err := s.Put(key, val); err != nil {
					errc <- err
					return
				}
				if err := s.Put("shared", val); err != nil {
					errc <- err
					return
				}
				got, err := s.Get(key)
				if err != nil || !bytes.Equal(got, val) {
					errc <- fmt.Errorf("Get(%s) = %q, %v", key, got, err)
					return
				}
			}
		})
		wg.Go(func() {
			for range rounds {
				if _, err := s.Keys(fmt.Sprintf("w%d/", w)); err != nil {
					errc <- err
					return
				}
				if v, err := s.Get("shared"); err != nil && !errors.Is(err, store.ErrNotFound) {
					errc <- err
					return
				} else if err == nil && !bytes.HasPrefix(v, []byte("w")) {
					errc <- fmt.Errorf("Get(shared) = %q: torn value", v)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for w := range workers {
		keys, err := s.Keys(fmt.Sprintf("w%d/", w))
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		if len(keys) != rounds {
			t.Errorf("worker %d: %d keys, want %d", w, len(keys), rounds)
		}
	}
}

func mustOpen(t *testing.T, open func() (store.Store, error)) store.Store {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func mustPut(t *testing.T, s store.Store, key string, value []byte) {
	t.Helper()
	if err := s.Put(key, value); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, s store.Store, key string, want []byte) {
	t.Helper()
	got, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %s, want %s", key, brief(got), brief(want))
	}
}

func mustKeys(t *testing.T, s store.Store, prefix string, want ...string) {
	t.Helper()
	got, err := s.Keys(prefix)
	if err != nil {
		t.Fatalf("Keys(%q): %v", prefix, err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Keys(%q) = %q, want %q", prefix, got, want)
	}
}

// pattern returns n bytes that differ from other seeds' and don't repeat
// on short periods, so a truncated or shifted value is caught.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func brief(b []byte) string {
	if len(b) <= 32 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q… (%d bytes)", b[:32], len(b))
}
