package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/ledger"
	"ddt/shared/wire"
)

// The zone ledger. Each relay keeps its zone's public log (a ledger.Log in
// its store, signed with the relay key) and a verified mirror of the log
// of every relay it links to (a ledger.Mirror per zone and key, in the
// same store). On a link each side announces its checkpoint after its
// snapshot, whenever its log grows, and with its summaries; a side whose
// mirror is behind asks for the entries since (LedgerGetEntries, page by
// page) and for the consistency proof from its mirror's size
// (LedgerGetProof), and hands them all at once to Mirror.Update. A fork —
// a checkpoint the mirror's tree contradicts — is logged with both signed
// notes, kept in the store as evidence, counted, and ends ledger sync on
// that link; nothing of the forked view is accepted.

// Ledger limits.
const (
	// maxCatchUp is the most entries one catch-up round holds in memory
	// before Mirror.Update; a relay further ahead than this is not
	// mirrored (the log keeps a checkpoint only for its latest size, so
	// a round cannot stop halfway).
	maxCatchUp = 1 << 18
	// maxCatchUpBytes bounds the entry bytes of one round likewise.
	maxCatchUpBytes = 256 << 20

	storeMirrors = "relay/mirrors/" // + key hex + "/" + zone: a mirror to reopen at start
	storeForks   = "relay/forks/"   // + origin: both checkpoints of a fork, as JSON
)

// mirrorID names a mirrored log: the relay's zone and key.
type mirrorID struct {
	zone string
	key  [32]byte
}

// openLedger opens the relay's own log and the mirrors it kept. Called
// by NewHub before anything else runs.
func (h *Hub) openLedger() error {
	if ledger.MaxEntry != wire.MaxLedgerEntry || ledger.MaxCheckpoint != wire.MaxLedgerCheckpoint {
		return errors.New("ledger and wire limits disagree")
	}
	var err error
	if h.ledger, err = ledger.Open(h.cfg.Store, ledger.ZoneOrigin(h.cfg.Zone, h.Key()), h.key.SigningKey()); err != nil {
		return fmt.Errorf("zone ledger: %w", err)
	}
	h.mirrors = make(map[mirrorID]*ledger.Mirror)
	keys, err := h.cfg.Store.Keys(storeMirrors)
	if err != nil {
		return fmt.Errorf("zone ledger mirrors: %w", err)
	}
	for _, k := range keys {
		kh, zone, ok := strings.Cut(strings.TrimPrefix(k, storeMirrors), "/")
		b, err := hex.DecodeString(kh)
		if !ok || err != nil || len(b) != 32 {
			h.log.Warn("ignoring a malformed mirror record", "key", k)
			continue
		}
		id := mirrorID{zone: zone, key: [32]byte(b)}
		if _, err := h.openMirror(id); err != nil {
			h.log.Error("cannot reopen a ledger mirror", "zone", zone, "err", err)
		}
	}
	return nil
}

// openMirror opens (once) the mirror of id's log and records it for the
// next start.
func (h *Hub) openMirror(id mirrorID) (*ledger.Mirror, error) {
	h.mu.Lock()
	m := h.mirrors[id]
	h.mu.Unlock()
	if m != nil {
		return m, nil
	}
	h.mirrorMu.Lock()
	defer h.mirrorMu.Unlock()
	h.mu.Lock()
	m = h.mirrors[id]
	h.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := ledger.OpenMirror(h.cfg.Store, ledger.ZoneOrigin(id.zone, id.key), ed25519.PublicKey(id.key[:]))
	if err != nil {
		return nil, err
	}
	if err := h.cfg.Store.Put(storeMirrors+hex.EncodeToString(id.key[:])+"/"+id.zone, nil); err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.mirrors[id] = m
	h.mu.Unlock()
	return m, nil
}

// mirrorOf returns the mirror of zone's log: the one of the relay linked
// now if several relays ever served that zone, else the largest.
func (h *Hub) mirrorOf(zone string) *ledger.Mirror {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best *ledger.Mirror
	for id, m := range h.mirrors {
		if id.zone != zone {
			continue
		}
		if rs := h.relays[id.key]; rs != nil && rs.link != nil {
			return m
		}
		if best == nil || m.Size() > best.Size() {
			best = m
		}
	}
	return best
}

// Sequence appends one public event to the zone's ledger and returns its
// index and the signed checkpoint that includes it; linked relays hear
// of the new checkpoint.
func (h *Hub) Sequence(entry []byte) (index int64, cp []byte, err error) {
	h.seqMu.Lock()
	defer h.seqMu.Unlock()
	if index, err = h.ledger.Append(entry); err != nil {
		return 0, nil, err
	}
	cp, _ = h.ledger.Checkpoint()
	if b, err := wire.Marshal(&wire.LedgerCheckpoint{Note: cp}); err == nil {
		h.mu.Lock()
		for _, rs := range h.relays {
			if rs.link != nil {
				// Dropped when the link is busy: the next one, or the
				// summary tick, announces a checkpoint at least as new.
				rs.link.trySend(b)
			}
		}
		h.mu.Unlock()
	}
	return index, cp, nil
}

