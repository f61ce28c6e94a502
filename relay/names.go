package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// The username service. A node claims a name with a NameClaim; its relay
// finds the name's home (names.Home over its own key and the key of every
// federated relay it knows, linked or not) and either decides the claim
// itself or forwards it to the home as a RelayNameClaim carrying the
// node's lease, and hands the home's NameResult back to the node. The
// home decides under one mutex — check, Sequence, store — so every claim
// of a name, from any zone, is decided in its ledger's order.
//
// Who holds a name is known from two places, both keyed by the name's
// hash only:
//   - names this relay sequenced: the latest claim, its ledger index and
//     the first claimant's owner commitment, in the store under
//     relay/names/<hash hex>; and the first entry of each name in this
//     relay's own ledger, read back at start, so ownership survives even a
//     crash between Sequence and the store write;
//   - names in the mirrored ledgers of other relays: the first entry of
//     each name in each mirror, from names.ParseEntry, scanned at start and
//     after every mirror update, kept in memory.
//
// Across ledgers the holder is the first entry by names.Before; a claim by
// any other key is refused as taken. Lookups go by hash: answered from
// this relay's own names, or forwarded once to the relay whose ledger
// holds the name, or to its home. Nothing here is keyed by address or
// key, and nothing lists names.

// Username limits and timings.
const (
	nameClaimRate    = 5 // claims per second per node, sustained
	nameClaimBurst   = 20
	nameLookupRate   = 20 // lookups per second per node
	nameLookupBurst  = 50
	linkNameRate     = 500 // claims and lookups per second one relay may send us
	linkNameBurst    = 1000
	maxNameWork      = 64 // claims being decided at once (each waits its turn on the disk)
	maxNamePending   = 4096
	defaultNameWait  = 10 * time.Second // how long a forwarded claim or lookup waits for its answer
	storeNamesPrefix = "relay/names/"   // + hex of the name's hash: this relay's record of a name it sequenced
	nameRecordTag    = 0xd3
)

// holding is the first entry of a name in one relay's ledger.
type holding struct {
	relay [32]byte // the key of the relay whose ledger it is
	index uint64
	owner [32]byte // names.Owner of the claimant
}

// nameRecord is what this relay stores of a name it sequenced:
//
//	nameRecordTag | first owner (32) | index (8, big-endian) | claim frame
//
// The claim and index are the latest the relay sequenced; the first owner
// is the owner commitment of the claim that first took the name here.
type nameRecord struct {
	first [32]byte
	index uint64
	claim wire.UserClaim
}

func (r *nameRecord) marshal() ([]byte, error) {
	b, err := wire.Marshal(&r.claim)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 41, 41+len(b))
	out[0] = nameRecordTag
	copy(out[1:33], r.first[:])
	binary.BigEndian.PutUint64(out[33:41], r.index)
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
	c, ok := m.(*wire.UserClaim)
	if !ok {
		return nil, fmt.Errorf("%w: name record holds type %d", wire.ErrMalformed, m.Type())
	}
	r := &nameRecord{index: binary.BigEndian.Uint64(b[33:41]), claim: *c}
	copy(r.first[:], b[1:33])
	return r, nil
}

func nameKey(hash [32]byte) string { return storeNamesPrefix + hex.EncodeToString(hash[:]) }

// nameBook is the hub's username state.
type nameBook struct {
	decideMu sync.Mutex // serialises deciding: check → Sequence → store

	idxMu   sync.Mutex
	held    map[[32]byte][]holding // name hash → its first entry in each ledger that holds it
	scanned map[mirrorID]int64     // entries of each mirror already indexed
	scanMu  sync.Mutex             // serialises scans, so each mirror's entries are indexed once

	work chan struct{} // a slot per claim being decided

	pendMu  sync.Mutex
	pending map[uint32]*pendingName
	nextID  atomic.Uint32

	sequenced atomic.Int64 // names this relay's store holds
	claims    atomic.Int64 // claims answered, from nodes here and from relays
	lookups   atomic.Int64 // lookups answered, likewise
}

