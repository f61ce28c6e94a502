package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"ddt/shared/chunk"
	"ddt/shared/store"
)

// RunChunks checks the behaviour every store.Chunks shares. open must
// return a new, empty store each time it is called; RunChunks closes the
// stores it opens.
func RunChunks(t *testing.T, open func(t *testing.T) store.Chunks) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, store.Chunks)
	}{
		{"PutRead", testChunksPutRead},
		{"ReadAtRanges", testChunksReadAt},
		{"Missing", testChunksMissing},
		{"CorruptRefused", testChunksCorrupt},
		{"IdempotentPut", testChunksIdempotent},
		{"Delete", testChunksDelete},
		{"ListSizes", testChunksList},
		{"CopySemantics", testChunksCopy},
		{"Concurrent", testChunksConcurrent},
		{"Closed", testChunksClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			tc.fn(t, s)
		})
	}
}

// RunChunksPersistent checks that chunks survive Close and a later open.
// fresh is called once per subtest and must pick a new, empty location
// and return a function that opens the store there each time it is
// called.
func RunChunksPersistent(t *testing.T, fresh func(t *testing.T) (open func() (store.Chunks, error))) {
	t.Helper()
	t.Run("Reopen", func(t *testing.T) {
		open := fresh(t)
		s := mustOpenChunks(t, open)
		a, ha := testChunk(chunk.MaxSize, 1)
		b, hb := testChunk(1000, 2)
		c, hc := testChunk(77, 3)
		mustPutChunk(t, s, ha, a)
		mustPutChunk(t, s, hb, b)
		mustPutChunk(t, s, hc, c)
		if err := s.Delete(hc); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		s = mustOpenChunks(t, open)
		mustReadChunk(t, s, ha, a)
		mustReadChunk(t, s, hb, b)
		mustList(t, s, map[chunk.Hash]int{ha: len(a), hb: len(b)})
		if _, err := s.Size(hc); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Size(deleted) after reopen = %v, want ErrNotFound", err)
		}
		// Changes after a reopen persist too.
		mustPutChunk(t, s, hc, c)
		if err := s.Delete(ha); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = mustOpenChunks(t, open)
		defer s.Close()
		mustList(t, s, map[chunk.Hash]int{hb: len(b), hc: len(c)})
		mustReadChunk(t, s, hc, c)
	})
	t.Run("FreshIsEmpty", func(t *testing.T) {
		s := mustOpenChunks(t, fresh(t))
		defer s.Close()
		mustList(t, s, map[chunk.Hash]int{})
	})
}

func testChunksPutRead(t *testing.T, s store.Chunks) {
	for i, n := range []int{0, 1, 1000, 64 << 10, chunk.MaxSize} {
		data, h := testChunk(n, byte(10+i))
		mustPutChunk(t, s, h, data)
		mustReadChunk(t, s, h, data)
		if got, err := s.Size(h); err != nil || got != n {
			t.Fatalf("Size(%d-byte chunk) = %d, %v", n, got, err)
		}
	}
}

