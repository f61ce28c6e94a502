package content

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/store"
)

// Download limits.
const (
	// MaxSources is the providers one download fetches from at once.
	MaxSources = 4
	// PerSource is the chunks in flight from one provider.
	PerSource = 2
	// MaxInFlight is the chunk buffers (4 MiB each) one download holds
	// at once: its memory, however large the content.
	MaxInFlight = 8
	// MaxAttempts is the failed transfers of one chunk (bad bytes, a
	// stall, a provider that closed) after which the download gives up on
	// it; providers that cannot be reached at all do not count, since a
	// node that left keeps its records for up to ProviderTTL.
	MaxAttempts = 4
	// lookupParallel is the per-chunk provider lookups one download runs
	// at once, and lookupAhead how far ahead of the transfers they go.
	lookupParallel = 4
	lookupAhead    = 2 * MaxInFlight
	// findTimeout bounds one DHT lookup of providers.
	findTimeout = 30 * time.Second
	// progressEvery is the most often a download reports progress.
	progressEvery = 100 * time.Millisecond
	// maxFailures is the failed transfers after which a provider is
	// dropped from a download (one that closed, say).
	maxFailures = 2
	// busyPause is how long a download leaves a provider that answered
	// ChunkBusy alone, and maxBusy how many such answers one chunk takes
	// before it gives up on them.
	busyPause = 250 * time.Millisecond
	maxBusy   = 100
)

// MaxBuffers is the 4 MiB chunk buffers that the transfers of this
// process (downloads, puts, replica fetches) hold at once, however many
// a page or peers start: the rest wait for one. A page starting a
// hundred gets at once gets them one after another, not a tab whose
// memory grew by 3 GiB.
const MaxBuffers = 2 * MaxInFlight

// chunkPool holds the 4 MiB buffers chunks are fetched into and read
// from: at most MaxBuffers in use, and a free list of at most MaxInFlight,
// so the buffers that exist are those in use and as many as one download
// uses at once (a sync.Pool keeps some per processor and across a
// collection).
var chunkPool = bufferPool{slots: make(chan struct{}, MaxBuffers), free: make(chan *[]byte, MaxInFlight)}

type bufferPool struct {
	slots chan struct{} // one per buffer in use
	free  chan *[]byte
}

// get returns a buffer of chunk.MaxSize bytes once fewer than MaxBuffers
// are in use, or ctx's error.
func (p *bufferPool) get(ctx context.Context) (*[]byte, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case b := <-p.free:
		return b, nil
	default:
		b := make([]byte, chunk.MaxSize)
		return &b, nil
	}
}

// put gives b back, to the free list if it has room.
func (p *bufferPool) put(b *[]byte) {
	select {
	case p.free <- b:
	default:
	}
	<-p.slots
}

// GetOptions shape a Fetch.
type GetOptions struct {
	// Progress, if set, is told how the download goes, at most every
	// 100 ms, and once at the end (Phase "done").
	Progress func(Progress)
	// Pin keeps the content once fetched, as this node's own.
	Pin bool
	// OnChunk, if set, is told the index of every chunk once it is held
	// here (those held already first), so a reader can stream the
	// content while it arrives. It runs on the download's goroutine.
	OnChunk func(i int)
	// Use, if set, is called once every chunk is here, while the download
	// still holds them, so that nothing evicts one before the caller has
	// what it needs (the browser composes its File of the stored Blobs);
	// its error is Fetch's.
	Use func(m *chunk.Manifest) error
	// Sources are nodes likely to hold the whole content (a site's files
	// are where its manifest came from), asked before any lookup; the
	// DHT's providers are looked up only if none of them sends it.
	Sources []id.Address
}

