package registrar

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"ddt/relay/federation"
	"ddt/relay/link"
	"ddt/relay/zone"
	"ddt/relay/zoneledger"
	"ddt/shared/clock"
	"ddt/shared/ledger"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Limits and timings.
const (
	ClaimRate   = 5 // claims per second per node, sustained
	ClaimBurst  = 20
	LookupRate  = 20 // lookups per second per node
	LookupBurst = 50
	LinkRate    = 500 // claims and lookups per second one relay may send us
	LinkBurst   = 1000
	MaxWork     = 64 // claims being decided at once (each waits its turn on the disk)
	MaxPending  = 4096
	// MaxPendingPerNode is how many of one node's claims and lookups may
	// wait at once for another relay's answer, so that no node can fill
	// the MaxPending table for the others.
	MaxPendingPerNode = 16
	// MaxPendingPerLink is how many lookups one relay may have this one
	// pass on, waiting at once (a home asking a name's holder).
	MaxPendingPerLink = 256
	DefaultWait       = 10 * time.Second // how long a forwarded claim or lookup waits for its answer
	// MaxDomainsPerKey is how many domains one key may hold at this
	// relay: claims cost nothing until credits exist, and each is an
	// entry every trusted relay mirrors for good.
	MaxDomainsPerKey = 64

	storeNamesPrefix       = "relay/names/"         // + hex of the name's hash: this relay's record of a name it sequenced
	storeFirstPrefix       = "relay/names-first/"   // + hex of the name's hash: the relay whose ledger held it first, once two disagree
	storeDomainsPrefix     = "relay/domains/"       // + hex of the domain's hash: likewise for domains
	storeDomainFirstPrefix = "relay/domains-first/" // likewise
	nameRecordTag          = 0xd3
)

// Config wires the username and domain service.
type Config struct {
	Zone       *zone.Zone
	Federation *federation.Federation // nil: a zone alone, every name homed here
	Ledger     *zoneledger.Service
	Store      store.Store
	Logger     *slog.Logger
	Clock      clock.Clock   // the forwarded requests' waits and lease checks; the zone's if nil
	Wait       time.Duration // how long a request forwarded to another relay waits (DefaultWait)
}

// holding is the first entry of a name in one relay's ledger.
type holding struct {
	relay [32]byte // the key of the relay whose ledger it is
	index uint64
	owner [32]byte // names.Owner of the claimant
}

// hkey is a name's key in the holdings: its kind and its hash.
type hkey struct {
	kind byte
	hash [32]byte
}

// kindKey is a sign key's holdings of one kind.
type kindKey struct {
	kind byte
	key  [32]byte
}

// Registrar is the username and domain service.
type Registrar struct {
	cfg    Config
	log    *slog.Logger
	zone   *zone.Zone
	fed    *federation.Federation
	ledger *zoneledger.Service
	clock  clock.Clock
	self   [32]byte // this relay's key

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // claims being decided

	decideMu sync.Mutex // serialises deciding: check → Sequence → store

	idxMu   sync.Mutex
	held    map[hkey][]holding // name → its first entry in each ledger that holds it, in the order this relay learnt them
	first   map[hkey][32]byte  // name → the relay whose ledger held it first, for names two ledgers hold for different keys
	scanned map[zoneledger.ID]int64
	scanMu  sync.Mutex // serialises scans, so each ledger's entries are indexed once

	// byKey maps a sign key to the hash of the name it holds here (under
	// decideMu), to refuse it a second name: the one map keyed by key,
	// built from the claims this relay stores anyway, never answered.
	byKey map[[32]byte][32]byte
	// perKey counts, for a kind with maxPerKey, the names each key holds
	// here (under decideMu; built from the stored claims, never answered).
	perKey map[kindKey]int

	trustMu   sync.Mutex
	distrusts map[[32]byte]bool // tests: relays to treat as untrusted whatever the federation says

	work chan struct{} // a slot per claim being decided

	pendMu  sync.Mutex
	pending map[uint32]*pending
	perNode map[*zone.Member]int     // pending requests by the node that asked
	perLink map[*federation.Link]int // pending requests by the relay that asked
	nextID  atomic.Uint32

	user, domain *kind // the kinds of names decided

	limMu   sync.Mutex
	members map[*zone.Member]*limits
	links   map[*federation.Link]*rate.Limiter

	claims            atomic.Int64 // claims answered, from nodes here and from relays
	lookups           atomic.Int64 // lookups answered, likewise
	untrusted         atomic.Int64 // claims, lookups and answers from relays this one does not trust, refused
	conflicts         atomic.Int64 // names a later ledger holds for another key (evidence; never a displacement)
	pendingRefused    atomic.Int64 // forwarded requests refused: the node had MaxPendingPerNode waiting, or the table was full
	secondNames       atomic.Int64 // claims refused because the key holds another name here
	unsettled         atomic.Int64 // claims not decided yet: a linked relay's ledger was still being mirrored
	unmirrorableAsked atomic.Int64 // lookups sent, before deciding, to relays whose ledgers cannot be mirrored
}

