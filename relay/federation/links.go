package federation

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"ddt/relay/link"
	"ddt/relay/zone"
	"ddt/shared/backoff"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// dialLoop keeps a link to one -peer relay: dial, run, and redial with
// backoff when it ends.
func (f *Federation) dialLoop(d *dialTarget) {
	defer f.wg.Done()
	log := f.log.With("peer", d.url)
	wait := backoff.Backoff{Min: MinBackoff, Max: f.cfg.MaxBackoff}
	failures := 0
	for f.ctx.Err() == nil {
		f.mu.Lock()
		key, known := d.key, d.known
		f.mu.Unlock()
		if known {
			f.waitLinkDown(key)
		}
		if f.ctx.Err() != nil {
			return
		}
		dctx, cancel := context.WithTimeout(f.ctx, HelloTimeout)
		conn, err := f.cfg.Dial(dctx, d.url)
		cancel()
		if err == nil {
			var up bool
			key, up, err = f.runLink(f.ctx, conn, d, d.url, nil)
			if key != ([32]byte{}) {
				f.mu.Lock()
				d.key, d.known = key, true
				f.mu.Unlock()
			}
			if up {
				wait.Reset()
				failures = 0
			}
		}
		switch {
		case f.ctx.Err() != nil:
			return
		case errors.Is(err, ErrBadPeer):
			log.Error("cannot federate", "err", err)
			return
		case errors.Is(err, ErrSelfLink):
			log.Warn("not federating: this -peer is this relay itself")
			return
		case errors.Is(err, ErrDuplicate):
			continue // wait for the kept link to end
		case err != nil:
			failures++
			if failures == 1 {
				log.Info("relay link failed; redialing with backoff", "err", err)
			} else {
				log.Debug("relay link failed", "err", err, "failures", failures)
			}
		}
		if !clock.Sleep(f.clock, wait.Next(), f.ctx.Done()) {
			return
		}
	}
}

// waitLinkDown returns once no link to key is up (or the federation
// closes).
func (f *Federation) waitLinkDown(key [32]byte) {
	for {
		f.mu.Lock()
		var stopped <-chan struct{}
		if rs := f.relays[key]; rs != nil && rs.link != nil {
			stopped = rs.link.link.Stopped()
		}
		f.mu.Unlock()
		if stopped == nil {
			return
		}
		select {
		case <-stopped:
		case <-f.ctx.Done():
			return
		}
	}
}

// runLink authenticates a relay link and serves it until it ends. It
// returns the other relay's key once proven, whether the link came up,
// and why it ended. target is the -peer dialed (nil for a link another
// relay opened); it learns the key as soon as the key is proven. release,
// if set, is called once authentication is decided.
func (f *Federation) runLink(ctx context.Context, conn transport.Conn, target *dialTarget, remote string, release func()) (key [32]byte, up bool, err error) {
	dialed := target != nil
	defer conn.Close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(f.ctx, stop)()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	log := f.log.With("remote", remote, "dialed", dialed)

	peer, features, err := f.handshake(ctx, conn, dialed)
	if release != nil {
		release()
	}
	if target != nil && (err == nil || errors.Is(err, ErrSelfLink)) {
		f.mu.Lock()
		target.key, target.known = peer.Key, true
		f.mu.Unlock()
	}
	if err != nil {
		if errors.Is(err, ErrSelfLink) {
			link.Close(conn, link.StatusNormal, "link to self")
			return peer.Key, false, err
		}
		f.dropped.Add(1)
		log.Info("relay link refused", "err", err)
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		inTime := link.Deadline(wctx, conn)
		link.Write(conn, &wire.Error{Code: wire.CodeOf(err), Message: link.Truncate(err.Error(), wire.MaxReason)})
		inTime()
		cancel()
		link.Close(conn, link.StatusPolicyViolation, "federation refused")
		return [32]byte{}, false, err
	}
	log = f.log.With("peerZone", peer.Zone, "peerURL", peer.URL, "peerKey", fmt.Sprintf("%x", peer.Key[:6]), "dialed", dialed)
	l := &Link{f: f, dialed: dialed, peer: peer, features: features, log: log, lim: rate.NewLimiter(LinkSignalRate, LinkSignalBurst)}
	if err := f.linkUp(l, conn); err != nil {
		log.Info("relay link closed", "why", err)
		link.Close(conn, link.StatusNormal, err.Error())
		return peer.Key, false, err
	}
	log.Info("relay link up", "nodes", peer.Nodes, "maxNodes", peer.MaxNodes, "features", features)
	for _, fn := range f.onUp {
		fn(l)
	}
	l.link.Serve(l.handle)
	l.link.Stop(link.WhyGone)
	l.link.Wait()
	f.linkDown(l)
	for _, fn := range f.onDown {
		fn(l)
	}
	log.Info("relay link down", "why", l.link.Why())
	return peer.Key, true, nil
}