// Fetch gets content id: its manifest, then every chunk not held here,
// from the providers with the least latency, several at once, each
// chunk checked against its hash before it is stored. Every chunk is
// held here when it returns. Errors are *node.Error: CodeNotFound,
// CodeCorrupt, CodeQuota, CodeAborted, node.CodeUnavailable.
func (s *Service) Fetch(ctx context.Context, cid chunk.Hash, o GetOptions) (*chunk.Manifest, error) {
	if s.lib == nil {
		return nil, node.Errorf(node.CodeNotAdmitted, nil, "the content service is not attached to a node")
	}
	if cid.IsZero() {
		return nil, node.Errorf(node.CodeInvalid, nil, "no content id")
	}
	class := Cache
	if o.Pin {
		class = Own
	}
	releaseID := s.lib.Hold(cid)
	defer releaseID()
	prog := newProgress(s, o.Progress)
	m, whole, err := s.fetchManifest(ctx, cid, class, true, o.Sources, prog)
	if err != nil {
		return nil, boundary(ctx, err)
	}
	release := s.lib.Hold(m.Chunks...)
	defer release()
	if whole == nil && !s.local(m) {
		// The manifest was here, some chunk is not: those who hold the
		// whole content are the first to ask.
		if whole = s.hinted(o.Sources); len(whole) == 0 {
			ps, _ := s.findProviders(ctx, cid.Key())
			whole = s.wholeOnly(ps)
		}
	}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &download{s: s, ctx: dctx, cancel: cancel, id: cid, m: m, class: class, opts: o, prog: prog,
		sources: map[id.Address]*source{}, results: make(chan result), found: make(chan found, lookupParallel), firstByte: make(chan struct{}, 1)}
	for _, p := range whole {
		d.addSource(p.Address, true)
	}
	if err := d.run(); err != nil {
		if o.Pin {
			s.lib.Unown(m.Chunks...) // a pinned download that failed leaves cache, not pins
		}
		return nil, boundary(ctx, err)
	}
	if o.Pin {
		if err := s.lib.Pin(cid, m.Chunks); err != nil {
			return nil, boundary(ctx, err)
		}
	}
	if o.Use != nil {
		if err := o.Use(m); err != nil {
			return nil, err
		}
	}
	go s.announceContent(cid, m)
	prog.report("done", m.Size, m.Size, d.providers(), len(m.Chunks), len(m.Chunks), true)
	return m, nil
}

// manifest is content id's manifest, from here or fetched (and then
// stored as Cache).
func (s *Service) manifest(ctx context.Context, id chunk.Hash, sources []id.Address, prog *progress) (*chunk.Manifest, error) {
	m, _, err := s.fetchManifest(ctx, id, Cache, false, sources, prog)
	return m, err
}

// FirstPeerWait is how long a download of content not held here waits for
// the node's first peer: admission (window.ddt's ready) comes before any
// data channel is open, and a lookup then finds no provider in a DHT it
// cannot reach yet, so `await ddt.ready; await ddt.get(id)` (or a native
// node's GET /get just after it started) would say not-found for content
// the network holds.
const FirstPeerWait = 15 * time.Second

// awaitPeer waits, up to FirstPeerWait or ctx's end, until the node has a
// peer, if it is admitted and has none.
func (s *Service) awaitPeer(ctx context.Context) {
	if s.h.Lease().Address.IsZero() || len(s.h.Peers()) > 0 {
		return
	}
	deadline := s.clk.Now().Add(FirstPeerWait)
	for len(s.h.Peers()) == 0 && s.clk.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(s.clk, 50*time.Millisecond):
		}
	}
}

// fetchManifest reads content id's manifest here, or fetches it from the
// providers of id.Key() (least latency first), checks that it hashes to
// id and that it holds together, and stores it as class c (if it cannot,
// that is an error only if keep: Stat needs no copy). It returns the
// providers that announced the whole content too.
func (s *Service) fetchManifest(ctx context.Context, id chunk.Hash, c Class, keep bool, hints []id.Address, prog *progress) (*chunk.Manifest, []Provider, error) {
	var m chunk.Manifest
	if s.lib.Has(id) {
		raw, err := s.readLocal(id)
		if err == nil {
			if err := m.Unmarshal(raw); err != nil {
				return nil, nil, fmt.Errorf("content %s is not a manifest: %w", id.Short(), err)
			}
			// Whole providers are looked up by Fetch, and only if a chunk
			// is missing: Stat and a local GET need no network.
			return &m, nil, nil
		}
	}
	prog.report("finding", 0, -1, 0, 0, 0, true)
	if ps := s.hinted(hints); len(ps) > 0 {
		if m, whole, err := s.manifestFrom(ctx, id, c, keep, ps); err == nil || ctx.Err() != nil {
			return m, whole, err
		}
	}
	s.awaitPeer(ctx)
	ps, err := s.findProviders(ctx, id.Key())
	if err != nil && ctx.Err() != nil {
		return nil, nil, err
	}
	if errors.Is(err, node.ErrNotAdmitted) {
		return nil, nil, node.Errorf(node.CodeNotAdmitted, []error{err}, "this node has not joined the network yet, and does not hold content %s", id)
	}
	if len(ps) == 0 {
		if err != nil {
			return nil, nil, notFound(id, err)
		}
		return nil, nil, notFound(id)
	}
	return s.manifestFrom(ctx, id, c, keep, ps)
}