func testChunksReadAt(t *testing.T, s store.Chunks) {
	const n = 300 << 10
	data, h := testChunk(n, 5)
	mustPutChunk(t, s, h, data)
	for _, tc := range []struct {
		off, len, want int
		eof            bool
	}{
		{0, n, n, false},
		{0, 10, 10, false},
		{12345, 70000, 70000, false},
		{n - 100, 100, 100, false},
		{n - 100, 200, 100, true}, // short: what remains, and io.EOF
		{n, 10, 0, true},
		{n + 5, 10, 0, true},
		{100, 0, 0, false},
	} {
		p := make([]byte, tc.len)
		got, err := s.ReadAt(h, p, int64(tc.off))
		if got != tc.want {
			t.Errorf("ReadAt(off %d, len %d) = %d bytes, want %d (err %v)", tc.off, tc.len, got, tc.want, err)
			continue
		}
		if tc.eof && err != io.EOF {
			t.Errorf("ReadAt(off %d, len %d) err = %v, want io.EOF", tc.off, tc.len, err)
		}
		if !tc.eof && err != nil {
			t.Errorf("ReadAt(off %d, len %d) err = %v", tc.off, tc.len, err)
		}
		if tc.want > 0 && !bytes.Equal(p[:got], data[tc.off:tc.off+got]) {
			t.Errorf("ReadAt(off %d, len %d): wrong bytes", tc.off, tc.len)
		}
	}
	// Reads alternating between two chunks (a read-ahead cache must not
	// mix them up).
	data2, h2 := testChunk(n, 6)
	mustPutChunk(t, s, h2, data2)
	for i := range 6 {
		hh, want := h, data
		if i%2 == 1 {
			hh, want = h2, data2
		}
		off := i * 1000
		p := make([]byte, 500)
		if _, err := s.ReadAt(hh, p, int64(off)); err != nil || !bytes.Equal(p, want[off:off+500]) {
			t.Fatalf("alternating read %d: %v", i, err)
		}
	}
	if _, err := s.ReadAt(h, make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
}

func testChunksMissing(t *testing.T, s store.Chunks) {
	_, h := testChunk(10, 1)
	if _, err := s.ReadAt(h, make([]byte, 4), 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadAt(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Size(h); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Size(missing) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(h); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
}

func testChunksCorrupt(t *testing.T, s store.Chunks) {
	data, h := testChunk(100<<10, 1)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0x40
	if err := s.Put(h, bad); !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("Put(corrupt) = %v, want chunk.ErrCorrupt", err)
	}
	if err := s.Put(h, data[:len(data)-1]); !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("Put(truncated) = %v, want chunk.ErrCorrupt", err)
	}
	big := make([]byte, chunk.MaxSize+1)
	if err := s.Put(chunk.SumGo(big), big); !errors.Is(err, chunk.ErrTooLarge) {
		t.Fatalf("Put(MaxSize+1) = %v, want chunk.ErrTooLarge", err)
	}
	if _, err := s.Size(h); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Size after a refused put = %v, want ErrNotFound", err)
	}
	mustList(t, s, map[chunk.Hash]int{})
	// The right bytes are still taken, and corrupt ones for a chunk held
	// do not touch it.
	mustPutChunk(t, s, h, data)
	if err := s.Put(h, bad); !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("Put(corrupt) over a held chunk = %v", err)
	}
	mustReadChunk(t, s, h, data)
}

func testChunksIdempotent(t *testing.T, s store.Chunks) {
	data, h := testChunk(5000, 1)
	mustPutChunk(t, s, h, data)
	mustPutChunk(t, s, h, data)
	mustList(t, s, map[chunk.Hash]int{h: len(data)})
	mustReadChunk(t, s, h, data)
}

func testChunksDelete(t *testing.T, s store.Chunks) {
	a, ha := testChunk(3000, 1)
	b, hb := testChunk(4000, 2)
	mustPutChunk(t, s, ha, a)
	mustPutChunk(t, s, hb, b)
	mustReadChunk(t, s, ha, a) // a read-ahead cache now holds it
	if err := s.Delete(ha); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.ReadAt(ha, make([]byte, 10), 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReadAt after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ha); err != nil {
		t.Fatalf("Delete twice: %v", err)
	}
	mustList(t, s, map[chunk.Hash]int{hb: len(b)})
	mustReadChunk(t, s, hb, b)
	// Put back after a delete.
	mustPutChunk(t, s, ha, a)
	mustReadChunk(t, s, ha, a)
}

func testChunksList(t *testing.T, s store.Chunks) {
	mustList(t, s, map[chunk.Hash]int{})
	want := map[chunk.Hash]int{}
	for i := range 20 {
		data, h := testChunk(i*517, byte(i))
		mustPutChunk(t, s, h, data)
		want[h] = len(data)
	}
	mustList(t, s, want)
	got, _ := s.List()
	for h := range got {
		delete(got, h) // the caller owns the map
	}
	mustList(t, s, want)
}

