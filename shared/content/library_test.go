package content

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/store"
)

// kib is the size of the test chunks: small, so pledges of a few chunks
// stay small too.
const kib = 1 << 10

// testChunk returns n bytes unique to seed and their hash.
func testChunk(n int, seed int) ([]byte, chunk.Hash) {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b, chunk.SumGo(b)
}

// libEnv is a library over stores that outlive it, so a test can reopen.
type libEnv struct {
	chunks store.Chunks
	meta   store.Store
	clk    *clock.Virtual
	cfg    LibraryConfig
	// reopen, if set, closes and reopens the stores before each open
	// after the first (a process restart).
	reopen func()
	opened bool
}

func newEnv(t *testing.T, pledge int64) *libEnv {
	t.Helper()
	return newEnvOn(t, store.NewMemoryChunks(), store.NewMemory(), pledge)
}

func newEnvOn(t *testing.T, chunks store.Chunks, meta store.Store, pledge int64) *libEnv {
	clk := clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	return &libEnv{chunks: chunks, meta: meta, clk: clk, cfg: LibraryConfig{Pledge: pledge, Clock: clk}}
}

func (e *libEnv) open(t *testing.T) *Library {
	t.Helper()
	if e.opened && e.reopen != nil {
		e.reopen()
	}
	e.opened = true
	l, err := OpenLibrary(e.chunks, e.meta, e.cfg)
	if err != nil {
		t.Fatalf("OpenLibrary: %v", err)
	}
	return l
}

func mustPut(t *testing.T, l *Library, data []byte, h chunk.Hash, c Class, typ string) {
	t.Helper()
	if err := l.Put(h, data, c, typ); err != nil {
		t.Fatalf("Put(%s, %v): %v", h.Short(), c, err)
	}
}

// mustRead checks that chunk h reads back as data.
func mustRead(t *testing.T, l *Library, h chunk.Hash, data []byte) {
	t.Helper()
	got := make([]byte, len(data))
	if n, err := l.ReadAt(h, got, 0); err != nil || n != len(data) || !bytes.Equal(got, data) {
		t.Fatalf("ReadAt(%s) = %d, %v (equal %v)", h.Short(), n, err, bytes.Equal(got, data))
	}
}

func checkClass(t *testing.T, l *Library, h chunk.Hash, want Class) {
	t.Helper()
	c, ok := l.Class(h)
	if !ok || c != want {
		t.Fatalf("Class(%s) = %v, %v; want %v", h.Short(), c, ok, want)
	}
}

// checkConsistent checks the library's accounting against the store.
func checkConsistent(t *testing.T, l *Library) {
	t.Helper()
	list, err := l.Chunks().List()
	if err != nil {
		t.Fatal(err)
	}
	u := l.Usage()
	var used, own int64
	for h, size := range list {
		c, ok := l.Class(h)
		if !ok {
			t.Errorf("chunk %s is in the store but not accounted", h.Short())
		}
		used += int64(size)
		if c == Own {
			own += int64(size)
		}
	}
	if u.Chunks != len(list) || u.UsedBytes != used || u.PinnedBytes != own {
		t.Errorf("Usage = %+v; the store holds %d chunks, %d bytes, %d own", u, len(list), used, own)
	}
	if u.UsedBytes-u.PinnedBytes > u.PledgedBytes {
		t.Errorf("Usage = %+v: more held for others than pledged", u)
	}
}

