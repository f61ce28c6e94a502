package content

// TEMPORARY (part CORE): a stand-in for the STORE helper's library.go and
// store.NewMemoryChunks, to the contract in the COMMON.md, so the
// service compiles and its tests run before that part is merged. Deleted
// when `git merge main` brings library.go in.

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/store"
)

// Class is what a chunk is held as, in eviction order.
type Class uint8

// Classes.
const (
	Cache Class = iota
	Replica
	Own
)

// DefaultPledge is the pledge of a node that names none.
const DefaultPledge = 64 << 20

// Policy says what a node caches for others.
type Policy struct {
	Types  []string
	MaxAge time.Duration
}

// LibraryConfig configures a Library.
type LibraryConfig struct {
	Pledge int64
	Policy Policy
	Clock  clock.Clock
}

// Usage is the library's accounting.
type Usage struct {
	UsedBytes    int64 `json:"usedBytes"`
	PledgedBytes int64 `json:"pledgedBytes"`
	PinnedBytes  int64 `json:"pinnedBytes"`
	Chunks       int   `json:"chunks"`
}

// Sentinels.
var (
	ErrPledgeFull = errors.New("content: the storage pledge is full")
	ErrPolicy     = errors.New("content: this node's policy does not cache that")
)

type libEntry struct {
	size  int
	class Class
	typ   string
	used  time.Time
}

// Library accounts for the chunks of a store.
type Library struct {
	chunks  store.Chunks
	cfg     LibraryConfig
	mu      sync.Mutex
	entries map[chunk.Hash]*libEntry
	pins    map[chunk.Hash][]chunk.Hash
	holds   map[chunk.Hash]int
	onEvict []func(chunk.Hash)
}

// OpenLibrary opens a library over chunks.
func OpenLibrary(chunks store.Chunks, meta store.Store, cfg LibraryConfig) (*Library, error) {
	if cfg.Pledge <= 0 {
		cfg.Pledge = DefaultPledge
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	l := &Library{chunks: chunks, cfg: cfg, entries: map[chunk.Hash]*libEntry{}, pins: map[chunk.Hash][]chunk.Hash{}, holds: map[chunk.Hash]int{}}
	list, err := chunks.List()
	if err != nil {
		return nil, err
	}
	for h, n := range list {
		l.entries[h] = &libEntry{size: n, class: Cache, used: cfg.Clock.Now()}
	}
	return l, nil
}

// Chunks is the store.
func (l *Library) Chunks() store.Chunks { return l.chunks }

func (l *Library) unpinnedLocked() int64 {
	var n int64
	for _, e := range l.entries {
		if e.class != Own {
			n += int64(e.size)
		}
	}
	return n
}

func (l *Library) roomLocked(size int) error {
	for l.unpinnedLocked()+int64(size) > l.cfg.Pledge {
		var victim chunk.Hash
		var ve *libEntry
		for h, e := range l.entries {
			if e.class == Own || l.holds[h] > 0 {
				continue
			}
			if ve == nil || e.class < ve.class || (e.class == ve.class && e.used.Before(ve.used)) {
				victim, ve = h, e
			}
		}
		if ve == nil {
			return ErrPledgeFull
		}
		delete(l.entries, victim)
		l.chunks.Delete(victim)
		for _, fn := range l.onEvict {
			go fn(victim)
		}
	}
	return nil
}

// Put verifies and stores a chunk.
func (l *Library) Put(h chunk.Hash, data []byte, c Class, typ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[h]; ok {
		e.class = max(e.class, c)
		e.used = l.cfg.Clock.Now()
		return nil
	}
	if c != Own {
		if err := l.roomLocked(len(data)); err != nil {
			return err
		}
	}
	if err := l.chunks.Put(h, data); err != nil {
		return err
	}
	l.entries[h] = &libEntry{size: len(data), class: c, typ: typ, used: l.cfg.Clock.Now()}
	return nil
}

// Adopt accounts for a chunk the platform stored.
func (l *Library) Adopt(h chunk.Hash, size int, c Class, typ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[h]; ok {
		e.class = max(e.class, c)
		return nil
	}
	l.entries[h] = &libEntry{size: size, class: c, typ: typ, used: l.cfg.Clock.Now()}
	return nil
}

// Has reports whether h is held.
func (l *Library) Has(h chunk.Hash) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.entries[h]
	return ok
}

