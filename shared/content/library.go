package content

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/store"
)

// DefaultPledge is the storage a node gives others (replicas and cache)
// when its config names none: the paper's lower bound.
const DefaultPledge = 64 << 20

// LastUseFlush is how stale the last-use times kept in the meta store may
// grow: a read only touches memory, and the times are written at most
// once per LastUseFlush (and with every Put of a chunk held as Own or
// Replica, Adopt, Pin, Unpin and Flush), so reading a chunk costs no store
// write. A crash loses at most this much of the LRU order, and the media
// types of chunks cached since, never a pin or a class (a chunk without a
// record opens as Cache).
const LastUseFlush = time.Minute

// Errors.
var (
	// ErrPledgeFull: a chunk held for others (Cache or Replica) does not
	// fit in the pledge even after evicting what may be evicted.
	ErrPledgeFull = errors.New("content: the storage pledge is full")
	// ErrPolicy: this node's Policy does not take chunks of this type.
	ErrPolicy = errors.New("content: refused by this node's storage policy")
)

// Class is what a chunk is held as, in eviction order: Cache first, then
// Replica; Own never. A higher class wins when a chunk is held as several.
type Class uint8

// Classes.
const (
	// Cache is a chunk kept because this node fetched or served it.
	Cache Class = iota
	// Replica is a chunk this node agreed to hold for the network.
	Replica
	// Own is a chunk of content pinned here; it is never evicted and not
	// bounded by the pledge.
	Own
)