// limits are one node's rate limits.
type limits struct{ claims, lookups *rate.Limiter }

// pending is a claim or lookup forwarded to another relay, waiting for
// its NameResult or DomainResult.
type pending struct {
	k      *kind
	link   *federation.Link
	member *zone.Member     // the node that asked, or nil
	asker  *federation.Link // the relay that asked, or nil
	timer  clock.Timer
	finish func(*result)
}

// New indexes this relay's ledger and its mirrors, counts its stored
// names, and registers the service with the zone and the federation
// (before either serves).
func New(cfg Config) (*Registrar, error) {
	if cfg.Zone == nil || cfg.Ledger == nil || cfg.Store == nil {
		return nil, errors.New("registrar: a zone, a ledger and a store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = cfg.Zone.Clock()
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	r := &Registrar{cfg: cfg, log: cfg.Logger, zone: cfg.Zone, fed: cfg.Federation, ledger: cfg.Ledger, clock: cfg.Clock, self: cfg.Zone.Key(),
		held: make(map[hkey][]holding), first: make(map[hkey][32]byte), scanned: make(map[zoneledger.ID]int64), work: make(chan struct{}, MaxWork),
		byKey: make(map[[32]byte][32]byte), perKey: make(map[kindKey]int), pending: make(map[uint32]*pending), perNode: make(map[*zone.Member]int), perLink: make(map[*federation.Link]int),
		members: make(map[*zone.Member]*limits), links: make(map[*federation.Link]*rate.Limiter)}
	r.user, r.domain = newKinds()
	if err := r.open(); err != nil {
		return nil, err
	}
	z := cfg.Zone
	uk, dk := r.user, r.domain
	z.Handle(wire.TypeNameClaim, wire.FeatureNames, func(m *zone.Member, msg wire.Message) error {
		return r.onClaim(m, uk, userClaim{&msg.(*wire.NameClaim).Claim}, msg.(*wire.NameClaim).ID)
	})
	z.Handle(wire.TypeNameLookup, wire.FeatureNames, func(m *zone.Member, msg wire.Message) error {
		return r.onLookup(m, uk, msg.(*wire.NameLookup).ID, msg.(*wire.NameLookup).Hash)
	})
	z.Handle(wire.TypeClaimDomain, wire.FeatureSites, func(m *zone.Member, msg wire.Message) error {
		return r.onClaim(m, dk, domainClaim{&msg.(*wire.ClaimDomain).Claim}, msg.(*wire.ClaimDomain).ID)
	})
	z.Handle(wire.TypeDomainLookup, wire.FeatureSites, func(m *zone.Member, msg wire.Message) error {
		return r.onLookup(m, dk, msg.(*wire.DomainLookup).ID, msg.(*wire.DomainLookup).Hash)
	})
	z.Salvage(wire.TypeNameClaim, r.salvageNameClaim)
	z.OnGone(r.memberGone)
	cfg.Ledger.OnMirrored(func(id zoneledger.ID, m *ledger.Mirror) {
		if err := r.indexLedger(id, m.Size(), m.Entries); err != nil {
			r.log.Error("cannot index the names of a relay's ledger", "zone", id.Zone, "err", err)
		}
	})
	if f := r.fed; f != nil {
		f.Handle(wire.TypeRelayNameClaim, wire.FeatureNames, func(l *federation.Link, msg wire.Message) error {
			m := msg.(*wire.RelayNameClaim)
			return r.onRelayClaim(l, uk, m.ID, &m.Lease, userClaim{&m.Claim})
		})
		f.Handle(wire.TypeNameLookup, wire.FeatureNames, func(l *federation.Link, msg wire.Message) error {
			return r.onRelayLookup(l, uk, msg.(*wire.NameLookup).ID, msg.(*wire.NameLookup).Hash)
		})
		f.Handle(wire.TypeNameResult, wire.FeatureNames, func(l *federation.Link, msg wire.Message) error {
			r.onResult(l, uk, msg.(*wire.NameResult).ID, resultOf(msg))
			return nil
		})
		f.Handle(wire.TypeRelayClaimDomain, wire.FeatureSites, func(l *federation.Link, msg wire.Message) error {
			m := msg.(*wire.RelayClaimDomain)
			return r.onRelayClaim(l, dk, m.ID, &m.Lease, domainClaim{&m.Claim})
		})
		f.Handle(wire.TypeDomainLookup, wire.FeatureSites, func(l *federation.Link, msg wire.Message) error {
			return r.onRelayLookup(l, dk, msg.(*wire.DomainLookup).ID, msg.(*wire.DomainLookup).Hash)
		})
		f.Handle(wire.TypeDomainResult, wire.FeatureSites, func(l *federation.Link, msg wire.Message) error {
			r.onResult(l, dk, msg.(*wire.DomainResult).ID, resultOf(msg))
			return nil
		})
		f.OnLinkDown(r.linkDown)
	}
	return r, nil
}

// Close waits for the claims being decided; the zone and the federation
// close first, which answers every request waiting on them.
func (r *Registrar) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	for rid, p := range r.pending {
		r.dropLocked(rid, p)
	}
}

// Stats is the username and domain part of /healthz.
type Stats struct {
	Sequenced int64 `json:"sequenced"` // names this relay's ledger holds, by its own decisions
	Domains   int64 `json:"domains"`   // domains this relay's ledger holds, likewise
	Claims    int64 `json:"claims"`    // claims answered (from this zone's nodes and from relays)
	Lookups   int64 `json:"lookups"`   // lookups answered
	// Untrusted: claims and lookups forwarded by relays this one does not
	// trust, and answers from them, refused.
	Untrusted int64 `json:"untrusted"`
	// Conflicts: names that a ledger learnt later holds for another key
	// than the one that held them first (evidence of a relay that
	// sequenced a held name; it displaces nothing).
	Conflicts int64 `json:"conflicts"`
	// PendingRefused: claims and lookups not forwarded because their node
	// had MaxPendingPerNode waiting already, or MaxPending wait in all.
	PendingRefused int64 `json:"pendingRefused"`
	// SecondNames: claims refused because their key holds another name.
	SecondNames int64 `json:"secondNames"`
	// Unsettled: claims this relay, their home, answered "try again"
	// because it was still mirroring a linked relay's ledger, which may
	// hold the name (at most zoneledger.SettleTimeout after a link).
	Unsettled int64 `json:"unsettled"`
	// AskedUnmirrorable: lookups this relay, as a name's home, sent
	// before deciding to trusted relays whose ledgers it cannot mirror in
	// full (see zoneledger.Service.Unmirrorable).
	AskedUnmirrorable int64 `json:"askedUnmirrorable"`
}

// Stats counts the service.
func (r *Registrar) Stats() Stats {
	return Stats{Sequenced: r.user.sequenced.Load(), Domains: r.domain.sequenced.Load(), Claims: r.claims.Load(), Lookups: r.lookups.Load(), Untrusted: r.untrusted.Load(),
		Conflicts: r.conflicts.Load(), PendingRefused: r.pendingRefused.Load(), SecondNames: r.secondNames.Load(),
		Unsettled: r.unsettled.Load(), AskedUnmirrorable: r.unmirrorableAsked.Load()}
}

// Pending is how many forwarded requests wait for their answer.
func (r *Registrar) Pending() int {
	r.pendMu.Lock()
	defer r.pendMu.Unlock()
	return len(r.pending)
}

// nameRecord is what this relay stores of a name or domain it sequenced:
//
//	nameRecordTag | first owner (32) | index (8, big-endian) | claim frame
//
// The claim and index are the latest the relay sequenced; the first owner
// is the owner commitment of the claim that first took the name here.
type nameRecord struct {
	first [32]byte
	index uint64
	claim claim
}

func (rec *nameRecord) marshal() ([]byte, error) {
	b, err := wire.Marshal(rec.claim.message())
	if err != nil {
		return nil, err
	}
	out := make([]byte, 41, 41+len(b))
	out[0] = nameRecordTag
	copy(out[1:33], rec.first[:])
	binary.BigEndian.PutUint64(out[33:41], rec.index)
	return append(out, b...), nil
}

func parseNameRecord(b []byte) (*nameRecord, error) {
	if len(b) < 41 || b[0] != nameRecordTag {
		return nil, fmt.Errorf("%w: name record of %d bytes", wire.ErrMalformed, len(b))
	}
	m, err := wire.Unmarshal(b[41:])
	if err != nil {
		return nil, err
	}
	c, ok := claimFrom(m)
	if !ok {
		return nil, fmt.Errorf("%w: name record holds type %d", wire.ErrMalformed, m.Type())
	}
	rec := &nameRecord{index: binary.BigEndian.Uint64(b[33:41]), claim: c}
	copy(rec.first[:], b[1:33])
	return rec, nil
}

func (k *kind) recordKey(hash [32]byte) string { return k.store + hex.EncodeToString(hash[:]) }

// open indexes this relay's own ledger and its mirrors and counts its
// stored names and domains.
func (r *Registrar) open() error {
	for _, k := range []*kind{r.user, r.domain} {
		if err := r.openKind(k); err != nil {
			return err
		}
	}
	// This relay's own ledger is indexed first: a name it holds is never
	// displaced by a mirror it learns of later, restart or not.
	own := r.ledger.Log()
	if err := r.indexLedger(zoneledger.ID{Zone: r.zone.Name(), Key: r.self}, own.Size(), own.Entries); err != nil {
		return fmt.Errorf("names: own ledger: %w", err)
	}
	for id, m := range r.ledger.Mirrors() {
		if err := r.indexLedger(id, m.Size(), m.Entries); err != nil {
			r.log.Error("cannot index the names of a mirrored ledger", "zone", id.Zone, "err", err)
		}
	}
	// Records the ledger does not back, or that the ledger has moved past
	// (a crash between Sequence and the store write), are logged: the
	// ledger's first entry still decides who holds the name.
	for _, k := range []*kind{r.user, r.domain} {
		keys, err := r.cfg.Store.Keys(k.store)
		if err != nil {
			return fmt.Errorf("names: %w", err)
		}
		for _, key := range keys {
			b, err := r.cfg.Store.Get(key)
			if err != nil {
				return fmt.Errorf("names: %w", err)
			}
			rec, err := parseNameRecord(b)
			if err != nil {
				r.log.Error("a stored name record does not parse", "key", key, "err", err)
				continue
			}
			entry, _ := rec.claim.entry()
			if got, err := own.Entry(int64(rec.index)); err != nil || string(got) != string(entry) {
				r.log.Error("a stored name record disagrees with the ledger", "key", key, "index", rec.index, "err", err)
			}
			if k.onePerKey {
				r.byKey[rec.claim.signKey()] = rec.claim.hash()
			}
			if k.maxPerKey > 0 {
				r.perKey[kindKey{k.id, rec.claim.signKey()}]++
			}
		}
	}
	return nil
}

// openKind counts k's stored records and reads its pinned first holders.
func (r *Registrar) openKind(k *kind) error {
	keys, err := r.cfg.Store.Keys(k.store)
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	k.sequenced.Store(int64(len(keys)))
	firsts, err := r.cfg.Store.Keys(k.firstStore)
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	for _, key := range firsts {
		h, err := hex.DecodeString(strings.TrimPrefix(key, k.firstStore))
		b, gerr := r.cfg.Store.Get(key)
		if err != nil || gerr != nil || len(h) != 32 || len(b) != 32 {
			r.log.Error("a stored first holder of a name does not parse", "key", key, "err", errors.Join(err, gerr))
			continue
		}
		r.first[hkey{k.id, [32]byte(h)}] = [32]byte(b)
	}
	return nil
}

// indexLedger records the first entry of every name in ledger id's
// entries from where the last scan stopped up to size.
func (r *Registrar) indexLedger(id zoneledger.ID, size int64, entries func(from, to int64) ([][]byte, error)) error {
	r.scanMu.Lock()
	defer r.scanMu.Unlock()
	r.idxMu.Lock()
	from := r.scanned[id]
	r.idxMu.Unlock()
	for from < size {
		es, err := entries(from, size)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return fmt.Errorf("no entries from %d", from)
		}
		var conflicts []conflict
		r.idxMu.Lock()
		for i, b := range es {
			k := r.kindOfEntry(b)
			if k == nil {
				continue // another kind of event
			}
			e, err := k.parseEntry(b)
			if err != nil {
				r.log.Warn("a malformed "+k.noun+" entry", "zone", id.Zone, "index", from+int64(i), "err", err)
				continue
			}
			hs := holding{relay: id.Key, index: uint64(from + int64(i)), owner: e.Owner}
			if r.addHoldingLocked(hkey{k.id, e.Hash}, hs) {
				conflicts = append(conflicts, conflict{k, e.Hash, hs})
			}
		}
		from += int64(len(es))
		r.scanned[id] = from
		r.idxMu.Unlock()
		for _, c := range conflicts {
			r.pinFirst(c.k, c.hash, c.later)
		}
	}
	return nil
}