// ReadAt reads from chunk h.
func (l *Library) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	l.mu.Lock()
	if e, ok := l.entries[h]; ok {
		e.used = l.cfg.Clock.Now()
	}
	l.mu.Unlock()
	return l.chunks.ReadAt(h, p, off)
}

// Hold keeps hs from eviction until release.
func (l *Library) Hold(hs ...chunk.Hash) (release func()) {
	hs = slices.Clone(hs)
	add := func(d int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, h := range hs {
			l.holds[h] += d
			if l.holds[h] <= 0 {
				delete(l.holds, h)
			}
		}
	}
	add(1)
	var once sync.Once
	return func() { once.Do(func() { add(-1) }) }
}

// Pin makes id and hs Own.
func (l *Library) Pin(id chunk.Hash, hs []chunk.Hash) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := append(slices.Clone(hs), id)
	for _, h := range all {
		if e, ok := l.entries[h]; ok {
			e.class = Own
		}
	}
	l.pins[id] = all
	return nil
}

// Unpin lets id's chunks fall back to Cache.
func (l *Library) Unpin(id chunk.Hash) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := l.pins[id]
	delete(l.pins, id)
	other := map[chunk.Hash]bool{}
	for _, p := range l.pins {
		for _, h := range p {
			other[h] = true
		}
	}
	for _, h := range hs {
		if e, ok := l.entries[h]; ok && !other[h] {
			e.class = Cache
		}
	}
	return l.roomLocked(0)
}

// Pinned reports whether id is pinned.
func (l *Library) Pinned(id chunk.Hash) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.pins[id]
	return ok
}

// Accepts says whether a replica would be taken.
func (l *Library) Accepts(size int, typ string) error {
	if len(l.cfg.Policy.Types) > 0 && !slices.ContainsFunc(l.cfg.Policy.Types, func(p string) bool { return strings.HasPrefix(typ, p) }) {
		return fmt.Errorf("%w: type %q", ErrPolicy, typ)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if int64(size) > l.cfg.Pledge {
		return ErrPledgeFull
	}
	return nil
}

// Held lists chunks held as c.
func (l *Library) Held(c Class) []chunk.Hash {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []chunk.Hash
	for h, e := range l.entries {
		if e.class == c {
			out = append(out, h)
		}
	}
	return out
}

// Class is h's class.
func (l *Library) Class(h chunk.Hash) (Class, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[h]
	if !ok {
		return 0, false
	}
	return e.class, true
}

// Usage is the accounting.
func (l *Library) Usage() Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := Usage{PledgedBytes: l.cfg.Pledge, Chunks: len(l.entries)}
	for _, e := range l.entries {
		u.UsedBytes += int64(e.size)
		if e.class == Own {
			u.PinnedBytes += int64(e.size)
		}
	}
	return u
}

// OnEvict registers fn.
func (l *Library) OnEvict(fn func(h chunk.Hash)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onEvict = append(l.onEvict, fn)
}

// Sweep drops old cache.
func (l *Library) Sweep() {}

// memChunks is a store.Chunks in memory (stand-in for store.NewMemoryChunks).
type memChunks struct {
	mu sync.Mutex
	m  map[chunk.Hash][]byte
}

func newMemChunks() *memChunks { return &memChunks{m: map[chunk.Hash][]byte{}} }

func (c *memChunks) Put(h chunk.Hash, data []byte) error {
	if err := chunk.Verify(h, data, -1); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[h] = slices.Clone(data)
	return nil
}

func (c *memChunks) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[h]
	if !ok {
		return 0, store.ErrNotFound
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (c *memChunks) Size(h chunk.Hash) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[h]
	if !ok {
		return 0, store.ErrNotFound
	}
	return len(b), nil
}

func (c *memChunks) Delete(h chunk.Hash) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, h)
	return nil
}

func (c *memChunks) List() (map[chunk.Hash]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[chunk.Hash]int{}
	for h, b := range c.m {
		out[h] = len(b)
	}
	return out, nil
}

func (c *memChunks) Close() error { return nil }
