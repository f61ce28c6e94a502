package content

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Limits of the service, beside the transfer's (host.go) and the
// download's (fetch.go).
const (
	// PenaltyTime is how long a provider that served bad bytes is not
	// asked again by any download of this node.
	PenaltyTime = time.Hour
	// sweepEvery is how often the library drops what its policy says is
	// too old.
	sweepEvery = 10 * time.Minute
	// maxPenalised bounds the penalty box; the entry that ends first goes.
	maxPenalised = 4096
)

// Config configures a Service.
type Config struct {
	// Chunks is where chunks are kept (store.OpenDiskChunks,
	// store.OpenIndexedDBChunks); nil keeps them in memory.
	Chunks store.Chunks
	// Pledge is the bytes this node holds for others (DefaultPledge if
	// 0); its own content does not count.
	Pledge int64
	// Policy is what it is willing to hold for others.
	Policy Policy
	// Replicas is the copies public content gets at publication
	// (DefaultReplicas if 0).
	Replicas int
}

// Service is the content capability: put, fetch, serve and replicate
// content. Make one with New and list it in the node's
// Config.Capabilities; its methods work once the node runs.
type Service struct {
	cfg Config
	h   *node.Host
	ov  *hostOverlay
	lib *Library
	rep *replicator
	clk clock.Clock
	log *slog.Logger

	start sync.Once

	mu        sync.Mutex
	penalised map[id.Address]time.Time // until when
	serving   map[id.Address]int       // transfers being served, per peer
	// busyReplies counts the ChunkBusy answers waiting to be sent, per peer.
	busyReplies map[id.Address]int
	servingN    int
	// wholeOf maps each chunk to the contents this node announced whole
	// that hold it, so evicting it withdraws those announcements.
	wholeOf map[chunk.Hash][]chunk.Hash
}

var _ node.Capability = (*Service)(nil)

// New returns a content service, to be attached to a node.
func New(cfg Config) *Service {
	if cfg.Replicas <= 0 {
		cfg.Replicas = DefaultReplicas
	}
	return &Service{cfg: cfg, penalised: map[id.Address]time.Time{}, serving: map[id.Address]int{}, busyReplies: map[id.Address]int{}, wholeOf: map[chunk.Hash][]chunk.Hash{}}
}

// Feature implements node.Capability.
func (s *Service) Feature() string { return wire.FeatureContent }

// Attach implements node.Capability: it opens the library over the
// chunks store (its index in the capability's namespace) and registers
// the content messages.
func (s *Service) Attach(h *node.Host) error {
	s.h, s.clk, s.log = h, h.Clock(), h.Logger()
	chunks := s.cfg.Chunks
	if chunks == nil {
		chunks = store.NewMemoryChunks()
	}
	lib, err := OpenLibrary(chunks, h.Store(), LibraryConfig{Pledge: s.cfg.Pledge, Policy: s.cfg.Policy, Clock: h.Clock()})
	if err != nil {
		return fmt.Errorf("content: open the library: %w", err)
	}
	s.lib = lib
	s.ov = newHostOverlay(h)
	s.rep = newReplicator(serviceHost{hostOverlay: s.ov, s: s}, replicaConfig{Replicas: s.cfg.Replicas}, h.Clock(), h.Logger())
	lib.OnEvict(s.evicted)
	h.HandlePeer(wire.TypeChunkGet, func(from node.PeerInfo, m wire.Message) { s.handleGet(from, m.(*wire.ChunkGet)) })
	h.HandlePeer(wire.TypeChunkData, func(from node.PeerInfo, m wire.Message) { s.ov.handleData(from, m.(*wire.ChunkData)) })
	h.HandlePeer(wire.TypeChunkDone, func(from node.PeerInfo, m wire.Message) { s.ov.handleDone(from, m.(*wire.ChunkDone)) })
	h.HandleRequest(wire.TypeChunkHave, s.handleHave)
	h.HandleRequest(wire.TypeReplicaAsk, func(ctx context.Context, from id.Address, m wire.Message) (wire.Message, error) {
		return s.rep.handleAsk(ctx, from, m.(*wire.ReplicaAsk)), nil
	})
	h.OnAdmitted(s.admitted)
	return nil
}

// admitted starts the background work at the first admission, and signs
// the provider records again at every one (the lease, and with it the
// address, may be new).
func (s *Service) admitted(ctx context.Context, _ wire.Lease) {
	first := false
	s.start.Do(func() {
		life := s.h.Life()
		go s.rep.run(life)
		go s.loop(life)
		first = true
	})
	if first {
		go s.reannounce(s.h.Life())
	}
	s.ov.refresh(ctx)
}

// reannounce publishes, once per run, the provider records of what the
// library held before it started (a restart): each chunk, and, whole,
// the content pinned here whose every chunk is held.
func (s *Service) reannounce(ctx context.Context) {
	var hs []chunk.Hash
	for _, c := range []Class{Own, Replica, Cache} {
		hs = append(hs, s.lib.Held(c)...)
	}
	if len(hs) == 0 {
		return
	}
	for _, h := range s.lib.Held(Own) {
		if !s.lib.Pinned(h) {
			continue // a pin is keyed by its content id: the others are chunks
		}
		raw, err := s.readLocal(h)
		var m chunk.Manifest
		if err != nil || m.Unmarshal(raw) != nil || !s.local(&m) {
			continue
		}
		s.announceWhole(ctx, h, &m)
	}
	s.announceChunks(ctx, hs)
}