// kindOfEntry is the kind of name a ledger entry sequences, or nil for
// another kind of event.
func (r *Registrar) kindOfEntry(b []byte) *kind {
	if len(b) == 0 {
		return nil
	}
	for _, k := range []*kind{r.user, r.domain} {
		if b[0] == k.id {
			return k
		}
	}
	return nil
}

// addHoldingLocked records hs unless its ledger already holds the name
// (an earlier entry comes first): this relay's own ledger before every
// mirror (as at start, when it is indexed first), mirrors in the order
// this relay learns of them. It reports whether another ledger holds the
// name for another key. r.idxMu is held.
func (r *Registrar) addHoldingLocked(hash hkey, hs holding) (conflict bool) {
	for _, o := range r.held[hash] {
		if o.relay == hs.relay {
			return false
		}
		conflict = conflict || o.owner != hs.owner
	}
	if hs.relay == r.self {
		r.held[hash] = append([]holding{hs}, r.held[hash]...)
	} else {
		r.held[hash] = append(r.held[hash], hs)
	}
	return conflict
}

// conflict is a ledger's entry for a name that another ledger holds for
// another key.
type conflict struct {
	k     *kind
	hash  [32]byte
	later holding
}

// pinFirst records, once and on disk, which ledger held the name with
// hash first, now that a ledger learnt later holds it for another key
// (later): the first holder keeps the name, restart or not, whatever
// the relay of the later ledger's key. The later entry is evidence of a
// relay that sequenced a held name: logged and counted.
func (r *Registrar) pinFirst(k *kind, hash [32]byte, later holding) {
	win, _, _ := r.holder(k, hash)
	r.conflicts.Add(1)
	r.log.Warn("a relay's ledger holds a "+k.noun+" another ledger held first, for another key; the first holder keeps it",
		"hash", hex.EncodeToString(hash[:8]), "later", hex.EncodeToString(later.relay[:6]), "at", later.index,
		"first", hex.EncodeToString(win.relay[:6]), "firstAt", win.index)
	r.idxMu.Lock()
	_, pinned := r.first[hkey{k.id, hash}]
	if !pinned {
		r.first[hkey{k.id, hash}] = win.relay
	}
	r.idxMu.Unlock()
	if pinned {
		return
	}
	if err := r.cfg.Store.Put(k.firstStore+hex.EncodeToString(hash[:]), win.relay[:]); err != nil {
		r.log.Error("names: cannot record a name's first holder", "err", err)
	}
}