func TestLibraryPinnedSurvivesPressure(t *testing.T) {
	env := newEnv(t, 4*kib)
	l := env.open(t)
	var own [][]byte
	var ownH []chunk.Hash
	for i := range 6 { // more own bytes than the whole pledge
		d, h := testChunk(kib, 100+i)
		mustPut(t, l, d, h, Own, "video/mp4")
		own, ownH = append(own, d), append(ownH, h)
	}
	id := ownH[0]
	if err := l.Pin(id, ownH[1:]); err != nil {
		t.Fatalf("Pin: %v", err)
	}
	// A chunk put as Cache but then pinned by other content becomes Own.
	cd, ch := testChunk(kib, 99)
	mustPut(t, l, cd, ch, Cache, "")
	if err := l.Pin(ch, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		d, h := testChunk(kib, 1000+i)
		c := Cache
		if i%2 == 1 {
			c = Replica
		}
		// A Replica may find the pledge full of replicas it cannot
		// displace; Cache always finds room, and neither touches Own.
		if err := l.Put(h, d, c, "x/y"); err != nil && !(c == Replica && errors.Is(err, ErrPledgeFull)) {
			t.Fatalf("Put %d (%v) under pressure: %v", i, c, err)
		}
		env.clk.Advance(time.Second)
	}
	for i, h := range ownH {
		checkClass(t, l, h, Own)
		mustRead(t, l, h, own[i])
	}
	checkClass(t, l, ch, Own)
	mustRead(t, l, ch, cd)
	if !l.Pinned(id) || !l.Pinned(ch) {
		t.Fatal("pins lost")
	}
	u := l.Usage()
	if u.PinnedBytes != 7*kib || u.UsedBytes != 11*kib {
		t.Fatalf("Usage = %+v, want 7 KiB pinned of 11 KiB used", u)
	}
	checkConsistent(t, l)

	// Unpinned, they are Cache like any other, and pressure takes them.
	if err := l.Unpin(id); err != nil {
		t.Fatalf("Unpin: %v", err)
	}
	if l.Pinned(id) {
		t.Fatal("still pinned after Unpin")
	}
	for i := range 8 {
		d, h := testChunk(kib, 2000+i)
		mustPut(t, l, d, h, Cache, "")
		env.clk.Advance(time.Second)
	}
	for _, h := range ownH {
		if l.Has(h) {
			t.Errorf("unpinned chunk %s survived a pledge's worth of new downloads", h.Short())
		}
	}
	checkClass(t, l, ch, Own)
	checkConsistent(t, l)
}

func TestLibraryLRUOrder(t *testing.T) {
	env := newEnv(t, 3*kib)
	l := env.open(t)
	var evicted []chunk.Hash
	var mu sync.Mutex
	l.OnEvict(func(h chunk.Hash) {
		mu.Lock()
		defer mu.Unlock()
		evicted = append(evicted, h)
	})
	da, a := testChunk(kib, 1)
	db, b := testChunk(kib, 2)
	dc, c := testChunk(kib, 3)
	mustPut(t, l, da, a, Cache, "")
	env.clk.Advance(time.Second)
	mustPut(t, l, db, b, Cache, "")
	env.clk.Advance(time.Second)
	mustPut(t, l, dc, c, Cache, "")
	env.clk.Advance(time.Second)
	mustRead(t, l, a, da) // a is now the most recent; b the least
	env.clk.Advance(time.Second)

	dd, d := testChunk(kib, 4)
	mustPut(t, l, dd, d, Cache, "")
	if l.Has(b) || !l.Has(a) || !l.Has(c) || !l.Has(d) {
		t.Fatalf("after one eviction: a %v b %v c %v d %v; want b gone", l.Has(a), l.Has(b), l.Has(c), l.Has(d))
	}
	if !slices.Equal(evicted, []chunk.Hash{b}) {
		t.Fatalf("OnEvict saw %d chunks, want just b", len(evicted))
	}
	if _, err := l.Chunks().Size(b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("evicted chunk still in the store: %v", err)
	}

	// Cache goes before Replica, however recently the cache was used.
	env.clk.Advance(time.Second)
	dr, r := testChunk(kib, 5)
	mustPut(t, l, dr, r, Replica, "") // evicts c (the oldest cache)
	env.clk.Advance(time.Second)
	mustRead(t, l, a, da)
	mustRead(t, l, d, dd)
	de, e := testChunk(kib, 6)
	mustPut(t, l, de, e, Replica, "")
	if !l.Has(r) || l.Has(c) {
		t.Fatalf("replica r %v, cache c %v: want the replica kept and c evicted", l.Has(r), l.Has(c))
	}
	// Two cache chunks, a and d, were newer than r; one went for e.
	if l.Has(a) && l.Has(d) {
		t.Fatal("no cache chunk evicted for the new replica")
	}
	mu.Lock()
	n := len(evicted)
	mu.Unlock()
	if n != 3 {
		t.Fatalf("OnEvict called %d times, want 3", n)
	}
	checkConsistent(t, l)
}