// manifestFrom fetches content id's manifest from the first of ps that
// sends one that hashes to id and holds together, and stores it as
// class c; it returns the manifest and those of ps that hold the whole
// content.
func (s *Service) manifestFrom(ctx context.Context, id chunk.Hash, c Class, keep bool, ps []Provider) (*chunk.Manifest, []Provider, error) {
	var m chunk.Manifest
	bp, err := chunkPool.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer chunkPool.put(bp)
	var last error
	asks := ps
	failed := 0
	for round := 0; len(asks) > 0 && failed < MaxAttempts; round++ {
		var busy []Provider
		for _, p := range asks {
			if failed >= MaxAttempts {
				break
			}
			if s.inPenalty(p.Address) {
				continue
			}
			n, err := s.ov.fetchWhole(ctx, p.Address, id, *bp)
			if err == nil {
				err = chunk.Verify(id, (*bp)[:n], -1)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil, ctx.Err()
				}
				if blame(err) {
					s.penalise(p.Address, err)
				}
				switch {
				case errors.Is(err, errBusy):
					busy = append(busy, p)
				case !errors.Is(err, errUnreachable):
					failed++
				}
				last = err
				continue
			}
			raw := (*bp)[:n]
			if err := m.Unmarshal(raw); err != nil {
				// The bytes are the ones id names: the content itself lies.
				return nil, nil, node.Errorf(CodeCorrupt, []error{err}, "content %s is not a valid manifest: %v", id, err)
			}
			if err := s.lib.Put(id, raw, c, m.Type); err != nil && keep {
				return nil, nil, err
			}
			return &m, s.wholeOnly(ps), nil
		}
		// Those that were busy serving others are asked again, after a
		// pause that grows.
		if round >= 5 || len(busy) == 0 {
			break
		}
		if !clock.Sleep(s.clk, time.Duration(round+1)*2*busyPause, ctx.Done()) {
			return nil, nil, ctx.Err()
		}
		asks = busy
	}
	return nil, nil, node.Errorf(node.CodeUnavailable, []error{last}, "no provider of content %s could send its manifest: %v", id, last)
}

// hinted are the sources a caller named (GetOptions.Sources) as whole
// providers: those with a channel open now and not penalised. A source
// without a channel is left to the lookup: reaching a node that has left
// would cost a connection attempt's timeout.
func (s *Service) hinted(sources []id.Address) []Provider {
	var ps []Provider
	for _, a := range sources {
		if s.ov.connected(a) && !s.inPenalty(a) {
			ps = append(ps, Provider{Address: a, Whole: true})
		}
	}
	return ps
}

// Providers returns the nodes that announced that they hold the whole
// of content id, least latency first, less those penalised for bad
// bytes: the Sources to name for content likely to be where id is (a
// site's files, where its manifest is).
func (s *Service) Providers(ctx context.Context, cid chunk.Hash) ([]id.Address, error) {
	if s.lib == nil {
		return nil, node.Errorf(node.CodeNotAdmitted, nil, "the content service is not attached to a node")
	}
	ps, err := s.findProviders(ctx, cid.Key())
	var out []id.Address
	for _, p := range s.wholeOnly(ps) {
		out = append(out, p.Address)
	}
	return out, boundary(ctx, err)
}

// findProviders looks up the providers under key, less those penalised,
// least latency first.
func (s *Service) findProviders(ctx context.Context, key id.Address) ([]Provider, error) {
	ctx, cancel := withClock(ctx, s.clk, findTimeout)
	defer cancel()
	ps, err := s.ov.Providers(ctx, key)
	ps = slices.DeleteFunc(ps, func(p Provider) bool { return s.inPenalty(p.Address) })
	addrs := make([]id.Address, len(ps))
	for i, p := range ps {
		addrs[i] = p.Address
	}
	sortByLatency(addrs, s.ov.Latency, s.ov.connected)
	byAddr := map[id.Address]Provider{}
	for _, p := range ps {
		byAddr[p.Address] = p
	}
	for i, a := range addrs {
		ps[i] = byAddr[a]
	}
	return ps, err
}

