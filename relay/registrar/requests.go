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

// answerNode sends a node the result for its request id.
func answerNode(m *zone.Member, id uint32, res *wire.NameResult) {
	out := *res
	out.ID = id
	m.SendMsg(&out)
}

// onNameClaim handles a node's claim; too fast, or a claim that does not
// verify, counts against the node. A name some ledger holds is decided
// by the relay that holds it (the first holder keeps it, and its updates
// go where it is held); a name nobody holds, by its home.
func (r *Registrar) onNameClaim(m *zone.Member, msg *wire.NameClaim) error {
	if !r.limitsOf(m).claims.AllowN(r.clock.Now(), 1) {
		answerNode(m, msg.ID, nameResult(wire.CodeRateLimited, "claiming names faster than allowed"))
		return link.ErrViolation
	}
	r.claims.Add(1)
	lease := m.Lease()
	if bad := checkClaim(&msg.Claim, &lease); bad != nil {
		answerNode(m, msg.ID, bad)
		return link.ErrViolation
	}
	claim := msg.Claim
	hash := names.Hash(claim.Name)
	decideHere := func() {
		r.askUnmirrorable(m, nil, &claim, func(res *wire.NameResult) { answerNode(m, msg.ID, res) }, func() {
			if !r.nameWork(func() { answerNode(m, msg.ID, r.decide(&claim)) }) {
				answerNode(m, msg.ID, errNameBusy)
			}
		})
	}
	if win, _, held := r.holder(hash); held {
		switch {
		case win.owner != names.Owner(claim.Name, claim.SignKey):
			answerNode(m, msg.ID, nameResult(wire.CodeNameTaken, "%q is taken", claim.Name))
			return nil
		case win.relay == r.self:
			decideHere()
			return nil
		}
	}
	home, l, zone, notYet := r.homeOf(hash)
	switch {
	case notYet != nil:
		answerNode(m, msg.ID, notYet)
	case home == r.self:
		decideHere()
	case l == nil:
		answerNode(m, msg.ID, unreachable(zone))
	default:
		req := func(id uint32) wire.Message { return &wire.RelayNameClaim{ID: id, Lease: lease, Claim: claim} }
		r.forward(l, m, nil, req, func(res *wire.NameResult) {
			answerNode(m, msg.ID, r.checkForwarded(res, l, zone, func(rec *wire.UserRecord) bool { return names.Same(&rec.Claim, &claim) }))
		})
	}
	return nil
}

// onNameLookup handles a node's lookup; too fast counts against it.
func (r *Registrar) onNameLookup(m *zone.Member, msg *wire.NameLookup) error {
	if !r.limitsOf(m).lookups.AllowN(r.clock.Now(), 1) {
		answerNode(m, msg.ID, nameResult(wire.CodeRateLimited, "looking up names faster than allowed"))
		return link.ErrViolation
	}
	r.lookups.Add(1)
	hash := msg.Hash
	found := func(rec *wire.UserRecord) bool { return names.Hash(rec.Claim.Name) == hash }
	ask := func(l *federation.Link, zone string) {
		req := func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: hash} }
		r.forward(l, m, nil, req, func(res *wire.NameResult) {
			answerNode(m, msg.ID, r.checkForwarded(res, l, zone, found))
		})
	}
	if res, asked := r.lookupHeld(hash, nil, ask); res != nil {
		answerNode(m, msg.ID, res)
		return nil
	} else if asked {
		return nil
	}
	if res := r.ownRecord(hash); res != nil {
		answerNode(m, msg.ID, res)
		return nil
	}
	home, l, zone, _ := r.homeOf(hash)
	switch {
	case home == r.self:
		answerNode(m, msg.ID, errNoName)
	case l == nil:
		answerNode(m, msg.ID, unreachable(zone))
	default:
		ask(l, zone)
	}
	return nil
}