func (c Class) String() string {
	switch c {
	case Cache:
		return "cache"
	case Replica:
		return "replica"
	case Own:
		return "own"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Policy says what a node is willing to hold for others.
type Policy struct {
	// Types are the media-type prefixes ("video/", "image/png") of what
	// is replicated for others; empty takes every type. A replica of no
	// stated type is refused when Types is not empty. (What the node's
	// own user fetches is cached whatever its type.)
	Types []string
	// MaxAge drops cache and replicas not used for this long (Sweep); 0
	// keeps them until evicted.
	MaxAge time.Duration
}

// allows reports whether the policy takes a chunk of media type typ.
// Media types are case-insensitive, so the match is too.
func (p Policy) allows(typ string) bool {
	if len(p.Types) == 0 {
		return true
	}
	typ = strings.ToLower(typ)
	for _, t := range p.Types {
		if t != "" && strings.HasPrefix(typ, strings.ToLower(t)) {
			return true
		}
	}
	return false
}

// LibraryConfig configures a Library.
type LibraryConfig struct {
	// Pledge is the bytes held for others (Cache and Replica); 0 is
	// DefaultPledge, a negative value pledges nothing.
	Pledge int64
	// Policy says what is held for others.
	Policy Policy
	// Clock stamps last-use times; nil is the system clock.
	Clock clock.Clock
}

// Usage is a Library's accounting, as ddt.storage() reports it.
type Usage struct {
	// UsedBytes is every chunk held, own content included.
	UsedBytes int64 `json:"usedBytes"`
	// PledgedBytes is the pledge: the room for others' chunks.
	PledgedBytes int64 `json:"pledgedBytes"`
	// PinnedBytes is the part of UsedBytes that is Own (outside the pledge).
	PinnedBytes int64 `json:"pinnedBytes"`
	// Chunks is how many chunks are held.
	Chunks int `json:"chunks"`
}

// Meta store layout. Records are small and binary; both decoders are fuzzed.
const (
	// metaChunk+hex(h): class (1 byte), last use (8 bytes, Unix seconds,
	// big-endian), media type (the rest).
	metaChunk = "c/"
	// metaPin+hex(id): the pinned chunk hashes, 32 bytes each.
	metaPin = "p/"
)

// entry is the accounting of one chunk held.
type entry struct {
	size int
	// base is the class the chunk was put as (raised, never lowered, by
	// later puts; lowered to Cache by Unpin). Its class is Own while a pin
	// names it, whatever base says.
	base  Class
	typ   string
	last  time.Time
	dirty bool // last changed since the record was written
}

// Library is the node's accounting of the chunks in a store.Chunks: which
// are its own (pinned), which it holds for others (Replica, Cache) within
// its pledge, and which to evict first (least recently used Cache, then
// Replica; never Own, never a chunk held by Hold). It is safe for
// concurrent use.
type Library struct {
	chunks store.Chunks
	meta   store.Store
	pledge int64
	policy Policy
	clk    clock.Clock

	// pinMu serialises Pin and Unpin, so their meta writes land in the
	// order their index changes do.
	pinMu   sync.Mutex
	mu      sync.Mutex
	entries map[chunk.Hash]*entry
	pins    map[chunk.Hash][]chunk.Hash // content id → its chunks
	pinned  map[chunk.Hash]int          // chunk → how many pins name it
	holds   map[chunk.Hash]int          // chunk → Holds (and Puts) in progress
	// reserved is pledge room promised to Puts whose bytes are being
	// stored, so concurrent Puts cannot overcommit the pledge between them.
	reserved  int64
	used      int64 // bytes of every entry
	own       int64 // bytes of entries whose class is Own
	lastFlush time.Time
	onEvict   []func(chunk.Hash)
}

// OpenLibrary accounts for the chunks in chunks, with what must outlive a
// restart (pins, classes, media types, last-use times) kept in meta (the
// capability's namespaced store). It rebuilds its index from chunks.List
// and meta: a chunk in meta that the store lost is forgotten, a chunk in
// the store that meta does not know is Cache. If what is held for others
// exceeds the pledge (a smaller pledge than last time), it evicts cache and
// replicas down to it at once. A pin record it cannot read fails the open, rather
// than let that content be evicted as cache.
func OpenLibrary(chunks store.Chunks, meta store.Store, cfg LibraryConfig) (*Library, error) {
	l := &Library{
		chunks:  chunks,
		meta:    meta,
		pledge:  cfg.Pledge,
		policy:  cfg.Policy,
		clk:     cfg.Clock,
		entries: make(map[chunk.Hash]*entry),
		pins:    make(map[chunk.Hash][]chunk.Hash),
		pinned:  make(map[chunk.Hash]int),
		holds:   make(map[chunk.Hash]int),
	}
	switch {
	case l.pledge == 0:
		l.pledge = DefaultPledge
	case l.pledge < 0:
		l.pledge = 0
	}
	if l.clk == nil {
		l.clk = clock.System
	}
	now := l.clk.Now()
	l.lastFlush = now
	held, err := chunks.List()
	if err != nil {
		return nil, fmt.Errorf("content: open library: list chunks: %w", err)
	}
	// One scan per kind of record: in a tab a Get per record would cost a
	// transaction (milliseconds) each, for every chunk held.
	pins, err := store.Scan(meta, metaPin)
	if err != nil {
		return nil, fmt.Errorf("content: open library: %w", err)
	}
	for k, v := range pins {
		id, err := chunk.Parse(strings.TrimPrefix(k, metaPin))
		if err != nil {
			continue // not a record of ours
		}
		hs, err := decodePin(v)
		if err != nil {
			return nil, fmt.Errorf("content: open library: pin %s: %w", id.Short(), err)
		}
		l.pinLocked(id, hs)
	}
	recs, err := store.Scan(meta, metaChunk)
	if err != nil {
		return nil, fmt.Errorf("content: open library: %w", err)
	}
	for k, v := range recs {
		h, err := chunk.Parse(strings.TrimPrefix(k, metaChunk))
		if err != nil {
			continue
		}
		size, ok := held[h]
		if !ok {
			// The store lost it (a crash before the write finished, the
			// browser clearing storage): forget it.
			if err := meta.Delete(k); err != nil {
				return nil, fmt.Errorf("content: open library: %w", err)
			}
			continue
		}
		e, err := decodeChunk(v)
		if err != nil {
			// A record we cannot read costs the chunk its class, not
			// the node its start: it becomes Cache below.
			continue
		}
		e.size = size
		l.addLocked(h, e)
	}
	for h, size := range held {
		if _, ok := l.entries[h]; !ok {
			l.addLocked(h, &entry{size: size, base: Cache, last: now, dirty: true})
		}
	}
	// Own chunks no pin names are what a put or a pinned download left
	// when it failed before its pin (or the tab closed): cache now.
	for h, e := range l.entries {
		if e.base == Own && l.pinned[h] == 0 {
			l.setBaseLocked(h, e, Cache)
		}
	}
	victims := l.evictLocked(false)
	if err := l.dropAll(victims); err != nil {
		return nil, fmt.Errorf("content: open library: %w", err)
	}
	if err := l.flush(); err != nil {
		return nil, fmt.Errorf("content: open library: %w", err)
	}
	return l, nil
}

// Chunks is the store under the library. Writing to it directly skips
// the accounting; use Put or Adopt.
func (l *Library) Chunks() store.Chunks { return l.chunks }

// Put checks data against h and stores it (Chunks.Put) as class c of media
// type typ. A chunk already held keeps the higher of its classes. A
// Replica must pass the Policy (ErrPolicy); Cache (what this node's user
// fetched) is kept whatever its type. Both must fit in the pledge: room is
// made by evicting the least recently used chunks (for a Replica only
// Cache; for Cache, Cache then Replica), and if even that is not enough
// Put fails with ErrPledgeFull and evicts nothing. Own chunks are outside
// the pledge, bounded only by the platform (store.ErrQuota).
func (l *Library) Put(h chunk.Hash, data []byte, c Class, typ string) error {
	return l.put(h, len(data), c, typ, func(had bool) error {
		if had {
			// Only checked: writing 4 MiB again to IndexedDB costs more
			// than hashing it.
			return chunk.Verify(h, data, -1)
		}
		return l.chunks.Put(h, data)
	})
}

// Promote raises chunk h, held already, to class c (a cached chunk asked
// for as a replica) under the rules of Put, without reading or writing
// its bytes: they were checked when they were stored. A chunk not held
// is store.ErrNotFound.
func (l *Library) Promote(h chunk.Hash, c Class, typ string) error {
	size, err := l.chunks.Size(h)
	if err != nil {
		return err
	}
	return l.put(h, size, c, typ, func(had bool) error {
		if !had {
			return store.ErrNotFound // evicted since
		}
		return nil
	})
}

// Adopt accounts for chunk h of size bytes that the platform stored
// itself (the browser putting a Blob straight into IndexedDB), with the
// rules of Put. If it is refused the chunk is deleted from the store, so
// nothing unaccounted stays behind.
func (l *Library) Adopt(h chunk.Hash, size int, c Class, typ string) error {
	got, err := l.chunks.Size(h)
	if err != nil {
		return fmt.Errorf("content: adopt chunk %s: %w", h.Short(), err)
	}
	if got != size {
		return fmt.Errorf("content: adopt chunk %s: %w: the store holds %d bytes, %d expected", h.Short(), chunk.ErrCorrupt, got, size)
	}
	err = l.put(h, size, c, typ, func(bool) error { return nil })
	if err != nil && !l.Has(h) {
		l.chunks.Delete(h) // best effort: unaccounted, it would be Cache after a restart
	}
	return err
}

// put is Put and Adopt: storeFn writes the bytes, or checks them if the
// chunk is held already (had).
func (l *Library) put(h chunk.Hash, size int, c Class, typ string, storeFn func(had bool) error) error {
	if c > Own {
		return fmt.Errorf("content: put chunk %s: unknown class %d", h.Short(), c)
	}
	if len(typ) > MaxTypeLen {
		typ = typ[:MaxTypeLen] // a media type this long is junk; its prefix still matches a policy
	}
	release := l.Hold(h) // so no eviction takes it while its bytes are written
	defer release()

	l.mu.Lock()
	_, had := l.entries[h]
	reserve := int64(0)
	if !had && c != Own && l.pinned[h] == 0 {
		// The policy is what this node holds for others; what its own
		// user fetches (Cache) it keeps whatever the type.
		if c == Replica && !l.policy.allows(typ) {
			l.mu.Unlock()
			return fmt.Errorf("%w: it does not hold %s for others (%s)", ErrPolicy, typeName(typ), l.policyText())
		}
		if err := l.roomLocked(int64(size), c); err != nil {
			l.mu.Unlock()
			return err
		}
		reserve = int64(size)
		l.reserved += reserve
	}
	l.mu.Unlock()

	err := storeFn(had)

	l.mu.Lock()
	l.reserved -= reserve
	if err != nil {
		l.mu.Unlock()
		return fmt.Errorf("content: put chunk %s: %w", h.Short(), err)
	}
	now := l.clk.Now()
	if e, ok := l.entries[h]; ok {
		// Held already (or stored by a concurrent Put): raise its class.
		l.setBaseLocked(h, e, max(e.base, c))
		if e.typ == "" {
			e.typ = typ
		}
		e.last, e.dirty = now, true
	} else {
		l.addLocked(h, &entry{size: size, base: c, typ: typ, last: now, dirty: true})
	}
	// A cached chunk's record waits for the next flush: lost, the chunk
	// opens as Cache anyway, and a page load's dozen files stored at once
	// do not each wait for a write of every record.
	lazy := l.classLocked(h, l.entries[h]) == Cache && now.Sub(l.lastFlush) < LastUseFlush
	victims := l.evictLocked(false)
	l.mu.Unlock()
	if lazy {
		return l.dropAll(victims)
	}
	return errors.Join(l.dropAll(victims), l.flush())
}

// roomLocked reports whether size more bytes of class c fit in the pledge
// once what c may evict is evicted, with ErrPledgeFull saying why not.
func (l *Library) roomLocked(size int64, c Class) error {
	pledged := l.used - l.own + l.reserved
	free := l.pledge - pledged
	if size <= free {
		return nil
	}
	var evictable int64
	for h, e := range l.entries {
		if l.evictableLocked(h, e, c) {
			evictable += int64(e.size)
		}
	}
	if size <= free+evictable {
		return nil
	}
	return fmt.Errorf("%w: a %d-byte %s does not fit: %d of %d bytes pledged are in use, and only %d of them may be evicted for it",
		ErrPledgeFull, size, c, max(pledged, 0), l.pledge, evictable)
}

// evictableLocked reports whether chunk h may be evicted to make room for
// a chunk of class c: never Own or held; for a Replica only Cache, for
// Cache (what this node's user fetched) Cache or a Replica. A replica is a
// promise to the network, so a new ask never breaks an older one — a
// pledge full of replicas refuses it — but the user's own downloads come
// first, and the replica they displace is repaired by its other holders.
func (l *Library) evictableLocked(h chunk.Hash, e *entry, c Class) bool {
	cl := l.classLocked(h, e)
	if cl == Own || l.holds[h] != 0 {
		return false
	}
	return cl == Cache || c == Cache
}

// evictLocked removes from the index, least recently used first (Cache
// before Replica), the chunks needed to bring what is held for others
// within the pledge. It returns the victims for dropAll, which deletes
// their bytes; with expired it instead takes every chunk unused for
// longer than MaxAge. Held and Own chunks are never taken.
func (l *Library) evictLocked(expired bool) []chunk.Hash {
	over := l.used - l.own + l.reserved - l.pledge
	if !expired && over <= 0 {
		return nil
	}
	type cand struct {
		h     chunk.Hash
		class Class
		last  time.Time
		size  int
	}
	var cands []cand
	now := l.clk.Now()
	for h, e := range l.entries {
		if !l.evictableLocked(h, e, Cache) { // anything but Own and held; Cache sorts first
			continue
		}
		if expired && (l.policy.MaxAge <= 0 || now.Sub(e.last) <= l.policy.MaxAge) {
			continue
		}
		cands = append(cands, cand{h, l.classLocked(h, e), e.last, e.size})
	}
	// A full sort per eviction: the pledge holds thousands of chunks at
	// most, and eviction happens once per chunk put.
	// (sort.Slice: a generic sort of a struct type is ~25 KB of wasm.)
	sort.Slice(cands, func(i, j int) bool {
		if a, b := cands[i], cands[j]; a.class != b.class {
			return a.class < b.class
		}
		return cands[i].last.Before(cands[j].last)
	})
	var victims []chunk.Hash
	for _, c := range cands {
		if !expired && over <= 0 {
			break
		}
		l.removeLocked(c.h)
		over -= int64(c.size)
		victims = append(victims, c.h)
	}
	return victims
}

// dropAll deletes the victims' bytes and records, then tells the OnEvict
// callbacks. It runs without the lock: a victim is already out of the
// index, so nothing else reaches it.
func (l *Library) dropAll(victims []chunk.Hash) error {
	if len(victims) == 0 {
		return nil
	}
	var errs []error
	for _, h := range victims {
		if err := l.chunks.Delete(h); err != nil {
			errs = append(errs, fmt.Errorf("content: evict chunk %s: %w", h.Short(), err))
		}
		if err := l.meta.Delete(metaChunk + h.String()); err != nil {
			errs = append(errs, fmt.Errorf("content: evict chunk %s: %w", h.Short(), err))
		}
	}
	l.mu.Lock()
	fns := slices.Clone(l.onEvict)
	l.mu.Unlock()
	for _, h := range victims {
		for _, fn := range fns {
			fn(h)
		}
	}
	return errors.Join(errs...)
}

// Has reports whether chunk h is held.
func (l *Library) Has(h chunk.Hash) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.entries[h]
	return ok
}

// ReadAt reads chunk h as io.ReaderAt does and marks it used now (in
// memory; see LastUseFlush).
func (l *Library) ReadAt(h chunk.Hash, p []byte, off int64) (int, error) {
	n, err := l.chunks.ReadAt(h, p, off)
	if err != nil && n == 0 {
		return n, err
	}
	l.mu.Lock()
	flush := false
	if e, ok := l.entries[h]; ok {
		now := l.clk.Now()
		e.last, e.dirty = now, true
		flush = now.Sub(l.lastFlush) >= LastUseFlush
	}
	l.mu.Unlock()
	if flush {
		l.flush() // best effort: a lost last-use time only reorders eviction
	}
	return n, err
}

// Hold keeps the chunks hs (held now or yet to arrive) from eviction and
// Sweep until release is called, for a download or a serve in progress.
// release may be called more than once.
func (l *Library) Hold(hs ...chunk.Hash) (release func()) {
	hs = slices.Clone(hs)
	l.mu.Lock()
	for _, h := range hs {
		l.holds[h]++
	}
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, h := range hs {
				if l.holds[h]--; l.holds[h] <= 0 {
					delete(l.holds, h)
				}
			}
		})
	}
}

