package content

import (
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
)

// TestDemandTarget: each doubling of demand beyond DemandBase adds a
// replica, up to MaxReplicas, and the target falls back as demand decays
// with DemandHalfLife; a holder's share of the demand counts once for
// every live copy.
func TestDemandTarget(t *testing.T) {
	clk := clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := newReplicator(nil, replicaConfig{}, clk, nil)
	h := chunk.SumGo([]byte("popular"))
	serve := func(n int) {
		for range n {
			r.served(h)
		}
	}
	if got := r.target(h, 1); got != DefaultReplicas {
		t.Fatalf("target without demand %d, want %d", got, DefaultReplicas)
	}
	serve(2*DemandBase - 1)
	if got := r.target(h, 1); got != DefaultReplicas {
		t.Errorf("target at just under twice the base demand %d, want %d", got, DefaultReplicas)
	}
	serve(1)
	if got := r.target(h, 1); got != DefaultReplicas+1 {
		t.Errorf("target at twice the base demand %d, want %d", got, DefaultReplicas+1)
	}
	serve(2 * DemandBase)
	if got := r.target(h, 1); got != DefaultReplicas+2 {
		t.Errorf("target at four times the base demand %d, want %d", got, DefaultReplicas+2)
	}
	clk.Advance(DemandHalfLife)
	if got := r.target(h, 1); got != DefaultReplicas+1 {
		t.Errorf("target one half-life later %d, want %d", got, DefaultReplicas+1)
	}
	clk.Advance(2 * DemandHalfLife)
	if got := r.target(h, 1); got != DefaultReplicas {
		t.Errorf("target three half-lives later %d, want %d", got, DefaultReplicas)
	}
	serve(DemandBase << 20)
	if got, want := r.target(h, 1), MaxReplicas; got != want {
		t.Errorf("target under a flood of requests %d, want the cap %d (the providers a DHT key holds, less the publisher)", got, want)
	}
	share := chunk.SumGo([]byte("shared"))
	for range DemandBase / 2 {
		r.served(share)
	}
	if got := r.target(share, 4); got != DefaultReplicas+1 {
		t.Errorf("target when each of 4 holders served half the base demand %d, want %d", got, DefaultReplicas+1)
	}
	// Remembered demand is bounded.
	for i := range MaxDemandTracked + 10 {
		r.served(chunk.SumGo([]byte{byte(i), byte(i >> 8), byte(i >> 16)}))
	}
	if n := len(r.demand); n > MaxDemandTracked {
		t.Errorf("demand of %d chunks remembered, at most %d", n, MaxDemandTracked)
	}
}

// TestDemandReplicas: in a small world, a chunk served often gets a
// replica per doubling of its demand at the next repair round, which the
// other holders keep, and loses the surplus as the demand fades (all of
// it but what the publisher's own copy stands for, when the publisher is
// farther from the key than the replicas).
func TestDemandReplicas(t *testing.T) {
	w := newSimWorld(t, 6, 40, LibraryConfig{})
	p := w.live()[0]
	it, _ := p.put(payload(6, 2000), 1024, "text/plain", false)
	w.settle()
	h := it.m.Chunks[0]
	hs := w.holders(h)
	if len(hs) != DefaultReplicas+1 {
		t.Fatalf("chunk on %d nodes after publication, want %d", len(hs), DefaultReplicas+1)
	}
	key := h.Key()
	near := hs[0]
	for _, q := range hs {
		if q.addr.Xor(key).Compare(near.addr.Xor(key)) < 0 {
			near = q
		}
	}
	// Over four times the base demand, spread over the holders (five: it
	// fades by up to a fifth until the round), under eight: two more.
	for range 5 * DemandBase / len(hs) {
		for _, q := range hs {
			q.rep.served(h) // as the service says when it served a download
		}
	}
	w.round()
	peak := w.copies(h)
	if peak < DefaultReplicas+3 {
		t.Errorf("a chunk in demand is on %d live nodes after a repair round, want at least %d", peak, DefaultReplicas+3)
	}
	if near.rep.replicas(h) < DefaultReplicas+3 {
		t.Errorf("its repairer counts %d live copies, want at least %d", near.rep.replicas(h), DefaultReplicas+3)
	}
	// Demand fades: after three half-lives the surplus is withdrawn.
	for end := w.s.Clock.Now().Add(3 * DemandHalfLife); w.s.Clock.Now().Before(end); {
		w.round()
	}
	after := w.copies(h)
	// Those that withdrew hold it as cache now, first in line for eviction.
	cached := 0
	for _, q := range w.live() {
		if cl, ok := q.lib.Class(h); ok && cl == Cache {
			cached++
		}
	}
	if cached != peak-after {
		t.Errorf("%d holders withdrew the chunk, %d hold it as cache; want every one that withdrew", peak-after, cached)
	}
	if after >= peak || after < DefaultReplicas+1 {
		t.Errorf("after demand faded the chunk is on %d live nodes (%d at the peak), want fewer, and at least %d", after, peak, DefaultReplicas+1)
	}
	t.Logf("copies: %d at publication, %d in demand, %d after it faded", DefaultReplicas+1, peak, after)
}