// lookupHeld answers a lookup of a name some ledger holds: from this
// relay's own record if it is the holder's, or by asking (ask) a relay
// whose ledger holds it for the holder's key, never the relay from (the
// one that asked us). It returns the answer, or whether it asked; both
// zero if no ledger is known to hold the name.
func (r *Registrar) lookupHeld(hash [32]byte, from *federation.Link, ask func(*federation.Link, string)) (*wire.NameResult, bool) {
	win, all, held := r.holder(hash)
	if !held {
		return nil, false
	}
	for _, hs := range all {
		if hs.relay == r.self && hs.owner == win.owner {
			if res := r.ownRecord(hash); res != nil {
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
		if l, zone = r.linkTo(hs.relay); l != nil && l != from {
			ask(l, zone)
			return nil, true
		}
	}
	if win.relay == r.self {
		return nameResult(wire.CodeInternal, "this relay has lost the record of this name; its owner must claim it again"), false
	}
	return nameResult(wire.CodeUnavailable, "the relay that holds this name (zone %s) is unreachable; try again", zone), false
}

// checkForwarded passes on another relay's answer to a node only if a
// record in it verifies, was sequenced by a relay this one trusts, and is
// the one asked for (onNameResult has dropped answers from relays this
// one does not trust).
func (r *Registrar) checkForwarded(res *wire.NameResult, l *federation.Link, zone string, wanted func(*wire.UserRecord) bool) *wire.NameResult {
	if res.Code != wire.CodeNone {
		return res
	}
	rec := res.Record
	if rec == nil {
		l.Log().Warn("names: an answer without a record")
		return nameResult(wire.CodeUnavailable, "the relay of zone %s answered without a record; try again", zone)
	}
	if !wanted(rec) {
		l.Log().Warn("names: an answer for another name or claim")
		return nameResult(wire.CodeUnavailable, "the relay of zone %s answered for another name; try again", zone)
	}
	if _, err := names.Verify(rec, rec.Claim.Name, r.zoneOf); err != nil {
		l.Log().Warn("names: a record that does not verify", "err", err)
		return nameResult(wire.CodeUnavailable, "the relay of zone %s answered with a record that does not verify; try again", zone)
	}
	return res
}

// forward sends the request msg(id) over l, with a fresh request id, and
// calls finish with the answer, or with CodeUnavailable once the link
// ends or the wait runs out. The request is node m's, or the relay's at
// the end of asker's; nothing is called if m leaves or asker's link ends
// first. A node with MaxPendingPerNode requests waiting, a relay with
// MaxPendingPerLink, or a full table, is told to try again.
func (r *Registrar) forward(l *federation.Link, m *zone.Member, asker *federation.Link, msg func(id uint32) wire.Message, finish func(*wire.NameResult)) {
	rid := r.nextID.Add(1)
	b, err := wire.Marshal(msg(rid))
	if err != nil {
		r.log.Error("names: forward frame", "err", err)
		finish(errNameStore)
		return
	}
	p := &pending{link: l, member: m, asker: asker, finish: finish}
	r.pendMu.Lock()
	mine := m != nil && r.perNode[m] >= MaxPendingPerNode || asker != nil && r.perLink[asker] >= MaxPendingPerLink
	if mine || len(r.pending) >= MaxPending {
		r.pendMu.Unlock()
		r.pendingRefused.Add(1)
		if mine {
			finish(errTooManyWaiting)
		} else {
			finish(errNameBusy)
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
			p.finish(unreachable(l.Peer().Zone))
		}
	})
	r.pendMu.Unlock()
	if !l.TrySend(b) {
		if p := r.take(rid, nil); p != nil {
			p.finish(nameResult(wire.CodeUnavailable, "the link to zone %s is congested; try again", l.Peer().Zone))
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
		p.finish(unreachable(l.Peer().Zone))
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

// answerLink answers the other relay's request id over l. A full queue
// drops the answer; the other relay's wait runs out.
func answerLink(l *federation.Link, id uint32, res *wire.NameResult) {
	out := *res
	out.ID = id
	b, err := wire.Marshal(&out)
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
func (r *Registrar) refuseUntrusted(l *federation.Link, id uint32) bool {
	if r.trusted(l.Peer().Key) {
		return false
	}
	r.untrusted.Add(1)
	l.Log().Info("names: refusing a request from a relay this one does not trust")
	answerLink(l, id, nameResult(wire.CodeUnsupported, "this relay does not trust yours for names"))
	return true
}

// onRelayClaim decides a claim another relay forwarded for its member;
// a relay that breaks a rule has it counted against its link.
func (r *Registrar) onRelayClaim(l *federation.Link, m *wire.RelayNameClaim) error {
	if !r.linkLimit(l).AllowN(r.clock.Now(), 1) {
		answerLink(l, m.ID, nameResult(wire.CodeRateLimited, "forwarding names faster than allowed"))
		return link.ErrViolation
	}
	if r.refuseUntrusted(l, m.ID) {
		return nil
	}
	r.claims.Add(1)
	peer := l.Peer()
	err := identity.VerifyLease(&m.Lease, peer.Key, r.clock.Now())
	if err == nil && m.Lease.Zone != peer.Zone {
		err = fmt.Errorf("lease is for zone %q, not %q", m.Lease.Zone, peer.Zone)
	}
	if err != nil {
		l.Log().Warn("names: refusing a claim whose lease does not verify", "err", err)
		answerLink(l, m.ID, nameResult(wire.CodeBadName, "the claimant's lease does not verify: %v", err))
		return link.ErrViolation
	}
	if bad := checkClaim(&m.Claim, &m.Lease); bad != nil {
		answerLink(l, m.ID, bad)
		return link.ErrViolation
	}
	hash := names.Hash(m.Claim.Name)
	home, _, _, notYet := r.homeOf(hash)
	win, _, held := r.holder(hash)
	ours := held && win.relay == r.self
	switch {
	case home != r.self && !ours:
		answerLink(l, m.ID, nameResult(wire.CodeUnavailable, "not the home of this name"))
	case notYet != nil && !ours:
		answerLink(l, m.ID, notYet)
	default:
		claim := m.Claim
		r.askUnmirrorable(nil, l, &claim, func(res *wire.NameResult) { answerLink(l, m.ID, res) }, func() {
			if !r.nameWork(func() { answerLink(l, m.ID, r.decide(&claim)) }) {
				answerLink(l, m.ID, errNameBusy)
			}
		})
	}
	return nil
}

// askUnmirrorable asks the trusted relays whose ledgers this relay cannot
// mirror in full (zoneledger.Service.Unmirrorable), one after another,
// whether their ledger holds claim's name, before this relay decides it:
// a name one of them holds for another key is answered as taken; if none
// does, decide runs. A relay that cannot say leaves the claim undecided
// ("try again"). The request is node m's or the relay's at the end of
// asker's, for forward's quotas. With nothing unmirrorable (the usual
// case) decide runs at once.
func (r *Registrar) askUnmirrorable(m *zone.Member, asker *federation.Link, claim *wire.UserClaim, answer func(*wire.NameResult), decide func()) {
	links := r.cfg.Ledger.Unmirrorable(wire.FeatureNames)
	hash := names.Hash(claim.Name)
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
		req := func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: hash} }
		r.forward(l, m, asker, req, func(res *wire.NameResult) {
			if res.Code == wire.CodeNotFound {
				next(i + 1)
				return
			}
			got := r.checkForwarded(res, l, l.Peer().Zone, func(rec *wire.UserRecord) bool { return names.Hash(rec.Claim.Name) == hash })
			switch {
			case got.Code != wire.CodeNone:
				answer(nameResult(wire.CodeUnavailable, "the relay of zone %s, whose ledger this relay cannot mirror, did not say whether it holds this name; try again", l.Peer().Zone))
			case got.Record.Claim.SignKey != claim.SignKey:
				answer(nameResult(wire.CodeNameTaken, "%q is taken", claim.Name))
			default:
				next(i + 1) // the claimant's own name: its update is decided here
			}
		})
	}
	next(0)
}

// onRelayLookup answers another relay's lookup from this relay's own
// names, or, for a name another trusted relay's ledger holds (one
// sequenced there before this relay became its home), by asking that
// relay once: a relay asks the home, the home asks the holder, and the
// holder answers from its own names.
func (r *Registrar) onRelayLookup(l *federation.Link, m *wire.NameLookup) error {
	if !r.linkLimit(l).AllowN(r.clock.Now(), 1) {
		answerLink(l, m.ID, nameResult(wire.CodeRateLimited, "looking up names faster than allowed"))
		return link.ErrViolation
	}
	if r.refuseUntrusted(l, m.ID) {
		return nil
	}
	r.lookups.Add(1)
	hash := m.Hash
	if res := r.ownRecord(hash); res != nil {
		answerLink(l, m.ID, res)
		return nil
	}
	ask := func(to *federation.Link, zone string) {
		req := func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: hash} }
		r.forward(to, nil, l, req, func(res *wire.NameResult) {
			answerLink(l, m.ID, r.checkForwarded(res, to, zone, func(rec *wire.UserRecord) bool { return names.Hash(rec.Claim.Name) == hash }))
		})
	}
	res, asked := r.lookupHeld(hash, l, ask)
	switch {
	case asked:
	case res != nil:
		answerLink(l, m.ID, res)
	default:
		answerLink(l, m.ID, errNoName)
	}
	return nil
}

// onNameResult passes on the answer to a request this relay forwarded
// over l; an answer nobody waits for (late, or never asked) is dropped.
func (r *Registrar) onNameResult(l *federation.Link, m *wire.NameResult) {
	p := r.take(m.ID, l)
	if p == nil {
		l.Dropped()
		l.Log().Debug("names: dropping an answer nobody waits for", "id", m.ID)
		return
	}
	if !r.trusted(l.Peer().Key) {
		// Asked while it was trusted, answering after: its word,
		// refusal or record, reaches nobody.
		r.untrusted.Add(1)
		l.Log().Warn("names: dropping an answer from a relay this one does not trust")
		p.finish(nameResult(wire.CodeUnavailable, "the relay of zone %s is not trusted for names; try again", l.Peer().Zone))
		return
	}
	p.finish(m)
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
	answerNode(m, uint32(rid), nameResult(wire.CodeBadName, "%s", claimProblem(fmt.Errorf("%w: %d characters, at most %d", names.ErrTooLong, size, names.MaxLen))))
	return true
}
