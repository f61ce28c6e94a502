package site

import (
	"context"
	"slices"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/node"
	"ddt/shared/wire"
)

// HostEvery is how often Host resolves its domain again (asking the
// network, not the cache) to follow the site's updates.
const HostEvery = 30 * time.Second

// hostParallel is how many of a site's files Host fetches at once.
const hostParallel = 4

// EventHosted is emitted (HostedEvent) when Host holds every file of a
// domain's current version, pinned.
const EventHosted = "site.hosted"

// HostedEvent is EventHosted's value.
type HostedEvent struct {
	Domain   string `json:"domain"`
	Version  uint64 `json:"version"`
	Manifest string `json:"manifest"`
	Files    int    `json:"files"`
}

// storeHosted keys, in the service's namespace, the manifest id of the
// version Host last held whole, per domain: after a restart, its files
// are the ones to unpin once a newer version is held.
const storeHosted = "hosted/"

// Host keeps domain's current site pinned here and announced, following
// its updates, until ctx ends (it returns ctx's error then). Every
// HostEvery, on the node's clock, it resolves the domain afresh; a new
// version's manifest and files are fetched and pinned, and only once all
// are held are the previous version's files unpinned (those the new
// version shares stay), so a reader finds one whole version here at every
// moment. Failures (the node not admitted yet, a provider gone) are
// logged and tried again, sooner at first. Run one Host per domain.
func (s *Service) Host(ctx context.Context, domain string) error {
	if s.files == nil || s.h == nil {
		return node.Errorf(node.CodeNotAdmitted, nil, "the sites service is not attached to a node with content")
	}
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return err
	}
	log := s.h.Logger().With("domain", domain)
	hs := &hosting{s: s, domain: domain}
	if raw, err := s.h.Store().Get(storeHosted + domain); err == nil && len(raw) == chunk.HashLen {
		copy(hs.current[:], raw)
		if m, err := s.localManifest(ctx, hs.current); err == nil {
			hs.held = siteIDs(hs.current, m)
		}
	}
	retry := time.Second
	for {
		wait := HostEvery
		rec, err := s.Resolve(ctx, domain, ResolveOptions{MaxAge: -1})
		if err == nil {
			err = hs.follow(ctx, rec)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			wait = min(retry, HostEvery)
			log.Info("cannot host the site yet; trying again", "in", wait, "err", err)
			retry = min(2*retry, HostEvery)
		} else {
			retry = time.Second
		}
		if !clock.Sleep(s.h.Clock(), wait, ctx.Done()) {
			return ctx.Err()
		}
	}
}

// hosting is what one Host knows of its domain.
type hosting struct {
	s       *Service
	domain  string
	current chunk.Hash   // the version held whole
	held    []chunk.Hash // what Host pinned for it: its manifest and files
	// pending is what a version not yet held whole has pinned, so that a
	// version skipped before it was complete leaves no pins behind.
	pending []chunk.Hash
	mu      sync.Mutex // pending, while pins run in parallel
}

// follow makes rec's site the one held here: if it is not the current
// one, it pins its manifest and every file, and once all are held
// unpins what was pinned before and the new version lacks.
func (hs *hosting) follow(ctx context.Context, rec *wire.DomainRecord) error {
	s := hs.s
	mid := chunk.Hash(rec.Claim.Site)
	if mid == hs.current {
		return nil
	}
	m, err := s.siteManifest(ctx, hs.domain, mid)
	if err != nil {
		return err
	}
	ids := siteIDs(mid, m)
	pin := func(id chunk.Hash) error {
		hs.mu.Lock()
		if !slices.Contains(hs.pending, id) {
			hs.pending = append(hs.pending, id)
		}
		hs.mu.Unlock()
		return s.files.Pin(ctx, id)
	}
	if err := inParallel(ctx, ids, hostParallel, pin); err != nil {
		return err
	}
	for _, id := range slices.Concat(hs.held, hs.pending) {
		if !slices.Contains(ids, id) {
			if err := s.files.Unpin(id); err != nil {
				s.h.Logger().Warn("could not unpin a previous version's file", "domain", hs.domain, "id", id.Short(), "err", err)
			}
		}
	}
	hs.current, hs.held, hs.pending = mid, ids, nil
	if err := s.h.Store().Put(storeHosted+hs.domain, mid[:]); err != nil {
		s.h.Logger().Warn("could not record the hosted version", "domain", hs.domain, "err", err)
	}
	s.h.Logger().Info("hosting the site", "domain", hs.domain, "version", rec.Claim.Version, "manifest", mid.Short(), "files", len(m.Entries))
	s.h.Emit(EventHosted, HostedEvent{Domain: hs.domain, Version: rec.Claim.Version, Manifest: mid.String(), Files: len(m.Entries)})
	return nil
}

// siteIDs is the content a site is made of: its manifest and each file,
// once.
func siteIDs(mid chunk.Hash, m *Manifest) []chunk.Hash {
	ids := []chunk.Hash{mid}
	for _, e := range m.Entries {
		if !slices.Contains(ids, e.ID) {
			ids = append(ids, e.ID)
		}
	}
	return ids
}

// localManifest is the site manifest mid if this node holds it (never
// fetched).
func (s *Service) localManifest(ctx context.Context, mid chunk.Hash) (*Manifest, error) {
	r, err := s.files.Open(ctx, mid)
	if err != nil {
		return nil, err
	}
	r.Close()
	return s.siteManifest(ctx, "", mid)
}

// inParallel runs fn on every id, n at a time; the first error stops
// what has not started and is returned.
func inParallel(ctx context.Context, ids []chunk.Hash, n int, fn func(chunk.Hash) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan chunk.Hash)
	var wg sync.WaitGroup
	for range min(n, len(ids)) {
		wg.Go(func() {
			for id := range next {
				if err := fn(id); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, id := range ids {
		select {
		case next <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