// checkpointFrame is the LedgerCheckpoint announcing our log's latest
// checkpoint.
func (h *Hub) checkpointFrame() []byte {
	note, _ := h.ledger.Checkpoint()
	b, err := wire.Marshal(&wire.LedgerCheckpoint{Note: note})
	if err != nil {
		h.log.Error("ledger checkpoint frame", "err", err)
		return nil
	}
	return b
}

// LedgerStats is the ledger part of /healthz.
type LedgerStats struct {
	Size    int64            `json:"size"`    // entries in this zone's ledger
	Mirrors map[string]int64 `json:"mirrors"` // entries mirrored, by zone
	Forks   int64            `json:"forks"`   // forked checkpoints refused
}

// ledgerStats counts the ledgers. h.mu is held.
func (h *Hub) ledgerStats() LedgerStats {
	s := LedgerStats{Size: h.ledger.Size(), Mirrors: map[string]int64{}, Forks: h.forks.Load()}
	for id, m := range h.mirrors {
		s.Mirrors[id.zone] = max(s.Mirrors[id.zone], m.Size())
	}
	return s
}

// ledgerSync is a link's mirroring of the other relay's log. Only the
// link's read loop touches it.
type ledgerSync struct {
	mirror  *ledger.Mirror
	stopped bool // a fork, or a relay too far ahead: no more sync on this link

	// The round in flight, if busy: catching up from base to cp.
	busy      bool
	note      []byte
	cp        ledger.Checkpoint
	base      int64
	entries   [][]byte
	bytes     int
	proof     tlog.TreeProof
	haveProof bool

	next []byte // the newest checkpoint announced during the round
}

// errLedgerRefused marks a ledger frame refused without ending the link.
var errLedgerRefused = errors.New("ledger frame refused")

func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errLedgerRefused}, args...)...)
}

// onCheckpoint handles the other relay's announced checkpoint.
func (l *link) onCheckpoint(note []byte) error {
	s := &l.ledger
	if s.stopped {
		return nil
	}
	h := l.hub
	if s.mirror == nil {
		m, err := h.openMirror(mirrorID{zone: l.peer.Zone, key: l.peer.Key})
		if err != nil {
			l.log.Error("cannot mirror the relay's ledger", "err", err)
			s.stopped = true
			return nil
		}
		s.mirror = m
	}
	pub := ed25519.PublicKey(l.peer.Key[:])
	cp, err := ledger.OpenCheckpoint(note, ledger.ZoneOrigin(l.peer.Zone, l.peer.Key), pub)
	if err != nil {
		return refusef("checkpoint: %v", err)
	}
	if s.busy {
		if cp.Size > s.cp.Size {
			s.next = note
		}
		return nil
	}
	held, _ := s.mirror.Checkpoint()
	if bytes.Equal(held, note) {
		return nil
	}
	if cp.Size <= s.mirror.Size() {
		return l.applyLedger(note, nil, nil)
	}
	return l.startRound(note, cp)
}

// startRound asks for what the mirror lacks to reach cp.
func (l *link) startRound(note []byte, cp ledger.Checkpoint) error {
	s := &l.ledger
	base := s.mirror.Size()
	if cp.Size-base > maxCatchUp {
		l.log.Error("not mirroring the relay's ledger: too far ahead for one catch-up", "mirror", base, "size", cp.Size, "limit", maxCatchUp)
		s.stopped = true
		return nil
	}
	*s = ledgerSync{mirror: s.mirror, busy: true, note: note, cp: cp, base: base}
	for _, m := range []wire.Message{
		&wire.LedgerGetProof{Old: uint64(base), New: uint64(cp.Size)},
		&wire.LedgerGetEntries{From: uint64(base), To: uint64(cp.Size)},
	} {
		if b, err := wire.Marshal(m); err == nil {
			l.send(b)
		}
	}
	return nil
}

// onEntries takes a page of the round's entries.
func (l *link) onEntries(m *wire.LedgerEntries) error {
	s := &l.ledger
	if !s.busy || s.stopped {
		return refusef("ledger entries nobody asked for")
	}
	at := s.base + int64(len(s.entries))
	if m.From != uint64(at) {
		return l.abandon(refusef("ledger entries from %d; expected from %d", m.From, at))
	}
	if len(m.Entries) == 0 || int64(len(m.Entries)) > s.cp.Size-at {
		return l.abandon(refusef("%d ledger entries from %d toward size %d", len(m.Entries), at, s.cp.Size))
	}
	for _, e := range m.Entries {
		s.bytes += len(e)
	}
	if s.bytes > maxCatchUpBytes {
		l.log.Error("not mirroring the relay's ledger: catch-up too large", "bytes", s.bytes)
		s.stopped, s.busy = true, false
		return nil
	}
	s.entries = append(s.entries, m.Entries...)
	if at := s.base + int64(len(s.entries)); at < s.cp.Size {
		if b, err := wire.Marshal(&wire.LedgerGetEntries{From: uint64(at), To: uint64(s.cp.Size)}); err == nil {
			l.send(b)
		}
		return nil
	}
	return l.finishRound()
}