// holder returns the entry that holds the name with hash and the name's
// holdings, both among the ledgers of this relay and of relays it does
// not know to be untrusted (a relay whose link is down still holds its
// names). The holder is the first this relay learnt of (its own ledger is
// indexed first), or the one pinned when two ledgers disagreed: a ledger
// learnt later never displaces a name already held.
func (r *Registrar) holder(k *kind, hash [32]byte) (win holding, all []holding, ok bool) {
	r.idxMu.Lock()
	hs := append([]holding(nil), r.held[hkey{k.id, hash}]...)
	first, pinned := r.first[hkey{k.id, hash}]
	r.idxMu.Unlock()
	for _, h := range hs {
		if h.relay == r.self || !r.knownUntrusted(h.relay) {
			all = append(all, h)
		}
	}
	if len(all) == 0 {
		return holding{}, nil, false
	}
	win = all[0]
	for _, h := range all {
		if pinned && h.relay == first {
			win = h
		}
	}
	return win, all, true
}

// Distrust makes the registrar treat the relay with key as untrusted,
// whatever the federation says: for tests of a relay that is trusted
// when it links and must count for nothing from then on (in a running
// relay, trust comes from the operator's configuration at start).
func (r *Registrar) Distrust(key [32]byte) {
	r.trustMu.Lock()
	defer r.trustMu.Unlock()
	if r.distrusts == nil {
		r.distrusts = make(map[[32]byte]bool)
	}
	r.distrusts[key] = true
}

