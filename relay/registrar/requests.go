package registrar

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/time/rate"

	"ddt/relay/federation"
	"ddt/relay/link"
	"ddt/relay/zone"
	"ddt/shared/identity"
	"ddt/shared/names"
	"ddt/shared/wire"
)

// limitsOf returns member m's rate limits.
func (r *Registrar) limitsOf(m *zone.Member) *limits {
	r.limMu.Lock()
	defer r.limMu.Unlock()
	lim := r.members[m]
	if lim == nil {
		lim = &limits{claims: rate.NewLimiter(ClaimRate, ClaimBurst), lookups: rate.NewLimiter(LookupRate, LookupBurst)}
		r.members[m] = lim
	}
	return lim
}

// linkLimit returns the rate limit of the claims and lookups l sends us.
func (r *Registrar) linkLimit(l *federation.Link) *rate.Limiter {
	r.limMu.Lock()
	defer r.limMu.Unlock()
	lim := r.links[l]
	if lim == nil {
		lim = rate.NewLimiter(LinkRate, LinkBurst)
		r.links[l] = lim
	}
	return lim
}

// answerNode sends a node the result of kind k for its request id.
func answerNode(m *zone.Member, k *kind, id uint32, res *result) {
	m.SendMsg(k.reply(id, res))
}

// onClaim handles a node's claim c of kind k (request id); too fast, or a
// claim that does not verify, counts against the node. A name some
// ledger holds is decided by the relay that holds it (the first holder
// keeps it, and its updates go where it is held); a name nobody holds, by
// its home.
func (r *Registrar) onClaim(m *zone.Member, k *kind, c claim, id uint32) error {
	if !r.limitsOf(m).claims.AllowN(r.clock.Now(), 1) {
		answerNode(m, k, id, refuse(wire.CodeRateLimited, "claiming %ss faster than allowed", k.noun))
		return link.ErrViolation
	}
	r.claims.Add(1)
	lease := m.Lease()
	if bad := checkClaim(c, &lease); bad != nil {
		answerNode(m, k, id, bad)
		return link.ErrViolation
	}
	hash := c.hash()
	reply := func(res *result) { answerNode(m, k, id, res) }
	decideHere := func() {
		r.askUnmirrorable(m, nil, k, c, reply, func() {
			if !r.nameWork(func() { reply(r.decide(k, c)) }) {
				reply(k.errBusy())
			}
		})
	}
	if win, _, held := r.holder(k, hash); held {
		switch {
		case win.owner != c.owner():
			reply(refuse(wire.CodeNameTaken, "%q is taken", c.label()))
			return nil
		case win.relay == r.self:
			decideHere()
			return nil
		}
	}
	home, l, zone, notYet := r.homeOf(k, hash)
	switch {
	case notYet != nil:
		reply(notYet)
	case home == r.self:
		decideHere()
	case l == nil:
		reply(k.unreachable(zone))
	default:
		req := func(rid uint32) wire.Message { return k.relayClaim(rid, lease, c) }
		r.forward(l, k, m, nil, req, func(res *result) {
			reply(r.checkForwarded(res, l, zone, func(rec record) bool { return rec.claim().same(c) }))
		})
	}
	return nil
}

// onLookup handles a node's lookup of kind k; too fast counts against it.
func (r *Registrar) onLookup(m *zone.Member, k *kind, id uint32, hash [32]byte) error {
	reply := func(res *result) { answerNode(m, k, id, res) }
	if !r.limitsOf(m).lookups.AllowN(r.clock.Now(), 1) {
		reply(refuse(wire.CodeRateLimited, "looking up %ss faster than allowed", k.noun))
		return link.ErrViolation
	}
	r.lookups.Add(1)
	ask := func(l *federation.Link, zone string) {
		req := func(rid uint32) wire.Message { return k.lookup(rid, hash) }
		r.forward(l, k, m, nil, req, func(res *result) {
			reply(r.checkForwarded(res, l, zone, k.isOf(hash)))
		})
	}
	if res, asked := r.lookupHeld(k, hash, nil, ask); res != nil {
		reply(res)
		return nil
	} else if asked {
		return nil
	}
	if res := r.ownRecord(k, hash); res != nil {
		reply(res)
		return nil
	}
	home, l, zone, _ := r.homeOf(k, hash)
	switch {
	case home == r.self:
		reply(k.errNotFound())
	case l == nil:
		reply(k.unreachable(zone))
	default:
		ask(l, zone)
	}
	return nil
}

// isOf is the check that a forwarded record is of k's name with hash.
func (k *kind) isOf(hash [32]byte) func(record) bool {
	return func(rec record) bool { c := rec.claim(); return c.hash() == hash && kindOfClaim(c) == k.id }
}

