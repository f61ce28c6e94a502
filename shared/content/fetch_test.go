package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"
)

// An id no node holds is not-found, quickly and clearly.
func TestFetchNotFound(t *testing.T) {
	ts := newSwarm(t, 3, nil)
	missing := chunk.SumGo([]byte("nobody has this"))
	for what, err := range map[string]error{
		"fetch": func() error { _, err := ts.svc[1].Fetch(testCtx(t), missing, GetOptions{}); return err }(),
		"stat":  func() error { _, err := ts.svc[1].Stat(testCtx(t), missing); return err }(),
		"pin":   ts.svc[1].Pin(testCtx(t), missing),
		"open":  func() error { _, err := ts.svc[1].Open(testCtx(t), missing); return err }(),
	} {
		if code(err) != CodeNotFound || !bytes.Contains([]byte(err.Error()), []byte(missing.String())) {
			t.Errorf("%s of an id nobody holds: %v (code %s); want %s naming the id", what, err, code(err), CodeNotFound)
		}
	}
	if _, err := ts.svc[1].Fetch(testCtx(t), chunk.Hash{}, GetOptions{}); code(err) != "invalid" {
		t.Errorf("fetch of the zero id: %v", err)
	}
}

// A download that does not fit the pledge fails with quota, and what
// the node pinned stays, whole and readable.
func TestFetchQuota(t *testing.T) {
	ts := newSwarm(t, 3, func(i int) Config {
		switch i {
		case 1:
			return Config{Pledge: 6 << 20, Policy: noReplicas}
		case 2:
			return Config{Pledge: -1, Policy: noReplicas} // holds nothing for anyone
		}
		return Config{}
	})
	a, b := ts.svc[0], ts.svc[1]
	ctx := testCtx(t)
	own := testBytes(9<<20, 1) // more than b's pledge: its own content does not count
	ownID, err := b.Put(ctx, bytes.NewReader(own), -1, PutOptions{Name: "mine"})
	if err != nil {
		t.Fatalf("put on the small node: %v", err)
	}
	big := testBytes(12<<20, 2)
	id, err := a.Put(ctx, bytes.NewReader(big), int64(len(big)), PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Fetch(ctx, id, GetOptions{})
	if code(err) != CodeQuota {
		t.Fatalf("a download beyond the pledge: %v (code %s); want %s", err, code(err), CodeQuota)
	}
	if got := readAll(t, b, ownID); !bytes.Equal(got, own) {
		t.Fatal("the node's own content was damaged by the failed download")
	}
	if u := b.Storage(); u.UsedBytes-u.PinnedBytes > 6<<20 {
		t.Fatalf("usage %+v beyond the pledge", u)
	}
	// A node that can keep nothing can still say what the content is.
	if st, err := ts.svc[2].Stat(ctx, id); err != nil || st.Size != int64(len(big)) || st.Local {
		t.Fatalf("stat on a node with no pledge: %+v %v", st, err)
	}
	// Pinned, it fits: own content is not bound by the pledge.
	if _, err := b.Fetch(ctx, id, GetOptions{Pin: true}); err != nil {
		t.Fatalf("a pinned download: %v", err)
	}
	if got := readAll(t, b, id); !bytes.Equal(got, big) {
		t.Fatal("the pinned download is not what was put")
	}
}

// Cancelling the caller's ctx ends the download with aborted, and its
// transfers with it (the leak check at the end of the tests sees none).
func TestFetchAborted(t *testing.T) {
	ts := newSwarm(t, 2, nil)
	data := testBytes(24<<20, 3)
	id, err := ts.svc[0].Put(testCtx(t), bytes.NewReader(data), -1, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	var once sync.Once
	_, err = ts.svc[1].Fetch(ctx, id, GetOptions{OnChunk: func(int) { once.Do(cancel) }})
	if code(err) != CodeAborted || !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled download: %v (code %s); want %s", err, code(err), CodeAborted)
	}
	if st, err := ts.svc[1].Stat(testCtx(t), id); err != nil || st.Local {
		t.Fatalf("after the abort: %+v %v", st, err)
	}
}

// Publish makes content of chunks already in the library (a browser's
// Blob, stored by the platform), and what it names can be fetched
// elsewhere; chunks the library does not hold are refused.
func TestPublish(t *testing.T) {
	ts := newSwarm(t, 2, nil)
	a, b := ts.svc[0], ts.svc[1]
	data := testBytes(chunk.MaxSize+10, 4)
	var hs []chunk.Hash
	for off := 0; off < len(data); off += chunk.MaxSize {
		part := data[off:min(off+chunk.MaxSize, len(data))]
		h := chunk.SumGo(part)
		if err := a.lib.Chunks().Put(h, part); err != nil {
			t.Fatal(err)
		}
		if err := a.lib.Adopt(h, len(part), Cache, "text/plain"); err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	id, err := a.Publish(testCtx(t), int64(len(data)), hs, PutOptions{Name: "p.txt", Type: "text/plain"})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if !a.lib.Pinned(id) {
		t.Fatal("published content is not pinned")
	}
	if _, err := b.Fetch(testCtx(t), id, GetOptions{}); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if got := readAll(t, b, id); !bytes.Equal(got, data) {
		t.Fatal("the fetched content is not what was published")
	}
	if _, err := a.Publish(testCtx(t), 5, []chunk.Hash{chunk.SumGo([]byte("other"))}, PutOptions{}); code(err) != "invalid" {
		t.Fatalf("publishing a chunk not held: %v", err)
	}
	if _, err := a.Publish(testCtx(t), 3*chunk.MaxSize, hs, PutOptions{}); code(err) != "invalid" {
		t.Fatalf("publishing a size the chunks do not make: %v", err)
	}
}

// Put refuses a size that the reader contradicts, and Open seeks.
func TestPutSizeAndSeek(t *testing.T) {
	ts := newSwarm(t, 1, nil)
	s := ts.svc[0]
	data := testBytes(chunk.MaxSize+100, 5)
	if _, err := s.Put(testCtx(t), bytes.NewReader(data), int64(len(data))+1, PutOptions{}); code(err) != "invalid" {
		t.Fatalf("put with the wrong size: %v", err)
	}
	id, err := s.Put(testCtx(t), bytes.NewReader(data), -1, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Open(testCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	at := int64(chunk.MaxSize - 50)
	if _, err := r.Seek(at, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data[at:]) {
		t.Fatalf("read across the chunk boundary after a seek: %d bytes, %v", len(got), err)
	}
}

// synthChunks is a store whose chunks are computed, not kept: chunk i is
// a pattern of its index, so a node can serve hundreds of MiB without
// holding them. Put keeps small chunks (the manifest) in memory.
type synthChunks struct {
	mu    sync.Mutex
	index map[chunk.Hash]int
	size  map[chunk.Hash]int
	small map[chunk.Hash][]byte
}

func synthByte(i int, off int64) byte { return byte(int64(i)*131 + off*7 + off>>11) }

func newSynth(count int) (*synthChunks, []chunk.Hash) {
	s := &synthChunks{index: map[chunk.Hash]int{}, size: map[chunk.Hash]int{}, small: map[chunk.Hash][]byte{}}
	buf := make([]byte, chunk.MaxSize)
	var hs []chunk.Hash
	for i := range count {
		for j := range buf {
			buf[j] = synthByte(i, int64(j))
		}
		h := chunk.SumGo(buf)
		s.index[h], s.size[h] = i, len(buf)
		hs = append(hs, h)
	}
	return s, hs
}

// view is another store of the same computed chunks (its small ones its
// own), for another node.
func (s *synthChunks) view() *synthChunks {
	v := &synthChunks{index: s.index, size: map[chunk.Hash]int{}, small: map[chunk.Hash][]byte{}}
	for h, n := range s.size {
		v.size[h] = n
	}
	return v
}

func (s *synthChunks) Put(h chunk.Hash, data []byte) error {
	if err := chunk.Verify(h, data, -1); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.size[h]; !ok {
		s.small[h] = bytes.Clone(data)
		s.size[h] = len(data)
	}
	return nil
}

func (s *synthChunks) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	s.mu.Lock()
	i, gen := s.index[h]
	small, kept := s.small[h]
	n := s.size[h]
	s.mu.Unlock()
	switch {
	case kept:
		return bytes.NewReader(small).ReadAt(p, off)
	case !gen:
		return 0, store.ErrNotFound
	}
	k := 0
	for ; k < len(p) && off+int64(k) < int64(n); k++ {
		p[k] = synthByte(i, off+int64(k))
	}
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (s *synthChunks) Size(h chunk.Hash) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.size[h]
	if !ok {
		return 0, store.ErrNotFound
	}
	return n, nil
}

func (s *synthChunks) Delete(h chunk.Hash) error { return nil }
func (s *synthChunks) Close() error              { return nil }
func (s *synthChunks) List() (map[chunk.Hash]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[chunk.Hash]int{}
	for h, n := range s.size {
		out[h] = n
	}
	return out, nil
}

// sinkChunks checks what it is given and keeps only its size: a
// downloader whose store is not in its heap (as IndexedDB and files are
// not).
type sinkChunks struct {
	mu   sync.Mutex
	size map[chunk.Hash]int
}

func (s *sinkChunks) Put(h chunk.Hash, data []byte) error {
	if err := chunk.Verify(h, data, -1); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.size[h] = len(data)
	return nil
}
func (s *sinkChunks) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	return 0, store.ErrNotFound
}
func (s *sinkChunks) Size(h chunk.Hash) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.size[h]
	if !ok {
		return 0, store.ErrNotFound
	}
	return n, nil
}
func (s *sinkChunks) Delete(h chunk.Hash) error { return nil }
func (s *sinkChunks) Close() error              { return nil }
func (s *sinkChunks) List() (map[chunk.Hash]int, error) {
	return map[chunk.Hash]int{}, nil
}

// A 256 MiB download from three providers keeps the downloader's live
// heap flat: its chunk buffers (MaxInFlight × 4 MiB), not the content —
// what a user notices as a tab that does not crash. The heap is read
// after a collection at every eighth chunk.
func TestFetchHeapFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB through the in-memory transport")
	}
	const count = 64 // × 4 MiB
	const providers = 3
	src, hs := newSynth(count)
	sink := &sinkChunks{size: map[chunk.Hash]int{}}
	// No node takes replicas of it (their policy holds no such type for
	// others): the heap, which all nodes of the test share, is the
	// download's alone.
	none := Policy{Types: []string{"x-none/"}}
	ts := newSwarm(t, providers+1, func(i int) Config {
		if i < providers {
			// Its chunks are Cache until Publish pins them.
			return Config{Chunks: src.view(), Pledge: 1 << 30, Policy: none}
		}
		return Config{Chunks: sink, Pledge: 1 << 30, Policy: none}
	})
	size := int64(count) * chunk.MaxSize
	var id chunk.Hash
	for i := range providers {
		got, err := ts.svc[i].Publish(testCtx(t), size, hs, PutOptions{Name: "big.bin"})
		if err != nil {
			t.Fatal(err)
		}
		id = got
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	n := 0
	_, err := ts.svc[providers].Fetch(testCtx(t), id, GetOptions{OnChunk: func(int) {
		if n++; n%8 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}})
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	for i, h := range hs {
		if n, err := sink.Size(h); err != nil || n != chunk.MaxSize {
			t.Fatalf("chunk %d: %d bytes stored, %v", i, n, err)
		}
	}
	const bound = 2 * MaxInFlight * chunk.MaxSize // the buffers, and as much again of everything else
	if peak < base || peak-base > bound {
		t.Fatalf("live heap rose %d MiB during a %d MiB download; want at most %d MiB", (peak-base)>>20, size>>20, bound>>20)
	}
	t.Logf("live heap rose at most %d MiB above %d MiB", (peak-base)>>20, base>>20)
}