func (r *Registrar) distrusted(key [32]byte) bool {
	r.trustMu.Lock()
	defer r.trustMu.Unlock()
	return r.distrusts[key]
}

// trusted reports whether the relay with key is this one or a relay its
// operator trusts (federation.Relay.Trusted): only those are homes, have
// their answers passed on, and have the leases they sign trusted for
// names.
func (r *Registrar) trusted(key [32]byte) bool {
	if key == r.self {
		return true
	}
	if r.fed == nil || r.distrusted(key) {
		return false
	}
	k, ok := r.fed.Lookup(key)
	return ok && k.Trusted
}

// knownUntrusted reports whether the relay with key is one this relay's
// operator does not trust (federation.Trusts: not named, in no trust
// file, not pinned). Trust is known from the start, linked or not, so a
// trusted relay's mirrored ledger holds its names across a restart, and
// the names of a mirror pruned for losing trust stop counting at once.
func (r *Registrar) knownUntrusted(key [32]byte) bool {
	if key == r.self {
		return false
	}
	if r.distrusted(key) {
		return true
	}
	if r.fed == nil {
		return false
	}
	return !r.fed.Trusts(key)
}

// loadName returns this relay's record of k's name with hash, or nil.
func (r *Registrar) loadName(k *kind, hash [32]byte) (*nameRecord, error) {
	b, err := r.cfg.Store.Get(k.recordKey(hash))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseNameRecord(b)
}