// wholeOnly are those of ps that announced the whole content and are not
// penalised.
func (s *Service) wholeOnly(ps []Provider) []Provider {
	return slices.DeleteFunc(slices.Clone(ps), func(p Provider) bool { return !p.Whole || s.inPenalty(p.Address) })
}

// blame reports whether a failed transfer is the provider's doing: bytes
// that do not hash right, too many or out of order.
func blame(err error) bool {
	return errors.Is(err, errMisbehaved) || errors.Is(err, chunk.ErrCorrupt) || errors.Is(err, chunk.ErrTooLarge)
}

// announceContent announces this node as a provider of content id
// (whole) and of each of its chunks, in the background of the node's
// life.
func (s *Service) announceContent(id chunk.Hash, m *chunk.Manifest) {
	ctx := s.h.Life()
	if s.announceWhole(ctx, id, m) {
		s.announceChunks(ctx, m.Chunks)
	}
}

// announceWhole announces this node as a provider of every chunk of
// content id, if it holds them all, and notes which they are (evicting
// one withdraws the record).
func (s *Service) announceWhole(ctx context.Context, id chunk.Hash, m *chunk.Manifest) bool {
	s.mu.Lock()
	for _, h := range m.Chunks {
		if !slices.Contains(s.wholeOf[h], id) {
			s.wholeOf[h] = append(s.wholeOf[h], id)
		}
	}
	s.mu.Unlock()
	if !s.local(m) {
		return false // evicted already
	}
	if err := s.ov.Announce(ctx, id.Key(), true); err != nil && ctx.Err() == nil {
		s.log.Info("could not announce content yet; the refresh will", "id", id.Short(), "err", err)
	}
	return true
}

// announceChunks announces this node as a provider of each of hs, a few
// at a time.
func (s *Service) announceChunks(ctx context.Context, hs []chunk.Hash) {
	seen := make(map[chunk.Hash]bool, len(hs))
	var once []chunk.Hash
	for _, h := range hs {
		if !seen[h] {
			seen[h] = true
			once = append(once, h)
		}
	}
	inParallel(ctx, len(once), announceParallel, func(i int) {
		h := once[i]
		if !s.lib.Has(h) {
			return // evicted since
		}
		if err := s.ov.Announce(ctx, h.Key(), false); err != nil && ctx.Err() == nil {
			s.log.Debug("could not announce a chunk yet; the refresh will", "chunk", h.Short(), "err", err)
		}
	})
}

// fetchChunk gets one chunk (for the replicator): from sources in
// order, then from its providers; checked, stored as class c.
func (s *Service) fetchChunk(ctx context.Context, h chunk.Hash, size int, sources []id.Address, c Class, typ string) error {
	if s.lib.Has(h) {
		return nil
	}
	if size < 0 || size > chunk.MaxSize {
		return node.Errorf(node.CodeInvalid, nil, "a chunk of %d bytes", size)
	}
	release := s.lib.Hold(h)
	defer release()
	bp, err := chunkPool.get(ctx)
	if err != nil {
		return err
	}
	defer chunkPool.put(bp)
	buf := (*bp)[:size]
	tried := map[id.Address]bool{s.ov.Self(): true}
	try := func(a id.Address) (bool, error) {
		if tried[a] || s.inPenalty(a) {
			return false, nil
		}
		tried[a] = true
		err := s.ov.Fetch(ctx, a, h, size, buf, nil)
		if err == nil {
			err = chunk.Verify(h, buf, size)
		}
		if err != nil {
			if blame(err) {
				s.penalise(a, err)
			}
			return false, err
		}
		return true, s.lib.Put(h, buf, c, typ)
	}
	var last error
	var busy []id.Address // asked again after a pause
	each := func(as []id.Address) (bool, error) {
		for _, a := range as {
			ok, err := try(a)
			if ok || ctx.Err() != nil {
				return true, err
			}
			if errors.Is(err, errBusy) {
				busy = append(busy, a)
			}
			if err != nil {
				last = err
			}
		}
		return false, nil
	}
	if end, err := each(sources); end {
		return err
	}
	ps, _ := s.findProviders(ctx, h.Key())
	addrs := make([]id.Address, len(ps))
	for i, p := range ps {
		addrs[i] = p.Address
	}
	if end, err := each(addrs); end {
		return err
	}
	for round := 0; round < 3 && len(busy) > 0; round++ {
		if !clock.Sleep(s.clk, time.Duration(round+1)*4*busyPause, ctx.Done()) {
			return ctx.Err()
		}
		again := busy
		busy = nil
		for _, a := range again {
			delete(tried, a)
		}
		if end, err := each(again); end {
			return err
		}
	}
	if last == nil {
		return node.Errorf(CodeNotFound, nil, "no node holds chunk %s", h)
	}
	return node.Errorf(node.CodeUnavailable, []error{last}, "no provider could send chunk %s: %v", h, last)
}

