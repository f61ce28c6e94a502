package content

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/id"
)

// Repair: every holder checks the copies of what it holds on the node's
// clock, and the one closest to a chunk's key tops them up.
const (
	// RepairEvery is how often a node checks the copies of the chunks it
	// holds (as a replica, or as its own content), give or take
	// RepairJitter so that holders do not check in step.
	RepairEvery = 10 * time.Minute
	// RepairJitter is the most a round comes earlier or later than
	// RepairEvery.
	RepairJitter = RepairEvery / 4
	// MaxRepairChecks is how many chunks one round checks; a node holding
	// more checks the rest in the next rounds, in turn.
	MaxRepairChecks = 256
	// MaxHaveChecks is how many of a chunk's providers a round asks
	// whether they still hold it.
	MaxHaveChecks = 16
	// repairParallel is how many chunks a round checks at once.
	repairParallel = 4
	// placedFor is how long a node that accepted a replica from this one
	// is asked about it without confirming (fetching it takes a while).
	placedFor = 3 * RepairEvery
)

// run checks and repairs the copies of held chunks every RepairEvery
// (jittered) until ctx ends. Background fetches of accepted replicas run
// under ctx too.
func (r *replicator) run(ctx context.Context) {
	r.mu.Lock()
	r.base = ctx
	r.mu.Unlock()
	// The first round counts from newReplicator, not from whenever this
	// goroutine got to run.
	t := r.clk.NewTimer(r.nextRound() - r.clk.Now().Sub(r.born))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		// Armed before the round, so a slow round does not push the next.
		t.Reset(r.nextRound())
		r.round(ctx)
		r.mu.Lock()
		r.rounds++
		r.mu.Unlock()
	}
}

// nextRound is the wait before the next round: RepairEvery ± RepairJitter.
func (r *replicator) nextRound() time.Duration {
	j := time.Duration(rand.Int64N(int64(2*RepairJitter+1))) - RepairJitter
	return r.cfg.RepairEvery + j*r.cfg.RepairEvery/RepairEvery
}

// roundsDone is how many repair rounds run completed.
func (r *replicator) roundsDone() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rounds
}

// heldChunk is a chunk a round checks, with its class.
type heldChunk struct {
	h chunk.Hash
	c Class
}

// round checks up to MaxRepairChecks held chunks, taking up where the last
// round stopped.
func (r *replicator) round(ctx context.Context) {
	lib := r.h.library()
	var all []heldChunk
	for _, c := range []Class{Replica, Own} {
		for _, h := range lib.Held(c) {
			all = append(all, heldChunk{h, c})
		}
	}
	// sort.Slice, not slices.SortFunc, for slices of structs: each
	// struct type's generic sort is ~25 KB of wasm.
	sort.Slice(all, func(i, j int) bool { return bytes.Compare(all[i].h[:], all[j].h[:]) < 0 })
	r.mu.Lock()
	r.forgetLocked(all)
	start := 0
	if len(all) > 0 {
		start = r.cursor % len(all)
	}
	n := min(len(all), MaxRepairChecks)
	r.cursor = start + n
	r.mu.Unlock()
	batch := make([]heldChunk, n)
	for i := range batch {
		batch[i] = all[(start+i)%len(all)]
	}
	r.learn(all)
	inParallel(ctx, len(batch), repairParallel, func(i int) {
		r.check(ctx, batch[i].h, batch[i].c)
	})
}

// forgetLocked drops what the replicator remembers of chunks no longer
// held, so its maps stay as small as the library. r.mu is held.
func (r *replicator) forgetLocked(all []heldChunk) {
	in := make(map[chunk.Hash]bool, len(all))
	for _, x := range all {
		in[x.h] = true
	}
	for h := range r.live {
		if !in[h] {
			delete(r.live, h)
		}
	}
	for h := range r.dropped {
		if !in[h] {
			delete(r.dropped, h)
		}
	}
	for h := range r.meta {
		if !in[h] && r.queued[h] == nil {
			delete(r.meta, h)
		}
	}
	for h := range r.probed {
		if !in[h] {
			delete(r.probed, h)
		}
	}
	for h := range r.announced {
		if !in[h] {
			delete(r.announced, h)
		}
	}
	for h := range r.placed {
		if !in[h] {
			delete(r.placed, h)
		}
	}
	for h := range r.since {
		if !in[h] && r.queued[h] == nil {
			delete(r.since, h)
		}
	}
}

