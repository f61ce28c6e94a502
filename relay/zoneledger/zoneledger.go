package zoneledger

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ddt/relay/federation"
	"ddt/shared/clock"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Limits and store layout.
const (
	// MaxCatchUp is the most entries one catch-up round fetches: a relay
	// further ahead of its mirror than this is not mirrored (the log
	// keeps a checkpoint only for its latest size, so a round cannot stop
	// halfway). 65,536 username entries are 6.1 MiB, within MaxRoundBytes.
	MaxCatchUp = 1 << 16
	// MaxRoundBytes bounds the entry bytes one round holds in memory
	// before Mirror.Update; a round that would hold more is abandoned.
	MaxRoundBytes = 8 << 20
	// RoundTimeout is how long a round may take from its requests to
	// its last entry and proof; one still open then is abandoned.
	RoundTimeout = 2 * time.Minute
	// MaxMirrorBytes is the default of Config.MaxMirrorBytes: the entry
	// bytes mirrored of one relay key, over every zone it served.
	MaxMirrorBytes = 256 << 20
	// SettleTimeout is the longest a linked relay's ledger keeps this
	// relay unsettled (see Settled) after a link to it first came up: a
	// relay that never announces its ledger, keeps a catch-up going, or
	// drops and relinks, cannot stall the names this relay decides for
	// longer.
	SettleTimeout = 30 * time.Second

	storeMirrors = "relay/mirrors/" // + key hex + "/" + zone: a mirror to reopen at start
	// StoreForks is where a fork's evidence is kept: + the log's origin,
	// both checkpoints as JSON {"Held": …, "Offered": …}.
	StoreForks = "relay/forks/"
)

// errDeleting: the mirror asked for is still being deleted (its relay
// was distrusted, and is trusted again).
var errDeleting = errors.New("zone ledger: that mirror is being deleted")

// ID names a log: its relay's zone and key.
type ID struct {
	Zone string
	Key  [32]byte
}

// Config configures the ledger service.
type Config struct {
	Zone       string
	Key        *identity.Identity // signs the zone's checkpoints
	Store      store.Store        // the log, the mirrors, the evidence of forks
	Federation *federation.Federation
	Logger     *slog.Logger
	Clock      clock.Clock // the deadlines of catch-up rounds; clock.System if nil
	// Trusted says whether the relay with a key is trusted now; only
	// trusted relays are mirrored, and the mirrors of any other are
	// deleted at New, at every summary round and at Prune. Every key is
	// trusted if nil.
	Trusted func(key [32]byte) bool
	// MaxMirrorBytes caps the entry bytes mirrored of one relay key
	// (MaxMirrorBytes if 0): a relay whose ledger outgrows it is
	// mirrored no further than the last checkpoint that fit.
	MaxMirrorBytes int64
}

// Service is the zone ledger service.
type Service struct {
	cfg Config
	log *slog.Logger
	fed *federation.Federation
	own *ledger.Log

	seqMu sync.Mutex // serializes Sequence, so each returns its own checkpoint

	mu       sync.Mutex
	mirrors  map[ID]*mirror
	capped   map[[32]byte]bool // keys mirrored up to the byte cap, no further
	deleting map[ID]bool       // mirrors pruned whose records are being deleted
	closed   bool
	wg       sync.WaitGroup // the deletions
	openMu   sync.Mutex     // serializes opening and pruning mirrors
	syncMu   sync.Mutex
	syncs    map[*federation.Link]*syncState
	firstUp  map[[32]byte]time.Time // per trusted relay: when a link to it first came up (syncMu)

	mirrored []func(ID, *ledger.Mirror)
	pruned   []func(ID)

	forks     atomic.Int64
	abandoned atomic.Int64
	cappedN   atomic.Int64
	prunedN   atomic.Int64
}

// mirror is a mirrored log and the lock that orders its growth before
// its deletion.
type mirror struct {
	*ledger.Mirror
	mu   sync.Mutex // held by the update and the hooks after it, and by the prune
	gone atomic.Bool
}