// download is one Fetch's transfers. One goroutine (run) owns its state;
// transfers and lookups run on goroutines of their own and report on
// results and found.
type download struct {
	s      *Service
	ctx    context.Context
	cancel context.CancelFunc
	id     chunk.Hash
	m      *chunk.Manifest
	class  Class
	opts   GetOptions
	prog   *progress

	sources  map[id.Address]*source
	whole    []id.Address // providers of every chunk
	chunks   []*want      // the chunks not held here, in order
	first    int          // chunks before it are done
	inFlight int
	looking  int
	bytes    atomic.Int64
	results  chan result
	found    chan found
	// firstByte is signaled once, when the download's first bytes land: the
	// progress report then is the time to first byte, not the next tick.
	firstByte chan struct{}
}

// source is one provider as a download sees it.
type source struct {
	addr     id.Address
	lat      time.Duration // 0: unknown
	inFlight int
	failures int
	dropped  bool
	pause    time.Time // busy: not asked again before this
}

// want is a chunk a download still needs.
type want struct {
	i       int
	also    []int // later indexes of the same chunk
	h       chunk.Hash
	size    int
	cands   []id.Address // its own providers (beside the whole ones)
	tried   map[id.Address]bool
	looked  bool // its providers were looked up
	looking bool
	active  bool
	done    bool
	busy    int // ChunkBusy answers
	// failed counts the transfers that failed (unreachable providers,
	// which may have left with their records still up, do not count).
	failed int
	last   error
}

type result struct {
	w   *want
	src id.Address
	err error
	n   int // bytes counted for progress
}

type found struct {
	w   *want
	ps  []Provider
	err error
}

// addSource notes a provider; whole ones serve every chunk.
func (d *download) addSource(a id.Address, whole bool) *source {
	src := d.sources[a]
	if src == nil {
		src = &source{addr: a, lat: d.s.ov.Latency(a)}
		d.sources[a] = src
	}
	if whole && !slices.Contains(d.whole, a) {
		d.whole = append(d.whole, a)
	}
	return src
}

func (d *download) providers() int {
	n := 0
	for _, src := range d.sources {
		if !src.dropped {
			n++
		}
	}
	return n
}