// loop refreshes provider records every ProviderRefresh and sweeps the
// library every sweepEvery, on the node's clock, until ctx ends.
func (s *Service) loop(ctx context.Context) {
	refresh := s.clk.NewTicker(ProviderRefresh)
	defer refresh.Stop()
	sweep := s.clk.NewTicker(sweepEvery)
	defer sweep.Stop()
	for {
		select {
		case <-refresh.C():
			s.ov.refresh(ctx)
		case <-sweep.C():
			s.lib.Sweep()
		case <-ctx.Done():
			return
		}
	}
}

// evicted withdraws what this node no longer holds: the chunk's provider
// record and the whole-content records of everything it was part of.
func (s *Service) evicted(h chunk.Hash) {
	s.ov.Withdraw(h.Key())
	s.mu.Lock()
	ids := s.wholeOf[h]
	delete(s.wholeOf, h)
	s.mu.Unlock()
	for _, c := range ids {
		s.ov.Withdraw(c.Key())
	}
}

// Library is the node's accounting of its chunks (nil before Attach).
func (s *Service) Library() *Library { return s.lib }

// Storage is the library's usage.
func (s *Service) Storage() Usage { return s.lib.Usage() }

// Progress is how a put or a download is going.
type Progress struct {
	Phase       string  `json:"phase"` // "hashing", "storing", "finding", "downloading", "done"
	Bytes       int64   `json:"bytes"`
	Total       int64   `json:"total"` // -1 while unknown
	BytesPerSec float64 `json:"bytesPerSec"`
	Providers   int     `json:"providers"`
	Chunks      int     `json:"chunks"`
	ChunksDone  int     `json:"chunksDone"`
}

// Stat describes content.
type Stat struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Type     string `json:"type"`
	Size     int64  `json:"size"`
	Chunks   int    `json:"chunks"`
	Local    bool   `json:"local"`  // every chunk is held here
	Pinned   bool   `json:"pinned"` // and kept: this node's own, or pinned
	Replicas int    `json:"replicas"`
}

// Stat describes content id: from its manifest here, or fetched (the
// manifest alone) from a provider.
func (s *Service) Stat(ctx context.Context, id chunk.Hash) (Stat, error) {
	m, err := s.manifest(ctx, id, nil, nil)
	if err != nil {
		return Stat{}, boundary(ctx, err)
	}
	st := Stat{ID: id.String(), Name: m.Name, Type: m.Type, Size: m.Size, Chunks: len(m.Chunks),
		Local: s.local(m), Pinned: s.lib.Pinned(id), Replicas: s.rep.replicas(id)}
	return st, nil
}

// Manifest is content id's manifest: read here, or fetched alone (and
// kept as cache), from sources first if any has a channel open (see
// GetOptions.Sources).
func (s *Service) Manifest(ctx context.Context, cid chunk.Hash, sources ...id.Address) (*chunk.Manifest, error) {
	if s.lib == nil {
		return nil, node.Errorf(node.CodeNotAdmitted, nil, "the content service is not attached to a node")
	}
	m, err := s.manifest(ctx, cid, sources, nil)
	return m, boundary(ctx, err)
}

// local reports whether every chunk of m is held here.
func (s *Service) local(m *chunk.Manifest) bool {
	for _, h := range m.Chunks {
		if !s.lib.Has(h) {
			return false
		}
	}
	return true
}

// Pin keeps content id here, fetching what is missing first.
func (s *Service) Pin(ctx context.Context, id chunk.Hash) error {
	_, err := s.Fetch(ctx, id, GetOptions{Pin: true})
	return err
}

// Unpin lets content id's chunks be evicted again (unless another pin
// holds them).
func (s *Service) Unpin(id chunk.Hash) error {
	return boundary(context.Background(), s.lib.Unpin(id))
}

// readLocal reads a whole chunk held here (a manifest) into a new slice.
func (s *Service) readLocal(h chunk.Hash) ([]byte, error) {
	n, err := s.lib.Chunks().Size(h)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := s.lib.ReadAt(h, b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// penalise keeps p out of every download for PenaltyTime and says so.
func (s *Service) penalise(p id.Address, reason error) {
	now := s.clk.Now()
	s.mu.Lock()
	if len(s.penalised) >= maxPenalised {
		for a, t := range s.penalised {
			if !t.After(now) {
				delete(s.penalised, a)
			}
		}
	}
	if len(s.penalised) >= maxPenalised {
		// Still full of live penalties: the one that ends first goes, so
		// a new offender is never let off.
		var first id.Address
		var at time.Time
		for a, t := range s.penalised {
			if at.IsZero() || t.Before(at) {
				first, at = a, t
			}
		}
		delete(s.penalised, first)
	}
	s.penalised[p] = now.Add(PenaltyTime)
	s.mu.Unlock()
	s.log.Warn("penalised a provider", "peer", p.Short(), "reason", reason)
	s.h.Emit(EventPenalty, PenaltyEvent{Peer: p.String(), Reason: reason.Error()})
}

// inPenalty reports whether p is penalised now.
func (s *Service) inPenalty(p id.Address) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.penalised[p]
	if ok && !t.After(s.clk.Now()) {
		delete(s.penalised, p)
		return false
	}
	return ok
}

// serviceHost is the replicaHost the replicator works through: the
// node's overlay, the library, and single-chunk fetches. (The Service
// cannot be it itself: its Fetch is a whole download, the overlay's one
// transfer.)
type serviceHost struct {
	*hostOverlay
	s *Service
}

func (h serviceHost) library() *Library { return h.s.lib }

func (h serviceHost) fetch(ctx context.Context, c chunk.Hash, size int, sources []id.Address, class Class, typ string) error {
	return h.s.fetchChunk(ctx, c, size, sources, class, typ)
}