// Pin makes content id and its chunks hs Own, persisted in meta: they are
// never evicted and leave the pledge. id itself (the manifest) is pinned
// with them. Chunks not held yet become Own as they arrive. Pinning again
// replaces the chunk list.
func (l *Library) Pin(id chunk.Hash, hs []chunk.Hash) error {
	l.pinMu.Lock()
	defer l.pinMu.Unlock()
	all := make([]chunk.Hash, 0, len(hs)+1)
	all = append(all, id)
	for _, h := range hs {
		if !slices.Contains(all, h) {
			all = append(all, h)
		}
	}
	if len(all)*chunk.HashLen > store.MaxValueSize {
		return fmt.Errorf("content: pin %s: %d chunks, more than a pin can list", id.Short(), len(all))
	}
	if err := store.PutDurable(l.meta, metaPin+id.String(), encodePin(all)); err != nil {
		return fmt.Errorf("content: pin %s: %w", id.Short(), err)
	}
	l.mu.Lock()
	if old, ok := l.pins[id]; ok {
		l.unpinLocked(id, old)
	}
	l.pinLocked(id, all)
	for _, h := range all {
		if e, ok := l.entries[h]; ok {
			e.dirty = true
		}
	}
	victims := l.evictLocked(false) // a replaced list may release chunks
	l.mu.Unlock()
	return errors.Join(l.dropAll(victims), l.flush())
}