// run fetches every chunk not held here, and returns once every
// transfer it started has ended.
func (d *download) run() error {
	m := d.m
	var have int64
	done := 0
	wanted := map[chunk.Hash]*want{}
	for i, h := range m.Chunks {
		if d.s.lib.Has(h) { // made Own, if pinned, by the Pin after the download
			have += int64(m.ChunkLen(i))
			done++
			if d.opts.OnChunk != nil {
				d.opts.OnChunk(i)
			}
			continue
		}
		if w := wanted[h]; w != nil {
			w.also = append(w.also, i) // a payload of repeated blocks repeats chunks: fetched once
			continue
		}
		w := &want{i: i, h: h, size: m.ChunkLen(i), tried: map[id.Address]bool{}}
		wanted[h] = w
		d.chunks = append(d.chunks, w)
	}
	d.bytes.Store(have)
	remaining := len(d.chunks)
	tick := d.s.clk.NewTicker(progressEvery)
	defer tick.Stop()
	var fail error
	for {
		if remaining == 0 && d.inFlight == 0 {
			// Lookups still running only add sources: leave them (found
			// has room for every one).
			return fail
		}
		if fail == nil && d.ctx.Err() != nil {
			fail = d.ctx.Err()
		}
		if fail == nil {
			if fail = d.schedule(); fail != nil {
				d.cancel() // the transfers in flight end now
			}
		}
		if fail != nil && d.inFlight == 0 {
			return fail
		}
		ended := d.ctx.Done()
		if fail != nil {
			ended = nil // waiting for the transfers in flight to end
		}
		select {
		case r := <-d.results:
			if fail != nil {
				d.inFlight--
				continue
			}
			d.inFlight--
			src := d.sources[r.src]
			src.inFlight--
			r.w.active = false
			if r.err == nil {
				r.w.done = true
				remaining--
				done += 1 + len(r.w.also)
				d.bytes.Add(int64(r.w.size * len(r.w.also)))
				src.failures = 0
				if d.opts.OnChunk != nil {
					d.opts.OnChunk(r.w.i)
					for _, i := range r.w.also {
						d.opts.OnChunk(i)
					}
				}
				continue
			}
			d.bytes.Add(-int64(r.n))
			if errors.Is(r.err, errBusy) && r.w.busy < maxBusy {
				// Not a failure: it serves others; ask again later.
				r.w.busy++
				src.pause = d.s.clk.Now().Add(busyPause)
				continue
			}
			d.s.log.Info("a chunk transfer failed; asking elsewhere", "chunk", r.w.i, "peer", r.src.Short(), "err", r.err)
			r.w.tried[r.src] = true
			r.w.last = r.err
			if !errors.Is(r.err, errUnreachable) {
				r.w.failed++
			}
			switch {
			case errors.Is(r.err, ErrPledgeFull), errors.Is(r.err, store.ErrQuota):
				fail = r.err
				d.cancel()
			case blame(r.err):
				src.dropped = true
				d.s.penalise(r.src, r.err)
			case errors.Is(r.err, errUnreachable):
				src.dropped = true // one that left keeps its records for a while
			default:
				if src.failures++; src.failures >= maxFailures {
					src.dropped = true
				}
			}
		case f := <-d.found:
			d.looking--
			f.w.looking, f.w.looked = false, true
			for _, p := range f.ps {
				d.addSource(p.Address, p.Whole)
				if !slices.Contains(f.w.cands, p.Address) {
					f.w.cands = append(f.w.cands, p.Address)
				}
			}
		case <-tick.C():
			d.prog.report("downloading", d.bytes.Load(), m.Size, d.providers(), len(m.Chunks), done, false)
		case <-d.firstByte:
			d.prog.report("downloading", d.bytes.Load(), m.Size, d.providers(), len(m.Chunks), done, true)
		case <-ended:
			fail = d.ctx.Err()
		}
	}
}

// schedule starts transfers for the chunks that have a free provider,
// and provider lookups for the next chunks; it fails the download when a
// chunk has no provider left to ask.
func (d *download) schedule() error {
	busy := 0
	for _, src := range d.sources {
		if src.inFlight > 0 {
			busy++
		}
	}
	ahead := 0
	// Done chunks are skipped once, not at every event: a manifest may
	// list a hundred thousand chunks.
	for d.first < len(d.chunks) && d.chunks[d.first].done {
		d.first++
	}
	for _, w := range d.chunks[d.first:] {
		if w.done || w.active {
			continue
		}
		ahead++
		cands, paused := d.candidates(w)
		if len(cands) > 0 && !w.looked && !d.s.ov.connected(cands[0].addr) {
			// Opening a channel costs more than a lookup, and the only
			// providers known may have left: learn w's own first.
			if !w.looking && d.looking < lookupParallel {
				d.lookup(w)
			}
			continue
		}
		if d.inFlight < MaxInFlight {
			if src := d.pick(cands, &busy); src != nil {
				d.start(w, src)
				continue
			}
		}
		// Look up its own providers: when it has none to ask, or ahead
		// of the transfers while it has fewer than MaxSources.
		if !w.looked && !w.looking && d.looking < lookupParallel && (len(cands) == 0 || (ahead <= lookupAhead && len(cands) < MaxSources)) {
			d.lookup(w)
		}
		if len(cands) == 0 && paused == 0 && w.looked && !w.looking {
			return d.exhausted(w)
		}
		if w.failed >= MaxAttempts {
			return d.exhausted(w)
		}
		if ahead > lookupAhead && d.inFlight >= MaxInFlight {
			break
		}
	}
	return nil
}