// record proves claim c at index against the current checkpoint: the
// note and the proof come from one view of the ledger.
func (r *Registrar) record(c claim, index uint64) (record, error) {
	own := r.ledger.Log()
	note, cp := own.Checkpoint()
	p, err := own.InclusionProof(int64(index), cp.Size)
	if err != nil {
		return nil, err
	}
	proof := make([][32]byte, len(p))
	for i, x := range p {
		proof[i] = x
	}
	return c.prove(r.self, r.zone.Name(), index, note, proof), nil
}

// refuse is a refusal with a sentence.
func refuse(code wire.Code, format string, args ...any) *result {
	return &result{code: code, msg: link.Truncate(fmt.Sprintf(format, args...), wire.MaxNameDetail)}
}

func (k *kind) errStore() *result {
	return refuse(wire.CodeInternal, "the relay could not record the %s; try again", k.noun)
}

// decide settles claim c of kind k (verified, for the lease it came
// with) at this relay, its home: the record if c takes or updates the
// name, or why not.
func (r *Registrar) decide(k *kind, c claim) *result {
	r.decideMu.Lock()
	defer r.decideMu.Unlock()
	hash, owner := c.hash(), c.owner()
	rec, err := r.loadName(k, hash)
	if err != nil {
		r.log.Error("names: store", "err", err)
		return k.errStore()
	}
	if win, _, held := r.holder(k, hash); held && win.owner != owner {
		return refuse(wire.CodeNameTaken, "%q is taken", c.label())
	}
	if other, ok := r.byKey[c.signKey()]; k.onePerKey && ok && other != hash {
		r.secondNames.Add(1)
		held := "another name"
		if o, err := r.loadName(k, other); err == nil && o != nil {
			held = fmt.Sprintf("%q", o.claim.label())
		}
		return refuse(wire.CodeAlreadyRegistered, "this node is already registered as %s", held)
	}
	if n := r.perKey[kindKey{k.id, c.signKey()}]; k.maxPerKey > 0 && rec == nil && n >= k.maxPerKey {
		return refuse(wire.CodeRateLimited, "this key holds %d %ss here already, the most one key may", n, k.noun)
	}
	if rec != nil && rec.claim.signKey() == c.signKey() {
		if rec.claim.same(c) {
			return r.answer(k, rec.claim, rec.index)
		}
		if c.version() <= rec.claim.version() {
			return refuse(k.stale, "version %d is not newer than %d", c.version(), rec.claim.version())
		}
	}
	entry, err := c.entry()
	if err != nil {
		return refuse(wire.CodeBadName, "%v", err)
	}
	index, _, err := r.ledger.Sequence(entry)
	if err != nil {
		r.log.Error("names: sequence", "err", err)
		return refuse(wire.CodeInternal, "the relay could not sequence the claim; try again")
	}
	ours := holding{relay: r.self, index: uint64(index), owner: owner}
	r.idxMu.Lock()
	conflict := r.addHoldingLocked(hkey{k.id, hash}, ours)
	r.idxMu.Unlock()
	if conflict {
		// A mirror learnt of while this claim was decided holds the name
		// for another key.
		r.pinFirst(k, hash, ours)
	}
	if k.onePerKey {
		r.byKey[c.signKey()] = hash
	}
	if k.maxPerKey > 0 && rec == nil {
		r.perKey[kindKey{k.id, c.signKey()}]++
	}
	stored := &nameRecord{first: owner, index: uint64(index), claim: c}
	if rec != nil {
		stored.first = rec.first
	}
	if b, err := stored.marshal(); err != nil {
		r.log.Error("names: record", "err", err)
	} else if err := r.cfg.Store.Put(k.recordKey(hash), b); err != nil {
		// The ledger holds the entry, so the name stays this owner's;
		// only the claim's bytes are lost until the owner claims again.
		r.log.Error("names: store", "err", err)
	} else if rec == nil {
		k.sequenced.Add(1)
	}
	return r.answer(k, c, uint64(index))
}