// kindOfClaim is the ledger kind of c.
func kindOfClaim(c claim) byte {
	if _, ok := c.(domainClaim); ok {
		return names.KindDomain
	}
	return names.KindUser
}

// lookupHeld answers a lookup of a name some ledger holds: from this
// relay's own record if it is the holder's, or by asking (ask) a relay
// whose ledger holds it for the holder's key, never the relay from (the
// one that asked us). It returns the answer, or whether it asked; both
// zero if no ledger is known to hold the name.
func (r *Registrar) lookupHeld(k *kind, hash [32]byte, from *federation.Link, ask func(*federation.Link, string)) (*result, bool) {
	win, all, held := r.holder(k, hash)
	if !held {
		return nil, false
	}
	for _, hs := range all {
		if hs.relay == r.self && hs.owner == win.owner {
			if res := r.ownRecord(k, hash); res != nil {
				return res, false
			}
		}
	}
	zone := "?"
	for _, hs := range append([]holding{win}, all...) {
		if hs.relay == r.self || hs.owner != win.owner {
			continue
		}
		var l *federation.Link
		if l, zone = r.linkTo(k, hs.relay); l != nil && l != from {
			ask(l, zone)
			return nil, true
		}
	}
	if win.relay == r.self {
		return refuse(wire.CodeInternal, "this relay has lost the record of this %s; its owner must claim it again", k.noun), false
	}
	return refuse(wire.CodeUnavailable, "the relay that holds this %s (zone %s) is unreachable; try again", k.noun, zone), false
}

// checkForwarded passes on another relay's answer to a node only if a
// record in it verifies, was sequenced by a relay this one trusts, and is
// the one asked for (onResult has dropped answers from relays this one
// does not trust).
func (r *Registrar) checkForwarded(res *result, l *federation.Link, zone string, wanted func(record) bool) *result {
	if res.code != wire.CodeNone {
		return res
	}
	rec := res.rec
	if rec == nil {
		l.Log().Warn("names: an answer without a record")
		return refuse(wire.CodeUnavailable, "the relay of zone %s answered without a record; try again", zone)
	}
	if !wanted(rec) {
		l.Log().Warn("names: an answer for another name or claim")
		return refuse(wire.CodeUnavailable, "the relay of zone %s answered for another name; try again", zone)
	}
	if err := rec.verify(r.zoneOf); err != nil {
		l.Log().Warn("names: a record that does not verify", "err", err)
		return refuse(wire.CodeUnavailable, "the relay of zone %s answered with a record that does not verify; try again", zone)
	}
	return res
}

// forward sends the request msg(id) of kind k over l, with a fresh
// request id, and calls finish with the answer, or with CodeUnavailable
// once the link ends or the wait runs out. The request is node m's, or
// the relay's at the end of asker's; nothing is called if m leaves or
// asker's link ends first. A node with MaxPendingPerNode requests
// waiting, a relay with MaxPendingPerLink, or a full table, is told to
// try again.
func (r *Registrar) forward(l *federation.Link, k *kind, m *zone.Member, asker *federation.Link, msg func(id uint32) wire.Message, finish func(*result)) {
	rid := r.nextID.Add(1)
	b, err := wire.Marshal(msg(rid))
	if err != nil {
		r.log.Error("names: forward frame", "err", err)
		finish(k.errStore())
		return
	}
	p := &pending{k: k, link: l, member: m, asker: asker, finish: finish}
	r.pendMu.Lock()
	mine := m != nil && r.perNode[m] >= MaxPendingPerNode || asker != nil && r.perLink[asker] >= MaxPendingPerLink
	if mine || len(r.pending) >= MaxPending {
		r.pendMu.Unlock()
		r.pendingRefused.Add(1)
		if mine {
			finish(k.errTooManyWaiting())
		} else {
			finish(k.errBusy())
		}
		return
	}
	r.pending[rid] = p
	if m != nil {
		r.perNode[m]++
	}
	if asker != nil {
		r.perLink[asker]++
	}
	p.timer = r.clock.AfterFunc(r.cfg.Wait, func() {
		if p := r.take(rid, nil); p != nil {
			p.finish(k.unreachable(l.Peer().Zone))
		}
	})
	r.pendMu.Unlock()
	if !l.TrySend(b) {
		if p := r.take(rid, nil); p != nil {
			p.finish(refuse(wire.CodeUnavailable, "the link to zone %s is congested; try again", l.Peer().Zone))
		}
	}
}

// dropLocked forgets the pending request rid; r.pendMu is held.
func (r *Registrar) dropLocked(rid uint32, p *pending) {
	delete(r.pending, rid)
	if p.timer != nil {
		p.timer.Stop()
	}
	if p.member != nil {
		if r.perNode[p.member]--; r.perNode[p.member] <= 0 {
			delete(r.perNode, p.member)
		}
	}
	if p.asker != nil {
		if r.perLink[p.asker]--; r.perLink[p.asker] <= 0 {
			delete(r.perLink, p.asker)
		}
	}
}