// manifestPrefix starts every encoded manifest (chunk.Manifest.Marshal's
// magic, without its version), so a chunk that does not start so is not
// read further.
const manifestPrefix = "ddt-manifest/"

// learn recovers what the replicator knew of held chunks before a restart:
// a held chunk it knows nothing of is read for the manifest prefix (up to
// MaxRepairChecks of them a round, each once), and a manifest gives its
// own media type and that of its chunks, so repair asks name the type a
// holder's policy is judged by.
func (r *replicator) learn(all []heldChunk) {
	lib := r.h.library()
	held := make(map[chunk.Hash]bool, len(all))
	r.mu.Lock()
	var unknown []chunk.Hash
	for _, x := range all {
		held[x.h] = true
		if _, ok := r.meta[x.h]; !ok && !r.probed[x.h] && len(unknown) < MaxRepairChecks {
			unknown = append(unknown, x.h)
		}
	}
	r.mu.Unlock()
	for _, h := range unknown {
		r.mu.Lock()
		_, known := r.meta[h] // learnt from a manifest read earlier in this loop
		r.probed[h] = true
		r.mu.Unlock()
		if known {
			continue
		}
		head := make([]byte, len(manifestPrefix))
		if n, _ := lib.ReadAt(h, head, 0); n < len(head) || string(head) != manifestPrefix {
			continue
		}
		size, err := lib.Chunks().Size(h)
		if err != nil {
			continue
		}
		raw := make([]byte, size)
		var m chunk.Manifest
		if n, _ := lib.ReadAt(h, raw, 0); n < size || m.Unmarshal(raw) != nil {
			continue
		}
		r.mu.Lock()
		r.meta[h] = chunkMeta{size: size, typ: m.Type, manifest: true}
		for i, c := range m.Chunks {
			if _, ok := r.meta[c]; !ok && held[c] {
				r.meta[c] = chunkMeta{size: m.ChunkLen(i), typ: m.Type}
			}
		}
		r.mu.Unlock()
	}
}

// metaOf is what is known of held chunk h; a chunk the replicator never
// saw (held before a restart) gets its size from the store and no type.
func (r *replicator) metaOf(h chunk.Hash) (chunkMeta, bool) {
	r.mu.Lock()
	m, ok := r.meta[h]
	r.mu.Unlock()
	if ok {
		return m, true
	}
	size, err := r.h.library().Chunks().Size(h)
	if err != nil {
		return chunkMeta{}, false
	}
	return chunkMeta{size: size}, true
}

// check counts the live copies of held chunk h (this node's and those of
// providers that confirm they hold it) and, if there are fewer than the
// target and this node is the live holder closest to h's key, asks the
// nodes closest to the key for more. If there are more, this node holds h
// only as a replica (for DemandHalfLife at least) and is not among the
// target's number of holders closest to the key, it stops providing h and
// keeps it as cache, so counts fall back as demand does. (A publisher's
// own copy is never dropped: while the publisher is online and farther
// from the key than the replicas, one surplus replica outlasts the demand
// that placed it.)
//
// The target is target(h)+1 live copies: target(h) replicas besides one
// original (the publisher's copy, or once it left one more replica), so
// publication's copies are exactly the target and the first departure is
// repaired. Unicast content is kept at one replica by its publisher alone.
func (r *replicator) check(ctx context.Context, h chunk.Hash, c Class) {
	m, ok := r.metaOf(h)
	r.mu.Lock()
	dropped := r.dropped[h]
	r.mu.Unlock()
	if !ok || dropped || (m.unicast && c != Own) {
		return
	}
	key := h.Key()
	live, err := r.liveHolders(ctx, h)
	if err != nil {
		r.log.Debug("providers not found", "chunk", h.Short(), "err", err)
		return
	}
	want := r.target(h, len(live)) + 1
	if m.unicast {
		want = 2
	}
	r.setLive(h, len(live))
	switch {
	case len(live) < want:
		if nearestOf(live, key) != r.h.Self() {
			return // the closest holder repairs: one, not all of them
		}
		n, err := r.place(ctx, h, m, want-len(live), live)
		r.setLive(h, len(live)+n)
		if n > 0 || err != nil {
			r.log.Debug("replicas repaired", "chunk", h.Short(), "live", len(live), "added", n, "err", err)
		}
	case len(live) > want && c == Replica && rankOf(live, key, r.h.Self()) >= want && r.settled(h):
		// Holders beyond the want closest stop providing it; the want
		// closest keep it, so a surplus never falls below the target.
		r.h.Withdraw(key)
		r.mu.Lock()
		r.dropped[h] = true
		delete(r.announced, h)
		r.live[h] = len(live) - 1
		r.mu.Unlock()
		if err := r.h.library().Release(h); err != nil {
			r.log.Info("withdrawn replica not released", "chunk", h.Short(), "err", err)
		}
		r.log.Debug("replica withdrawn", "chunk", h.Short(), "live", len(live), "target", want)
	}
}

