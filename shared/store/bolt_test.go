//go:build !js

package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"ddt/shared/store"
	"ddt/shared/store/storetest"
)

func openBolt(t *testing.T, path string) *store.Bolt {
	t.Helper()
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	return s
}

func TestBolt(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "kv.db"))
	})
}

func TestBoltPersistent(t *testing.T) {
	storetest.RunPersistent(t, func(t *testing.T) func() (store.Store, error) {
		// A nested path also checks that OpenBolt creates parent folders.
		path := filepath.Join(t.TempDir(), "a", "b", "kv.db")
		return func() (store.Store, error) { return store.OpenBolt(path) }
	})
}

func TestBoltSecondOpenerFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	s := openBolt(t, path)
	defer s.Close()

	start := time.Now()
	s2, err := store.OpenBolt(path)
	if err == nil {
		s2.Close()
		t.Fatal("second OpenBolt succeeded while the first is open")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second OpenBolt = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second OpenBolt took %v", d)
	}

	// Once the first lets go, the file opens again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openBolt(t, path).Close()
}

func TestBoltOpenError(t *testing.T) {
	// A directory where the file should be cannot be opened.
	dir := t.TempDir()
	if _, err := store.OpenBolt(dir); err == nil {
		t.Fatal("OpenBolt(directory) succeeded")
	}
}

// TestBoltConcurrent hammers one Bolt from many goroutines: writers that
// overwrite and delete their own keys and a shared one, readers that check
// every value they see is whole, listers that check the listing is sorted
// and consistent, and finally a Close racing with all of them. Run it with
// -race.
func TestBoltConcurrent(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "kv.db"))
	defer s.Close()

	const writers, rounds = 6, 60
	// value is self-describing: a reader can tell a whole value from a
	// torn or mixed one without knowing which write it saw.
	value := func(w, i int) []byte {
		return bytes.Repeat([]byte(fmt.Sprintf("w%d-%d;", w, i)), 50+i)
	}
	whole := func(v []byte) bool {
		var w, i int
		if _, err := fmt.Sscanf(string(v), "w%d-%d;", &w, &i); err != nil {
			return false
		}
		return bytes.Equal(v, value(w, i))
	}

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		stop = make(chan struct{})
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var writersWG sync.WaitGroup
	for w := range writers {
		writersWG.Go(func() {
			for i := range rounds {
				key := fmt.Sprintf("w%d/%03d", w, i)
				for _, k := range []string{key, "shared", fmt.Sprintf("w%d/last", w)} {
					if err := s.Put(k, value(w, i)); err != nil {
						fail(fmt.Errorf("Put(%s): %w", k, err))
						return
					}
				}
				if i%3 == 0 { // delete every third key again
					if err := s.Delete(key); err != nil {
						fail(fmt.Errorf("Delete(%s): %w", key, err))
						return
					}
				}
			}
		})
	}
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if v, err := s.Get("shared"); err == nil && !whole(v) {
					fail(fmt.Errorf("Get(shared) = torn value %.40q", v))
				} else if err != nil && !errors.Is(err, store.ErrNotFound) {
					fail(fmt.Errorf("Get(shared): %w", err))
				}
				keys, err := s.Keys("w")
				if err != nil {
					fail(fmt.Errorf("Keys: %w", err))
					return
				}
				for i := 1; i < len(keys); i++ {
					if keys[i-1] >= keys[i] {
						fail(fmt.Errorf("Keys not sorted: %q before %q", keys[i-1], keys[i]))
						return
					}
				}
			}
		})
	}
	writersWG.Wait()
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Every writer's surviving keys are exactly the ones it did not delete,
	// each with its own whole value.
	for w := range writers {
		keys, err := s.Keys(fmt.Sprintf("w%d/", w))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range rounds {
			if i%3 != 0 {
				want = append(want, fmt.Sprintf("w%d/%03d", w, i))
			}
		}
		want = append(want, fmt.Sprintf("w%d/last", w))
		if fmt.Sprint(keys) != fmt.Sprint(want) {
			t.Fatalf("writer %d keys = %v, want %v", w, keys, want)
		}
		for i := range rounds {
			if i%3 == 0 {
				continue
			}
			got, err := s.Get(fmt.Sprintf("w%d/%03d", w, i))
			if err != nil || !bytes.Equal(got, value(w, i)) {
				t.Fatalf("writer %d round %d: got %.40q, %v", w, i, got, err)
			}
		}
		got, err := s.Get(fmt.Sprintf("w%d/last", w))
		if err != nil || !bytes.Equal(got, value(w, rounds-1)) {
			t.Fatalf("writer %d last: got %.40q, %v", w, got, err)
		}
	}
	if v, err := s.Get("shared"); err != nil || !whole(v) {
		t.Fatalf("Get(shared) = %.40q, %v", v, err)
	}
}

// TestBoltCloseRace closes the store while goroutines use it: every call
// must either succeed or return ErrClosed, and none may crash or hang.
func TestBoltCloseRace(t *testing.T) {
	for range 5 {
		s := openBolt(t, filepath.Join(t.TempDir(), "kv.db"))
		var wg sync.WaitGroup
		errc := make(chan error, 64)
		started := make(chan struct{}, 4)
		for g := range 4 {
			wg.Go(func() {
				started <- struct{}{}
				for i := 0; ; i++ {
					key := fmt.Sprintf("g%d/%d", g, i%10)
					var err error
					switch i % 4 {
					case 0:
						err = s.Put(key, []byte(key))
					case 1:
						_, err = s.Get(key)
					case 2:
						_, err = s.Keys("g")
					case 3:
						err = s.Delete(key)
					}
					if errors.Is(err, store.ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						errc <- err
						return
					}
				}
			})
		}
		for range 4 {
			<-started
		}
		time.Sleep(5 * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Error(err)
		}
	}
}
