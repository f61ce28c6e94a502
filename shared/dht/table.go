package dht

import (
	"cmp"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"time"

	"ddt/shared/id"
)

// maxFailures is how many calls in a row a contact may fail before it is
// dropped from its bucket (and replaced from the replacement cache).
const maxFailures = 3

// Contact is one routing-table entry.
type Contact struct {
	Address  id.Address
	LastSeen time.Time // when it last answered or sent us something
	Failures int       // calls to it that failed since then
}

// Bucket describes one non-empty bucket, for display.
type Bucket struct {
	Index        int // common prefix length of its contacts with Self
	Contacts     int
	Replacements int // waiting in its replacement cache
}

type bucket struct {
	live     []entry   // least recently seen first
	repl     []entry   // replacement cache, most recently seen last
	lookedUp time.Time // the last lookup of an address in this bucket's range
}

// entry is a Contact as the table keeps it: 32 bytes, so that a bucket
// scan (every FindNode answer does several) stays in few cache lines.
type entry struct {
	addr  id.Address
	fails uint8
	seen  int64 // Unix nanoseconds
}

func (e entry) contact() Contact {
	return Contact{Address: e.addr, LastSeen: time.Unix(0, e.seen).UTC(), Failures: int(e.fails)}
}

// table is the Kademlia routing table: bucket i holds contacts whose
// common prefix with self is i bits long. It is not safe for concurrent
// use; the DHT's mutex guards it.
type table struct {
	self     id.Address
	k        int
	inactive time.Duration
	buckets  [id.Len * 8]bucket
	depth    int     // 1 + the index of the deepest non-empty bucket
	scratch  []keyed // reused by closest
}

// settle updates depth after bucket i changed.
func (t *table) settle(i int) {
	if len(t.buckets[i].live) > 0 {
		t.depth = max(t.depth, i+1)
		return
	}
	for t.depth > 0 && len(t.buckets[t.depth-1].live) == 0 {
		t.depth--
	}
}

func newTable(self id.Address, k int, inactive time.Duration) *table {
	return &table{self: self, k: k, inactive: inactive}
}

// index returns the bucket index of a (a must not be self).
func (t *table) index(a id.Address) int { return id.CommonPrefixLen(t.self, a) }

func find(es []entry, a id.Address) int {
	for i := range es {
		if es[i].addr == a {
			return i
		}
	}
	return -1
}

// seen records that a is alive: it moves to the tail of its bucket, joins
// a bucket that has room, or else waits in the replacement cache.
func (t *table) seen(a id.Address, now time.Time) {
	if a == t.self {
		return
	}
	b := &t.buckets[t.index(a)]
	if i := find(b.live, a); i >= 0 {
		b.live = append(slices.Delete(b.live, i, i+1), entry{addr: a, seen: now.UnixNano()})
		return
	}
	if i := find(b.repl, a); i >= 0 {
		b.repl = slices.Delete(b.repl, i, i+1)
	}
	c := entry{addr: a, seen: now.UnixNano()}
	if len(b.live) < t.k || (len(b.live) < 2*t.k && t.neighbour(a)) {
		b.live = append(b.live, c)
		t.settle(t.index(a))
		return
	}
	b.repl = append(b.repl, c)
	if len(b.repl) > t.k {
		b.repl = slices.Delete(b.repl, 0, 1)
	}
}

// neighbour reports whether fewer than K contacts are closer to self than
// a: a full bucket still admits such a newcomer (up to 2K contacts), so a
// node knows all of its K closest, as the Kademlia paper's relaxed bucket
// splitting ensures. Only the bucket where the K closest end can qualify.
func (t *table) neighbour(a id.Address) bool {
	i := t.index(a)
	closer := 0
	for j := i + 1; j < t.depth; j++ {
		closer += len(t.buckets[j].live)
	}
	for _, c := range t.buckets[i].live {
		if closer >= t.k {
			return false
		}
		if id.Closer(t.self, c.addr, a) {
			closer++
		}
	}
	return closer < t.k
}