// Cache evicted to make room is no longer announced: the node stops
// naming itself a provider of the evicted chunks and of the whole
// content they were part of.
func TestEvictedWithdrawn(t *testing.T) {
	ts := newSwarm(t, 2, func(i int) Config {
		if i == 1 {
			return Config{Pledge: 9 << 20, Policy: noReplicas}
		}
		return Config{}
	})
	a, b := ts.svc[0], ts.svc[1]
	ctx := testCtx(t)
	x, err := a.Put(ctx, bytes.NewReader(testBytes(2*chunk.MaxSize, 41)), -1, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Put(ctx, bytes.NewReader(testBytes(2*chunk.MaxSize, 42)), -1, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	announced := func(k chunk.Hash) bool {
		b.ov.mu.Lock()
		defer b.ov.mu.Unlock()
		return b.ov.announced[k.Key()] != nil
	}
	mx, err := b.Fetch(ctx, x, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, wait.Default, "x announced", func() bool { return announced(x) && announced(mx.Chunks[1]) })
	if _, err := b.Fetch(ctx, y, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	evicted := 0
	for _, h := range mx.Chunks {
		if !b.lib.Has(h) {
			evicted++
			wait.Until(t, wait.Default, "an evicted chunk withdrawn", func() bool { return !announced(h) })
		}
	}
	if evicted == 0 {
		t.Fatal("nothing of x was evicted: the test proves nothing")
	}
	wait.Until(t, wait.Default, "x withdrawn whole", func() bool { return !announced(x) || b.local(mx) })
}

// A node that has not joined yet says so, rather than that nobody holds
// the content; its own content it still reads.
func TestFetchNotAdmitted(t *testing.T) {
	s := New(Config{})
	n, err := node.New(node.Config{Relay: "http://127.0.0.1:1", Store: store.NewMemory(), Transport: transport.NewNetwork().Transport(), Capabilities: []node.Capability{s}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	data := testBytes(1000, 51)
	id, err := s.Put(testCtx(t), bytes.NewReader(data), -1, PutOptions{})
	if err != nil {
		t.Fatalf("put before admission: %v", err)
	}
	if _, err := s.Fetch(testCtx(t), id, GetOptions{}); err != nil {
		t.Fatalf("fetch of its own content: %v", err)
	}
	if got := readAll(t, s, id); !bytes.Equal(got, data) {
		t.Fatal("its own content reads back wrong")
	}
	if _, err := s.Fetch(testCtx(t), chunk.SumGo([]byte("elsewhere")), GetOptions{}); code(err) != node.CodeNotAdmitted {
		t.Fatalf("fetch before admission: %v (code %s)", err, code(err))
	}
}

// BenchmarkFetch downloads 64 MiB through the in-memory transport (its
// bulk channels with back-pressure) from 1, 2 and 4 providers: the
// service's own cost, beside the network's.
func BenchmarkFetch(b *testing.B) {
	const count = 16 // × 4 MiB
	src, hs := newSynth(count)
	for _, providers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("providers=%d", providers), func(b *testing.B) {
			none := Policy{Types: []string{"x-none/"}}
			sinks := make([]*sinkChunks, b.N)
			ts := newSwarm(b, providers+b.N, func(i int) Config {
				if i < providers {
					return Config{Chunks: src.view(), Pledge: 1 << 30, Policy: none}
				}
				sinks[i-providers] = &sinkChunks{size: map[chunk.Hash]int{}}
				return Config{Chunks: sinks[i-providers], Pledge: 1 << 30, Policy: none}
			})
			var id chunk.Hash
			for i := range providers {
				got, err := ts.svc[i].Publish(testCtx(b), count*chunk.MaxSize, hs, PutOptions{})
				if err != nil {
					b.Fatal(err)
				}
				id = got
			}
			b.SetBytes(count * chunk.MaxSize)
			b.ResetTimer()
			for i := range b.N {
				if _, err := ts.svc[providers+i].Fetch(testCtx(b), id, GetOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestChunkBuffersBounded: however many transfers start at once, at most
// MaxBuffers chunk buffers are in use; the next waits until one is given
// back (or its context ends), so concurrent gets cannot grow a tab's
// memory without bound.
func TestChunkBuffersBounded(t *testing.T) {
	var held []*[]byte
	for range MaxBuffers {
		b, err := chunkPool.get(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	if _, err := chunkPool.get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("buffer %d: %v, want to wait until the context ends", MaxBuffers+1, err)
	}
	got := make(chan error, 1)
	go func() {
		b, err := chunkPool.get(testCtx(t))
		if err == nil {
			chunkPool.put(b)
		}
		got <- err
	}()
	chunkPool.put(held[0])
	if err := <-got; err != nil {
		t.Fatalf("once a buffer was given back: %v", err)
	}
	for _, b := range held[1:] {
		chunkPool.put(b)
	}
}
