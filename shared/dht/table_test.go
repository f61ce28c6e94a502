package dht

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"ddt/shared/id"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// inBucket returns an address whose common prefix with self is i bits,
// made distinct by n.
func inBucket(self id.Address, i int, n byte) id.Address {
	a := self
	a[i/8] ^= 0x80 >> (i % 8)
	a[id.Len-1] ^= n
	if i == id.Len*8-1 {
		panic("no room for variants in the last bucket")
	}
	return a
}

func addrs[T Contact | entry](cs []T) []id.Address {
	out := make([]id.Address, len(cs))
	for i, c := range cs {
		switch c := any(c).(type) {
		case Contact:
			out[i] = c.Address
		case entry:
			out[i] = c.addr
		}
	}
	return out
}

// checkDepth compares the table's depth with a scan of its buckets.
func checkDepth(t *testing.T, tb *table) {
	t.Helper()
	want := 0
	for i := range tb.buckets {
		if len(tb.buckets[i].live) > 0 {
			want = i + 1
		}
	}
	if tb.depth != want {
		t.Fatalf("depth %d, buckets say %d", tb.depth, want)
	}
}

func TestTableInsertAndLRU(t *testing.T) {
	var self id.Address
	tb := newTable(self, 4, 36*time.Hour)
	a, b, c := inBucket(self, 0, 1), inBucket(self, 0, 2), inBucket(self, 3, 1)
	tb.seen(self, t0) // Self is never a contact
	tb.seen(a, t0)
	tb.seen(b, t0.Add(time.Second))
	tb.seen(c, t0.Add(2*time.Second))
	if got := addrs(tb.contacts()); !slices.Equal(got, []id.Address{a, b, c}) {
		t.Fatalf("contacts = %v", got)
	}
	// Seeing a again moves it to the tail of its bucket.
	tb.seen(a, t0.Add(time.Minute))
	if got := addrs(tb.buckets[0].live); !slices.Equal(got, []id.Address{b, a}) {
		t.Fatalf("bucket 0 after refresh = %v", got)
	}
	if last := tb.buckets[0].live[1].contact(); !last.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Fatalf("LastSeen = %v", last.LastSeen)
	}
	if got := tb.summary(); !slices.Equal(got, []Bucket{{Index: 0, Contacts: 2}, {Index: 3, Contacts: 1}}) {
		t.Fatalf("summary = %+v", got)
	}
	tb.remove(b, t0)
	if got := addrs(tb.contacts()); !slices.Equal(got, []id.Address{a, c}) {
		t.Fatalf("after remove = %v", got)
	}
	checkDepth(t, tb)
	tb.remove(c, t0)
	checkDepth(t, tb)
	for range maxFailures {
		tb.failed(a, t0)
	}
	checkDepth(t, tb)
	if tb.depth != 0 || tb.closest(a, 5, self) != nil && len(tb.closest(a, 5, self)) != 0 {
		t.Fatal("an emptied table is not empty")
	}
}

func TestTableFullBucketAndFailures(t *testing.T) {
	var self id.Address
	tb := newTable(self, 4, 36*time.Hour)
	var all []id.Address
	for n := range byte(7) {
		a := inBucket(self, 2, n+1)
		all = append(all, a)
		tb.seen(a, t0.Add(time.Duration(n)*time.Second))
	}
	b := &tb.buckets[2]
	if !slices.Equal(addrs(b.live), all[:4]) || !slices.Equal(addrs(b.repl), all[4:]) {
		t.Fatalf("live %v repl %v", addrs(b.live), addrs(b.repl))
	}
	// A full bucket keeps its old contacts: a newcomer waits.
	victim := all[1]
	tb.failed(victim, t0)
	tb.failed(victim, t0)
	if find(b.live, victim) < 0 || b.live[find(b.live, victim)].fails != 2 {
		t.Fatal("two failures should not drop a contact")
	}
	// An answer resets the count.
	tb.seen(victim, t0.Add(time.Hour))
	if c := b.live[find(b.live, victim)]; c.fails != 0 {
		t.Fatalf("failures after an answer = %d", c.fails)
	}
	for range maxFailures {
		tb.failed(victim, t0.Add(time.Hour))
	}
	if find(b.live, victim) >= 0 {
		t.Fatal("three failures in a row should drop the contact")
	}
	// The most recently seen replacement took its place.
	if find(b.live, all[6]) < 0 || len(b.live) != 4 || len(b.repl) != 2 {
		t.Fatalf("live %v repl %v", addrs(b.live), addrs(b.repl))
	}
	// The replacement cache is bounded by K.
	for n := range byte(10) {
		tb.seen(inBucket(self, 2, 100+n), t0.Add(2*time.Hour))
	}
	if len(b.repl) != 4 {
		t.Fatalf("replacement cache holds %d", len(b.repl))
	}
	// A failing replacement is simply forgotten.
	tb.failed(b.repl[0].addr, t0)
	if len(b.repl) != 3 {
		t.Fatalf("replacement cache holds %d after a failure", len(b.repl))
	}
}

