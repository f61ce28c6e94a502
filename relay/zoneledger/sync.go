package zoneledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/relay/federation"
	"ddt/relay/link"
	"ddt/shared/clock"
	"ddt/shared/ledger"
	"ddt/shared/wire"
)

// syncState is one link's mirroring of the other relay's log: state of
// that link's read loop, and of the round's deadline timer, under mu.
type syncState struct {
	s       *Service
	l       *federation.Link
	id      ID
	mu      sync.Mutex
	mirror  *mirror
	stopped bool // a fork: no more sync on this link
	// beyond is a size no round is tried toward again on this link, nor
	// any larger one: a round toward it was too far ahead or too large,
	// and a log only grows (0: none).
	beyond    int64
	distrusts bool      // logged that the relay is not trusted
	gen       int       // rounds started, to tell a deadline's round
	late      late      // answers still in flight to the round abandoned last, dropped quietly
	upAt      time.Time // when a link to this relay first came up (see syncOf)
	announced int64     // the largest size the relay announced (valid if heard)
	heard     bool      // a checkpoint of its came and verified

	round round // the round in flight, if busy
}

// round is one catch-up: from base to cp.
type round struct {
	busy      bool
	gen       int
	timer     clock.Timer
	note      []byte
	cp        ledger.Checkpoint
	base      int64
	entries   [][]byte
	bytes     int64
	proof     tlog.TreeProof
	haveProof bool
	next      []byte // the newest checkpoint announced during the round
}

// late is what a round abandoned had asked for and not yet received: at
// most one page of entries and the proof.
type late struct {
	entries bool
	from    uint64 // of the page asked for
	proof   bool
	old     uint64 // of the proof asked for
	new     uint64
}

// syncOf returns l's sync state. Its upAt is when a link to that relay
// first came up since this relay started, if the relay is trusted: a
// relay that drops and relinks does not get another SettleTimeout to hold
// up this relay's names.
func (s *Service) syncOf(l *federation.Link) *syncState {
	p := l.Peer()
	trusted := s.cfg.Trusted(p.Key) // it may take the federation's lock: not under syncMu
	now := s.cfg.Clock.Now()
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	y := s.syncs[l]
	if y == nil {
		up := now
		if trusted {
			// Trusted keys are the operator's few: the map stays small.
			if first, ok := s.firstUp[p.Key]; ok {
				up = first
			} else {
				s.firstUp[p.Key] = now
			}
		}
		y = &syncState{s: s, l: l, id: ID{Zone: p.Zone, Key: p.Key}, upAt: up}
		s.syncs[l] = y
	}
	return y
}

// handler adapts a sync step to a federation.Handler, logging refusals.
func (s *Service) handler(step func(*syncState, wire.Message) error) federation.Handler {
	return func(l *federation.Link, m wire.Message) error {
		y := s.syncOf(l)
		y.mu.Lock()
		err := step(y, m)
		y.mu.Unlock()
		var r *link.Refusal
		if errors.As(err, &r) {
			l.Log().Warn("refusing a ledger frame", "err", err)
		}
		return err
	}
}

// refusef refuses a ledger frame; the link stays.
func refusef(format string, args ...any) error {
	return link.Refuse(wire.CodeProtocol, "ledger frame refused: "+format, args...)
}

// onCheckpoint handles the other relay's announced checkpoint.
func (y *syncState) onCheckpoint(note []byte) error {
	if y.stopped {
		return nil
	}
	cp, err := ledger.OpenCheckpoint(note, ledger.ZoneOrigin(y.id.Zone, y.id.Key), ed25519.PublicKey(y.id.Key[:]))
	if err != nil {
		return refusef("checkpoint: %v", err)
	}
	if !y.s.cfg.Trusted(y.id.Key) {
		if !y.distrusts {
			y.distrusts = true
			y.l.Log().Info("not mirroring the ledger of a relay this one does not trust")
		}
		y.dropRoundLocked()
		y.mirror = nil
		y.s.Prune()
		return nil
	}
	y.distrusts = false
	y.heard = true
	y.announced = max(y.announced, cp.Size)
	if y.mirror == nil || y.mirror.gone.Load() {
		m, err := y.s.openMirror(y.id)
		if errors.Is(err, errDeleting) {
			return nil // a later announcement, once it is gone
		}
		if err != nil {
			y.l.Log().Error("cannot mirror the relay's ledger", "err", err)
			y.stopped = true
			return nil
		}
		y.mirror = m
	}
	if y.round.busy {
		if cp.Size > y.round.cp.Size {
			y.round.next = note
		}
		return nil
	}
	held, _ := y.mirror.Checkpoint()
	if bytes.Equal(held, note) {
		return nil
	}
	if cp.Size <= y.mirror.Size() {
		return y.apply(note, nil, nil)
	}
	return y.startRound(note, cp)
}

