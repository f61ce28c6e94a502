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

	"ddt/relay/federation"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Limits and store layout.
const (
	// MaxCatchUp is the most entries one catch-up round holds in memory
	// before Mirror.Update; a relay further ahead than this is not
	// mirrored (the log keeps a checkpoint only for its latest size, so
	// a round cannot stop halfway).
	MaxCatchUp = 1 << 18
	// MaxCatchUpBytes bounds the entry bytes of one round likewise.
	MaxCatchUpBytes = 256 << 20

	storeMirrors = "relay/mirrors/" // + key hex + "/" + zone: a mirror to reopen at start
	// StoreForks is where a fork's evidence is kept: + the log's origin,
	// both checkpoints as JSON {"Held": …, "Offered": …}.
	StoreForks = "relay/forks/"
)

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
}

// Service is the zone ledger service.
type Service struct {
	cfg Config
	log *slog.Logger
	fed *federation.Federation
	own *ledger.Log

	seqMu sync.Mutex // serializes Sequence, so each returns its own checkpoint

	mu       sync.Mutex
	mirrors  map[ID]*ledger.Mirror
	openMu   sync.Mutex // serializes opening mirrors
	forks    atomic.Int64
	syncMu   sync.Mutex
	syncs    map[*federation.Link]*syncState
	mirrored []func(ID, *ledger.Mirror)
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
	s := &Service{cfg: cfg, log: cfg.Logger, fed: cfg.Federation, mirrors: make(map[ID]*ledger.Mirror), syncs: make(map[*federation.Link]*syncState)}
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
		if _, err := s.openMirror(ID{Zone: zone, Key: [32]byte(b)}); err != nil {
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
			if b := s.checkpointFrame(); b != nil && l.Has(wire.FeatureLedger) {
				l.Send(b)
			}
		})
		f.OnLinkDown(func(l *federation.Link) {
			s.syncMu.Lock()
			delete(s.syncs, l)
			s.syncMu.Unlock()
		})
		// Again with the summaries, in case an announcement was dropped.
		f.Periodic(wire.FeatureLedger, s.checkpointFrame)
	}
	return s, nil
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

// openMirror opens (once) the mirror of id's log and records it for the
// next start.
func (s *Service) openMirror(id ID) (*ledger.Mirror, error) {
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
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, err := ledger.OpenMirror(s.cfg.Store, ledger.ZoneOrigin(id.Zone, id.Key), ed25519.PublicKey(id.Key[:]))
	if err != nil {
		return nil, err
	}
	if err := s.cfg.Store.Put(storeMirrors+hex.EncodeToString(id.Key[:])+"/"+id.Zone, nil); err != nil {
		return nil, err
	}
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
		out[id] = m
	}
	return out
}

// Mirror returns the mirror of zone's log: the one of the relay linked
// now if several relays ever served that zone, else the largest; nil if
// none.
func (s *Service) Mirror(zone string) *ledger.Mirror {
	var best *ledger.Mirror
	for id, m := range s.Mirrors() {
		if id.Zone != zone {
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
	Size    int64            `json:"size"`    // entries in this zone's ledger
	Mirrors map[string]int64 `json:"mirrors"` // entries mirrored, by zone
	Forks   int64            `json:"forks"`   // forked checkpoints refused
}

// Stats counts the ledgers.
func (s *Service) Stats() Stats {
	st := Stats{Size: s.own.Size(), Mirrors: map[string]int64{}, Forks: s.forks.Load()}
	for id, m := range s.Mirrors() {
		st.Mirrors[id.Zone] = max(st.Mirrors[id.Zone], m.Size())
	}
	return st
}
