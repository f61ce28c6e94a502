package dht

import (
	"fmt"
	"time"

	"ddt/shared/id"
)

// MaxSigners bounds the signers whose records one key holds.
const MaxSigners = 8

// held is a record kept for another node.
type held struct {
	rec Record
	raw []byte    // its encoding, as it is sent on
	at  time.Time // last stored or re-stored
}

// records keeps others' records, per key and signer, at most max in all.
// It is not safe for concurrent use; the DHT's mutex guards it.
type records struct {
	self id.Address
	max  int
	n    int
	keys map[id.Address]map[[32]byte]*held
}

func newRecords(self id.Address, max int) *records {
	return &records{self: self, max: max, keys: map[id.Address]map[[32]byte]*held{}}
}

// put keeps a verified record. A record of the same key and signer
// replaces the held one only with a higher Seq; the same record again
// renews it; anything else is refused.
func (s *records) put(r Record, raw []byte, now time.Time) error {
	signers := s.keys[r.Key]
	if h := signers[r.Signer]; h != nil {
		switch {
		case r.Seq > h.rec.Seq:
			h.rec, h.raw, h.at = r, raw, now
			return nil
		case r.Seq == h.rec.Seq && r.same(&h.rec):
			h.at = now
			return nil
		case r.Seq == h.rec.Seq:
			return fmt.Errorf("%w: a different record with sequence number %d is held", ErrStale, r.Seq)
		default:
			return fmt.Errorf("%w: sequence number %d, %d is held", ErrStale, r.Seq, h.rec.Seq)
		}
	}
	if len(signers) >= MaxSigners {
		return ErrTooManySigners
	}
	if s.n >= s.max && !s.evictFarther(r.Key) {
		return ErrFull
	}
	if signers == nil {
		signers = map[[32]byte]*held{}
		s.keys[r.Key] = signers
	}
	signers[r.Signer] = &held{rec: r, raw: raw, at: now}
	s.n++
	return nil
}

// renew renews the held record if r is the same one, and reports whether
// it was.
func (s *records) renew(r *Record, now time.Time) bool {
	h := s.keys[r.Key][r.Signer]
	if h == nil || !h.rec.same(r) {
		return false
	}
	h.at = now
	return true
}

// evictFarther drops the oldest record of the key farthest from self, if
// that key is farther than key: a full node keeps the records it is most
// responsible for.
func (s *records) evictFarther(key id.Address) bool {
	var far id.Address
	found := false
	for k := range s.keys {
		if !found || id.Closer(s.self, far, k) {
			far, found = k, true
		}
	}
	if !found || !id.Closer(s.self, key, far) {
		return false
	}
	var oldest [32]byte
	var at time.Time
	for signer, h := range s.keys[far] {
		if at.IsZero() || h.at.Before(at) {
			oldest, at = signer, h.at
		}
	}
	s.drop(far, oldest)
	return true
}

func (s *records) drop(key id.Address, signer [32]byte) {
	signers := s.keys[key]
	if _, ok := signers[signer]; !ok {
		return
	}
	delete(signers, signer)
	s.n--
	if len(signers) == 0 {
		delete(s.keys, key)
	}
}

// get returns the records held under key.
func (s *records) get(key id.Address) []*held {
	var out []*held
	for _, h := range s.keys[key] {
		out = append(out, h)
	}
	return out
}

// expire drops records not stored since before and returns how many.
func (s *records) expire(before time.Time) int {
	n := 0
	for key, signers := range s.keys {
		for signer, h := range signers {
			if h.at.Before(before) || h.at.Equal(before) {
				s.drop(key, signer)
				n++
			}
		}
	}
	return n
}