// partialLocked reports whether the mirror holds all of this link's
// ledger it ever will, and that is not all of it (see
// Service.Unmirrorable).
func (y *syncState) partialLocked() bool {
	return y.stopped || y.beyond > 0 && y.announced >= y.beyond || y.s.isCapped(y.id.Key)
}

// settledLocked reports whether this link's ledger keeps the relay
// unsettled no longer (see Service.Settled).
func (y *syncState) settledLocked(now time.Time) bool {
	switch {
	case y.partialLocked():
		return true // it holds all it ever will
	case now.Sub(y.upAt) >= SettleTimeout:
		return true
	case !y.heard || y.round.busy || y.mirror == nil:
		return false
	}
	return y.mirror.Size() >= y.announced
}

// startRound asks for what the mirror lacks to reach cp.
func (y *syncState) startRound(note []byte, cp ledger.Checkpoint) error {
	base := y.mirror.Size()
	if y.beyond > 0 && cp.Size >= y.beyond {
		return nil
	}
	if y.s.overCap(y.id.Key, 0) {
		return nil
	}
	if cp.Size-base > MaxCatchUp {
		y.beyond = cp.Size
		y.s.abandoned.Add(1)
		y.l.Log().Error("not mirroring the relay's ledger: too far ahead for one catch-up", "mirror", base, "size", cp.Size, "limit", MaxCatchUp)
		return nil
	}
	y.gen++
	gen := y.gen
	y.round = round{busy: true, gen: gen, note: note, cp: cp, base: base}
	y.round.timer = y.s.cfg.Clock.AfterFunc(RoundTimeout, func() { y.expire(gen) })
	y.l.SendMsg(&wire.LedgerGetProof{Old: uint64(base), New: uint64(cp.Size)})
	y.l.SendMsg(&wire.LedgerGetEntries{From: uint64(base), To: uint64(cp.Size)})
	return nil
}

// expire abandons round gen if it is still in flight at its deadline.
func (y *syncState) expire(gen int) {
	y.mu.Lock()
	defer y.mu.Unlock()
	if !y.round.busy || y.round.gen != gen {
		return
	}
	r := &y.round
	// Until every entry is in, a request for the next page is out.
	pageInFlight := r.base+int64(len(r.entries)) < r.cp.Size
	y.abandonLocked(pageInFlight, "past its deadline", "deadline", RoundTimeout, "entries", len(r.entries), "of", r.cp.Size-r.base, "proof", r.haveProof)
}

// abandonLocked drops the round in flight, counted and logged; answers
// to it still on their way are dropped quietly (pageInFlight: a page of
// entries is among them). The next announcement starts again.
func (y *syncState) abandonLocked(pageInFlight bool, why string, args ...any) {
	r := y.round
	y.s.abandoned.Add(1)
	y.l.Log().Error("abandoning a ledger catch-up round: "+why, append([]any{"from", r.base, "to", r.cp.Size}, args...)...)
	y.leaveLocked(pageInFlight)
}

// leaveLocked drops the round in flight, expecting its answers still on
// their way.
func (y *syncState) leaveLocked(pageInFlight bool) {
	r := y.round
	y.dropRoundLocked()
	y.late = late{proof: !r.haveProof, old: uint64(r.base), new: uint64(r.cp.Size)}
	if pageInFlight {
		y.late.entries, y.late.from = true, uint64(r.base+int64(len(r.entries)))
	}
}

// dropRoundLocked ends the round in flight, holding nothing of it.
func (y *syncState) dropRoundLocked() {
	if y.round.timer != nil {
		y.round.timer.Stop()
	}
	y.round = round{}
}

// onEntries takes a page of the round's entries.
func (y *syncState) onEntries(m *wire.LedgerEntries) error {
	r := &y.round
	at := r.base + int64(len(r.entries))
	if y.late.entries && m.From == y.late.from && !(r.busy && m.From == uint64(at)) {
		y.late.entries = false
		return nil
	}
	if !r.busy || y.stopped {
		return refusef("ledger entries nobody asked for")
	}
	if m.From != uint64(at) {
		return y.abandon(refusef("ledger entries from %d; expected from %d", m.From, at))
	}
	if len(m.Entries) == 0 || int64(len(m.Entries)) > r.cp.Size-at {
		return y.abandon(refusef("%d ledger entries from %d toward size %d", len(m.Entries), at, r.cp.Size))
	}
	for _, e := range m.Entries {
		r.bytes += int64(len(e))
	}
	if r.bytes > MaxRoundBytes {
		y.beyond = r.cp.Size
		y.abandonLocked(false, "too many bytes", "bytes", r.bytes, "limit", MaxRoundBytes)
		return nil
	}
	if y.s.overCap(y.id.Key, r.bytes) {
		y.leaveLocked(false)
		return nil
	}
	r.entries = append(r.entries, m.Entries...)
	if at := r.base + int64(len(r.entries)); at < r.cp.Size {
		y.l.SendMsg(&wire.LedgerGetEntries{From: uint64(at), To: uint64(r.cp.Size)})
		return nil
	}
	return y.finishRound()
}