// settled reports whether this node has held replica h for at least
// DemandHalfLife (or since before a restart): a replica just placed for
// demand has had no time to see its share of it, and would otherwise
// count as surplus at once.
func (r *replicator) settled(h chunk.Hash) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.since[h]
	return !ok || r.clk.Now().Sub(at) >= DemandHalfLife
}

// liveHolders is this node and those of h's providers (at most
// MaxHaveChecks, closest to the key first) that say they hold it;
// expired records are not listed and silent providers do not count.
func (r *replicator) liveHolders(ctx context.Context, h chunk.Hash) ([]id.Address, error) {
	key := h.Key()
	provs, err := r.h.Providers(ctx, key)
	if err != nil {
		return nil, err
	}
	self := r.h.Self()
	var cands []id.Address
	for _, p := range provs {
		if p.Address != self && !slices.Contains(cands, p.Address) {
			cands = append(cands, p.Address)
		}
	}
	r.mu.Lock()
	for a := range r.placed[h] {
		if !slices.Contains(cands, a) {
			cands = append(cands, a)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(cands, func(a, b id.Address) int { return a.Xor(key).Compare(b.Xor(key)) })
	cands = cands[:min(len(cands), MaxHaveChecks)]
	has := make([]bool, len(cands))
	var wg sync.WaitGroup
	for i, a := range cands {
		wg.Go(func() {
			got, err := r.h.Have(ctx, a, []chunk.Hash{h})
			has[i] = err == nil && len(got) == 1 && got[0]
		})
	}
	wg.Wait()
	// Those this node placed count once they confirm; one that has not
	// confirmed within placedFor is forgotten.
	now := r.clk.Now()
	r.mu.Lock()
	for i, a := range cands {
		if t, ok := r.placed[h][a]; ok {
			switch {
			case has[i]:
				r.placed[h][a] = now
			case now.Sub(t) > placedFor:
				delete(r.placed[h], a)
			}
		}
	}
	if len(r.placed[h]) == 0 {
		delete(r.placed, h)
	}
	r.mu.Unlock()
	live := []id.Address{self}
	for i, a := range cands {
		if has[i] {
			live = append(live, a)
		}
	}
	return live, nil
}

func (r *replicator) setLive(h chunk.Hash, n int) {
	r.mu.Lock()
	r.live[h] = n
	r.mu.Unlock()
}

// replicas is the last known count of live copies of h (this node's
// included), 0 if it was never counted.
func (r *replicator) replicas(h chunk.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live[h]
}

// nearestOf is the address of as closest to key.
func nearestOf(as []id.Address, key id.Address) id.Address {
	return slices.MinFunc(as, func(a, b id.Address) int { return a.Xor(key).Compare(b.Xor(key)) })
}

// rankOf is how many of as are closer to key than a.
func rankOf(as []id.Address, key, a id.Address) int {
	n := 0
	for _, b := range as {
		if id.Closer(key, b, a) {
			n++
		}
	}
	return n
}
