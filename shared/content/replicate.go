package content

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/wire"
)

// Replication limits and defaults. What a stranger can make this node
// hold through ReplicaAsks is bounded by the pledge (Library.Accepts, with
// the bytes of accepted asks not yet fetched never more than it), by
// MaxPendingReplicas and MaxAsksPerPeer, and in time by ReplicaFetchTimeout.
const (
	// DefaultReplicas is how many nodes besides the publisher are asked to
	// hold each chunk of public content.
	DefaultReplicas = 3
	// MaxReplicaFetches is how many accepted replicas are fetched at once;
	// the others wait their turn.
	MaxReplicaFetches = 4
	// MaxPendingReplicas is how many accepted replicas may wait to be
	// fetched, from all askers together; asks beyond are refused.
	MaxPendingReplicas = 256
	// MaxAsksPerPeer is how many replicas one asker may have pending here
	// (accepted, not yet fetched); its asks beyond are refused.
	MaxAsksPerPeer = 64
	// ReplicaFetchTimeout bounds one background fetch of a replica, on the
	// node's clock.
	ReplicaFetchTimeout = 5 * time.Minute
	// PublishParallel is how many chunks publish places at once (a 512 MiB
	// file has 128).
	PublishParallel = 8
	// askSlack is how many nodes beyond the number wanted publish and
	// repair ask for, to stand in for those that refuse or do not answer.
	askSlack = 5
)

// replicaHost is what replication needs of the node: the overlay, the
// library, and a verified fetch into it. The Service implements it; so does
// the simulation's world.
type replicaHost interface {
	overlay
	library() *Library
	// fetch gets chunk h (size bytes) from sources (or, if none answer,
	// from its providers), verifies it and stores it in the library as
	// class c of media type typ.
	fetch(ctx context.Context, h chunk.Hash, size int, sources []id.Address, c Class, typ string) error
}

// replicaConfig configures a replicator. Zero fields take the defaults in
// brackets.
type replicaConfig struct {
	Replicas    int           // copies asked for besides the publisher's [DefaultReplicas]
	RepairEvery time.Duration // between repair rounds, jittered [RepairEvery]
}

// chunkMeta is what the replicator remembers of a chunk it holds, to ask for
// more copies of it: its size, media type, whether it is a manifest, and
// whether it is unicast content.
type chunkMeta struct {
	size     int
	typ      string
	manifest bool
	unicast  bool
}

// pendingFetch is an accepted ask whose chunk is not fetched yet.
type pendingFetch struct {
	h       chunk.Hash
	from    id.Address
	m       chunkMeta
	sources []id.Address
}

// replicator places, counts and repairs the copies of chunks: publish asks
// the nodes closest to each chunk's key to hold it, handleAsk answers such
// asks, served feeds the demand estimate, and run checks and repairs the
// counts on the clock.
type replicator struct {
	h   replicaHost
	cfg replicaConfig
	clk clock.Clock
	log *slog.Logger

	born time.Time // when newReplicator made it

	mu        sync.Mutex
	base      context.Context // run's, for background fetches
	meta      map[chunk.Hash]chunkMeta
	queue     []*pendingFetch
	queued    map[chunk.Hash]*pendingFetch // queued or fetching
	perPeer   map[id.Address]int
	promised  int // bytes of queued replicas
	workers   int
	live      map[chunk.Hash]int // last known live copies
	dropped   map[chunk.Hash]bool
	announced map[chunk.Hash]bool                     // replicas this replicator announced
	placed    map[chunk.Hash]map[id.Address]time.Time // who accepted h from this node, when last seen
	since     map[chunk.Hash]time.Time                // when this node accepted replica h
	probed    map[chunk.Hash]bool                     // held chunks learn read, knowing nothing of them
	demand    map[chunk.Hash]*demandRate
	cursor    int    // where the next repair round starts in the held chunks
	rounds    uint64 // repair rounds done
	fetching  int    // fetches running (for the simulation's quiescence)
}