// pendingName is a claim or lookup forwarded to another relay, waiting
// for its NameResult.
type pendingName struct {
	link   *link
	client *client // nil when nobody is waiting any more
	timer  *time.Timer
	finish func(*wire.NameResult)
}

// NameStats is the username part of /healthz.
type NameStats struct {
	Sequenced int64 `json:"sequenced"` // names this relay's ledger holds, by its own decisions
	Claims    int64 `json:"claims"`    // claims answered (from this zone's nodes and from relays)
	Lookups   int64 `json:"lookups"`   // lookups answered
}

func (h *Hub) nameStats() NameStats {
	n := &h.names
	return NameStats{Sequenced: n.sequenced.Load(), Claims: n.claims.Load(), Lookups: n.lookups.Load()}
}

// openNames indexes this relay's own ledger and its mirrors and counts
// its stored names. Called by NewHub after openLedger.
func (h *Hub) openNames() error {
	n := &h.names
	n.held = make(map[[32]byte][]holding)
	n.scanned = make(map[mirrorID]int64)
	n.pending = make(map[uint32]*pendingName)
	n.work = make(chan struct{}, maxNameWork)
	keys, err := h.cfg.Store.Keys(storeNamesPrefix)
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	n.sequenced.Store(int64(len(keys)))
	self := mirrorID{zone: h.cfg.Zone, key: h.Key()}
	if err := h.indexLedger(self, h.ledger.Size(), h.ledger.Entries); err != nil {
		return fmt.Errorf("names: own ledger: %w", err)
	}
	h.mu.Lock()
	mirrors := make(map[mirrorID]*ledger.Mirror, len(h.mirrors))
	for id, m := range h.mirrors {
		mirrors[id] = m
	}
	h.mu.Unlock()
	for id, m := range mirrors {
		if err := h.indexLedger(id, m.Size(), m.Entries); err != nil {
			h.log.Error("cannot index the names of a mirrored ledger", "zone", id.zone, "err", err)
		}
	}
	// Records the ledger does not back, or that the ledger has moved past
	// (a crash between Sequence and the store write), are logged: the
	// ledger's first entry still decides who holds the name.
	for _, k := range keys {
		b, err := h.cfg.Store.Get(k)
		if err != nil {
			return fmt.Errorf("names: %w", err)
		}
		rec, err := parseNameRecord(b)
		if err != nil {
			h.log.Error("a stored name record does not parse", "key", k, "err", err)
			continue
		}
		entry, _ := names.EntryFor(&rec.claim)
		if got, err := h.ledger.Entry(int64(rec.index)); err != nil || string(got) != string(entry) {
			h.log.Error("a stored name record disagrees with the ledger", "key", k, "index", rec.index, "err", err)
		}
	}
	return nil
}

// indexLedger records the first entry of every name in ledger id's
// entries from where the last scan stopped up to size.
func (h *Hub) indexLedger(id mirrorID, size int64, entries func(from, to int64) ([][]byte, error)) error {
	n := &h.names
	n.scanMu.Lock()
	defer n.scanMu.Unlock()
	n.idxMu.Lock()
	from := n.scanned[id]
	n.idxMu.Unlock()
	for from < size {
		es, err := entries(from, size)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			return fmt.Errorf("no entries from %d", from)
		}
		n.idxMu.Lock()
		for i, b := range es {
			e, err := names.ParseEntry(b)
			switch {
			case errors.Is(err, names.ErrNotUser):
				continue
			case err != nil:
				h.log.Warn("a malformed username entry", "zone", id.zone, "index", from+int64(i), "err", err)
				continue
			}
			n.addHolding(e.Hash, holding{relay: id.key, index: uint64(from + int64(i)), owner: e.Owner})
		}
		from += int64(len(es))
		n.scanned[id] = from
		n.idxMu.Unlock()
	}
	return nil
}