func TestTableEvictsInactive(t *testing.T) {
	var self id.Address
	tb := newTable(self, 2, 36*time.Hour)
	old, fresh := inBucket(self, 5, 1), inBucket(self, 5, 2)
	waiting, stale := inBucket(self, 5, 3), inBucket(self, 5, 4)
	tb.seen(old, t0)
	tb.seen(fresh, t0.Add(10*time.Hour))
	tb.seen(stale, t0) // cache, then too old to promote
	tb.seen(waiting, t0.Add(20*time.Hour))
	if gone := tb.evict(t0.Add(36*time.Hour - time.Second)); len(gone) != 0 {
		t.Fatalf("evicted before 36 h: %v", gone)
	}
	gone := tb.evict(t0.Add(36 * time.Hour))
	if !slices.Equal(gone, []id.Address{old}) {
		t.Fatalf("evicted %v", gone)
	}
	if got := addrs(tb.buckets[5].live); !slices.Equal(got, []id.Address{fresh, waiting}) {
		t.Fatalf("bucket after eviction = %v (want the fresh replacement promoted)", got)
	}
	if len(tb.buckets[5].repl) != 0 {
		t.Fatal("the stale replacement should be gone")
	}
	checkDepth(t, tb)
	tb.evict(t0.Add(100 * time.Hour))
	checkDepth(t, tb)
}

// randomAddresses returns a source of addresses, the same sequence every run.
func randomAddresses() func() id.Address {
	r := rand.New(rand.NewPCG(1, 2))
	return func() id.Address {
		var a id.Address
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		return a
	}
}

func TestTableClosestMatchesBruteForce(t *testing.T) {
	random := randomAddresses()
	self := random()
	tb := newTable(self, 8, 36*time.Hour)
	for range 3000 {
		tb.seen(random(), t0)
	}
	// Some near Self, so deep buckets are populated too.
	for i := 150; i < 159; i++ {
		tb.seen(inBucket(self, i, 0), t0)
	}
	checkDepth(t, tb)
	all := addrs(tb.contacts())
	targets := []id.Address{self, inBucket(self, 0, 9), inBucket(self, 157, 3)}
	for range 200 {
		targets = append(targets, random())
	}
	for _, target := range targets {
		want := slices.Clone(all)
		sortByDistance(target, want)
		for _, n := range []int{1, 5, 20, 33, len(all) + 5} {
			got := tb.closest(target, n, self)
			if !slices.Equal(got, want[:min(n, len(want))]) {
				t.Fatalf("closest(%s, %d) differs from a brute-force sort", target.Short(), n)
			}
		}
	}
	// skip leaves one address out.
	target := random()
	want := slices.Clone(all)
	sortByDistance(target, want)
	if got := tb.closest(target, 3, want[0]); !slices.Equal(got, want[1:4]) {
		t.Fatal("closest did not skip the excluded address")
	}
}

func TestRandomInBucket(t *testing.T) {
	self := id.Derive([]byte("self"), nil)
	tb := newTable(self, 20, time.Hour)
	for i := range 160 {
		if got := id.CommonPrefixLen(self, tb.randomIn(i)); got != i {
			t.Fatalf("randomIn(%d) has common prefix %d", i, got)
		}
	}
}

func TestStaleBuckets(t *testing.T) {
	var self id.Address
	tb := newTable(self, 20, time.Hour)
	if got := tb.stale(t0); got != nil {
		t.Fatalf("empty table has stale buckets %v", got)
	}
	tb.seen(inBucket(self, 4, 1), t0)
	tb.touch(inBucket(self, 2, 7), t0)
	if got := tb.stale(t0.Add(-time.Minute)); !slices.Equal(got, []int{0, 1, 3, 4}) {
		t.Fatalf("stale = %v", got)
	}
}

func TestTableAdmitsNeighboursBeyondK(t *testing.T) {
	var self id.Address
	tb := newTable(self, 2, 36*time.Hour)
	// Bucket 0 is full of contacts far from Self …
	far1, far2 := self, self
	far1[0], far2[0] = 0xff, 0xfe
	tb.seen(far1, t0)
	tb.seen(far2, t0)
	// … so a newcomer closer than them is one of Self's 2 closest, and
	// gets in although the bucket is full.
	near := self
	near[0] = 0x80
	tb.seen(near, t0)
	if find(tb.buckets[0].live, near) < 0 {
		t.Fatal("a neighbour waits in the replacement cache")
	}
	// Once Self knows 2 closer contacts, bucket 0 admits no more.
	tb.seen(inBucket(self, 10, 1), t0)
	tb.seen(inBucket(self, 11, 1), t0)
	other := self
	other[0] = 0x81
	tb.seen(other, t0)
	if find(tb.buckets[0].live, other) >= 0 || find(tb.buckets[0].repl, other) < 0 {
		t.Fatal("a far newcomer entered a full bucket")
	}
}

func TestClosestTiesBeyond64Bits(t *testing.T) {
	var self, target id.Address
	self[0] = 0xff
	tb := newTable(self, 20, time.Hour)
	// Same first 8 bytes; they differ only further on, where address order
	// and distance order disagree.
	a, b := target, target
	target[10] = 0xf0
	a[10], b[10] = 0x0f, 0xf1
	tb.seen(a, t0)
	tb.seen(b, t0)
	if got := tb.closest(target, 2, self); !slices.Equal(got, []id.Address{b, a}) {
		t.Fatal("closest orders past the first 64 bits by address, not distance")
	}
}
