package dht

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"ddt/shared/id"
	"ddt/shared/wire"
)

// Result describes one iterative lookup.
type Result struct {
	// Found: Lookup reached the target itself and it answered; Get found
	// at least one valid record.
	Found bool
	// Hops counts sequential query rounds until the target (or a record)
	// was first reported: 0 when it was already in the routing table (or
	// the record held here). If it never was, Hops is the rounds run.
	Hops int
	// Messages counts the requests sent (replies are not counted).
	Messages int
	// Closest holds the closest nodes that answered, closest first, at
	// most K. A Lookup that found its target stops there, so its Closest
	// starts with the target and holds only the nodes asked so far.
	Closest []id.Address
	// Elapsed is the lookup's duration by the DHT's clock.
	Elapsed time.Duration
}

// Bounds on one lookup, whatever the answers say.
const (
	maxRounds      = 20
	messagesPerK   = 10 // at most messagesPerK × K requests
	candidatesPerK = 4  // at most candidatesPerK × K candidates kept
)

// What a lookup is for.
const (
	modeNode    = iota // Lookup: reach the node at the target address
	modeClosest        // find the K closest to the target (Put, refresh)
	modeValue          // Get: collect the records under the target key
)

// Candidate states.
const (
	stateFresh    = iota // not asked yet
	stateAnswered        // asked, and it answered (failed ones are dropped)
)

const noReport = -1

// search is the state of one iterative lookup. Only the goroutine running
// the lookup touches it; the calls of a round write to separate slots.
type search struct {
	d      *DHT
	target id.Address
	mode   int
	// cands holds candidates that have not failed, closest first.
	cands []candidate
	// known holds every address ever offered, so none is asked twice and
	// the candidates cannot grow without bound.
	known    map[id.Address]bool
	answered []id.Address
	records  map[[32]byte]Record // Get: newest valid record per signer

	rounds      int
	reported    int // round in which the target or a record was first reported
	targetKnown bool
	targetAsked bool
	found       bool
	messages    int
}

type candidate struct {
	addr  id.Address
	state int
}

// iterate runs one iterative lookup: rounds of Alpha parallel requests to
// the closest candidates not yet asked. When a round brings nothing closer
// than the closest candidate before it, the next round asks every
// candidate not yet asked among the K closest at once; the lookup ends
// when all of the K closest that have not failed have answered. Failed
// candidates drop out, so contacts made up by a bad node cost one round of
// timeouts, not the lookup. In modeNode, a target reported by anyone is
// asked directly, and the lookup ends if it answers.
func (d *DHT) iterate(ctx context.Context, target id.Address, mode int) (*search, error) {
	start := d.cfg.Now()
	s := &search{
		d:        d,
		target:   target,
		mode:     mode,
		known:    map[id.Address]bool{d.cfg.Self: true},
		reported: noReport,
	}
	if mode == modeValue {
		s.records = map[[32]byte]Record{}
	}
	d.mu.Lock()
	d.table.touch(target, start)
	seeds := d.table.closest(target, d.cfg.K, d.cfg.Self)
	d.mu.Unlock()
	if len(seeds) == 0 {
		return s, ErrNoContacts
	}
	s.merge(seeds)

	maxMessages := messagesPerK * d.cfg.K
	improved := true
	for ctx.Err() == nil && s.messages < maxMessages {
		if s.mode == modeNode && s.targetKnown && !s.targetAsked {
			if s.askTarget(ctx) {
				break
			}
			continue
		}
		if s.rounds >= maxRounds {
			break
		}
		n := d.cfg.Alpha
		if !improved {
			n = d.cfg.K
		}
		batch := s.next(min(n, maxMessages-s.messages))
		if len(batch) == 0 {
			break
		}
		before, had := s.best()
		s.round(ctx, batch)
		after, has := s.best()
		improved = has && (!had || id.Closer(target, after, before))
	}
	return s, ctx.Err()
}

// best returns the closest candidate that has not failed.
func (s *search) best() (id.Address, bool) {
	if len(s.cands) == 0 {
		return id.Address{}, false
	}
	return s.cands[0].addr, true
}

// next returns up to n candidates not yet asked among the K closest.
func (s *search) next(n int) []id.Address {
	var out []id.Address
	for i := 0; i < len(s.cands) && i < s.d.cfg.K && len(out) < n; i++ {
		if c := &s.cands[i]; c.state == stateFresh && !(s.mode == modeNode && c.addr == s.target) {
			out = append(out, c.addr)
		}
	}
	return out
}