// failed counts a failed call to a; a contact that fails maxFailures times
// in a row is replaced. It reports whether a was dropped.
func (t *table) failed(a id.Address, now time.Time) bool {
	if a == t.self {
		return false
	}
	b := &t.buckets[t.index(a)]
	if i := find(b.repl, a); i >= 0 {
		b.repl = slices.Delete(b.repl, i, i+1)
		return true
	}
	i := find(b.live, a)
	if i < 0 {
		return false
	}
	b.live[i].fails++
	if b.live[i].fails < maxFailures {
		return false
	}
	b.live = slices.Delete(b.live, i, i+1)
	t.promote(b, now)
	t.settle(t.index(a))
	return true
}

// remove drops a from the table.
func (t *table) remove(a id.Address, now time.Time) {
	if a == t.self {
		return
	}
	b := &t.buckets[t.index(a)]
	if i := find(b.repl, a); i >= 0 {
		b.repl = slices.Delete(b.repl, i, i+1)
	}
	if i := find(b.live, a); i >= 0 {
		b.live = slices.Delete(b.live, i, i+1)
		t.promote(b, now)
		t.settle(t.index(a))
	}
}

// promote fills b from its replacement cache, most recently seen first,
// skipping replacements that are themselves inactive.
func (t *table) promote(b *bucket, now time.Time) {
	for len(b.live) < t.k && len(b.repl) > 0 {
		c := b.repl[len(b.repl)-1]
		b.repl = b.repl[:len(b.repl)-1]
		if t.inactiveAt(c, now) {
			continue
		}
		// Keep least-recently-seen-first order.
		at, _ := slices.BinarySearchFunc(b.live, c.seen, func(x entry, seen int64) int {
			return cmp.Compare(x.seen, seen)
		})
		b.live = slices.Insert(b.live, at, c)
	}
}

// inactiveAt reports whether e has been silent for the inactive period at now.
func (t *table) inactiveAt(e entry, now time.Time) bool {
	return now.UnixNano()-e.seen >= int64(t.inactive)
}

// evict drops contacts and replacements silent for at least the inactive
// period, refilling buckets from their caches. It returns the contacts
// dropped from buckets.
func (t *table) evict(now time.Time) []id.Address {
	var gone []id.Address
	for i := range t.buckets {
		b := &t.buckets[i]
		if len(b.live) == 0 && len(b.repl) == 0 {
			continue
		}
		b.repl = slices.DeleteFunc(b.repl, func(c entry) bool { return t.inactiveAt(c, now) })
		n := len(b.live)
		b.live = slices.DeleteFunc(b.live, func(c entry) bool {
			if t.inactiveAt(c, now) {
				gone = append(gone, c.addr)
				return true
			}
			return false
		})
		if len(b.live) < n {
			t.promote(b, now)
			t.settle(i)
		}
	}
	return gone
}

// silent returns the contacts not seen since before.
func (t *table) silent(before time.Time) []id.Address {
	var out []id.Address
	for i := range t.buckets {
		for _, c := range t.buckets[i].live {
			if c.seen < before.UnixNano() {
				out = append(out, c.addr)
			}
		}
	}
	return out
}

// touch notes a lookup of target, so its bucket needs no refresh.
func (t *table) touch(target id.Address, now time.Time) {
	t.buckets[min(t.index(target), len(t.buckets)-1)].lookedUp = now
}

// stale returns the buckets, up to the deepest non-empty one, that had no
// lookup since before. Deeper buckets are empty; a lookup of the deepest
// one reaches Self's neighbourhood anyway.
func (t *table) stale(before time.Time) []int {
	var out []int
	for i := 0; i < t.depth; i++ {
		if t.buckets[i].lookedUp.Before(before) {
			out = append(out, i)
		}
	}
	return out
}

// randomIn returns a random address in bucket i's range: it shares
// exactly i leading bits with self.
func (t *table) randomIn(i int) id.Address {
	var a id.Address
	for j := 0; j < id.Len; j += 8 {
		v := rand.Uint64()
		for k := 0; k < 8 && j+k < id.Len; k++ {
			a[j+k] = byte(v >> (8 * k))
		}
	}
	// Bits 0..i-1 from self, bit i flipped, the rest random.
	for bit := 0; bit <= i; bit++ {
		mask := byte(0x80) >> (bit % 8)
		want := t.self[bit/8] & mask
		if bit == i {
			want ^= mask
		}
		a[bit/8] = a[bit/8]&^mask | want
	}
	return a
}

