package dht

import (
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
	live     []Contact // least recently seen first
	repl     []Contact // replacement cache, most recently seen last
	lookedUp time.Time // the last lookup of an address in this bucket's range
}

// table is the Kademlia routing table: bucket i holds contacts whose
// common prefix with self is i bits long. It is not safe for concurrent
// use; the DHT's mutex guards it.
type table struct {
	self     id.Address
	k        int
	inactive time.Duration
	buckets  [id.Len * 8]bucket
	scratch  []keyed // reused by closest
}

func newTable(self id.Address, k int, inactive time.Duration) *table {
	return &table{self: self, k: k, inactive: inactive}
}

// index returns the bucket index of a (a must not be self).
func (t *table) index(a id.Address) int { return id.CommonPrefixLen(t.self, a) }

func find(cs []Contact, a id.Address) int {
	for i := range cs {
		if cs[i].Address == a {
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
		b.live = append(slices.Delete(b.live, i, i+1), Contact{Address: a, LastSeen: now})
		return
	}
	if i := find(b.repl, a); i >= 0 {
		b.repl = slices.Delete(b.repl, i, i+1)
	}
	c := Contact{Address: a, LastSeen: now}
	if len(b.live) < t.k || (len(b.live) < 2*t.k && t.neighbour(a)) {
		b.live = append(b.live, c)
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
	for j := i + 1; j < len(t.buckets); j++ {
		closer += len(t.buckets[j].live)
	}
	for _, c := range t.buckets[i].live {
		if closer >= t.k {
			return false
		}
		if id.Closer(t.self, c.Address, a) {
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
	b.live[i].Failures++
	if b.live[i].Failures < maxFailures {
		return false
	}
	b.live = slices.Delete(b.live, i, i+1)
	t.promote(b, now)
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
	}
}

// promote fills b from its replacement cache, most recently seen first,
// skipping replacements that are themselves inactive.
func (t *table) promote(b *bucket, now time.Time) {
	for len(b.live) < t.k && len(b.repl) > 0 {
		c := b.repl[len(b.repl)-1]
		b.repl = b.repl[:len(b.repl)-1]
		if now.Sub(c.LastSeen) >= t.inactive {
			continue
		}
		// Keep least-recently-seen-first order.
		at, _ := slices.BinarySearchFunc(b.live, c.LastSeen, func(x Contact, t time.Time) int {
			return x.LastSeen.Compare(t)
		})
		b.live = slices.Insert(b.live, at, c)
	}
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
		b.repl = slices.DeleteFunc(b.repl, func(c Contact) bool { return now.Sub(c.LastSeen) >= t.inactive })
		n := len(b.live)
		b.live = slices.DeleteFunc(b.live, func(c Contact) bool {
			if now.Sub(c.LastSeen) >= t.inactive {
				gone = append(gone, c.Address)
				return true
			}
			return false
		})
		if len(b.live) < n {
			t.promote(b, now)
		}
	}
	return gone
}

// silent returns the contacts not seen since before.
func (t *table) silent(before time.Time) []id.Address {
	var out []id.Address
	for i := range t.buckets {
		for _, c := range t.buckets[i].live {
			if c.LastSeen.Before(before) {
				out = append(out, c.Address)
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
	deepest := -1
	for i := range t.buckets {
		if len(t.buckets[i].live) > 0 {
			deepest = i
		}
	}
	var out []int
	for i := 0; i <= deepest; i++ {
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
// Buckets come in distance order: with i = CommonPrefixLen(self, target),
// the contacts of bucket i are closest, then those of every deeper bucket
// (one distance class: they differ from target at bit i), then buckets
// i-1, i-2, …, 0. Only the groups needed are sorted.
func (t *table) closest(target id.Address, n int, skip id.Address) []id.Address {
	if n <= 0 {
		return nil
	}
	i := id.CommonPrefixLen(t.self, target)
	out := make([]id.Address, 0, n)
	group := t.scratch[:0]
	take := func() bool {
		sortKeyed(target, group)
		for _, g := range group[:min(len(group), n-len(out))] {
			out = append(out, g.a)
		}
		group = group[:0]
		return len(out) >= n
	}
	add := func(b *bucket) {
		for _, c := range b.live {
			if c.Address != skip {
				group = append(group, keyed{d: distance64(c.Address, target), a: c.Address})
			}
		}
	}
	defer func() { t.scratch = group[:0] }()
	if i < len(t.buckets) {
		add(&t.buckets[i])
		if take() {
			return out
		}
		for j := i + 1; j < len(t.buckets); j++ {
			add(&t.buckets[j])
		}
		if take() {
			return out
		}
	}
	for j := min(i, len(t.buckets)) - 1; j >= 0; j-- {
		add(&t.buckets[j])
		if take() {
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

func sortKeyed(target id.Address, ks []keyed) {
	if len(ks) < 2 {
		return
	}
	slices.SortFunc(ks, func(x, y keyed) int {
		if x.d != y.d {
			if x.d < y.d {
				return -1
			}
			return 1
		}
		return x.a.Xor(target).Compare(y.a.Xor(target))
	})
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
		out = append(out, t.buckets[i].live...)
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