// handshake proves our key to the other relay and checks its proof.
func (f *Federation) handshake(ctx context.Context, conn transport.Conn, dialed bool) (wire.RelayInfo, wire.Features, error) {
	hctx, cancel := context.WithTimeout(ctx, HelloTimeout)
	defer cancel()
	defer link.Deadline(hctx, conn)()
	ours := &wire.RelayChallenge{}
	rand.Read(ours.Nonce[:])
	if err := link.Write(conn, ours); err != nil {
		return wire.RelayInfo{}, nil, err
	}
	m, err := link.Read(conn)
	if err != nil {
		return wire.RelayInfo{}, nil, err
	}
	theirs, ok := m.(*wire.RelayChallenge)
	if !ok {
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: expected RelayChallenge, got type %d", wire.ErrProtocol, m.Type())
	}
	self := f.zone.Info()
	hello := &wire.RelayHello{Relay: self, Sig: f.key.Sign(wire.RelayHelloSignedBytes(theirs.Nonce, dialed, &self)), Features: f.features}
	if err := link.Write(conn, hello); err != nil {
		return wire.RelayInfo{}, nil, err
	}
	if m, err = link.Read(conn); err != nil {
		return wire.RelayInfo{}, nil, err
	}
	peer, ok := m.(*wire.RelayHello)
	switch {
	case !ok:
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: expected RelayHello, got type %d", wire.ErrProtocol, m.Type())
	case !identity.Verify(peer.Relay.Key, wire.RelayHelloSignedBytes(ours.Nonce, !dialed, &peer.Relay), peer.Sig):
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: relay hello does not verify", wire.ErrBadSignature)
	case peer.Relay.Key == self.Key:
		return peer.Relay, nil, ErrSelfLink
	case peer.Relay.Zone == "":
		return wire.RelayInfo{}, nil, fmt.Errorf("%w: relay names no zone", wire.ErrProtocol)
	}
	return peer.Relay, peer.Features, nil
}

// dialerKey is the key of the relay that opened l.
func (l *Link) dialerKey() [32]byte {
	if l.dialed {
		return l.f.key.SignKey()
	}
	return l.peer.Key
}

// preferred reports whether l should be kept over cur, another link to
// the same relay. Both relays reach the same answer.
func (l *Link) preferred(cur *Link) bool {
	a, b := l.dialerKey(), cur.dialerKey()
	if a == b {
		return true // the same relay dialed again: it knows the old one is stale
	}
	return string(a[:]) < string(b[:])
}

// linkUp makes l the link to its relay and queues our snapshot on it, or
// refuses it. The snapshot and the installation happen under the zone's
// member lock, so the zone's Watch adds every later change after it.
func (f *Federation) linkUp(l *Link, conn transport.Conn) (err error) {
	f.zone.Snapshot(func(members []*zone.Member) {
		f.mu.Lock()
		defer f.mu.Unlock()
		err = f.linkUpLocked(l, conn, members)
	})
	return err
}

func (f *Federation) linkUpLocked(l *Link, conn transport.Conn, members []*zone.Member) error {
	if f.closed {
		return ErrShuttingDown
	}
	key := l.peer.Key
	rs := f.relays[key]
	if rs != nil && l.dialed {
		rs.configured = true
	}
	if rs != nil && rs.link != nil {
		if !l.preferred(rs.link) {
			return ErrDuplicate
		}
		rs.link.link.Stop("replaced by a newer link")
		f.dropMembersLocked(rs)
		rs.link = nil
	}
	if rs == nil {
		links := 0
		for _, o := range f.relays {
			if o.link != nil {
				links++
			}
		}
		if links >= MaxLinks || len(f.relays) >= 4*MaxLinks {
			return ErrTooMany
		}
		// Every relay that proves a key is trusted until federation by
		// explicit trust lands.
		rs = &relayState{members: make(map[id.Address]*member), configured: l.dialed, trusted: true}
		f.relays[key] = rs
	}
	rs.info, rs.features, rs.link = l.peer, l.features, l

	// Our snapshot, then our counts; deltas follow in order.
	var batches [][]byte
	batch := &wire.ZoneMembers{}
	flush := func(last bool) {
		batch.Last = last
		if b, err := wire.Marshal(batch); err == nil {
			batches = append(batches, b)
		} else {
			f.log.Error("member batch", "err", err)
		}
		batch = &wire.ZoneMembers{}
	}
	for _, m := range members {
		if len(batch.Leases) == wire.MaxMemberBatch {
			flush(false)
		}
		batch.Leases = append(batch.Leases, m.Lease())
		batch.Natives = append(batch.Natives, m.Native())
	}
	flush(true)
	l.link = link.New(conn, link.Config{Queue: LinkQueue + len(batches) + 2, Logger: l.log, Dropped: &f.dropped, Unknown: &f.unknown})
	for _, b := range batches {
		l.link.Send(b)
	}
	info := f.zone.Info()
	l.link.SendMsg(&wire.ZoneSummary{Nodes: uint32(len(members)), MaxNodes: info.MaxNodes})
	return nil
}