func TestLibraryHeldNotEvicted(t *testing.T) {
	env := newEnv(t, 2*kib)
	l := env.open(t)
	da, a := testChunk(kib, 1)
	mustPut(t, l, da, a, Cache, "")
	release := l.Hold(a)
	for i := range 5 {
		env.clk.Advance(time.Second)
		d, h := testChunk(kib, 10+i)
		mustPut(t, l, d, h, Cache, "")
	}
	// Still there (read from the store, so its last use stays the oldest).
	got := make([]byte, kib)
	if _, err := l.Chunks().ReadAt(a, got, 0); err != nil || !l.Has(a) || !bytes.Equal(got, da) {
		t.Fatalf("a held chunk was evicted: %v", err)
	}
	// With a held and one other cache chunk, a Replica of 2 KiB cannot fit.
	d2, h2 := testChunk(2*kib, 50)
	if err := l.Put(h2, d2, Replica, ""); !errors.Is(err, ErrPledgeFull) {
		t.Fatalf("Put over a held chunk = %v, want ErrPledgeFull", err)
	}
	release()
	release() // twice is harmless
	env.clk.Advance(time.Second)
	d, h := testChunk(kib, 20)
	mustPut(t, l, d, h, Cache, "")
	if l.Has(a) {
		t.Fatal("released chunk (the least recently used) was not evicted")
	}

	// A hold on a chunk not yet held covers it when it arrives.
	db, b := testChunk(kib, 30)
	rb := l.Hold(b)
	defer rb()
	mustPut(t, l, db, b, Cache, "")
	for i := range 4 {
		env.clk.Advance(time.Second)
		d, h := testChunk(kib, 40+i)
		mustPut(t, l, d, h, Cache, "")
	}
	mustRead(t, l, b, db)
	checkConsistent(t, l)
}