func newReplicator(h replicaHost, cfg replicaConfig, clk clock.Clock, log *slog.Logger) *replicator {
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	cfg.Replicas = min(cfg.Replicas, MaxReplicas)
	if cfg.RepairEvery <= 0 {
		cfg.RepairEvery = RepairEvery
	}
	if clk == nil {
		clk = clock.System
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &replicator{
		h: h, cfg: cfg, clk: clk, log: log, born: clk.Now(),
		base:      context.Background(),
		meta:      map[chunk.Hash]chunkMeta{},
		queued:    map[chunk.Hash]*pendingFetch{},
		perPeer:   map[id.Address]int{},
		live:      map[chunk.Hash]int{},
		dropped:   map[chunk.Hash]bool{},
		announced: map[chunk.Hash]bool{},
		placed:    map[chunk.Hash]map[id.Address]time.Time{},
		since:     map[chunk.Hash]time.Time{},
		probed:    map[chunk.Hash]bool{},
		demand:    map[chunk.Hash]*demandRate{},
	}
}

// placeItem is one chunk to place.
type placeItem struct {
	h chunk.Hash
	m chunkMeta
}

// publish asks, for the manifest and every chunk of content cid, the nodes
// closest to the chunk's key to hold a replica, until Replicas accepted
// (unicast: one). It returns the replicas placed, the least over the
// chunks; the publisher's own copy is not counted.
func (r *replicator) publish(ctx context.Context, m *chunk.Manifest, cid chunk.Hash, manifest []byte, unicast bool) int {
	items := []placeItem{{h: cid, m: chunkMeta{size: len(manifest), typ: m.Type, manifest: true, unicast: unicast}}}
	seen := map[chunk.Hash]bool{cid: true}
	for i, h := range m.Chunks {
		if seen[h] {
			continue // a payload of repeated blocks repeats chunks
		}
		seen[h] = true
		items = append(items, placeItem{h: h, m: chunkMeta{size: m.ChunkLen(i), typ: m.Type, unicast: unicast}})
	}
	want := r.cfg.Replicas
	if unicast {
		want = 1
	}
	r.mu.Lock()
	for _, it := range items {
		r.meta[it.h] = it.m
		delete(r.dropped, it.h)
	}
	r.mu.Unlock()

	placed := make([]int, len(items))
	inParallel(ctx, len(items), PublishParallel, func(i int) {
		it := items[i]
		n, _ := r.place(ctx, it.h, it.m, want, []id.Address{r.h.Self()})
		placed[i] = n
		r.mu.Lock()
		r.live[it.h] = n + 1
		r.mu.Unlock()
	})
	least := want
	for _, n := range placed {
		least = min(least, n)
	}
	if least < want {
		r.log.Info("fewer replicas than wanted", "id", cid.Short(), "placed", least, "wanted", want)
	}
	return least
}

// place asks the nodes closest to h's key, nearest first, skipping those in
// holders, until want accepted; it returns how many did. Holders are also
// the sources named in the asks (this node first).
func (r *replicator) place(ctx context.Context, h chunk.Hash, m chunkMeta, want int, holders []id.Address) (int, error) {
	if want <= 0 {
		return 0, nil
	}
	key := h.Key()
	near, err := r.h.Closest(ctx, key, want+len(holders)+askSlack)
	if err != nil {
		return 0, err
	}
	typ := m.typ
	if len(typ) > wire.MaxContentType {
		// Policies match prefixes, so a type too long for the wire keeps
		// its head.
		typ = strings.ToValidUTF8(typ[:wire.MaxContentType], "")
	}
	ask := &wire.ReplicaAsk{
		Hash: h, Size: uint32(m.size), ContentType: typ, Manifest: m.manifest, Unicast: m.unicast,
		Sources: holders[:min(len(holders), wire.MaxSources)],
	}
	accepted := 0
	var last error
	for _, to := range near {
		if accepted >= want || ctx.Err() != nil {
			break
		}
		if slices.Contains(holders, to) {
			continue
		}
		a, err := r.h.Ask(ctx, to, ask)
		switch {
		case err != nil:
			last = err
		case a.Accepted:
			accepted++
			r.notePlaced(h, to)
		default:
			last = errors.New(a.Reason)
			r.log.Debug("replica refused", "chunk", h.Short(), "by", to.Short(), "reason", a.Reason)
		}
	}
	if accepted < want && last != nil {
		return accepted, last
	}
	return accepted, nil
}

// notePlaced remembers that node a accepted a replica of h from this
// node, so the next checks ask it whether it holds h even if no provider
// record of it can be found (not announced yet, or the key's records full).
func (r *replicator) notePlaced(h chunk.Hash, a id.Address) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.placed[h]
	if m == nil {
		m = map[id.Address]time.Time{}
		r.placed[h] = m
	}
	if len(m) < MaxReplicas+1 {
		m[a] = r.clk.Now()
	}
}