// linkDown forgets what came over l once it has ended.
func (f *Federation) linkDown(l *Link) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[l.peer.Key]
	if rs == nil || rs.link != l {
		return
	}
	rs.link = nil
	f.dropMembersLocked(rs)
	if !rs.configured {
		delete(f.relays, l.peer.Key)
	}
}

// dropMembersLocked forgets a relay's members.
func (f *Federation) dropMembersLocked(rs *relayState) {
	for a := range rs.members {
		delete(f.remote, a)
	}
	rs.members = make(map[id.Address]*member)
}

// handle serves one frame with the handler for its type.
func (l *Link) handle(m wire.Message) error {
	h, ok := l.f.handlers[m.Type()]
	switch {
	case !ok:
		return link.Refuse(wire.CodeProtocol, "relays do not send type %d on a federation link", m.Type())
	case h.feature != "" && !l.features.Has(h.feature):
		return link.Refuse(wire.CodeUnsupported, "type %d belongs to the %q service, which your hello did not list", m.Type(), h.feature)
	}
	return h.fn(l, m)
}

// addMembers records members of the other zone whose leases that relay
// signed; a lease that does not verify is dropped and logged.
func (l *Link) addMembers(leases []wire.Lease, natives []bool, last bool) error {
	f := l.f
	now := f.clock.Now()
	var good []member
	for i := range leases {
		err := identity.VerifyLease(&leases[i], l.peer.Key, now)
		if err == nil && leases[i].Zone != l.peer.Zone {
			err = fmt.Errorf("lease is for zone %q, not %q", leases[i].Zone, l.peer.Zone)
		}
		if err != nil {
			f.dropped.Add(1)
			l.log.Warn("dropping a member whose lease does not verify", "member", leases[i].Address.Short(), "err", err)
			continue
		}
		good = append(good, member{lease: leases[i], native: i < len(natives) && natives[i]})
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[l.peer.Key]
	if rs == nil || rs.link != l {
		return nil // replaced meanwhile
	}
	for i := range good {
		m := &good[i]
		a := m.lease.Address
		if rs.members[a] == nil && len(rs.members) >= MaxRemoteMembers {
			return fmt.Errorf("%w: zone %s claims over %d members", wire.ErrTooLarge, l.peer.Zone, MaxRemoteMembers)
		}
		if old := f.remote[a]; old != nil && old.relay != rs {
			delete(old.relay.members, a) // it moved zones
		}
		m.relay = rs
		rs.members[a] = m
		f.remote[a] = m
	}
	if last && !l.synced {
		l.synced = true
		l.log.Info("relay's members received", "members", len(rs.members))
	}
	return nil
}

func (l *Link) removeMember(a id.Address) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[l.peer.Key]
	if rs == nil || rs.link != l || rs.members[a] == nil {
		return
	}
	delete(rs.members, a)
	delete(f.remote, a)
}

func (l *Link) onSummary(m *wire.ZoneSummary) {
	f := l.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if rs := f.relays[l.peer.Key]; rs != nil && rs.link == l {
		rs.info.Nodes, rs.info.MaxNodes = m.Nodes, m.MaxNodes
	}
}

// deliver hands a signal from the other zone to our member it is for.
func (l *Link) deliver(s *wire.RelaySignal) {
	f := l.f
	if !l.lim.Allow() {
		f.dropped.Add(1)
		return
	}
	f.mu.Lock()
	from := f.remote[s.From]
	f.mu.Unlock()
	if from == nil || from.relay.link != l {
		f.dropped.Add(1)
		l.log.Debug("dropping a signal from a node not in that zone", "from", s.From.Short())
		return
	}
	to := f.zone.Member(s.To)
	if to == nil {
		f.dropped.Add(1)
		l.log.Debug("dropping a signal for a node not here", "to", s.To.Short())
		return
	}
	f.signalsIn.Add(1)
	f.zone.Deliver(to, &wire.Signal{Peer: s.From, Session: s.Session, Kind: s.Kind, Data: s.Data})
}

// Peer is the relay at the other end, as its hello and summaries tell it.
func (l *Link) Peer() wire.RelayInfo { return l.peer }

// Has reports whether the other relay announced feature.
func (l *Link) Has(feature string) bool { return l.features.Has(feature) }

// Log is the link's logger.
func (l *Link) Log() *slog.Logger { return l.log }

// Send queues a frame; a link too slow to take it is cut.
func (l *Link) Send(frame []byte) { l.link.Send(frame) }

// Dropped counts a frame a service dropped on this link (an answer nobody
// waits for, say) among the federation's dropped frames.
func (l *Link) Dropped() { l.f.dropped.Add(1) }

// TrySend queues a frame unless the link is busy; it reports whether it
// did.
func (l *Link) TrySend(frame []byte) bool { return l.link.TrySend(frame) }

// SendMsg encodes m and queues it.
func (l *Link) SendMsg(m wire.Message) bool { return l.link.SendMsg(m) }