func testChunksCopy(t *testing.T, s store.Chunks) {
	data, h := testChunk(2000, 1)
	in := bytes.Clone(data)
	mustPutChunk(t, s, h, in)
	for i := range in {
		in[i] = 0
	}
	mustReadChunk(t, s, h, data)
	p := make([]byte, len(data))
	if _, err := s.ReadAt(h, p, 0); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] = 1
	}
	mustReadChunk(t, s, h, data)
}

// testChunksConcurrent has writers, readers, listers and deleters at once;
// run it under -race.
func testChunksConcurrent(t *testing.T, s store.Chunks) {
	const workers, rounds = 4, 8
	shared, hs := testChunk(50<<10, 99)
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				data, h := testChunk(10<<10+i, byte(w*rounds+i))
				if err := s.Put(h, data); err != nil {
					errc <- err
					return
				}
				if err := s.Put(hs, shared); err != nil {
					errc <- err
					return
				}
				p := make([]byte, len(data))
				if n, err := s.ReadAt(h, p, 0); err != nil || n != len(data) || !bytes.Equal(p, data) {
					errc <- fmt.Errorf("ReadAt(own chunk) = %d, %v", n, err)
					return
				}
				q := make([]byte, 1000)
				if _, err := s.ReadAt(hs, q, 7); err != nil || !bytes.Equal(q, shared[7:1007]) {
					errc <- fmt.Errorf("ReadAt(shared chunk): %v", err)
					return
				}
				if i%2 == 1 {
					if err := s.Delete(h); err != nil {
						errc <- err
						return
					}
				}
			}
		})
		wg.Go(func() {
			for range rounds {
				if _, err := s.List(); err != nil {
					errc <- err
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
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if want := workers*rounds/2 + 1; len(list) != want {
		t.Errorf("%d chunks after the concurrent round, want %d", len(list), want)
	}
}

func testChunksClosed(t *testing.T, s store.Chunks) {
	data, h := testChunk(100, 1)
	mustPutChunk(t, s, h, data)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Put(h, data); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Put after Close = %v, want ErrClosed", err)
	}
	if _, err := s.ReadAt(h, make([]byte, 10), 0); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ReadAt after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Size(h); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Size after Close = %v, want ErrClosed", err)
	}
	if err := s.Delete(h); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Delete after Close = %v, want ErrClosed", err)
	}
	if _, err := s.List(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("List after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// testChunk is n bytes unique to seed and their hash.
func testChunk(n int, seed byte) ([]byte, chunk.Hash) {
	b := pattern(n, seed)
	return b, chunk.SumGo(b)
}

func mustOpenChunks(t *testing.T, open func() (store.Chunks, error)) store.Chunks {
	t.Helper()
	s, err := open()
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func mustPutChunk(t *testing.T, s store.Chunks, h chunk.Hash, data []byte) {
	t.Helper()
	if err := s.Put(h, data); err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", h.Short(), len(data), err)
	}
}

func mustReadChunk(t *testing.T, s store.Chunks, h chunk.Hash, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	n, err := s.ReadAt(h, got, 0)
	if err != nil || n != len(want) {
		t.Fatalf("ReadAt(%s) = %d, %v; want %d bytes", h.Short(), n, err, len(want))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("ReadAt(%s): wrong bytes", h.Short())
	}
	// One more byte is io.EOF with nothing read.
	if n, err := s.ReadAt(h, make([]byte, 1), int64(len(want))); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt(%s) past the end = %d, %v; want 0, io.EOF", h.Short(), n, err)
	}
}

func mustList(t *testing.T, s store.Chunks, want map[chunk.Hash]int) {
	t.Helper()
	got, err := s.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("List = %d chunks, want %d", len(got), len(want))
	}
	for h, n := range want {
		if g, ok := got[h]; !ok || g != n {
			t.Fatalf("List[%s] = %d, %v; want %d", h.Short(), g, ok, n)
		}
	}
}
