package content

import (
	"context"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
)

// TestRepairAfterRestart: a publisher whose replicator restarted knowing
// nothing still repairs its own content when every other holder left, and
// with the media type it reads back from its manifests, so that nodes
// whose policy takes only that type accept the replicas.
func TestRepairAfterRestart(t *testing.T) {
	w := newSimWorld(t, 8, 30, LibraryConfig{Policy: Policy{Types: []string{"image/"}}})
	p := w.live()[0]
	it, n := p.put(payload(8, 2500), 1024, "image/png", false)
	if n != DefaultReplicas {
		t.Fatalf("publication placed %d replicas, want %d", n, DefaultReplicas)
	}
	w.settle()
	p.start()
	all := append([]chunk.Hash{it.id}, it.m.Chunks...)
	for _, h := range all {
		for _, q := range w.holders(h) {
			if q != p {
				w.leave(q)
			}
		}
	}
	for _, h := range all {
		if c := w.copies(h); c != 1 {
			t.Fatalf("chunk %s on %d live nodes once the others left, want 1", h.Short(), c)
		}
	}
	w.round()
	for _, h := range all {
		if c := w.copies(h); c != DefaultReplicas+1 {
			t.Errorf("after a repair round chunk %s is on %d live nodes, want %d", h.Short(), c, DefaultReplicas+1)
		}
	}
	if got := p.rep.replicas(it.id); got != DefaultReplicas+1 {
		t.Errorf("the publisher counts %d live copies of its manifest, want %d", got, DefaultReplicas+1)
	}
}

// TestRunOnClock: the repair loop runs a round every RepairEvery, give or
// take RepairJitter, on the clock it was given, and stops with its ctx.
func TestRunOnClock(t *testing.T) {
	w := newSimWorld(t, 9, 3, LibraryConfig{})
	clk := clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := newReplicator(w.live()[0], replicaConfig{}, clk, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.run(ctx); close(done) }()
	for deadline := time.Now().Add(time.Minute); clk.Pending() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the repair loop set no timer")
		}
	}
	clk.Advance(RepairEvery - RepairJitter - time.Second)
	if n := r.roundsDone(); n != 0 {
		t.Fatalf("%d rounds before the earliest a round is due", n)
	}
	clk.Advance(2*RepairJitter + 2*time.Second)
	for i := uint64(1); i <= 3; i++ {
		for deadline := time.Now().Add(time.Minute); r.roundsDone() < i; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d not run after its latest due time", i)
			}
		}
		clk.Advance(RepairEvery + RepairJitter + time.Second)
	}
	cancel()
	<-done
}