// New opens the zone's log and the mirrors kept, and registers the
// mirroring with cfg.Federation, if set (before it starts).
func New(cfg Config) (*Service, error) {
	if ledger.MaxEntry != wire.MaxLedgerEntry || ledger.MaxCheckpoint != wire.MaxLedgerCheckpoint {
		return nil, errors.New("ledger and wire limits disagree")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System
	}
	if cfg.Trusted == nil {
		cfg.Trusted = func([32]byte) bool { return true }
	}
	if cfg.MaxMirrorBytes <= 0 {
		cfg.MaxMirrorBytes = MaxMirrorBytes
	}
	s := &Service{cfg: cfg, log: cfg.Logger, fed: cfg.Federation, mirrors: make(map[ID]*mirror), capped: make(map[[32]byte]bool), deleting: make(map[ID]bool),
		syncs: make(map[*federation.Link]*syncState), firstUp: make(map[[32]byte]time.Time)}
	var err error
	if s.own, err = ledger.Open(cfg.Store, ledger.ZoneOrigin(cfg.Zone, cfg.Key.SignKey()), cfg.Key.SigningKey()); err != nil {
		return nil, fmt.Errorf("zone ledger: %w", err)
	}
	keys, err := cfg.Store.Keys(storeMirrors)
	if err != nil {
		return nil, fmt.Errorf("zone ledger mirrors: %w", err)
	}
	for _, k := range keys {
		kh, zone, ok := strings.Cut(strings.TrimPrefix(k, storeMirrors), "/")
		b, err := hex.DecodeString(kh)
		if !ok || err != nil || len(b) != 32 {
			s.log.Warn("ignoring a malformed mirror record", "key", k)
			continue
		}
		id := ID{Zone: zone, Key: [32]byte(b)}
		if !cfg.Trusted(id.Key) {
			s.deleteMirror(id)
			continue
		}
		if _, err := s.openMirror(id); err != nil {
			s.log.Error("cannot reopen a ledger mirror", "zone", zone, "err", err)
		}
	}
	if f := s.fed; f != nil {
		f.Handle(wire.TypeLedgerCheckpoint, wire.FeatureLedger, s.handler(func(y *syncState, m wire.Message) error { return y.onCheckpoint(m.(*wire.LedgerCheckpoint).Note) }))
		f.Handle(wire.TypeLedgerGetEntries, wire.FeatureLedger, s.handler(func(y *syncState, m wire.Message) error { return y.serveEntries(m.(*wire.LedgerGetEntries)) }))
		f.Handle(wire.TypeLedgerEntries, wire.FeatureLedger, s.handler(func(y *syncState, m wire.Message) error { return y.onEntries(m.(*wire.LedgerEntries)) }))
		f.Handle(wire.TypeLedgerGetProof, wire.FeatureLedger, s.handler(func(y *syncState, m wire.Message) error { return y.serveProof(m.(*wire.LedgerGetProof)) }))
		f.Handle(wire.TypeLedgerProof, wire.FeatureLedger, s.handler(func(y *syncState, m wire.Message) error { return y.onProof(m.(*wire.LedgerProof)) }))
		f.OnLinkUp(func(l *federation.Link) {
			if !l.Has(wire.FeatureLedger) {
				return
			}
			s.syncOf(l) // from now on, Settled waits for its ledger
			if b := s.checkpointFrame(); b != nil {
				l.Send(b)
			}
		})
		f.OnLinkDown(func(l *federation.Link) {
			s.syncMu.Lock()
			y := s.syncs[l]
			delete(s.syncs, l)
			s.syncMu.Unlock()
			if y != nil {
				y.mu.Lock()
				y.dropRoundLocked()
				y.mu.Unlock()
			}
		})
		// Again with the summaries, in case an announcement was dropped;
		// and the summary round is when a change of trust is noticed.
		f.Periodic(wire.FeatureLedger, func() []byte {
			s.Prune()
			return s.checkpointFrame()
		})
	}
	return s, nil
}

// Settled reports whether this relay holds, as far as it can, the
// ledger of every linked relay it trusts that runs the ledger service
// and announced feature ("" for any): each has announced its checkpoint
// and the mirror holds it — or holds all it ever will (see Unmirrorable)
// — or SettleTimeout has passed since its link came up. A name's home
// decides only once settled, so that a relay that became the home of
// names sequenced elsewhere (the federation grew) learns of them first
// and never sequences a name already held. If not settled it names the
// zone it waits for.
func (s *Service) Settled(feature string) (ok bool, waitingFor string) {
	now := s.cfg.Clock.Now()
	ok = true
	s.eachTrusted(feature, func(l *federation.Link, y *syncState) bool {
		if !y.settledLocked(now) {
			ok, waitingFor = false, l.Peer().Zone
		}
		return ok
	})
	return ok, waitingFor
}

// Unmirrorable lists the links to trusted relays that announced feature
// ("" for any) whose ledgers this relay holds only in part and never will
// in full: a fork ended the sync, the ledger is too far ahead for one
// catch-up or too large, or it is over the mirror cap. What those
// ledgers hold beyond the mirror, this relay can only ask them.
func (s *Service) Unmirrorable(feature string) []*federation.Link {
	var out []*federation.Link
	s.eachTrusted(feature, func(l *federation.Link, y *syncState) bool {
		if y.partialLocked() {
			out = append(out, l)
		}
		return true
	})
	return out
}

