package content

import (
	"context"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
)

// Content fetched into the cache is announced (this node becomes one of
// its providers) in the background, one content at a time, once fetching
// has paused for
// AnnounceQuiet, or at the latest AnnounceMaxDelay after it was fetched:
// each announcement is a DHT lookup and signed records to store, and a
// tab that announced each of a page load's files as it arrived spent part
// of the load on them (a site's first visit: a median of 590 ms with the
// announcements in its way, 530 ms after it). Being a cache's provider a
// few seconds later costs nobody anything. Content fetched to be pinned is announced at once.
const (
	AnnounceQuiet    = 500 * time.Millisecond
	AnnounceMaxDelay = 10 * time.Second
)

// announcer is the queue of fetched content waiting to be announced.
type announcer struct {
	mu        sync.Mutex
	queue     []announceJob
	queued    map[chunk.Hash]bool
	lastFetch time.Time
	wake      chan struct{}
}

type announceJob struct {
	id chunk.Hash
	m  *chunk.Manifest
	at time.Time
}

// fetching notes that a fetch started or ended now.
func (a *announcer) fetching(now time.Time) {
	a.mu.Lock()
	a.lastFetch = now
	a.mu.Unlock()
}

// add queues content id (once) for announcement.
func (a *announcer) add(id chunk.Hash, m *chunk.Manifest, now time.Time) {
	a.mu.Lock()
	if a.queued == nil {
		a.queued, a.wake = make(map[chunk.Hash]bool), make(chan struct{}, 1)
	}
	if !a.queued[id] {
		a.queued[id] = true
		a.queue = append(a.queue, announceJob{id: id, m: m, at: now})
	}
	a.lastFetch = now
	wake := a.wake
	a.mu.Unlock()
	signalOne(wake)
}

// next waits until a job may go — something is queued, and fetching has
// paused for AnnounceQuiet or the oldest job has waited AnnounceMaxDelay —
// and returns it, or false once ctx ends.
func (a *announcer) next(ctx context.Context, clk clock.Clock) (announceJob, bool) {
	for {
		a.mu.Lock()
		if a.wake == nil {
			a.queued, a.wake = make(map[chunk.Hash]bool), make(chan struct{}, 1)
		}
		wake := a.wake
		if len(a.queue) == 0 {
			a.mu.Unlock()
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return announceJob{}, false
			}
		}
		now := clk.Now()
		wait := max(AnnounceQuiet-now.Sub(a.lastFetch), 0)
		if old := AnnounceMaxDelay - now.Sub(a.queue[0].at); old < wait {
			wait = max(old, 0)
		}
		if wait == 0 {
			j := a.queue[0]
			a.queue = a.queue[1:]
			delete(a.queued, j.id)
			a.mu.Unlock()
			return j, true
		}
		a.mu.Unlock()
		if !clock.Sleep(clk, wait, ctx.Done()) {
			return announceJob{}, false
		}
	}
}

// announceLoop announces queued content, one at a time, until ctx ends.
func (s *Service) announceLoop(ctx context.Context) {
	for {
		j, ok := s.ann.next(ctx, s.clk)
		if !ok {
			return
		}
		s.announceContent(j.id, j.m)
	}
}