func TestLibraryPledgeFull(t *testing.T) {
	env := newEnv(t, 2*kib)
	l := env.open(t)
	d1, h1 := testChunk(kib, 1)
	d2, h2 := testChunk(kib, 2)
	mustPut(t, l, d1, h1, Replica, "")
	env.clk.Advance(time.Second)
	mustPut(t, l, d2, h2, Replica, "")

	// A replica never displaces another: a pledge full of replicas
	// refuses, says why, and keeps what it holds.
	d3, h3 := testChunk(kib, 3)
	err := l.Put(h3, d3, Replica, "")
	if !errors.Is(err, ErrPledgeFull) {
		t.Fatalf("Put(replica) into a pledge full of replicas = %v, want ErrPledgeFull", err)
	}
	for _, want := range []string{"2048 of 2048 bytes pledged"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if err := l.Accepts(kib, ""); !errors.Is(err, ErrPledgeFull) {
		t.Fatalf("Accepts(1 KiB) into a pledge full of replicas = %v, want ErrPledgeFull", err)
	}
	if l.Has(h3) {
		t.Fatal("refused chunk is accounted")
	}
	if _, err := l.Chunks().Size(h3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused chunk is in the store: %v", err)
	}
	// More than the whole pledge never fits.
	big, hb := testChunk(3*kib, 4)
	if err := l.Put(hb, big, Replica, ""); !errors.Is(err, ErrPledgeFull) {
		t.Fatalf("Put(3 KiB replica) into a 2 KiB pledge = %v, want ErrPledgeFull", err)
	}
	if err := l.Accepts(3*kib, ""); !errors.Is(err, ErrPledgeFull) {
		t.Fatalf("Accepts(3 KiB) = %v, want ErrPledgeFull", err)
	}
	// Nothing was lost to the refusals.
	mustRead(t, l, h1, d1)
	env.clk.Advance(time.Second) // h1 stays the least recently used
	mustRead(t, l, h2, d2)
	if u := l.Usage(); u.Chunks != 2 || u.UsedBytes != 2*kib {
		t.Fatalf("Usage after refusals = %+v", u)
	}
	// What the node's own user fetches comes first: it displaces the
	// least recently used replica.
	mustPut(t, l, d3, h3, Cache, "")
	if l.Has(h1) || !l.Has(h2) {
		t.Fatalf("a cache put into a pledge full of replicas evicted h1 %v, h2 %v; want the older h1 only", !l.Has(h1), !l.Has(h2))
	}
	// And a replica displaces cache.
	mustPut(t, l, d1, h1, Replica, "")
	if l.Has(h3) || !l.Has(h2) {
		t.Fatalf("a replica put into a pledge of a replica and cache evicted cache %v, replica %v; want the cache only", !l.Has(h3), !l.Has(h2))
	}
	// Own content is outside the pledge.
	mustPut(t, l, big, hb, Own, "")
	mustRead(t, l, h1, d1)
	mustRead(t, l, h2, d2)
	checkConsistent(t, l)

	// A zero pledge (negative Pledge) holds nothing for others.
	env2 := newEnv(t, -1)
	l2 := env2.open(t)
	if err := l2.Put(h1, d1, Cache, ""); !errors.Is(err, ErrPledgeFull) {
		t.Fatalf("Put into a zero pledge = %v", err)
	}
	if u := l2.Usage(); u.PledgedBytes != 0 {
		t.Fatalf("PledgedBytes = %d, want 0", u.PledgedBytes)
	}
	if u := newEnv(t, 0).open(t).Usage(); u.PledgedBytes != DefaultPledge {
		t.Fatalf("default PledgedBytes = %d, want %d", u.PledgedBytes, DefaultPledge)
	}
}

func TestLibraryPolicy(t *testing.T) {
	env := newEnv(t, 8*kib)
	env.cfg.Policy = Policy{Types: []string{"image/", "text/plain"}}
	l := env.open(t)
	dv, hv := testChunk(kib, 1)
	if err := l.Put(hv, dv, Replica, "video/mp4"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("Put(video) = %v, want ErrPolicy", err)
	}
	if err := l.Put(hv, dv, Replica, ""); !errors.Is(err, ErrPolicy) {
		t.Fatalf("Put(no type) = %v, want ErrPolicy", err)
	}
	if err := l.Accepts(kib, "video/mp4"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("Accepts(video) = %v, want ErrPolicy", err)
	}
	if l.Has(hv) {
		t.Fatal("refused chunk accounted")
	}
	if list, _ := l.Chunks().List(); len(list) != 0 {
		t.Fatalf("refused chunk stored: %d chunks", len(list))
	}
	di, hi := testChunk(kib, 2)
	mustPut(t, l, di, hi, Replica, "image/png")
	if err := l.Accepts(kib, "text/plain; charset=utf-8"); err != nil {
		t.Fatalf("Accepts(text/plain) = %v", err)
	}
	if err := l.Accepts(kib, "IMAGE/JPEG"); err != nil {
		t.Fatalf("Accepts(IMAGE/JPEG) = %v: media types are case-insensitive", err)
	}
	// A peer's absurd media type is cut, not kept whole.
	dl, hl := testChunk(kib, 3)
	mustPut(t, l, dl, hl, Cache, "image/"+strings.Repeat("x", 10000))
	if got := len(l.entries[hl].typ); got != MaxTypeLen {
		t.Fatalf("kept a media type of %d bytes, limit %d", got, MaxTypeLen)
	}
	// A node's own content is not subject to what it caches for others.
	mustPut(t, l, dv, hv, Own, "video/mp4")
	checkClass(t, l, hv, Own)
}

func TestLibrarySweep(t *testing.T) {
	env := newEnv(t, 8*kib)
	env.cfg.Policy.MaxAge = time.Hour
	l := env.open(t)
	var evicted []chunk.Hash
	l.OnEvict(func(h chunk.Hash) { evicted = append(evicted, h) })
	da, a := testChunk(kib, 1)
	db, b := testChunk(kib, 2)
	dc, c := testChunk(kib, 3)
	dh, h := testChunk(kib, 4)
	mustPut(t, l, da, a, Cache, "")
	mustPut(t, l, db, b, Replica, "")
	mustPut(t, l, dc, c, Own, "")
	mustPut(t, l, dh, h, Cache, "")
	release := l.Hold(h)
	defer release()
	env.clk.Advance(30 * time.Minute)
	mustRead(t, l, a, da)
	env.clk.Advance(45 * time.Minute)
	l.Sweep()
	if l.Has(b) {
		t.Fatal("replica unused for 75 minutes survived a 1 h MaxAge")
	}
	if !l.Has(a) || !l.Has(c) || !l.Has(h) {
		t.Fatalf("a (used 45 min ago) %v, own c %v, held h %v: want all kept", l.Has(a), l.Has(c), l.Has(h))
	}
	if !slices.Equal(evicted, []chunk.Hash{b}) {
		t.Fatalf("OnEvict saw %d chunks, want b", len(evicted))
	}
	env.clk.Advance(24 * time.Hour)
	l.Sweep()
	if l.Has(a) || !l.Has(c) {
		t.Fatalf("after a day: cache a %v, own c %v", l.Has(a), l.Has(c))
	}
	checkConsistent(t, l)
}

func TestLibraryCorruptRefused(t *testing.T) {
	env := newEnv(t, 8*kib)
	l := env.open(t)
	d, h := testChunk(kib, 1)
	bad := slices.Clone(d)
	bad[100] ^= 1
	for _, c := range []Class{Cache, Replica, Own} {
		if err := l.Put(h, bad, c, ""); !errors.Is(err, chunk.ErrCorrupt) {
			t.Fatalf("Put(corrupt, %v) = %v, want chunk.ErrCorrupt", c, err)
		}
	}
	if l.Has(h) {
		t.Fatal("corrupt chunk accounted")
	}
	if u := l.Usage(); u.Chunks != 0 || u.UsedBytes != 0 {
		t.Fatalf("Usage after corrupt puts = %+v", u)
	}
	// The good bytes still go in, and corrupt bytes for a chunk held are
	// refused without touching it.
	mustPut(t, l, d, h, Cache, "")
	if err := l.Put(h, bad, Own, ""); !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("Put(corrupt) over a held chunk = %v", err)
	}
	checkClass(t, l, h, Cache)
	mustRead(t, l, h, d)
	// The pledge reservation of the refused puts was given back.
	if err := l.Accepts(8*kib-kib, ""); err != nil {
		t.Fatalf("Accepts after refusals = %v", err)
	}
}