// closest returns up to n contacts closest to target by XOR distance,
// closest first, leaving out skip.
//
// Every bucket is one distance class, so whole buckets can be visited in
// distance order and only their insides sorted. With x = self XOR target
// and i the length of their common prefix: bucket i is closest; then the
// deeper buckets j > i, first those where bit j of x is 1 (their contacts
// clear that bit of the distance) in increasing j, then those where it is
// 0 in decreasing j; last the buckets j < i in decreasing j.
func (t *table) closest(target id.Address, n int, skip id.Address) []id.Address {
	if n <= 0 {
		return nil
	}
	x := t.self.Xor(target)
	bit := func(j int) bool { return x[j/8]&(0x80>>(j%8)) != 0 }
	i := id.CommonPrefixLen(t.self, target)
	out := make([]id.Address, 0, n)
	group := t.scratch[:0]
	defer func() { t.scratch = group[:0] }()
	// take adds bucket j's contacts in distance order; it reports whether
	// out is full.
	take := func(j int) bool {
		group = group[:0]
		for _, c := range t.buckets[j].live {
			if c.addr != skip {
				group = append(group, keyed{d: distance64(c.addr, target), a: c.addr})
			}
		}
		sortKeyed(target, group)
		for _, g := range group[:min(len(group), n-len(out))] {
			out = append(out, g.a)
		}
		return len(out) >= n
	}
	last := t.depth
	if i < len(t.buckets) && take(i) {
		return out
	}
	for j := i + 1; j < last; j++ {
		if bit(j) && take(j) {
			return out
		}
	}
	for j := last - 1; j > i; j-- {
		if !bit(j) && take(j) {
			return out
		}
	}
	for j := min(i, last) - 1; j >= 0; j-- { // buckets from last on are empty
		if take(j) {
			return out
		}
	}
	return out
}

// keyed is an address with the first 64 bits of its distance to a
// target, which order almost every pair without looking further.
type keyed struct {
	d uint64
	a id.Address
}

func distance64(a, target id.Address) uint64 {
	return binary.BigEndian.Uint64(a[:8]) ^ binary.BigEndian.Uint64(target[:8])
}

// sortKeyed sorts one bucket's worth (at most 2K entries) by distance to
// target. An insertion sort: for so few entries it beats a general sort,
// and it keeps the call stack shallow on the goroutines a lookup starts.
func sortKeyed(target id.Address, ks []keyed) {
	for i := 1; i < len(ks); i++ {
		k := ks[i]
		j := i
		for ; j > 0 && keyedLess(target, k, ks[j-1]); j-- {
			ks[j] = ks[j-1]
		}
		ks[j] = k
	}
}

func keyedLess(target id.Address, x, y keyed) bool {
	if x.d != y.d {
		return x.d < y.d
	}
	return id.Closer(target, x.a, y.a)
}

// sortByDistance sorts addresses by XOR distance to target, closest first.
func sortByDistance(target id.Address, as []id.Address) {
	slices.SortFunc(as, func(a, b id.Address) int {
		for k := range a {
			if x, y := a[k]^target[k], b[k]^target[k]; x != y {
				if x < y {
					return -1
				}
				return 1
			}
		}
		return 0
	})
}

func (t *table) contacts() []Contact {
	var out []Contact
	for i := range t.buckets {
		for _, e := range t.buckets[i].live {
			out = append(out, e.contact())
		}
	}
	return out
}

func (t *table) summary() []Bucket {
	var out []Bucket
	for i := range t.buckets {
		b := &t.buckets[i]
		if len(b.live)+len(b.repl) > 0 {
			out = append(out, Bucket{Index: i, Contacts: len(b.live), Replacements: len(b.repl)})
		}
	}
	return out
}