// Unpin releases content id: its chunks fall back to Cache (unless
// another pin names them), and eviction may then take them.
func (l *Library) Unpin(id chunk.Hash) error {
	l.pinMu.Lock()
	defer l.pinMu.Unlock()
	if !l.Pinned(id) {
		return nil
	}
	if err := l.meta.Delete(metaPin + id.String()); err != nil {
		return fmt.Errorf("content: unpin %s: %w", id.Short(), err)
	}
	l.mu.Lock()
	l.unpinLocked(id, l.pins[id]) // pinMu: nothing changed it since Pinned
	victims := l.evictLocked(false)
	l.mu.Unlock()
	return errors.Join(l.dropAll(victims), l.flush())
}

// Unown lowers those of hs that were put as Own but that no pin names to
// Cache: the chunks of a put or a pinned download that failed before its
// pin, which would otherwise stay outside the pledge and never be
// evicted, with no pin to undo. A chunk a pin names stays Own.
func (l *Library) Unown(hs ...chunk.Hash) error {
	l.mu.Lock()
	changed := false
	for _, h := range hs {
		if e, ok := l.entries[h]; ok && e.base == Own && l.pinned[h] == 0 {
			l.setBaseLocked(h, e, Cache)
			changed = true
		}
	}
	victims := l.evictLocked(false)
	l.mu.Unlock()
	if !changed {
		return nil
	}
	return errors.Join(l.dropAll(victims), l.flush())
}