// take removes and returns the pending request rid, if it is waiting (on
// link l, unless l is nil).
func (r *Registrar) take(rid uint32, l *federation.Link) *pending {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	p := r.pending[rid]
	if p == nil || l != nil && p.link != l {
		return nil
	}
	r.dropLocked(rid, p)
	return p
}

// linkDown answers every request waiting on l: it will not answer.
func (r *Registrar) linkDown(l *federation.Link) {
	r.limMu.Lock()
	delete(r.links, l)
	r.limMu.Unlock()
	var gone []*pending
	r.pendMu.Lock()
	for rid, p := range r.pending {
		switch {
		case p.link == l:
			r.dropLocked(rid, p)
			gone = append(gone, p)
		case p.asker == l:
			r.dropLocked(rid, p) // nobody to answer
		}
	}
	r.pendMu.Unlock()
	for _, p := range gone {
		p.finish(p.k.unreachable(l.Peer().Zone))
	}
}

// memberGone forgets the limits and requests of a node that left.
func (r *Registrar) memberGone(m *zone.Member) {
	r.limMu.Lock()
	delete(r.members, m)
	r.limMu.Unlock()
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	for rid, p := range r.pending {
		if p.member == m {
			r.dropLocked(rid, p)
		}
	}
}

// answerLink answers the other relay's request id of kind k over l. A
// full queue drops the answer; the other relay's wait runs out.
func answerLink(l *federation.Link, k *kind, id uint32, res *result) {
	b, err := wire.Marshal(k.reply(id, res))
	if err != nil {
		l.Log().Error("names: result frame", "err", err)
		return
	}
	if !l.TrySend(b) {
		l.Dropped()
		l.Log().Debug("names: dropping an answer on a congested link")
	}
}

// refuseUntrusted answers a request from a relay this one does not trust
// (a link of -federation=open): its members' leases are not trusted for
// names, and it decides nothing here. It reports whether it refused.
func (r *Registrar) refuseUntrusted(l *federation.Link, k *kind, id uint32) bool {
	if r.trusted(l.Peer().Key) {
		return false
	}
	r.untrusted.Add(1)
	l.Log().Info("names: refusing a request from a relay this one does not trust")
	answerLink(l, k, id, refuse(wire.CodeUnsupported, "this relay does not trust yours for %ss", k.noun))
	return true
}

// onRelayClaim decides claim c of kind k that another relay forwarded
// for its member (with lease, request id); a relay that breaks a rule has
// it counted against its link.
func (r *Registrar) onRelayClaim(l *federation.Link, k *kind, id uint32, lease *wire.Lease, c claim) error {
	reply := func(res *result) { answerLink(l, k, id, res) }
	if !r.linkLimit(l).AllowN(r.clock.Now(), 1) {
		reply(refuse(wire.CodeRateLimited, "forwarding %ss faster than allowed", k.noun))
		return link.ErrViolation
	}
	if r.refuseUntrusted(l, k, id) {
		return nil
	}
	r.claims.Add(1)
	peer := l.Peer()
	err := identity.VerifyLease(lease, peer.Key, r.clock.Now())
	if err == nil && lease.Zone != peer.Zone {
		err = fmt.Errorf("lease is for zone %q, not %q", lease.Zone, peer.Zone)
	}
	if err != nil {
		l.Log().Warn("names: refusing a claim whose lease does not verify", "err", err)
		reply(refuse(wire.CodeBadName, "the claimant's lease does not verify: %v", err))
		return link.ErrViolation
	}
	if bad := checkClaim(c, lease); bad != nil {
		reply(bad)
		return link.ErrViolation
	}
	hash := c.hash()
	home, _, _, notYet := r.homeOf(k, hash)
	win, _, held := r.holder(k, hash)
	ours := held && win.relay == r.self
	switch {
	case home != r.self && !ours:
		reply(refuse(wire.CodeUnavailable, "not the home of this %s", k.noun))
	case notYet != nil && !ours:
		reply(notYet)
	default:
		r.askUnmirrorable(nil, l, k, c, reply, func() {
			if !r.nameWork(func() { reply(r.decide(k, c)) }) {
				reply(k.errBusy())
			}
		})
	}
	return nil
}

