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
// backoff when it ends. A relay that proves another key than the one
// named or pinned for the URL is refused, and dialed again with backoff,
// so a corrected configuration on either side heals by itself.
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
			_, up, err = f.runLink(f.ctx, conn, d, d.url, nil)
			if up {
				wait.Reset()
				failures = 0
			}
		}
		var remote *wire.RemoteError
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
		case errors.Is(err, ErrKeyMismatch):
			failures++
			log.Error("refusing the relay at this -peer: it proved another key than the one named; redialing with backoff", "err", err, "failures", failures)
		case errors.As(err, &remote):
			failures++
			if failures == 1 {
				log.Warn("the relay at this -peer refused the link; redialing with backoff", "err", err)
			} else {
				log.Debug("the relay at this -peer refused the link", "err", err, "failures", failures)
			}
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
// relay opened); a target named without a key is pinned to the key
// proven. release, if set, is called once authentication is decided.
func (f *Federation) runLink(ctx context.Context, conn transport.Conn, target *dialTarget, remote string, release func()) (key [32]byte, up bool, err error) {
	dialed := target != nil
	defer conn.Close()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(f.ctx, stop)()
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	log := f.log.With("remote", remote, "dialed", dialed)

	peer, features, trusted, err := f.handshake(ctx, conn, target)
	if release != nil {
		release()
	}
	if target != nil && (err == nil || errors.Is(err, ErrSelfLink)) {
		f.mu.Lock()
		target.reached = true
		f.mu.Unlock()
		if err == nil {
			f.pin(target, peer.Key)
		}
	}
	var theirs *wire.RemoteError
	switch {
	case err == nil:
	case errors.Is(err, ErrSelfLink):
		link.Close(conn, link.StatusNormal, "link to self")
		return peer.Key, false, err
	case errors.As(err, &theirs):
		// The other relay refused us and closes: nothing to answer.
		return [32]byte{}, false, err
	default:
		f.dropped.Add(1)
		code := wire.CodeOf(err)
		switch {
		case errors.Is(err, ErrKeyMismatch):
			f.mismatched.Add(1)
			log.Error("relay link refused", "err", err)
		case errors.Is(err, ErrUntrusted):
			f.untrusted.Add(1)
			log.Warn("relay link refused", "err", err)
		case errors.Is(err, ErrTooMany):
			f.linksFull.Add(1)
			code = wire.CodeUnavailable
			log.Warn("relay link refused", "err", err)
		default:
			log.Info("relay link refused", "err", err)
		}
		f.refuse(ctx, conn, code, err.Error())
		return [32]byte{}, false, err
	}
	log = f.log.With("peerZone", peer.Zone, "peerURL", peer.URL, "peerKey", fmt.Sprintf("%x", peer.Key[:6]), "dialed", dialed, "trusted", trusted)
	l := &Link{f: f, dialed: dialed, trusted: trusted, peer: peer, features: features, log: log, lim: rate.NewLimiter(LinkSignalRate, LinkSignalBurst)}
	if err := f.linkUp(l, conn); err != nil {
		if errors.Is(err, ErrTooMany) {
			f.linksFull.Add(1)
			f.dropped.Add(1)
			log.Warn("relay link refused", "err", err)
			f.refuse(ctx, conn, wire.CodeUnavailable, err.Error())
			return peer.Key, false, err
		}
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

// refuse tells the other relay why its link is refused, and closes it.
func (f *Federation) refuse(ctx context.Context, conn transport.Conn, code wire.Code, why string) {
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	inTime := link.Deadline(wctx, conn)
	link.Write(conn, &wire.Error{Code: code, Message: link.Truncate(why, wire.MaxReason)})
	inTime()
	link.Close(conn, link.StatusPolicyViolation, "federation refused")
}

// handshake proves our key to the other relay and checks its proof.
// target is the -peer dialed (nil for a link another relay opened): the
// key it must prove, unless it is to be pinned. The other relay's
// challenge names its key, so a key this relay will not link to is
// refused before it signs anything; trusted says whether it is trusted
// (a link that is not comes only in open mode).
func (f *Federation) handshake(ctx context.Context, conn transport.Conn, target *dialTarget) (peer wire.RelayInfo, features wire.Features, trusted bool, err error) {
	dialed := target != nil
	hctx, cancel := context.WithTimeout(ctx, HelloTimeout)
	defer cancel()
	defer link.Deadline(hctx, conn)()
	self := f.zone.Info()
	ours := &wire.RelayChallenge{Key: self.Key}
	rand.Read(ours.Nonce[:])
	if err := link.Write(conn, ours); err != nil {
		return peer, nil, false, err
	}
	m, err := link.Read(conn)
	if err != nil {
		return peer, nil, false, err
	}
	theirs, ok := m.(*wire.RelayChallenge)
	if !ok {
		return peer, nil, false, unexpected("RelayChallenge", m)
	}
	if dialed {
		f.mu.Lock()
		want, known := target.key, target.known
		f.mu.Unlock()
		if known && theirs.Key != want {
			return peer, nil, false, refusal(ErrKeyMismatch, "the relay at %s presents key %x, but this relay links there only to key %x (its -peer)",
				target.url, theirs.Key, want)
		}
		trusted = true // named, pinned, or pinned now
	} else if trusted = f.Trusts(theirs.Key); !trusted && !f.cfg.Open && theirs.Key != self.Key {
		return peer, nil, false, refusal(ErrUntrusted, "relay key %x is not trusted here: this relay federates only with relays its operator names (-peer URL#KEY or a -trust file line)",
			theirs.Key)
	}
	if theirs.Key != self.Key {
		// A link that could not come up is refused now, before any
		// signing, so its dialer backs off (linkUp checks again).
		f.mu.Lock()
		rs := f.relays[theirs.Key]
		var room error
		if rs == nil || rs.link == nil {
			room = f.roomLocked(trusted, rs == nil)
		}
		f.mu.Unlock()
		if room != nil {
			return peer, nil, false, room
		}
	}
	hello := &wire.RelayHello{Relay: self, Sig: f.key.Sign(wire.RelayHelloSignedBytes(dialed, ours.Nonce, theirs.Nonce, &self, theirs.Key)), Features: f.features}
	if err := link.Write(conn, hello); err != nil {
		return peer, nil, false, err
	}
	if m, err = link.Read(conn); err != nil {
		return peer, nil, false, err
	}
	h, ok := m.(*wire.RelayHello)
	switch {
	case !ok:
		return peer, nil, false, unexpected("RelayHello", m)
	case h.Relay.Key != theirs.Key:
		return peer, nil, false, fmt.Errorf("%w: the relay hello names key %x, its challenge %x", wire.ErrProtocol, h.Relay.Key[:8], theirs.Key[:8])
	case !identity.Verify(h.Relay.Key, wire.RelayHelloSignedBytes(!dialed, theirs.Nonce, ours.Nonce, &h.Relay, self.Key), h.Sig):
		return peer, nil, false, fmt.Errorf("%w: relay hello does not verify for this link (both nonces and both keys)", wire.ErrBadSignature)
	case h.Relay.Key == self.Key:
		return h.Relay, nil, false, ErrSelfLink
	case h.Relay.Zone == "":
		return peer, nil, false, fmt.Errorf("%w: relay names no zone", wire.ErrProtocol)
	}
	return h.Relay, h.Features, trusted, nil
}

// refusedError is a link refused for a reason this relay names (Is
// sentinel) and that the other relay hears as wire.ErrNotAdmitted.
type refusedError struct {
	sentinel error
	msg      string
}

func (e *refusedError) Error() string   { return e.msg }
func (e *refusedError) Unwrap() []error { return []error{e.sentinel, wire.ErrNotAdmitted} }

func refusal(sentinel error, format string, args ...any) error {
	return &refusedError{sentinel, fmt.Sprintf(format, args...)}
}

// unexpected is the error for a frame other than the one the handshake
// waits for; an Error from the other relay is its refusal.
func unexpected(want string, m wire.Message) error {
	if e, ok := m.(*wire.Error); ok {
		return fmt.Errorf("the other relay refused the link: %w", e.Err())
	}
	return fmt.Errorf("%w: expected %s, got type %d", wire.ErrProtocol, want, m.Type())
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
	} else if err := f.roomLocked(l.trusted, rs == nil); err != nil {
		return err
	}
	if rs == nil {
		rs = &relayState{members: make(map[id.Address]*member), configured: l.dialed}
		f.relays[key] = rs
	}
	rs.trusted = l.trusted // its members are gone, so the open count stays right
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

// roomLocked reports whether another link fits: trusted relays up to
// MaxLinks, untrusted ones up to MaxOpenLinks apart, so strangers in open
// mode never take a trusted relay's place. known is false for a relay not
// yet known, which also needs room among the relays kept.
func (f *Federation) roomLocked(trusted, unknown bool) error {
	up, open := 0, 0
	for _, o := range f.relays {
		switch {
		case o.link == nil:
		case o.trusted:
			up++
		default:
			open++
		}
	}
	switch {
	case trusted && up >= MaxLinks:
		return fmt.Errorf("%w: %d trusted relays are linked, the most a relay links", ErrTooMany, MaxLinks)
	case !trusted && open >= MaxOpenLinks:
		return fmt.Errorf("%w: %d untrusted relays are linked, the most a relay in open federation links", ErrTooMany, MaxOpenLinks)
	case unknown && len(f.relays) >= maxKnown:
		return fmt.Errorf("%w: %d relays are known, the most a relay keeps", ErrTooMany, maxKnown)
	}
	return nil
}

// maxKnown bounds the relays kept: every link up and the -peer relays down.
const maxKnown = 4*MaxLinks + MaxOpenLinks

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

// dropMembersLocked forgets a relay's members, its link having gone. An
// address it held goes to nobody meanwhile, not to a claim kept aside:
// the holder's link may only have flapped, and it claims its members
// again when it is back; a claim kept aside takes over only when the
// holder itself says the member left.
func (f *Federation) dropMembersLocked(rs *relayState) {
	for a := range rs.members {
		f.removeMemberLocked(rs, a, false)
	}
	rs.members = make(map[id.Address]*member)
}

// removeMemberLocked forgets rs's claim of a; if rs held a and promote is
// set (rs said its member left), another relay's claim kept aside takes
// over.
func (f *Federation) removeMemberLocked(rs *relayState, a id.Address, promote bool) {
	m := rs.members[a]
	if m == nil {
		return
	}
	delete(rs.members, a)
	f.claims--
	if !rs.trusted {
		f.open--
	}
	if f.remote[a] != m {
		return
	}
	delete(f.remote, a)
	if !promote {
		return
	}
	// Another relay's claim, kept aside, takes over: a trusted one first.
	var next *member
	for _, o := range f.relays {
		if o == rs || o.link == nil {
			continue
		}
		if c := o.members[a]; c != nil && (next == nil || o.trusted && !next.relay.trusted) {
			next = c
		}
	}
	if next != nil {
		f.remote[a] = next
	}
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
//
// An address another relay holds is not taken from it: the claim is kept
// aside (counted as contested) and takes over only once the holder says
// its member left (not when the holder's link merely goes), so a relay cannot capture the signals of another zone's
// member by announcing a lease of its own for that member's key and
// nonce; nor of this zone's own members. Only a trusted relay's claim
// displaces an untrusted relay's. (Honest relays never claim one address
// twice: an address hashes the nonce its relay picked.)
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
	// Members of this zone, looked up before f.mu (the zone's lock
	// comes first).
	ours := make([]bool, len(good))
	for i := range good {
		ours[i] = f.zone.Member(good[i].lease.Address) != nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[l.peer.Key]
	if rs == nil || rs.link != l {
		return nil // replaced meanwhile
	}
	for i := range good {
		m := &good[i]
		m.relay = rs
		a := m.lease.Address
		if old := rs.members[a]; old != nil {
			// A renewed lease of its own member.
			rs.members[a] = m
			if f.remote[a] == old {
				f.remote[a] = m
			}
			continue
		}
		if len(rs.members) >= MaxRemoteMembers {
			return fmt.Errorf("%w: zone %s claims over %d members", wire.ErrTooLarge, l.peer.Zone, MaxRemoteMembers)
		}
		if rs.trusted && f.claims-f.open >= MaxFederatedMembers || !rs.trusted && f.open >= MaxOpenMembers {
			f.membersFull.Add(1)
			if !l.warnedFull {
				l.warnedFull = true
				l.log.Warn("dropping members of this zone: this relay holds as many federated members as it keeps",
					"trustedMembers", f.claims-f.open, "limit", MaxFederatedMembers, "untrustedMembers", f.open, "untrustedLimit", MaxOpenMembers, "trusted", rs.trusted)
			}
			continue
		}
		rs.members[a] = m
		f.claims++
		if !rs.trusted {
			f.open++
		}
		holder := f.remote[a]
		if !ours[i] && (holder == nil || rs.trusted && !holder.relay.trusted) {
			f.remote[a] = m
			continue
		}
		f.contested.Add(1)
		lv, held := slog.LevelDebug, f.zone.Name()
		if !l.warnedContested {
			l.warnedContested, lv = true, slog.LevelWarn
		}
		if holder != nil {
			held = holder.relay.info.Zone
		}
		l.log.Log(context.Background(), lv, "a member claim for an address another zone holds: kept aside, the holder keeps it",
			"member", a.Short(), "holderZone", held)
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
	if rs := f.relays[l.peer.Key]; rs != nil && rs.link == l {
		f.removeMemberLocked(rs, a, true)
	}
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
	fromHere := from != nil && from.relay.link == l // rs.link is written under f.mu
	f.mu.Unlock()
	if !fromHere {
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

// Trusted reports whether the relay at the other end was trusted when
// the link came up (see Relay.Trusted).
func (l *Link) Trusted() bool { return l.trusted }

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