// Release lowers chunk h from Replica to Cache: a holder that withdrew
// its replica (a surplus) keeps the bytes only as cache, first in line for
// eviction, since in the pledge a replica never displaces another. A
// chunk that is Own, Cache or not held is left as it is.
func (l *Library) Release(h chunk.Hash) error {
	l.mu.Lock()
	e, ok := l.entries[h]
	if !ok || e.base != Replica {
		l.mu.Unlock()
		return nil
	}
	l.setBaseLocked(h, e, Cache)
	l.mu.Unlock()
	return l.flush()
}

// pinLocked records pin id over hs.
func (l *Library) pinLocked(id chunk.Hash, hs []chunk.Hash) {
	if _, ok := l.pins[id]; ok {
		return
	}
	l.pins[id] = hs
	for _, h := range hs {
		e := l.entries[h]
		before := e != nil && l.classLocked(h, e) == Own
		l.pinned[h]++
		if e != nil && !before {
			l.own += int64(e.size)
		}
	}
}

// unpinLocked drops pin id; chunks no other pin names become Cache.
func (l *Library) unpinLocked(id chunk.Hash, hs []chunk.Hash) {
	delete(l.pins, id)
	for _, h := range hs {
		if l.pinned[h]--; l.pinned[h] <= 0 {
			delete(l.pinned, h)
		}
		e := l.entries[h]
		if e == nil {
			continue
		}
		if l.pinned[h] == 0 {
			l.setBaseLocked(h, e, Cache)
		} else {
			e.base = Cache // still Own by the other pin, Cache after it
		}
		e.dirty = true
	}
}

