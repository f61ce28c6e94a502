package unicast

import (
	"context"
	"sync/atomic"
	"time"

	"ddt/shared/clock"
	"ddt/shared/node"
	"ddt/shared/unicast/onion"
	"ddt/shared/wire"
)

// stats are the counters of StatsView.
type stats struct {
	onionsForwarded, onionsDropped, chainsSent, chainsRetried atomic.Int64
}

// Attach implements node.Capability: it registers the service's
// handlers, loads friends, requests, sessions and the outbox, and makes
// or loads the onion key. At every admission the node publishes its
// KeyRecord, collects its mail and tells its friends it is back.
func (s *Service) Attach(h *node.Host) error {
	s.h = h
	s.friends = map[string]*friend{}
	s.requests = map[string]*request{}
	s.sessions = map[[16]byte]*session{}
	s.outbox = map[string]map[[16]byte]*outItem{}
	s.early = map[string]map[uint64]*heldText{}
	s.exchanges = map[[16]byte]*exchange{}
	s.incoming = map[[16]byte]*incoming{}
	s.seenShare = map[shareKey]time.Time{}
	s.waiters = map[string][]chan string{}
	s.changed = make(chan struct{})
	s.lastSeen = map[string]time.Time{}
	s.lastReceipt = map[string]time.Time{}
	s.replays = &onion.Replays{Capacity: MaxReplays}
	s.work = make(chan struct{}, MaxOnionWork)
	s.attachMailbox(h)
	h.HandleRequest(wire.TypeFriendRequest, s.onFriendRequest)
	h.HandleRequest(wire.TypeFriendAnswer, s.onFriendAnswer)
	h.HandleRequest(wire.TypePresence, s.onPresence)
	h.HandleRequest(wire.TypeChatMessage, s.onChat)
	h.HandleRouted(wire.TypeOnion, s.onOnion)
	h.HandleRouted(wire.TypeShareAck, s.onShareAck)
	h.OnAdmitted(s.admitted)
	if err := s.loadOnionKey(); err != nil {
		return err
	}
	if !h.Fresh() {
		s.loadFriends()
		s.loadSessions()
		s.loadChat()
	}
	return nil
}

// admitted runs at every admission: publish our KeyRecord, collect what
// holders keep for us, tell friends we are back, and send again what
// waits.
func (s *Service) admitted(ctx context.Context, lease wire.Lease) {
	go s.publishKeys(ctx, lease)
	s.mu.Lock()
	if !s.looping {
		s.looping = true
		go s.loop()
	}
	s.mu.Unlock()
	// A node just admitted has no data channel yet: nothing reaches the
	// nodes closest to it, nor its friends, until one opens.
	h := s.h
	for i := 0; len(h.Peers()) == 0 && i < int(peerWait/peerPoll); i++ {
		if !clock.Sleep(h.Clock(), peerPoll, ctx.Done()) {
			return
		}
	}
	for i, pause := range admitRetries {
		n, err := s.collect(ctx, s.takeMail)
		if n > 0 {
			h.Logger().Info("collected held messages", "count", n)
		}
		if err == nil {
			break
		}
		h.Logger().Info("could not collect all held messages", "taken", n, "err", err, "try", i+1)
		if !clock.Sleep(h.Clock(), pause, ctx.Done()) {
			return
		}
	}
	for _, name := range s.friendNames() {
		go func() {
			for _, pause := range admitRetries {
				if s.sendPresence(ctx, name) || !clock.Sleep(h.Clock(), pause, ctx.Done()) {
					break
				}
			}
			s.flush(ctx, name, false)
		}()
	}
	s.retryRequests(ctx)
}

// Waits of the admission hook: for a first data channel, and between
// tries of collecting mail and telling friends.
const (
	peerWait = 30 * time.Second
	peerPoll = 250 * time.Millisecond
)

var admitRetries = []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second}

// friendNames lists the names of our friends.
func (s *Service) friendNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name, f := range s.friends {
		if f.State == stateFriend {
			out = append(out, name)
		}
	}
	return out
}

// loop sends pending requests and answers again every RequestRetry and
// the outbox every OutboxRetry, while the node runs.
func (s *Service) loop() {
	h := s.h
	t := h.Clock().NewTicker(RequestRetry)
	defer t.Stop()
	var ticks int
	for {
		select {
		case <-h.Life().Done():
			return
		case <-t.C():
		}
		if h.Lease().Address.IsZero() {
			continue
		}
		s.retryRequests(h.Life())
		ticks++
		if ticks%int(OutboxRetry/RequestRetry) == 0 {
			for _, name := range s.friendNames() {
				s.refreshAddress(h.Life(), name)
				s.flush(h.Life(), name, true)
			}
		}
	}
}

// Stats counts what the service did.
func (s *Service) Stats() StatsView {
	held, bytes := s.mailboxStats()
	return StatsView{
		OnionsForwarded: s.stats.onionsForwarded.Load(),
		OnionsDropped:   s.stats.onionsDropped.Load(),
		ChainsSent:      s.stats.chainsSent.Load(),
		ChainsRetried:   s.stats.chainsRetried.Load(),
		Held:            held,
		HeldBytes:       bytes,
	}
}