// answer is the result carrying claim c's record at index.
func (r *Registrar) answer(k *kind, c claim, index uint64) *result {
	rec, err := r.record(c, index)
	if err != nil {
		r.log.Error("names: proof", "index", index, "err", err)
		return k.errStore()
	}
	return &result{rec: rec}
}

// ownRecord answers a lookup from this relay's own records of kind k, or
// returns nil.
func (r *Registrar) ownRecord(k *kind, hash [32]byte) *result {
	rec, err := r.loadName(k, hash)
	if err != nil {
		r.log.Error("names: store", "err", err)
		return k.errStore()
	}
	if rec == nil {
		return nil
	}
	return r.answer(k, rec.claim, rec.index)
}

// claimProblem says what is wrong with a claim, without the package
// prefixes of names' errors.
func claimProblem(err error) string {
	s := err.Error()
	if errors.Is(err, names.ErrForged) {
		return "the claim does not verify: " + strings.TrimPrefix(s, names.ErrForged.Error()+": ")
	}
	return strings.TrimPrefix(s, "names: ")
}

// homeOf returns the key of the name's home relay, the link to it if it
// is another relay and linked, its zone, and, when this relay is the
// home but may not decide yet, the answer saying why: it is still joining
// the federation (a -peer it has never reached, whose key it does not
// know, might be the home), or still mirroring a linked relay's ledger,
// which may hold the name already (zoneledger.Service.Settled).
// Candidates are this relay and every trusted relay known to run the
// username service: a relay that merely proved a key is never a home,
// however its key was chosen.
func (r *Registrar) homeOf(k *kind, hash [32]byte) (home [32]byte, l *federation.Link, zone string, notYet *result) {
	keys := [][32]byte{r.self}
	var known []federation.Relay
	joining := false
	if r.fed != nil {
		known = r.fed.Known()
		joining = r.fed.Joining()
	}
	for _, o := range known {
		if o.Features.Has(k.feature) && o.Trusted && !r.distrusted(o.Info.Key) {
			keys = append(keys, o.Info.Key)
		}
	}
	home, _ = names.Home(hash, keys)
	zone = r.zone.Name()
	for _, o := range known {
		if o.Info.Key == home {
			l, zone = o.Link, o.Info.Zone
		}
	}
	if home == r.self {
		if joining {
			notYet = errJoining
		} else if ok, waiting := r.cfg.Ledger.Settled(k.feature); !ok {
			r.unsettled.Add(1)
			notYet = refuse(wire.CodeUnavailable, "this relay is still mirroring the ledger of zone %s, which may hold this %s; try again", waiting, k.noun)
		}
	}
	return home, l, zone, notYet
}