func TestLibraryUpgradeAndAdopt(t *testing.T) {
	env := newEnv(t, 4*kib)
	l := env.open(t)
	d, h := testChunk(kib, 1)
	mustPut(t, l, d, h, Cache, "text/plain")
	mustPut(t, l, d, h, Replica, "")
	checkClass(t, l, h, Replica)
	mustPut(t, l, d, h, Cache, "") // no downgrade
	checkClass(t, l, h, Replica)
	if got := l.Held(Replica); !slices.Equal(got, []chunk.Hash{h}) {
		t.Fatalf("Held(Replica) = %v", got)
	}
	mustPut(t, l, d, h, Own, "")
	checkClass(t, l, h, Own)
	if err := l.Release(h); err != nil { // Own is never released
		t.Fatal(err)
	}
	checkClass(t, l, h, Own)
	if u := l.Usage(); u.PinnedBytes != kib || u.UsedBytes != kib {
		t.Fatalf("Usage = %+v", u)
	}

	// Adopt accounts for bytes the platform stored.
	d2, h2 := testChunk(2*kib, 2)
	if err := l.Chunks().Put(h2, d2); err != nil {
		t.Fatal(err)
	}
	if err := l.Adopt(h2, 3*kib, Own, ""); !errors.Is(err, chunk.ErrCorrupt) {
		t.Fatalf("Adopt with a wrong size = %v", err)
	}
	if err := l.Adopt(h2, 2*kib, Replica, ""); err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	checkClass(t, l, h2, Replica)
	_, missing := testChunk(kib, 3)
	if err := l.Adopt(missing, kib, Own, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Adopt(missing) = %v", err)
	}
	// Refused adoption deletes what the platform stored.
	d3, h3 := testChunk(3*kib, 4)
	if err := l.Chunks().Put(h3, d3); err != nil {
		t.Fatal(err)
	}
	if err := l.Adopt(h3, 3*kib, Replica, ""); !errors.Is(err, ErrPledgeFull) {
		t.Fatalf("Adopt past the pledge = %v", err)
	}
	if _, err := l.Chunks().Size(h3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused adoption left the chunk in the store: %v", err)
	}
	checkConsistent(t, l)
	// A withdrawn replica is released to cache.
	dr, hr := testChunk(kib, 7)
	mustPut(t, l, dr, hr, Replica, "")
	if err := l.Release(hr); err != nil {
		t.Fatal(err)
	}
	checkClass(t, l, hr, Cache)
	checkConsistent(t, l)
}

func TestLibraryRestart(t *testing.T) {
	testLibraryRestart(t, newEnv(t, 4*kib))
}