// onProof takes the round's consistency proof.
func (l *link) onProof(m *wire.LedgerProof) error {
	s := &l.ledger
	if !s.busy || s.stopped || s.haveProof {
		return refusef("a ledger proof nobody asked for")
	}
	if m.Old != uint64(s.base) || m.New != uint64(s.cp.Size) {
		return l.abandon(refusef("ledger proof %d → %d; asked for %d → %d", m.Old, m.New, s.base, s.cp.Size))
	}
	s.proof = make(tlog.TreeProof, len(m.Hashes))
	for i, hash := range m.Hashes {
		s.proof[i] = tlog.Hash(hash)
	}
	s.haveProof = true
	return l.finishRound()
}

// abandon drops the round in flight; the next announcement starts again.
func (l *link) abandon(err error) error {
	s := &l.ledger
	*s = ledgerSync{mirror: s.mirror}
	return err
}

// finishRound updates the mirror once every entry and the proof are in,
// then starts on a newer checkpoint announced meanwhile.
func (l *link) finishRound() error {
	s := &l.ledger
	if !s.haveProof || s.base+int64(len(s.entries)) < s.cp.Size {
		return nil
	}
	note, entries, proof, next := s.note, s.entries, s.proof, s.next
	*s = ledgerSync{mirror: s.mirror}
	if err := l.applyLedger(note, entries, proof); err != nil || s.stopped || next == nil {
		return err
	}
	return l.onCheckpoint(next)
}

// applyLedger offers the mirror a checkpoint with what leads to it.
func (l *link) applyLedger(note []byte, entries [][]byte, proof tlog.TreeProof) error {
	s := &l.ledger
	err := s.mirror.Update(note, entries, proof)
	switch {
	case err == nil:
		l.log.Debug("ledger mirrored", "size", s.mirror.Size())
		l.indexMirror()
		return nil
	case errors.Is(err, ledger.ErrFork):
		l.hub.forks.Add(1)
		s.stopped = true
		held, _ := s.mirror.Checkpoint()
		l.log.Error("the relay's ledger forked: refusing its checkpoint and ending ledger sync on this link",
			"err", err, "held", string(held), "offered", string(note))
		evidence, _ := json.Marshal(struct{ Held, Offered string }{string(held), string(note)})
		if perr := l.hub.cfg.Store.Put(storeForks+ledger.ZoneOrigin(l.peer.Zone, l.peer.Key), evidence); perr != nil {
			l.log.Error("cannot keep the fork's checkpoints", "err", perr)
		}
		return nil
	default:
		return refusef("ledger update: %v", err)
	}
}

// serveEntries answers the other relay's request for entries of our log.
func (l *link) serveEntries(m *wire.LedgerGetEntries) error {
	h := l.hub
	size := uint64(h.ledger.Size())
	if m.To > size {
		return refusef("entries [%d, %d) beyond the ledger's %d", m.From, m.To, size)
	}
	es, err := h.ledger.Entries(int64(m.From), int64(min(m.To, m.From+wire.MaxLedgerEntries)))
	if err != nil {
		l.log.Error("ledger entries", "err", err)
		return refusef("ledger entries unavailable")
	}
	total := 0
	for i, e := range es {
		if total += len(e); total > wire.MaxLedgerBytes {
			es = es[:i]
			break
		}
	}
	b, err := wire.Marshal(&wire.LedgerEntries{From: m.From, Entries: es})
	if err != nil {
		l.log.Error("ledger entries frame", "err", err)
		return refusef("ledger entries unavailable")
	}
	l.send(b)
	return nil
}

// serveProof answers the other relay's request for a consistency proof.
func (l *link) serveProof(m *wire.LedgerGetProof) error {
	h := l.hub
	size := uint64(h.ledger.Size())
	if m.New > size {
		return refusef("proof %d → %d beyond the ledger's %d", m.Old, m.New, size)
	}
	p, err := h.ledger.ConsistencyProof(int64(m.Old), int64(m.New))
	if err != nil {
		l.log.Error("ledger proof", "err", err)
		return refusef("ledger proof unavailable")
	}
	out := &wire.LedgerProof{Old: m.Old, New: m.New, Hashes: make([][32]byte, len(p))}
	for i, hash := range p {
		out.Hashes[i] = hash
	}
	b, err := wire.Marshal(out)
	if err != nil {
		return refusef("ledger proof: %v", err)
	}
	l.send(b)
	return nil
}