// linkTo returns the link to the relay with key, if it is up, trusted and
// runs k's service, and its zone.
func (r *Registrar) linkTo(k *kind, key [32]byte) (*federation.Link, string) {
	if r.fed == nil {
		return nil, "?"
	}
	o, ok := r.fed.Lookup(key)
	if !ok {
		return nil, "?"
	}
	if o.Link == nil || !o.Link.Has(k.feature) || !r.trusted(key) {
		return nil, o.Info.Zone
	}
	return o.Link, o.Info.Zone
}

// zoneOf is names.ZoneOf over the relays this relay trusts: a record
// another relay sequenced is passed on only if that relay is trusted.
func (r *Registrar) zoneOf(key [32]byte) (string, bool) {
	if key == r.self {
		return r.zone.Name(), true
	}
	if r.fed == nil || !r.trusted(key) {
		return "", false
	}
	if k, ok := r.fed.Lookup(key); ok && k.Info.Zone != "" {
		return k.Info.Zone, true
	}
	return "", false
}

// nameWork runs f on a goroutine of its own, unless too many claims are
// being decided or the service is closing.
func (r *Registrar) nameWork(f func()) bool {
	select {
	case r.work <- struct{}{}:
	default:
		return false
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.work
		return false
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() { <-r.work }()
		f()
	}()
	return true
}

func (k *kind) unreachable(zone string) *result {
	return refuse(wire.CodeUnavailable, "the relay that decides this %s (zone %s) is unreachable; try again", k.noun, zone)
}

func (k *kind) errBusy() *result {
	return refuse(wire.CodeRateLimited, "the relay is busy with other %ss; try again", k.noun)
}

func (k *kind) errNotFound() *result { return refuse(wire.CodeNotFound, "no such %s", k.noun) }

func (k *kind) errTooManyWaiting() *result {
	return refuse(wire.CodeRateLimited, "%d of your %s requests already wait for another relay; try again", MaxPendingPerNode, k.noun)
}

var errJoining = refuse(wire.CodeUnavailable, "this relay is still joining the federation; try again")