// handleAsk answers a ReplicaAsk. A chunk already held is accepted at once
// (and this node announced as its provider); otherwise the ask is accepted
// if the library would take it (policy, pledge, counting what is already
// promised) and neither the asker nor all askers together have too many
// pending, and the chunk is fetched in the background, then announced.
func (r *replicator) handleAsk(ctx context.Context, from id.Address, a *wire.ReplicaAsk) *wire.ReplicaAnswer {
	h := chunk.Hash(a.Hash)
	refuse := func(format string, args ...any) *wire.ReplicaAnswer {
		reason := fmt.Sprintf(format, args...)
		r.log.Debug("replica ask refused", "chunk", h.Short(), "from", from.Short(), "reason", reason)
		return &wire.ReplicaAnswer{Reason: reason}
	}
	if h.IsZero() || a.Size == 0 || a.Size > chunk.MaxSize {
		return refuse("a replica of %d bytes: a chunk is 1 to %d bytes", a.Size, chunk.MaxSize)
	}
	m := chunkMeta{size: int(a.Size), typ: a.ContentType, manifest: a.Manifest, unicast: a.Unicast}
	lib := r.h.library()

	// The library is never called with r.mu held: its eviction callback
	// may call into the service, and so into the replicator.
	if cl, held := lib.Class(h); held {
		// A chunk its user fetched (Cache) becomes one held for others: the
		// policy says whether it may.
		if err := lib.Accepts(0, m.typ); cl == Cache && errors.Is(err, ErrPolicy) {
			return refuse("%s", reasonOf(err))
		}
		r.mu.Lock()
		if _, ok := r.meta[h]; !ok {
			r.meta[h] = m
		}
		delete(r.dropped, h)
		// Announced once per chunk held: repeated asks for it cost no
		// more DHT work.
		fresh := !r.announced[h]
		r.announced[h] = true
		r.mu.Unlock()
		if cl == Cache {
			r.upgrade(h, m)
		}
		if fresh {
			go r.announce(h)
		}
		return &wire.ReplicaAnswer{Accepted: true}
	}
	sources := []id.Address{from}
	for _, s := range a.Sources {
		if !s.IsZero() && s != r.h.Self() && !slices.Contains(sources, s) && len(sources) < wire.MaxSources {
			sources = append(sources, s)
		}
	}
	p := &pendingFetch{h: h, from: from, m: m, sources: sources}

	// Reserve the slot and the bytes first, so that asks arriving together
	// cannot all pass the pledge check for the same room.
	r.mu.Lock()
	switch {
	case r.queued[h] != nil:
		r.mu.Unlock()
		return &wire.ReplicaAnswer{Accepted: true} // already on its way
	case r.perPeer[from] >= MaxAsksPerPeer:
		r.mu.Unlock()
		return refuse("this node already has %d replicas of yours to fetch", MaxAsksPerPeer)
	case len(r.queued) >= MaxPendingReplicas:
		r.mu.Unlock()
		return refuse("this node already has %d replicas to fetch", MaxPendingReplicas)
	}
	r.queued[h] = p
	r.perPeer[from]++
	r.promised += m.size
	promised := r.promised
	r.mu.Unlock()

	// The library says whether this chunk would be taken now (policy, and
	// room once it evicts what it may); all that is promised must fit the
	// pledge too, or a burst of asks could promise it many times over.
	err := lib.Accepts(m.size, m.typ)
	if pledge := lib.Usage().PledgedBytes; err == nil && int64(promised) > pledge {
		err = fmt.Errorf("%w: %d bytes already promised to other replicas", ErrPledgeFull, promised-m.size)
	}
	if err != nil {
		r.mu.Lock()
		r.releaseLocked(p)
		r.mu.Unlock()
		return refuse("%s", reasonOf(err))
	}
	r.mu.Lock()
	r.queue = append(r.queue, p)
	if r.workers < MaxReplicaFetches {
		r.workers++
		go r.work()
	}
	r.mu.Unlock()
	return &wire.ReplicaAnswer{Accepted: true}
}