// eachTrusted calls fn, with the sync state's lock held, for every link
// up to a trusted relay that runs the ledger service and announced
// feature ("" for any), until fn returns false.
func (s *Service) eachTrusted(feature string, fn func(*federation.Link, *syncState) bool) {
	if s.fed == nil {
		return
	}
	for _, l := range s.fed.Links(wire.FeatureLedger) {
		if feature != "" && !l.Has(feature) || !s.cfg.Trusted(l.Peer().Key) {
			continue
		}
		s.syncMu.Lock()
		y := s.syncs[l]
		s.syncMu.Unlock()
		if y == nil {
			continue // its link is going down
		}
		y.mu.Lock()
		more := fn(l, y)
		y.mu.Unlock()
		if !more {
			return
		}
	}
}

// Log is the zone's own log.
func (s *Service) Log() *ledger.Log { return s.own }

// Zone is the zone whose log this is.
func (s *Service) Zone() string { return s.cfg.Zone }

// Key is the relay's key, which signs the log's checkpoints.
func (s *Service) Key() [32]byte { return s.cfg.Key.SignKey() }

// OnMirrored calls fn after every update of a mirror, from the read loop
// of the link it came over. Call before the federation starts.
func (s *Service) OnMirrored(fn func(ID, *ledger.Mirror)) { s.mirrored = append(s.mirrored, fn) }

// OnPruned calls fn once a mirror of a relay no longer trusted is
// taken out of service (before its records are deleted; not for those
// deleted by New), after every OnMirrored call of that mirror. Call
// before the federation starts.
func (s *Service) OnPruned(fn func(ID)) { s.pruned = append(s.pruned, fn) }

// Prune takes the mirrors of every relay Config.Trusted no longer trusts
// out of service at once — they are no longer served, mirrored or
// counted toward a cap — and deletes their records from the store in
// the background (it takes one store write per record); it returns how
// many it took out. The summary round calls it; call it too when the
// trusted relays change. After Close it still takes mirrors out of
// service, and the next start deletes them.
func (s *Service) Prune() int {
	s.openMu.Lock() // no mirror opens meanwhile
	defer s.openMu.Unlock()
	// Trusted may take the federation's lock: not under s.mu.
	var gone []ID
	var ms []*mirror
	for id := range s.Mirrors() {
		if !s.cfg.Trusted(id.Key) {
			gone = append(gone, id)
		}
	}
	s.mu.Lock()
	for _, id := range gone {
		ms = append(ms, s.mirrors[id])
		delete(s.mirrors, id)
		delete(s.capped, id.Key)
		s.deleting[id] = true
	}
	closed := s.closed
	if len(gone) > 0 && !closed {
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if len(gone) == 0 {
		return 0
	}
	for i, id := range gone {
		m := ms[i]
		m.mu.Lock() // after the update in flight, if any
		m.gone.Store(true)
		m.mu.Unlock()
		for _, fn := range s.pruned {
			fn(id)
		}
	}
	if !closed {
		go func() {
			defer s.wg.Done()
			for _, id := range gone {
				s.deleteMirror(id)
				s.mu.Lock()
				delete(s.deleting, id)
				s.mu.Unlock()
			}
		}()
	}
	return len(gone)
}

// Close waits for the deletions Prune started. Call it after the
// federation closes and before the store does.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
}

// deleteMirror deletes the records of the mirror of id's log and counts
// it.
func (s *Service) deleteMirror(id ID) {
	log := s.log.With("zone", id.Zone, "relay", hex.EncodeToString(id.Key[:]))
	if err := ledger.DeleteMirror(s.cfg.Store, ledger.ZoneOrigin(id.Zone, id.Key)); err != nil {
		log.Error("cannot delete the ledger mirror of a relay no longer trusted", "err", err)
		return
	}
	if err := s.cfg.Store.Delete(storeMirrors + hex.EncodeToString(id.Key[:]) + "/" + id.Zone); err != nil {
		log.Error("cannot delete the record of a pruned ledger mirror", "err", err)
		return
	}
	s.prunedN.Add(1)
	log.Warn("deleted the ledger mirror of a relay no longer trusted")
}

// keyBytesLocked is the entry bytes mirrored of the relay with key.
func (s *Service) keyBytesLocked(key [32]byte) int64 {
	var n int64
	for id, m := range s.mirrors {
		if id.Key == key {
			n += m.Bytes()
		}
	}
	return n
}