// merge offers contacts as candidates. Addresses already offered, and
// Self, are ignored; the candidates stay bounded.
func (s *search) merge(contacts []id.Address) {
	limit := candidatesPerK * s.d.cfg.K
	for _, a := range contacts {
		if s.known[a] || a.IsZero() {
			continue
		}
		s.known[a] = true
		if a == s.target && s.mode == modeNode {
			s.targetKnown = true
			s.report()
		}
		at, _ := slices.BinarySearchFunc(s.cands, a, func(c candidate, a id.Address) int {
			return c.addr.Xor(s.target).Compare(a.Xor(s.target))
		})
		if at >= limit {
			continue
		}
		s.cands = slices.Insert(s.cands, at, candidate{addr: a})
		if len(s.cands) > limit {
			s.cands = s.cands[:limit]
		}
	}
}

// report notes the round in which the target or a record first appeared.
func (s *search) report() {
	if s.reported == noReport {
		s.reported = s.rounds
	}
}

func (s *search) drop(a id.Address) {
	s.cands = slices.DeleteFunc(s.cands, func(c candidate) bool { return c.addr == a })
}

func (s *search) answer(a id.Address) {
	s.answered = append(s.answered, a)
	for i := range s.cands {
		if s.cands[i].addr == a {
			s.cands[i].state = stateAnswered
		}
	}
}

// round asks each address of batch in parallel and merges the answers.
func (s *search) round(ctx context.Context, batch []id.Address) {
	s.rounds++
	s.messages += len(batch)
	var req wire.Message = &wire.FindNode{Target: s.target}
	ok := isNodes
	if s.mode == modeValue {
		req, ok = &wire.FindValue{Key: s.target}, isValue
	}
	replies := make([]wire.Message, len(batch))
	s.d.parallel(len(batch), func(i int) {
		replies[i], _ = s.d.call(ctx, batch[i], req, ok)
	})
	k := s.d.cfg.K
	for i, m := range replies {
		switch m := m.(type) {
		case *wire.Nodes:
			s.answer(batch[i])
			s.merge(m.Contacts[:min(len(m.Contacts), k)])
		case *wire.Value:
			s.answer(batch[i])
			s.takeRecords(batch[i], m.Records)
			s.merge(m.Contacts[:min(len(m.Contacts), k)])
		default:
			s.drop(batch[i])
		}
	}
}

// askTarget sends the target one FindNode; it reports whether the target
// answered.
func (s *search) askTarget(ctx context.Context) bool {
	s.targetAsked = true
	s.messages++
	m, _ := s.d.call(ctx, s.target, &wire.FindNode{Target: s.target}, isNodes)
	if m == nil {
		s.drop(s.target)
		return false
	}
	s.answer(s.target)
	s.found = true
	return true
}

// takeRecords keeps the valid records of a Value reply, the newest per
// signer.
func (s *search) takeRecords(from id.Address, raws [][]byte) {
	for _, raw := range raws[:min(len(raws), wire.MaxRecords)] {
		var r Record
		err := r.Unmarshal(raw)
		if err == nil && r.Key != s.target {
			err = fmt.Errorf("%w: key %s, asked for %s", ErrMalformed, r.Key.Short(), s.target.Short())
		}
		if err == nil {
			if old, ok := s.records[r.Signer]; ok && old.same(&r) {
				continue // already verified, from another node
			}
			err = r.Verify()
		}
		if err != nil {
			s.d.log.Debug("record ignored", "from", from.Short(), "err", err)
			continue
		}
		s.keepRecord(r)
	}
}

func (s *search) keepRecord(r Record) {
	if old, ok := s.records[r.Signer]; !ok || r.Seq > old.Seq {
		s.records[r.Signer] = r
	}
	s.report()
}

func (s *search) result(start time.Time) Result {
	sortByDistance(s.target, s.answered)
	hops := s.reported
	if hops == noReport {
		hops = s.rounds
	}
	return Result{
		Found:    s.found,
		Hops:     hops,
		Messages: s.messages,
		Closest:  s.answered[:min(len(s.answered), s.d.cfg.K)],
		Elapsed:  s.d.cfg.Now().Sub(start),
	}
}

func isNodes(m wire.Message) bool { _, ok := m.(*wire.Nodes); return ok }
func isValue(m wire.Message) bool { _, ok := m.(*wire.Value); return ok }