// testLibraryRestart checks what survives reopening env's stores.
func testLibraryRestart(t *testing.T, env *libEnv) {
	l := env.open(t)
	dOwn, hOwn := testChunk(kib, 1)
	dMan, id := testChunk(200, 2)
	dRep, hRep := testChunk(kib, 3)
	dOld, hOld := testChunk(kib, 4)
	dNew, hNew := testChunk(kib, 5)
	mustPut(t, l, dMan, id, Own, "application/x-ddt-manifest")
	mustPut(t, l, dOwn, hOwn, Own, "video/mp4")
	if err := l.Pin(id, []chunk.Hash{hOwn}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, l, dOld, hOld, Cache, "image/png")
	env.clk.Advance(time.Minute)
	mustPut(t, l, dRep, hRep, Replica, "text/plain")
	env.clk.Advance(time.Minute)
	dMid, hMid := testChunk(kib, 7)
	mustPut(t, l, dMid, hMid, Cache, "")
	mustPut(t, l, dNew, hNew, Cache, "")
	env.clk.Advance(2 * time.Minute)
	mustRead(t, l, hOld, dOld) // hOld is now newer than hMid
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	// Behind the library's back: a chunk the store lost, and one it has
	// that meta never heard of.
	if err := env.chunks.Delete(hNew); err != nil {
		t.Fatal(err)
	}
	dStray, hStray := testChunk(kib, 6)
	if err := env.chunks.Put(hStray, dStray); err != nil {
		t.Fatal(err)
	}
	before := l.Usage()
	env.clk.Advance(time.Minute)

	l = env.open(t)
	if !l.Pinned(id) {
		t.Fatal("pin lost across a restart")
	}
	checkClass(t, l, id, Own)
	checkClass(t, l, hOwn, Own)
	checkClass(t, l, hRep, Replica)
	checkClass(t, l, hOld, Cache)
	checkClass(t, l, hStray, Cache)
	if l.Has(hNew) {
		t.Fatal("a chunk the store lost is still accounted")
	}
	if u := l.Usage(); u.PinnedBytes != before.PinnedBytes || u.UsedBytes != before.UsedBytes {
		t.Fatalf("Usage after restart = %+v, before %+v (one chunk lost, one found, same size)", u, before)
	}
	mustRead(t, l, hOwn, dOwn)
	if got := l.entries[hOld].typ; got != "image/png" {
		t.Fatalf("media type after restart = %q", got)
	}
	checkConsistent(t, l)

	// Last-use times came back, the read included: the pledge (rep, old,
	// mid, stray) is full, and new replicas evict mid (put 2 min before
	// old was read), then old, before stray (first seen at the reopen).
	env.clk.Advance(time.Minute)
	d8, h8 := testChunk(kib, 8)
	mustPut(t, l, d8, h8, Replica, "")
	if l.Has(hMid) || !l.Has(hOld) || !l.Has(hStray) {
		t.Fatalf("first eviction after restart: mid %v, old %v, stray %v; want mid gone", l.Has(hMid), l.Has(hOld), l.Has(hStray))
	}
	env.clk.Advance(time.Minute)
	d9, h9 := testChunk(kib, 9)
	mustPut(t, l, d9, h9, Replica, "")
	if l.Has(hOld) || !l.Has(hStray) || !l.Has(hRep) || !l.Has(hOwn) {
		t.Fatalf("second eviction: old %v, stray %v, rep %v, own %v; want old gone", l.Has(hOld), l.Has(hStray), l.Has(hRep), l.Has(hOwn))
	}

	// An unpin survives a restart too.
	if err := l.Unpin(id); err != nil {
		t.Fatal(err)
	}
	l = env.open(t)
	if l.Pinned(id) {
		t.Fatal("unpin lost across a restart")
	}
	if c, ok := l.Class(hOwn); ok && c == Own {
		t.Fatal("an unpinned chunk is Own after a restart")
	}
	checkConsistent(t, l)
}

func TestLibraryLastUseLazy(t *testing.T) {
	env := newEnv(t, 4*kib)
	meta := &countingStore{Store: env.meta}
	env.meta = meta
	l := env.open(t)
	d, h := testChunk(kib, 1)
	mustPut(t, l, d, h, Cache, "")
	n := meta.puts()
	for range 100 {
		mustRead(t, l, h, d)
		env.clk.Advance(time.Second)
	}
	// 100 s of reads: at most two flushes of its one record.
	if got := meta.puts() - n; got > 2 || got < 1 {
		t.Fatalf("100 reads over 100 s wrote meta %d times, want 1 or 2", got)
	}
}

// countingStore counts Puts.
type countingStore struct {
	store.Store
	mu sync.Mutex
	n  int
}

func (s *countingStore) Put(k string, v []byte) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return s.Store.Put(k, v)
}