// onProof takes the round's consistency proof.
func (y *syncState) onProof(m *wire.LedgerProof) error {
	r := &y.round
	if y.late.proof && m.Old == y.late.old && m.New == y.late.new && !(r.busy && m.Old == uint64(r.base) && m.New == uint64(r.cp.Size)) {
		y.late.proof = false
		return nil
	}
	if !r.busy || y.stopped || r.haveProof {
		return refusef("a ledger proof nobody asked for")
	}
	if m.Old != uint64(r.base) || m.New != uint64(r.cp.Size) {
		return y.abandon(refusef("ledger proof %d → %d; asked for %d → %d", m.Old, m.New, r.base, r.cp.Size))
	}
	r.proof = make(tlog.TreeProof, len(m.Hashes))
	for i, hash := range m.Hashes {
		r.proof[i] = tlog.Hash(hash)
	}
	r.haveProof = true
	return y.finishRound()
}

// abandon drops the round in flight for a refused frame; the next
// announcement starts again.
func (y *syncState) abandon(err error) error {
	y.dropRoundLocked()
	return err
}

// finishRound updates the mirror once every entry and the proof are in,
// then starts on a newer checkpoint announced meanwhile.
func (y *syncState) finishRound() error {
	r := y.round
	if !r.haveProof || r.base+int64(len(r.entries)) < r.cp.Size {
		return nil
	}
	y.dropRoundLocked()
	if err := y.apply(r.note, r.entries, r.proof); err != nil || y.stopped || r.next == nil {
		return err
	}
	return y.onCheckpoint(r.next)
}

// apply offers the mirror a checkpoint with what leads to it, unless the
// mirror was pruned meanwhile.
func (y *syncState) apply(note []byte, entries [][]byte, proof tlog.TreeProof) error {
	m := y.mirror
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gone.Load() {
		y.mirror = nil
		return nil
	}
	err := m.Update(note, entries, proof)
	switch {
	case err == nil:
		y.l.Log().Debug("ledger mirrored", "size", m.Size())
		for _, fn := range y.s.mirrored {
			fn(y.id, m.Mirror)
		}
		return nil
	case errors.Is(err, ledger.ErrFork):
		y.s.forks.Add(1)
		y.stopped = true
		held, _ := m.Checkpoint()
		y.l.Log().Error("the relay's ledger forked: refusing its checkpoint and ending ledger sync on this link",
			"err", err, "held", string(held), "offered", string(note))
		evidence, _ := json.Marshal(struct{ Held, Offered string }{string(held), string(note)})
		if perr := y.s.cfg.Store.Put(StoreForks+ledger.ZoneOrigin(y.id.Zone, y.id.Key), evidence); perr != nil {
			y.l.Log().Error("cannot keep the fork's checkpoints", "err", perr)
		}
		return nil
	default:
		return refusef("ledger update: %v", err)
	}
}

// serveEntries answers the other relay's request for entries of our log.
func (y *syncState) serveEntries(m *wire.LedgerGetEntries) error {
	own := y.s.own
	size := uint64(own.Size())
	if m.To > size {
		return refusef("entries [%d, %d) beyond the ledger's %d", m.From, m.To, size)
	}
	es, err := own.Entries(int64(m.From), int64(min(m.To, m.From+wire.MaxLedgerEntries)))
	if err != nil {
		y.l.Log().Error("ledger entries", "err", err)
		return refusef("ledger entries unavailable")
	}
	total := 0
	for i, e := range es {
		if total += len(e); total > wire.MaxLedgerBytes {
			es = es[:i]
			break
		}
	}
	if !y.l.SendMsg(&wire.LedgerEntries{From: m.From, Entries: es}) {
		return refusef("ledger entries unavailable")
	}
	return nil
}

// serveProof answers the other relay's request for a consistency proof.
func (y *syncState) serveProof(m *wire.LedgerGetProof) error {
	own := y.s.own
	size := uint64(own.Size())
	if m.New > size {
		return refusef("proof %d → %d beyond the ledger's %d", m.Old, m.New, size)
	}
	p, err := own.ConsistencyProof(int64(m.Old), int64(m.New))
	if err != nil {
		y.l.Log().Error("ledger proof", "err", err)
		return refusef("ledger proof unavailable")
	}
	out := &wire.LedgerProof{Old: m.Old, New: m.New, Hashes: make([][32]byte, len(p))}
	for i, hash := range p {
		out.Hashes[i] = hash
	}
	if !y.l.SendMsg(out) {
		return refusef("ledger proof: cannot encode")
	}
	return nil
}