// releaseLocked gives back the slot and bytes an ask reserved. r.mu is
// held.
func (r *replicator) releaseLocked(p *pendingFetch) {
	delete(r.queued, p.h)
	r.promised -= p.m.size
	if r.perPeer[p.from]--; r.perPeer[p.from] <= 0 {
		delete(r.perPeer, p.from)
	}
}

// reasonOf words a library refusal for the asker.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrPledgeFull):
		return "this node's storage pledge is full"
	case errors.Is(err, ErrPolicy):
		return "this node does not hold content of that type for others"
	}
	return err.Error()
}

// work fetches queued replicas until the queue is empty.
func (r *replicator) work() {
	for {
		r.mu.Lock()
		if len(r.queue) == 0 {
			r.workers--
			r.mu.Unlock()
			return
		}
		p := r.queue[0]
		r.queue = r.queue[1:]
		r.fetching++
		base := r.base
		r.mu.Unlock()

		err := r.fetchOne(base, p)

		r.mu.Lock()
		r.fetching--
		r.releaseLocked(p)
		if err == nil {
			r.meta[p.h] = p.m
			r.announced[p.h] = true
			r.since[p.h] = r.clk.Now()
		}
		r.mu.Unlock()
		if err != nil {
			r.log.Info("replica not fetched", "chunk", p.h.Short(), "err", err)
			continue
		}
		r.announce(p.h)
	}
}

// fetchOne fetches one accepted replica, within ReplicaFetchTimeout on the
// node's clock.
func (r *replicator) fetchOne(base context.Context, p *pendingFetch) error {
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	t := r.clk.AfterFunc(ReplicaFetchTimeout, cancel)
	defer t.Stop()
	return r.h.fetch(ctx, p.h, p.m.size, p.sources, Replica, p.m.typ)
}

// upgrade makes a chunk held as Cache a Replica.
func (r *replicator) upgrade(h chunk.Hash, m chunkMeta) {
	if err := r.h.library().Promote(h, Replica, m.typ); err != nil {
		r.log.Debug("cached chunk not kept as a replica", "chunk", h.Short(), "err", err)
	}
}

// announce publishes this node as a provider of h.
func (r *replicator) announce(h chunk.Hash) {
	r.mu.Lock()
	base := r.base
	r.mu.Unlock()
	if err := r.h.Announce(base, h.Key(), false); err != nil {
		r.log.Info("replica not announced", "chunk", h.Short(), "err", err)
	}
}

// idle reports whether no replica waits to be fetched (for tests and the
// simulation).
func (r *replicator) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queued) == 0 && r.fetching == 0
}

// inParallel runs f(0..n-1), at most width at a time, until ctx ends (no
// call starts after that), and waits for the calls it started.
func inParallel(ctx context.Context, n, width int, f func(i int)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, width)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
}
