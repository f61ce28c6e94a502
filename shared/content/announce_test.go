package content

import (
	"context"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
)

// Fetched content is announced once fetching pauses for AnnounceQuiet,
// while a page load goes on fetching it waits, and however busy the node,
// no content waits longer than AnnounceMaxDelay; each is announced once.
func TestAnnounceWaitsForQuiet(t *testing.T) {
	clk := clock.NewVirtual(time.Unix(1000, 0))
	var a announcer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan announceJob, 8)
	go func() {
		for {
			j, ok := a.next(ctx, clk)
			if !ok {
				return
			}
			got <- j
		}
	}()
	waitPending := func() {
		for deadline := time.Now().Add(10 * time.Second); clk.Pending() == 0; {
			if time.Now().After(deadline) {
				t.Fatal("the announcer never waited on the clock")
			}
			time.Sleep(time.Millisecond)
		}
	}
	none := func(when string) {
		select {
		case j := <-got:
			t.Fatalf("%s: %s announced", when, j.id.Short())
		case <-time.After(20 * time.Millisecond):
		}
	}
	one, two := chunk.Hash{1}, chunk.Hash{2}
	a.add(one, &chunk.Manifest{}, clk.Now())
	a.add(one, &chunk.Manifest{}, clk.Now()) // queued once
	waitPending()
	clk.Advance(AnnounceQuiet / 2)
	none("halfway through the quiet")
	clk.Advance(AnnounceQuiet / 2)
	if j := <-got; j.id != one {
		t.Fatalf("announced %s, want %s", j.id.Short(), one.Short())
	}
	none("after the one announcement")

	// A busy node: a fetch every AnnounceQuiet/2 never leaves it quiet.
	a.add(two, &chunk.Manifest{}, clk.Now())
	for waited := time.Duration(0); waited < AnnounceMaxDelay-AnnounceQuiet; waited += AnnounceQuiet / 2 {
		waitPending()
		a.fetching(clk.Now())
		clk.Advance(AnnounceQuiet / 2)
		select {
		case j := <-got:
			t.Fatalf("%s announced after %s while fetching went on", j.id.Short(), waited)
		case <-time.After(time.Millisecond):
		}
	}
	waitPending()
	clk.Advance(AnnounceQuiet)
	select {
	case j := <-got:
		if j.id != two {
			t.Fatalf("announced %s, want %s", j.id.Short(), two.Short())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("not announced %s after it was fetched, however busy the node", AnnounceMaxDelay)
	}
}