// Pinned reports whether content id is pinned.
func (l *Library) Pinned(id chunk.Hash) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.pins[id]
	return ok
}

// Accepts reports whether size bytes of Replicas of media type typ would
// be taken now, and if not why: ErrPolicy or ErrPledgeFull. size may be
// more than a chunk: the replicator asks for a new chunk together with
// those it already promised to fetch.
func (l *Library) Accepts(size int, typ string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.policy.allows(typ) {
		return fmt.Errorf("%w: it does not hold %s for others (%s)", ErrPolicy, typeName(typ), l.policyText())
	}
	return l.roomLocked(int64(size), Replica)
}

// Held returns the chunks held as class c, in no set order.
func (l *Library) Held(c Class) []chunk.Hash {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []chunk.Hash
	for h, e := range l.entries {
		if l.classLocked(h, e) == c {
			out = append(out, h)
		}
	}
	return out
}

// Class is the class chunk h is held as, if it is held.
func (l *Library) Class(h chunk.Hash) (Class, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[h]
	if !ok {
		return 0, false
	}
	return l.classLocked(h, e), true
}

// Usage is the library's accounting now.
func (l *Library) Usage() Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Usage{UsedBytes: l.used, PledgedBytes: l.pledge, PinnedBytes: l.own, Chunks: len(l.entries)}
}

// OnEvict registers fn to be called, without the library's lock, after
// each chunk is evicted or dropped by Sweep.
func (l *Library) OnEvict(fn func(h chunk.Hash)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onEvict = append(l.onEvict, fn)
}

// Sweep drops the Cache and Replica chunks not used for longer than
// Policy.MaxAge (none if it is 0), except those held.
func (l *Library) Sweep() {
	l.mu.Lock()
	victims := l.evictLocked(true)
	l.mu.Unlock()
	l.dropAll(victims) // a failed delete leaves bytes the next OpenLibrary calls Cache
}