func (s *countingStore) puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func TestLibraryConcurrent(t *testing.T) {
	env := newEnv(t, 16*kib)
	l := env.open(t)
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for w := range 4 {
		wg.Go(func() {
			for i := range 30 {
				d, h := testChunk(kib, w*1000+i)
				c := Class(i % 3)
				release := l.Hold(h)
				if err := l.Put(h, d, c, ""); err != nil && !errors.Is(err, ErrPledgeFull) {
					errc <- err
				}
				buf := make([]byte, kib)
				if _, err := l.ReadAt(h, buf, 0); err != nil && l.Has(h) {
					errc <- fmt.Errorf("read of a held chunk: %w", err)
				}
				release()
				if c == Own {
					if err := l.Pin(h, nil); err != nil {
						errc <- err
					}
				}
				if i%5 == 0 {
					l.Sweep()
					_ = l.Accepts(kib, "")
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	checkConsistent(t, l)
	if got := len(l.Held(Own)); got != 40 {
		t.Fatalf("%d own chunks, want 40", got)
	}
}

func FuzzDecodeChunkRecord(f *testing.F) {
	f.Add(encodeChunk(&entry{base: Replica, last: time.Unix(1700000000, 0), typ: "video/mp4"}))
	f.Add([]byte{})
	f.Add([]byte{9, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeChunk(b)
		if err != nil {
			return
		}
		if e.base > Own {
			t.Fatalf("decoded class %d", e.base)
		}
		if got := encodeChunk(e); !bytes.Equal(got, b) {
			t.Fatalf("round trip: %x → %x", b, got)
		}
	})
}

func FuzzDecodePinRecord(f *testing.F) {
	_, h := testChunk(10, 1)
	f.Add(encodePin([]chunk.Hash{h, h}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := decodePin(b)
		if err != nil {
			return
		}
		if got := encodePin(hs); !bytes.Equal(got, b) {
			t.Fatalf("round trip: %x → %x", b, got)
		}
	})
}

// testLibraryRestartOver is testLibraryRestart over the stores that
// openChunks and openMeta open, closed and reopened between the library's
// lives.
func testLibraryRestartOver(t *testing.T, openChunks func() (store.Chunks, error), openMeta func() (store.Store, error)) {
	chunks := &reopening{open: openChunks}
	meta := &reopeningMeta{open: openMeta}
	reopen := func() {
		if err := chunks.reopen(); err != nil {
			t.Fatal(err)
		}
		if err := meta.reopen(); err != nil {
			t.Fatal(err)
		}
	}
	reopen()
	env := newEnvOn(t, chunks, meta, 4*kib)
	env.reopen = reopen
	testLibraryRestart(t, env)
	chunks.Close()
	meta.Close()
}

// reopening is a store.Chunks that a test can close and open again under
// the same value, as a process restart would.
type reopening struct {
	store.Chunks
	open func() (store.Chunks, error)
}

func (r *reopening) reopen() error {
	if r.Chunks != nil {
		r.Chunks.Close()
	}
	c, err := r.open()
	r.Chunks = c
	return err
}

type reopeningMeta struct {
	store.Store
	open func() (store.Store, error)
}

func (r *reopeningMeta) reopen() error {
	if r.Store != nil {
		r.Store.Close()
	}
	s, err := r.open()
	r.Store = s
	return err
}

// TestLibraryUnownedOwn: chunks put as Own that no pin names — what a put
// that failed before its pin stored — become cache, at once by Unown and
// at the next open, so they neither stay outside the pledge for good nor
// need an unpin nobody can make.
func TestLibraryUnownedOwn(t *testing.T) {
	env := newEnv(t, 8*kib)
	l := env.open(t)
	d1, h1 := testChunk(kib, 1)
	d2, h2 := testChunk(kib, 2)
	d3, h3 := testChunk(kib, 3)
	mustPut(t, l, d1, h1, Own, "")
	mustPut(t, l, d2, h2, Own, "")
	mustPut(t, l, d3, h3, Own, "")
	if err := l.Pin(h3, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Unown(h1, h3); err != nil {
		t.Fatal(err)
	}
	checkClass(t, l, h1, Cache)
	checkClass(t, l, h2, Own)
	checkClass(t, l, h3, Own) // pinned
	l = env.open(t)
	checkClass(t, l, h2, Cache)
	checkClass(t, l, h3, Own)
	if u := l.Usage(); u.PinnedBytes != kib {
		t.Fatalf("after reopening, %d bytes pinned, want %d", u.PinnedBytes, kib)
	}
}