// addHolding records hs unless its ledger already holds the name (an
// earlier entry comes first). n.idxMu is held.
func (n *nameBook) addHolding(hash [32]byte, hs holding) {
	for _, o := range n.held[hash] {
		if o.relay == hs.relay {
			return
		}
	}
	n.held[hash] = append(n.held[hash], hs)
}

// holder returns the entry that holds the name with hash, first by
// names.Before across every ledger this relay knows of, and the name's
// holdings.
func (n *nameBook) holder(hash [32]byte) (win holding, all []holding, ok bool) {
	n.idxMu.Lock()
	all = append([]holding(nil), n.held[hash]...)
	n.idxMu.Unlock()
	for i, hs := range all {
		if i == 0 || names.Before(hash, hs.relay, hs.index, win.relay, win.index) {
			win = hs
		}
	}
	return win, all, len(all) > 0
}

// indexMirror indexes the entries a mirror update added.
func (l *link) indexMirror() {
	m := l.ledger.mirror
	if err := l.hub.indexLedger(mirrorID{zone: l.peer.Zone, key: l.peer.Key}, m.Size(), m.Entries); err != nil {
		l.log.Error("cannot index the names of the relay's ledger", "err", err)
	}
}

// loadName returns this relay's record of the name with hash, or nil.
func (h *Hub) loadName(hash [32]byte) (*nameRecord, error) {
	b, err := h.cfg.Store.Get(nameKey(hash))
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
func (h *Hub) record(c *wire.UserClaim, index uint64) (*wire.UserRecord, error) {
	note, cp := h.ledger.Checkpoint()
	p, err := h.ledger.InclusionProof(int64(index), cp.Size)
	if err != nil {
		return nil, err
	}
	rec := &wire.UserRecord{Claim: *c, RelayKey: h.Key(), Zone: h.cfg.Zone, Index: index, Checkpoint: note, Proof: make([][32]byte, len(p))}
	for i, x := range p {
		rec.Proof[i] = x
	}
	return rec, nil
}

func nameResult(code wire.Code, format string, args ...any) *wire.NameResult {
	return &wire.NameResult{Code: code, Message: truncate(fmt.Sprintf(format, args...), wire.MaxNameDetail)}
}

var errNameStore = nameResult(wire.CodeInternal, "the relay could not record the name; try again")

// decide settles claim c (verified, for the lease it came with) at this
// relay, the name's home: the record if c takes or updates the name, or
// why not.
func (h *Hub) decide(c *wire.UserClaim) *wire.NameResult {
	n := &h.names
	n.decideMu.Lock()
	defer n.decideMu.Unlock()
	hash := names.Hash(c.Name)
	owner := names.Owner(c.Name, c.SignKey)
	self := h.Key()
	rec, err := h.loadName(hash)
	if err != nil {
		h.log.Error("names: store", "err", err)
		return errNameStore
	}
	win, all, held := n.holder(hash)
	if held && win.owner != owner {
		for _, hs := range all {
			if hs.relay == self && hs.owner != win.owner {
				// Two ledgers hold the name for different keys: the
				// federation changed while both relays were its home.
				h.log.Warn("a name this relay sequenced is held first in another relay's ledger", "hash", hex.EncodeToString(hash[:8]),
					"ours", hs.index, "theirs", hex.EncodeToString(win.relay[:6]), "at", win.index)
			}
		}
		return nameResult(wire.CodeNameTaken, "%q is taken", c.Name)
	}
	if rec != nil && rec.claim.SignKey == c.SignKey {
		if names.Same(&rec.claim, c) {
			return h.answer(&rec.claim, rec.index)
		}
		if c.Version <= rec.claim.Version {
			return nameResult(wire.CodeBadName, "version %d is not newer than %d", c.Version, rec.claim.Version)
		}
	}
	entry, err := names.EntryFor(c)
	if err != nil {
		return nameResult(wire.CodeBadName, "%v", err)
	}
	index, _, err := h.Sequence(entry)
	if err != nil {
		h.log.Error("names: sequence", "err", err)
		return nameResult(wire.CodeInternal, "the relay could not sequence the claim; try again")
	}
	n.idxMu.Lock()
	n.addHolding(hash, holding{relay: self, index: uint64(index), owner: owner})
	n.idxMu.Unlock()
	stored := &nameRecord{first: owner, index: uint64(index), claim: *c}
	if rec != nil {
		stored.first = rec.first
	}
	if b, err := stored.marshal(); err != nil {
		h.log.Error("names: record", "err", err)
	} else if err := h.cfg.Store.Put(nameKey(hash), b); err != nil {
		// The ledger holds the entry, so the name stays this owner's;
		// only the claim's bytes are lost until the owner claims again.
		h.log.Error("names: store", "err", err)
	} else if rec == nil {
		n.sequenced.Add(1)
	}
	return h.answer(c, uint64(index))
}

// answer is the NameResult carrying claim c's record at index.
func (h *Hub) answer(c *wire.UserClaim, index uint64) *wire.NameResult {
	rec, err := h.record(c, index)
	if err != nil {
		h.log.Error("names: proof", "index", index, "err", err)
		return errNameStore
	}
	return &wire.NameResult{Record: rec}
}

// ownRecord answers a lookup from this relay's own names, or returns nil.
func (h *Hub) ownRecord(hash [32]byte) *wire.NameResult {
	rec, err := h.loadName(hash)
	if err != nil {
		h.log.Error("names: store", "err", err)
		return errNameStore
	}
	if rec == nil {
		return nil
	}
	return h.answer(&rec.claim, rec.index)
}

// checkClaim checks that c verifies and is for the lease it came with.
func checkClaim(c *wire.UserClaim, l *wire.Lease) *wire.NameResult {
	if err := names.VerifyClaim(c); err != nil {
		return nameResult(wire.CodeBadName, "%s", claimProblem(err))
	}
	for _, f := range []struct {
		what string
		same bool
	}{
		{"sign key", c.SignKey == l.SignKey},
		{"agree key", c.AgreeKey == l.AgreeKey},
		{"address", c.Address == l.Address},
		{"nonce", c.Nonce == l.Nonce},
		{"zone", c.Zone == l.Zone},
	} {
		if !f.same {
			return nameResult(wire.CodeBadName, "the claim's %s is not the one in your lease", f.what)
		}
	}
	return nil
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
// is another relay and linked, its zone, and whether this relay is still
// joining the federation (a -peer it has never reached, whose key it
// does not know, might be the home).
func (h *Hub) homeOf(hash [32]byte) (home [32]byte, l *link, zone string, joining bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := make([][32]byte, 0, 1+len(h.relays))
	keys = append(keys, h.Key())
	for k := range h.relays {
		keys = append(keys, k)
	}
	home, _ = names.Home(hash, keys)
	zone = h.cfg.Zone
	if rs := h.relays[home]; rs != nil {
		l, zone = rs.link, rs.info.Zone
	}
	for _, d := range h.dialed {
		joining = joining || !d.known && !h.linkedAt(d.url)
	}
	return home, l, zone, joining
}

// linkedAt reports whether a relay that names url as its own is linked
// (it may have linked to us before our dial to it got through; as in
// Relays, the URL is its claim). h.mu is held.
func (h *Hub) linkedAt(url string) bool {
	url = strings.TrimSuffix(url, "/")
	for _, rs := range h.relays {
		if rs.link != nil && strings.TrimSuffix(rs.info.URL, "/") == url {
			return true
		}
	}
	return false
}

// linkTo returns the link to the relay with key, if up, and its zone.
func (h *Hub) linkTo(key [32]byte) (*link, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if rs := h.relays[key]; rs != nil {
		return rs.link, rs.info.Zone
	}
	return nil, "?"
}

// zoneOf is names.ZoneOf over the relays this relay knows.
func (h *Hub) zoneOf(key [32]byte) (string, bool) {
	if key == h.Key() {
		return h.cfg.Zone, true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if rs := h.relays[key]; rs != nil && rs.info.Zone != "" {
		return rs.info.Zone, true
	}
	return "", false
}

// work runs f on a goroutine of its own, unless too many claims are being
// decided or the hub is closing.
func (h *Hub) nameWork(f func()) bool {
	select {
	case h.names.work <- struct{}{}:
	default:
		return false
	}
	if !h.enter() {
		<-h.names.work
		return false
	}
	go func() {
		defer h.wg.Done()
		defer func() { <-h.names.work }()
		f()
	}()
	return true
}

func unreachable(zone string) *wire.NameResult {
	return nameResult(wire.CodeUnavailable, "the relay that decides this name (zone %s) is unreachable; try again", zone)
}

var (
	errJoining  = nameResult(wire.CodeUnavailable, "this relay is still joining the federation; try again")
	errNameBusy = nameResult(wire.CodeRateLimited, "the relay is busy with other names; try again")
	errNoName   = nameResult(wire.CodeNotFound, "no such name")
)

// answerNames sends a node the result for its request id.
func (c *client) answerNames(id uint32, res *wire.NameResult) {
	out := *res
	out.ID = id
	if b, err := wire.Marshal(&out); err == nil {
		c.send(b)
	} else {
		c.hub.log.Error("names: result frame", "err", err)
	}
}

// onNameClaim handles a node's claim; it reports whether the node broke
// a rule (too fast, or a claim that does not verify).
func (c *client) onNameClaim(m *wire.NameClaim) (violation bool) {
	h := c.hub
	if !c.nameLim.Allow() {
		c.answerNames(m.ID, nameResult(wire.CodeRateLimited, "claiming names faster than allowed"))
		return true
	}
	h.names.claims.Add(1)
	if bad := checkClaim(&m.Claim, &c.lease); bad != nil {
		c.answerNames(m.ID, bad)
		return true
	}
	home, l, zone, joining := h.homeOf(names.Hash(m.Claim.Name))
	switch {
	case home == h.Key() && joining:
		c.answerNames(m.ID, errJoining)
	case home == h.Key():
		claim := m.Claim
		if !h.nameWork(func() { c.answerNames(m.ID, h.decide(&claim)) }) {
			c.answerNames(m.ID, errNameBusy)
		}
	case l == nil:
		c.answerNames(m.ID, unreachable(zone))
	default:
		claim := m.Claim
		req := func(id uint32) wire.Message { return &wire.RelayNameClaim{ID: id, Lease: c.lease, Claim: claim} }
		h.forward(l, c, req, func(res *wire.NameResult) {
			c.answerNames(m.ID, h.checkForwarded(res, l, zone, func(r *wire.UserRecord) bool { return names.Same(&r.Claim, &claim) }))
		})
	}
	return false
}

// onNameLookup handles a node's lookup; it reports whether the node went
// too fast.
func (c *client) onNameLookup(m *wire.NameLookup) (violation bool) {
	h := c.hub
	if !c.lookupLim.Allow() {
		c.answerNames(m.ID, nameResult(wire.CodeRateLimited, "looking up names faster than allowed"))
		return true
	}
	h.names.lookups.Add(1)
	hash := m.Hash
	found := func(r *wire.UserRecord) bool { return names.Hash(r.Claim.Name) == hash }
	ask := func(l *link, zone string) {
		req := func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: hash} }
		h.forward(l, c, req, func(res *wire.NameResult) {
			c.answerNames(m.ID, h.checkForwarded(res, l, zone, found))
		})
	}
	self := h.Key()
	win, all, held := h.names.holder(hash)
	if held && win.relay != self {
		if l, zone := h.linkTo(win.relay); l != nil {
			ask(l, zone)
			return false
		}
	}
	if res := h.ownRecord(hash); res != nil {
		c.answerNames(m.ID, res)
		return false
	}
	if held {
		zone := "?"
		for _, hs := range all {
			if hs.relay == self {
				continue
			}
			var l *link
			if l, zone = h.linkTo(hs.relay); l != nil {
				ask(l, zone)
				return false
			}
		}
		if win.relay == self {
			c.answerNames(m.ID, nameResult(wire.CodeInternal, "this relay has lost the record of this name; its owner must claim it again"))
		} else {
			c.answerNames(m.ID, nameResult(wire.CodeUnavailable, "the relay that holds this name (zone %s) is unreachable; try again", zone))
		}
		return false
	}
	home, l, zone, _ := h.homeOf(hash)
	switch {
	case home == self:
		c.answerNames(m.ID, errNoName)
	case l == nil:
		c.answerNames(m.ID, unreachable(zone))
	default:
		ask(l, zone)
	}
	return false
}

// checkForwarded passes on another relay's answer to a node only if a
// record in it verifies and is the one asked for.
func (h *Hub) checkForwarded(res *wire.NameResult, l *link, zone string, wanted func(*wire.UserRecord) bool) *wire.NameResult {
	if res.Code != wire.CodeNone {
		return res
	}
	rec := res.Record
	if rec == nil {
		l.log.Warn("names: an answer without a record")
		return nameResult(wire.CodeUnavailable, "the relay of zone %s answered without a record; try again", zone)
	}
	if !wanted(rec) {
		l.log.Warn("names: an answer for another name or claim")
		return nameResult(wire.CodeUnavailable, "the relay of zone %s answered for another name; try again", zone)
	}
	if _, err := names.Verify(rec, rec.Claim.Name, h.zoneOf); err != nil {
		l.log.Warn("names: a record that does not verify", "err", err)
		return nameResult(wire.CodeUnavailable, "the relay of zone %s answered with a record that does not verify; try again", zone)
	}
	return res
}

// forward sends the request msg(id) over l, with a fresh request id, and
// calls finish with the answer, or with CodeUnavailable once the link
// ends or the wait runs out. Nothing is called if client c leaves first.
func (h *Hub) forward(l *link, c *client, msg func(id uint32) wire.Message, finish func(*wire.NameResult)) {
	n := &h.names
	rid := n.nextID.Add(1)
	b, err := wire.Marshal(msg(rid))
	if err != nil {
		h.log.Error("names: forward frame", "err", err)
		finish(errNameStore)
		return
	}
	p := &pendingName{link: l, client: c, finish: finish}
	n.pendMu.Lock()
	if len(n.pending) >= maxNamePending {
		n.pendMu.Unlock()
		finish(errNameBusy)
		return
	}
	n.pending[rid] = p
	p.timer = time.AfterFunc(h.cfg.NameWait, func() {
		if p := n.take(rid, nil); p != nil {
			p.finish(unreachable(l.peer.Zone))
		}
	})
	n.pendMu.Unlock()
	if !l.trySend(b) {
		if p := n.take(rid, nil); p != nil {
			p.finish(nameResult(wire.CodeUnavailable, "the link to zone %s is congested; try again", l.peer.Zone))
		}
	}
}

// take removes and returns the pending request rid, if it is waiting (on
// link l, unless l is nil).
func (n *nameBook) take(rid uint32, l *link) *pendingName {
	n.pendMu.Lock()
	defer n.pendMu.Unlock()
	p := n.pending[rid]
	if p == nil || l != nil && p.link != l {
		return nil
	}
	delete(n.pending, rid)
	if p.timer != nil {
		p.timer.Stop()
	}
	return p
}

// namesLinkDown answers every request waiting on l: it will not answer.
func (h *Hub) namesLinkDown(l *link) {
	n := &h.names
	var gone []*pendingName
	n.pendMu.Lock()
	for rid, p := range n.pending {
		if p.link == l {
			delete(n.pending, rid)
			if p.timer != nil {
				p.timer.Stop()
			}
			gone = append(gone, p)
		}
	}
	n.pendMu.Unlock()
	for _, p := range gone {
		p.finish(unreachable(l.peer.Zone))
	}
}

// namesClientGone forgets the requests of a node that left.
func (h *Hub) namesClientGone(c *client) {
	n := &h.names
	n.pendMu.Lock()
	defer n.pendMu.Unlock()
	for rid, p := range n.pending {
		if p.client == c {
			delete(n.pending, rid)
			if p.timer != nil {
				p.timer.Stop()
			}
		}
	}
}

// sendNames answers the other relay's request id over l. A full queue
// drops the answer; the other relay's wait runs out.
func (l *link) sendNames(id uint32, res *wire.NameResult) {
	out := *res
	out.ID = id
	b, err := wire.Marshal(&out)
	if err != nil {
		l.log.Error("names: result frame", "err", err)
		return
	}
	if !l.trySend(b) {
		l.hub.fedDropped.Add(1)
		l.log.Debug("names: dropping an answer on a congested link")
	}
}

// onNameClaim decides a claim another relay forwarded for its member; it
// reports whether the relay broke a rule.
func (l *link) onNameClaim(m *wire.RelayNameClaim) (violation bool) {
	h := l.hub
	if !l.nameLim.Allow() {
		l.sendNames(m.ID, nameResult(wire.CodeRateLimited, "forwarding names faster than allowed"))
		return true
	}
	h.names.claims.Add(1)
	err := identity.VerifyLease(&m.Lease, l.peer.Key, h.now())
	if err == nil && m.Lease.Zone != l.peer.Zone {
		err = fmt.Errorf("lease is for zone %q, not %q", m.Lease.Zone, l.peer.Zone)
	}
	if err != nil {
		l.log.Warn("names: refusing a claim whose lease does not verify", "err", err)
		l.sendNames(m.ID, nameResult(wire.CodeBadName, "the claimant's lease does not verify: %v", err))
		return true
	}
	if bad := checkClaim(&m.Claim, &m.Lease); bad != nil {
		l.sendNames(m.ID, bad)
		return true
	}
	home, _, _, joining := h.homeOf(names.Hash(m.Claim.Name))
	switch {
	case home != h.Key():
		l.sendNames(m.ID, nameResult(wire.CodeUnavailable, "not the home of this name"))
	case joining:
		l.sendNames(m.ID, errJoining)
	default:
		claim := m.Claim
		if !h.nameWork(func() { l.sendNames(m.ID, h.decide(&claim)) }) {
			l.sendNames(m.ID, errNameBusy)
		}
	}
	return false
}

// onNameLookup answers another relay's lookup from this relay's own
// names only, so lookups never travel further.
func (l *link) onNameLookup(m *wire.NameLookup) (violation bool) {
	if !l.nameLim.Allow() {
		l.sendNames(m.ID, nameResult(wire.CodeRateLimited, "looking up names faster than allowed"))
		return true
	}
	h := l.hub
	h.names.lookups.Add(1)
	res := h.ownRecord(m.Hash)
	if res == nil {
		res = errNoName
	}
	l.sendNames(m.ID, res)
	return false
}

// onNameResult passes on the answer to a request this relay forwarded
// over l; an answer nobody waits for (late, or never asked) is dropped.
func (l *link) onNameResult(m *wire.NameResult) {
	p := l.hub.names.take(m.ID, l)
	if p == nil {
		l.hub.fedDropped.Add(1)
		l.log.Debug("names: dropping an answer nobody waits for", "id", m.ID)
		return
	}
	p.finish(m)
}

// salvageNameClaim answers a NameClaim frame that does not decode because
// its name is longer than any username, which a node may send and should
// hear about as a bad name. It reports whether b was such a frame.
func (c *client) salvageNameClaim(b []byte) bool {
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
	c.answerNames(uint32(rid), nameResult(wire.CodeBadName, "%s", claimProblem(fmt.Errorf("%w: %d characters, at most %d", names.ErrTooLong, size, names.MaxLen))))
	return true
}