// Flush writes the last-use times not yet in the meta store.
func (l *Library) Flush() error { return l.flush() }

// flush writes every dirty record.
func (l *Library) flush() error {
	l.mu.Lock()
	type rec struct {
		h chunk.Hash
		v []byte
	}
	var recs []rec
	for h, e := range l.entries {
		if e.dirty {
			e.dirty = false
			recs = append(recs, rec{h, encodeChunk(e)})
		}
	}
	l.lastFlush = l.clk.Now()
	l.mu.Unlock()
	var errs []error
	for _, r := range recs {
		if err := l.meta.Put(metaChunk+r.h.String(), r.v); err != nil {
			errs = append(errs, fmt.Errorf("content: record chunk %s: %w", r.h.Short(), err))
			l.mu.Lock()
			if e, ok := l.entries[r.h]; ok {
				e.dirty = true
			}
			l.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// classLocked is the class chunk h is held as: Own while a pin names it.
func (l *Library) classLocked(h chunk.Hash, e *entry) Class {
	if l.pinned[h] > 0 {
		return Own
	}
	return e.base
}

// addLocked indexes a chunk.
func (l *Library) addLocked(h chunk.Hash, e *entry) {
	l.entries[h] = e
	l.used += int64(e.size)
	if l.classLocked(h, e) == Own {
		l.own += int64(e.size)
	}
}

// removeLocked takes a chunk out of the index.
func (l *Library) removeLocked(h chunk.Hash) {
	e, ok := l.entries[h]
	if !ok {
		return
	}
	if l.classLocked(h, e) == Own {
		l.own -= int64(e.size)
	}
	l.used -= int64(e.size)
	delete(l.entries, h)
}

// setBaseLocked changes a chunk's base class, keeping the Own count.
func (l *Library) setBaseLocked(h chunk.Hash, e *entry, c Class) {
	before := l.classLocked(h, e) == Own
	e.base = c
	e.dirty = true
	after := l.classLocked(h, e) == Own
	switch {
	case before && !after:
		l.own -= int64(e.size)
	case !before && after:
		l.own += int64(e.size)
	}
}

// policyText describes the policy's types for an error message.
func (l *Library) policyText() string {
	return "it takes " + strings.Join(l.policy.Types, ", ")
}

func typeName(typ string) string {
	if typ == "" {
		return "content of no stated type"
	}
	return fmt.Sprintf("%q", typ)
}

// encodeChunk is a chunk's meta record.
func encodeChunk(e *entry) []byte {
	b := make([]byte, 9, 9+len(e.typ))
	b[0] = byte(e.base)
	binary.BigEndian.PutUint64(b[1:], uint64(e.last.Unix()))
	return append(b, e.typ...)
}

// MaxTypeLen bounds the media type kept per chunk (a peer names it when
// it asks for a replica): a longer one is cut to this many bytes.
const MaxTypeLen = 255

// decodeChunk reads a chunk's meta record (its size comes from the store).
func decodeChunk(b []byte) (*entry, error) {
	if len(b) < 9 || len(b) > 9+MaxTypeLen {
		return nil, fmt.Errorf("content: a chunk record of %d bytes", len(b))
	}
	c := Class(b[0])
	if c > Own {
		return nil, fmt.Errorf("content: a chunk record of unknown class %d", b[0])
	}
	sec := int64(binary.BigEndian.Uint64(b[1:9]))
	return &entry{base: c, last: time.Unix(sec, 0).UTC(), typ: string(b[9:])}, nil
}

// encodePin is a pin's meta record.
func encodePin(hs []chunk.Hash) []byte {
	b := make([]byte, 0, len(hs)*chunk.HashLen)
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// decodePin reads a pin's meta record.
func decodePin(b []byte) ([]chunk.Hash, error) {
	if len(b)%chunk.HashLen != 0 {
		return nil, fmt.Errorf("content: a pin record of %d bytes is not a list of hashes", len(b))
	}
	hs := make([]chunk.Hash, len(b)/chunk.HashLen)
	for i := range hs {
		copy(hs[i][:], b[i*chunk.HashLen:])
	}
	return hs, nil
}