// Lookup finds the node at target by an iterative FIND_NODE lookup. Found
// is true only if the target itself answered. A lookup of Self (as in
// Bootstrap) runs to the K closest nodes and never reports Found. The
// error is ErrNoContacts when the routing table is empty, or ctx's error.
// Each round waits for its slowest call, at most Timeout; there are at
// most 20 rounds and 10×K requests.
func (d *DHT) Lookup(ctx context.Context, target id.Address) (Result, error) {
	start := d.cfg.Now()
	mode := modeNode
	if target == d.cfg.Self {
		mode = modeClosest
	}
	s, err := d.iterate(ctx, target, mode)
	return s.result(start), err
}

// Get collects the records stored under key by an iterative FIND_VALUE
// lookup that runs to the K closest nodes, so the newest record of each
// signer is found even if some nodes hold older ones. It returns the valid
// records, the newest per signer, ordered by signer; records held here
// count too. Found is false (and the error nil) when there are none.
func (d *DHT) Get(ctx context.Context, key id.Address) ([]Record, Result, error) {
	start := d.cfg.Now()
	local := d.local(key)
	s, err := d.iterate(ctx, key, modeValue)
	if len(local) > 0 {
		s.reported = 0
		for _, r := range local {
			s.keepRecord(r)
		}
		if errors.Is(err, ErrNoContacts) {
			err = nil
		}
	}
	res := s.result(start)
	out := make([]Record, 0, len(s.records))
	for _, r := range s.records {
		out = append(out, r)
	}
	// (sort.Slice: a generic sort of a struct type is ~25 KB of wasm.)
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Signer[:], out[j].Signer[:]) < 0 })
	res.Found = len(out) > 0
	return out, res, err
}

// local returns the records under key held here: kept for others and own.
func (d *DHT) local(key id.Address) []Record {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Record
	for _, h := range d.store.get(key) {
		out = append(out, h.rec)
	}
	for k, o := range d.own {
		if k.key == key {
			out = append(out, o.rec)
		}
	}
	return out
}

// Put publishes r: it looks up the K closest nodes to r.Key and asks each
// to store r. It returns how many did. The record is remembered and
// published again every Republish (by Maintain) until Forget. A record
// that is not validly signed, or older than one this node already
// published for the same key and signer, is refused.
func (d *DHT) Put(ctx context.Context, r Record) (stored int, err error) {
	if err := r.Verify(); err != nil {
		return 0, err
	}
	raw, err := r.Marshal()
	if err != nil {
		return 0, err
	}
	r.Value = slices.Clone(r.Value)
	k := ownKey{key: r.Key, signer: r.Signer}
	d.mu.Lock()
	if o := d.own[k]; o != nil && r.Seq <= o.rec.Seq && !r.same(&o.rec) {
		d.mu.Unlock()
		return 0, fmt.Errorf("%w: this node published sequence number %d", ErrStale, o.rec.Seq)
	}
	o := &owned{rec: r, raw: raw}
	d.own[k] = o
	d.mu.Unlock()
	return d.republish(ctx, o)
}

// Forget stops republishing the record of key and signer. Copies already
// stored expire after RecordTTL.
func (d *DHT) Forget(key id.Address, signer [32]byte) {
	d.mu.Lock()
	delete(d.own, ownKey{key: key, signer: signer})
	d.mu.Unlock()
}

// republish stores o at the K closest nodes to its key and schedules the
// next time: after Republish, or after Refresh if no node stored it.
func (d *DHT) republish(ctx context.Context, o *owned) (int, error) {
	s, err := d.iterate(ctx, o.rec.Key, modeClosest)
	targets := s.result(d.cfg.Now()).Closest
	stored := make([]bool, len(targets))
	errs := make([]error, len(targets))
	if err == nil {
		req := &wire.Store{Record: o.raw}
		d.parallel(len(targets), func(i int) {
			_, errs[i] = d.call(ctx, targets[i], req, func(m wire.Message) bool {
				_, ok := m.(*wire.Stored)
				return ok
			})
			stored[i] = errs[i] == nil
		})
	}
	n := 0
	for _, ok := range stored {
		if ok {
			n++
		}
	}
	if err == nil && n == 0 {
		err = ErrNotStored
		for _, e := range errs {
			if e != nil {
				err = fmt.Errorf("%w: %w", ErrNotStored, e)
				break
			}
		}
	}
	next := d.cfg.Now().Add(d.cfg.Republish)
	if n == 0 {
		next = d.cfg.Now().Add(d.cfg.Refresh)
	}
	d.mu.Lock()
	o.next = next
	d.mu.Unlock()
	d.log.Debug("record published", "key", o.rec.Key.Short(), "seq", o.rec.Seq, "stored", n, "err", err)
	return n, err
}