// overCap reports whether the relay with key has reached the byte cap:
// already, or with add more bytes (then it is logged and counted, once).
// isCapped reports whether the mirror of key has reached the cap.
func (s *Service) isCapped(key [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.capped[key]
}

func (s *Service) overCap(key [32]byte, add int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.capped[key] {
		return true
	}
	held := s.keyBytesLocked(key)
	if held+add <= s.cfg.MaxMirrorBytes {
		return false
	}
	s.capped[key] = true
	s.cappedN.Add(1)
	s.log.Error("not mirroring the relay's ledger any further: it outgrew the bytes mirrored of one relay", "relay", hex.EncodeToString(key[:]), "held", held, "adding", add, "limit", s.cfg.MaxMirrorBytes)
	return true
}

// openMirror opens (once) the mirror of id's log and records it for the
// next start.
func (s *Service) openMirror(id ID) (*mirror, error) {
	s.mu.Lock()
	m := s.mirrors[id]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	s.openMu.Lock()
	defer s.openMu.Unlock()
	s.mu.Lock()
	m = s.mirrors[id]
	deleting := s.deleting[id]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	if deleting {
		return nil, errDeleting
	}
	lm, err := ledger.OpenMirror(s.cfg.Store, ledger.ZoneOrigin(id.Zone, id.Key), ed25519.PublicKey(id.Key[:]))
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Put(storeMirrors+hex.EncodeToString(id.Key[:])+"/"+id.Zone, nil); err != nil {
		return nil, err
	}
	m = &mirror{Mirror: lm}
	s.mu.Lock()
	s.mirrors[id] = m
	s.mu.Unlock()
	return m, nil
}

// Mirrors returns every mirror this relay keeps.
func (s *Service) Mirrors() map[ID]*ledger.Mirror {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[ID]*ledger.Mirror, len(s.mirrors))
	for id, m := range s.mirrors {
		out[id] = m.Mirror
	}
	return out
}

// Mirror returns the mirror of zone's log: the one of the relay linked
// now if several relays ever served that zone, else the largest; nil if
// none.
func (s *Service) Mirror(zone string) *ledger.Mirror {
	var best *ledger.Mirror
	for id, m := range s.Mirrors() {
		if id.Zone != zone || !s.cfg.Trusted(id.Key) {
			continue
		}
		if s.fed != nil && s.fed.Linked(id.Key) {
			return m
		}
		if best == nil || m.Size() > best.Size() {
			best = m
		}
	}
	return best
}

// Sequence appends one public event to the zone's ledger and returns its
// index and the signed checkpoint that includes it; linked relays that
// mirror it hear of the new checkpoint.
func (s *Service) Sequence(entry []byte) (index int64, cp []byte, err error) {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	if index, err = s.own.Append(entry); err != nil {
		return 0, nil, err
	}
	cp, _ = s.own.Checkpoint()
	if s.fed == nil {
		return index, cp, nil
	}
	if b, err := wire.Marshal(&wire.LedgerCheckpoint{Note: cp}); err == nil {
		for _, l := range s.fed.Links(wire.FeatureLedger) {
			// Dropped when the link is busy: the next one, or the
			// summary tick, announces a checkpoint at least as new.
			l.TrySend(b)
		}
	}
	return index, cp, nil
}

// checkpointFrame is the LedgerCheckpoint announcing our log's latest
// checkpoint.
func (s *Service) checkpointFrame() []byte {
	note, _ := s.own.Checkpoint()
	b, err := wire.Marshal(&wire.LedgerCheckpoint{Note: note})
	if err != nil {
		s.log.Error("ledger checkpoint frame", "err", err)
		return nil
	}
	return b
}

// Stats is the ledger part of /healthz.
type Stats struct {
	Size      int64            `json:"size"`      // entries in this zone's ledger
	Mirrors   map[string]int64 `json:"mirrors"`   // entries mirrored, by zone
	Forks     int64            `json:"forks"`     // forked checkpoints refused
	Abandoned int64            `json:"abandoned"` // catch-up rounds abandoned: too far ahead, too many bytes, past the deadline
	Capped    int64            `json:"capped"`    // relay keys no longer mirrored: their ledgers outgrew the byte cap
	Pruned    int64            `json:"pruned"`    // mirrors deleted: their relays are no longer trusted
}

// Stats counts the ledgers.
func (s *Service) Stats() Stats {
	st := Stats{Size: s.own.Size(), Mirrors: map[string]int64{}, Forks: s.forks.Load(),
		Abandoned: s.abandoned.Load(), Capped: s.cappedN.Load(), Pruned: s.prunedN.Load()}
	for id, m := range s.Mirrors() {
		st.Mirrors[id.Zone] = max(st.Mirrors[id.Zone], m.Size())
	}
	return st
}