// candidates are the providers w may be asked of now, least latency
// first, and how many more it may ask once their busy pause is over.
func (d *download) candidates(w *want) (out []*source, paused int) {
	now := d.s.clk.Now()
	add := func(a id.Address) {
		src := d.sources[a]
		if src == nil || src.dropped || w.tried[a] || slices.Contains(out, src) || d.s.inPenalty(a) {
			return
		}
		if now.Before(src.pause) {
			paused++
			return
		}
		out = append(out, src)
	}
	for _, a := range d.whole {
		add(a)
	}
	for _, a := range w.cands {
		add(a)
	}
	addrs := make([]id.Address, len(out))
	for i, src := range out {
		addrs[i] = src.addr
	}
	sortByLatency(addrs, func(a id.Address) time.Duration { return d.sources[a].lat }, d.s.ov.connected)
	for i, a := range addrs {
		out[i] = d.sources[a]
	}
	return out, paused
}

// pick is the first of cands with room for another chunk, keeping to
// MaxSources providers busy at once.
func (d *download) pick(cands []*source, busy *int) *source {
	for _, src := range cands {
		if src.inFlight >= PerSource {
			continue
		}
		if src.inFlight == 0 {
			if *busy >= MaxSources {
				continue
			}
			*busy++
		}
		return src
	}
	return nil
}

// exhausted is the error for chunk w, which no provider left can send.
func (d *download) exhausted(w *want) error {
	switch {
	case len(w.tried) == 0:
		return node.Errorf(CodeNotFound, nil, "no node holds chunk %d of content %s", w.i, d.id)
	case blame(w.last) && errors.Is(w.last, chunk.ErrCorrupt):
		return node.Errorf(CodeCorrupt, []error{w.last}, "every provider of chunk %d of content %s sent corrupt bytes", w.i, d.id)
	}
	return node.Errorf(node.CodeUnavailable, []error{w.last}, "no provider could send chunk %d of content %s (%d tried): %v", w.i, d.id, len(w.tried), w.last)
}

// start fetches w from src into a pooled buffer, checks it and stores it.
func (d *download) start(w *want, src *source) {
	w.active = true
	src.inFlight++
	d.inFlight++
	go func() {
		r := result{w: w, src: src.addr}
		bp, err := chunkPool.get(d.ctx)
		if err != nil {
			r.err = err
			d.results <- r
			return
		}
		buf := (*bp)[:w.size]
		r.err = d.s.ov.Fetch(d.ctx, src.addr, w.h, w.size, buf, func(n int) {
			r.n += n
			if d.bytes.Add(int64(n)) == int64(n) {
				select {
				case d.firstByte <- struct{}{}:
				default:
				}
			}
		})
		if r.err == nil {
			// The store checks the bytes against w.h before it keeps them
			// (store.Chunks.Put; the Library checks a chunk it holds
			// already), and says chunk.ErrCorrupt, which blames src: one
			// hash of each chunk, not two — in a tab each costs a copy
			// into JavaScript and a WebCrypto digest.
			r.err = d.s.lib.Put(w.h, buf, d.class, d.m.Type)
		}
		chunkPool.put(bp)
		d.results <- r
	}()
}

// lookup finds w's own providers.
func (d *download) lookup(w *want) {
	w.looking = true
	d.looking++
	go func() {
		ps, err := d.s.findProviders(d.ctx, w.h.Key())
		d.found <- found{w: w, ps: ps, err: err}
	}()
}

// progress rate-limits a Progress callback to one every progressEvery.
type progress struct {
	s     *Service
	fn    func(Progress)
	start time.Time
	last  time.Time
}

func newProgress(s *Service, fn func(Progress)) *progress {
	return &progress{s: s, fn: fn, start: s.clk.Now()}
}

// report calls the callback, unless it was called less than
// progressEvery ago (force: call it anyway, for a phase change).
func (p *progress) report(phase string, bytes, total int64, providers, chunks, done int, force bool) {
	if p == nil || p.fn == nil {
		return
	}
	now := p.s.clk.Now()
	if !force && now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	var rate float64
	if el := now.Sub(p.start).Seconds(); el > 0 {
		rate = float64(bytes) / el
	}
	p.fn(Progress{Phase: phase, Bytes: bytes, Total: total, BytesPerSec: rate, Providers: providers, Chunks: chunks, ChunksDone: done})
}