// askUnmirrorable asks the trusted relays whose ledgers this relay cannot
// mirror in full (zoneledger.Service.Unmirrorable), one after another,
// whether their ledger holds claim c's name, before this relay decides
// it: a name one of them holds for another key is answered as taken; if
// none does, decide runs. A relay that cannot say leaves the claim
// undecided ("try again"). The request is node m's or the relay's at the
// end of asker's, for forward's quotas. With nothing unmirrorable (the
// usual case) decide runs at once.
func (r *Registrar) askUnmirrorable(m *zone.Member, asker *federation.Link, k *kind, c claim, answer func(*result), decide func()) {
	links := r.cfg.Ledger.Unmirrorable(k.feature)
	hash := c.hash()
	var next func(i int)
	next = func(i int) {
		if i == len(links) {
			decide()
			return
		}
		l := links[i]
		if !r.trusted(l.Peer().Key) {
			next(i + 1)
			return
		}
		r.unmirrorableAsked.Add(1)
		req := func(id uint32) wire.Message { return k.lookup(id, hash) }
		r.forward(l, k, m, asker, req, func(res *result) {
			if res.code == wire.CodeNotFound {
				next(i + 1)
				return
			}
			got := r.checkForwarded(res, l, l.Peer().Zone, k.isOf(hash))
			switch {
			case got.code != wire.CodeNone:
				answer(refuse(wire.CodeUnavailable, "the relay of zone %s, whose ledger this relay cannot mirror, did not say whether it holds this %s; try again", l.Peer().Zone, k.noun))
			case got.rec.claim().signKey() != c.signKey():
				answer(refuse(wire.CodeNameTaken, "%q is taken", c.label()))
			default:
				next(i + 1) // the claimant's own name: its update is decided here
			}
		})
	}
	next(0)
}

// onRelayLookup answers another relay's lookup of kind k from this
// relay's own records, or, for a name another trusted relay's ledger
// holds (one sequenced there before this relay became its home), by
// asking that relay once: a relay asks the home, the home asks the
// holder, and the holder answers from its own records.
func (r *Registrar) onRelayLookup(l *federation.Link, k *kind, id uint32, hash [32]byte) error {
	reply := func(res *result) { answerLink(l, k, id, res) }
	if !r.linkLimit(l).AllowN(r.clock.Now(), 1) {
		reply(refuse(wire.CodeRateLimited, "looking up %ss faster than allowed", k.noun))
		return link.ErrViolation
	}
	if r.refuseUntrusted(l, k, id) {
		return nil
	}
	r.lookups.Add(1)
	if res := r.ownRecord(k, hash); res != nil {
		reply(res)
		return nil
	}
	ask := func(to *federation.Link, zone string) {
		req := func(rid uint32) wire.Message { return k.lookup(rid, hash) }
		r.forward(to, k, nil, l, req, func(res *result) {
			reply(r.checkForwarded(res, to, zone, k.isOf(hash)))
		})
	}
	res, asked := r.lookupHeld(k, hash, l, ask)
	switch {
	case asked:
	case res != nil:
		reply(res)
	default:
		reply(k.errNotFound())
	}
	return nil
}

// onResult passes on the answer (of kind k, to request id) to a request
// this relay forwarded over l; an answer nobody waits for (late, never
// asked, or of the other kind) is dropped.
func (r *Registrar) onResult(l *federation.Link, k *kind, id uint32, res *result) {
	p := r.take(id, l)
	if p == nil || p.k != k {
		if p != nil {
			// An answer of the wrong kind: the request is answered as
			// unanswered, never with the other kind's record.
			p.finish(refuse(wire.CodeUnavailable, "the relay of zone %s answered with the wrong kind of record; try again", l.Peer().Zone))
		}
		l.Dropped()
		l.Log().Debug("names: dropping an answer nobody waits for", "id", id)
		return
	}
	if !r.trusted(l.Peer().Key) {
		// Asked while it was trusted, answering after: its word,
		// refusal or record, reaches nobody.
		r.untrusted.Add(1)
		l.Log().Warn("names: dropping an answer from a relay this one does not trust")
		p.finish(refuse(wire.CodeUnavailable, "the relay of zone %s is not trusted for %ss; try again", l.Peer().Zone, k.noun))
		return
	}
	p.finish(res)
}

// salvageNameClaim answers a NameClaim frame that does not decode because
// its name is longer than any username, which a node may send and should
// hear about as a bad name. It reports whether b was such a frame.
func (r *Registrar) salvageNameClaim(m *zone.Member, b []byte) bool {
	if len(b) < 3 || b[0] != wire.Version || wire.Type(b[1]) != wire.TypeNameClaim {
		return false
	}
	rid, n := binary.Uvarint(b[2:])
	if n <= 0 || rid > 1<<32-1 {
		return false
	}
	size, k := binary.Uvarint(b[2+n:])
	if k <= 0 || size <= wire.MaxName {
		return false
	}
	answerNode(m, r.user, uint32(rid), refuse(wire.CodeBadName, "%s", claimProblem(fmt.Errorf("%w: %d characters, at most %d", names.ErrTooLong, size, names.MaxLen))))
	return true
}
