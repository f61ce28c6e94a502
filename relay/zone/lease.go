package zone

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"ddt/shared/store"
	"ddt/shared/wire"
)

// Lease records. For every key it admitted, the relay keeps the last
// lease it issued and when that node was last seen: at admission, while
// it stays connected (refreshed at every sweep) and when it leaves. A
// node that comes back within LeaseLapse gets the same nonce, so the same
// address, across relay restarts; after that its lease has lapsed, the
// sweep deletes the record and the node gets a fresh address.
//
// Stored under "lease/<hex sign key>" as
//
//	recordTag | last seen (8 bytes, big-endian Unix milliseconds) | lease frame
//
// Records written before liveness was tracked are a bare lease frame
// (first byte wire.Version); they count as last seen when issued.
const (
	storeLeasePrefix = "lease/"
	recordTag        = 0xd2
)

type leaseRecord struct {
	lease wire.Lease
	seen  time.Time
}

func (r *leaseRecord) marshal() ([]byte, error) {
	b, err := wire.Marshal(&r.lease)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 9, 9+len(b))
	out[0] = recordTag
	binary.BigEndian.PutUint64(out[1:], uint64(r.seen.UnixMilli()))
	return append(out, b...), nil
}

func parseLeaseRecord(b []byte) (leaseRecord, error) {
	var r leaseRecord
	frame := b
	if len(b) > 0 && b[0] == recordTag {
		if len(b) < 9 {
			return r, fmt.Errorf("%w: lease record of %d bytes", wire.ErrMalformed, len(b))
		}
		r.seen = time.UnixMilli(int64(binary.BigEndian.Uint64(b[1:9])))
		frame = b[9:]
	}
	m, err := wire.Unmarshal(frame)
	if err != nil {
		return r, err
	}
	l, ok := m.(*wire.Lease)
	if !ok {
		return r, fmt.Errorf("%w: lease record holds type %d", wire.ErrMalformed, m.Type())
	}
	r.lease = *l
	if r.seen.IsZero() {
		r.seen = time.Unix(l.Issued, 0)
	}
	return r, nil
}

func leaseKey(signKey [32]byte) string { return storeLeasePrefix + hex.EncodeToString(signKey[:]) }

func (z *Zone) loadLease(k string) (leaseRecord, error) {
	b, err := z.cfg.Store.Get(k)
	if err != nil {
		return leaseRecord{}, err
	}
	r, err := parseLeaseRecord(b)
	if err != nil {
		return r, fmt.Errorf("stored lease %s is corrupt: %w", k, err)
	}
	return r, nil
}

// saveLeaseLocked writes r under k; fresh says k has no record yet, and
// makes room for one at MaxLeases first. z.leaseMu is held.
func (z *Zone) saveLeaseLocked(k string, r *leaseRecord, fresh bool) error {
	b, err := r.marshal()
	if err != nil {
		return err
	}
	if fresh && z.leases.Load() >= int64(z.cfg.MaxLeases) {
		z.evictLocked()
	}
	if err := z.cfg.Store.Put(k, b); err != nil {
		return err
	}
	if fresh {
		z.leases.Add(1)
	}
	return nil
}

// evictLocked deletes the records of the nodes seen longest ago, a
// 1/evictShare of MaxLeases of them, lapsed or not but never a member's:
// the lease store stays bounded whatever number of keys join, and the
// nodes evicted get a fresh address when they return, as after a lapse.
// z.leaseMu is held.
func (z *Zone) evictLocked() {
	keys, err := z.cfg.Store.Keys(storeLeasePrefix)
	if err != nil {
		z.log.Warn("lease eviction", "err", err)
		return
	}
	z.leases.Store(int64(len(keys)))
	type aged struct {
		key  string
		seen time.Time
	}
	var old []aged
	for _, k := range keys {
		r, err := z.loadLease(k)
		if err == nil && z.Member(r.lease.Address) != nil {
			continue
		}
		old = append(old, aged{k, r.seen}) // a corrupt record sorts first
	}
	sort.Slice(old, func(i, j int) bool { return old[i].seen.Before(old[j].seen) })
	n := min(len(old), max(1, z.cfg.MaxLeases/evictShare))
	for _, a := range old[:n] {
		if err := z.cfg.Store.Delete(a.key); err != nil {
			z.log.Warn("lease eviction", "key", a.key, "err", err)
			continue
		}
		z.leases.Add(-1)
		z.evicted.Add(1)
	}
	z.log.Warn("lease store full: evicted the records of the nodes seen longest ago", "evicted", n, "limit", z.cfg.MaxLeases)
}

// lapsed reports whether a node last seen at seen has lost its address by now.
func lapsed(seen, now time.Time) bool { return !now.Before(seen.Add(LeaseLapse)) }

// issueLeaseLocked picks the lease for a node's keys, at its old address
// unless it has been away for LeaseLapse or longer, at a fresh one
// otherwise; fresh says the key has no record yet. It records nothing:
// the caller saves the record once it admits the node. z.leaseMu is held.
func (z *Zone) issueLeaseLocked(signKey, agreeKey [32]byte, now time.Time, log *slog.Logger) (l wire.Lease, fresh bool, err error) {
	k := leaseKey(signKey)
	var nonce [16]byte
	r, err := z.loadLease(k)
	switch {
	case err == nil && lapsed(r.seen, now) && z.Member(r.lease.Address) == nil:
		log.Info("lease lapsed: the node was away too long and gets a new address",
			"old", r.lease.Address.Short(), "lastSeen", r.seen.UTC().Format(time.RFC3339), "lapse", LeaseLapse)
		rand.Read(nonce[:])
	case err == nil:
		nonce = r.lease.Nonce
	case errors.Is(err, store.ErrNotFound):
		rand.Read(nonce[:])
		fresh = true
	default:
		return wire.Lease{}, false, err
	}
	return z.key.IssueLease(signKey, agreeKey, nonce, z.cfg.Name, now, LeaseTTL), fresh, nil
}

// touch records that the node holding l was seen now.
func (z *Zone) touch(l *wire.Lease) error {
	z.leaseMu.Lock()
	defer z.leaseMu.Unlock()
	k := leaseKey(l.SignKey)
	r, err := z.loadLease(k)
	if err != nil || r.lease.Address != l.Address {
		// Missing, corrupt, or replaced by a lease this link does not
		// hold: the connected node's lease is the one that counts.
		r.lease = *l
	}
	r.seen = z.clock.Now()
	return z.saveLeaseLocked(k, &r, errors.Is(err, store.ErrNotFound))
}

// Sweep refreshes the records of connected nodes and deletes lapsed ones,
// freeing their addresses; it returns how many it deleted. The zone
// sweeps every Config.SweepEvery by itself.
func (z *Zone) Sweep() (int, error) {
	z.mu.Lock()
	live := make([]wire.Lease, 0, len(z.members))
	for _, m := range z.members {
		live = append(live, m.lease)
	}
	z.mu.Unlock()
	for i := range live {
		if err := z.touch(&live[i]); err != nil {
			return 0, err
		}
	}
	keys, err := z.cfg.Store.Keys(storeLeasePrefix)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, k := range keys {
		z.leaseMu.Lock()
		r, err := z.loadLease(k)
		now := z.clock.Now()
		if err == nil && lapsed(r.seen, now) && z.Member(r.lease.Address) == nil {
			if err = z.cfg.Store.Delete(k); err == nil {
				deleted++
				z.leases.Add(-1)
				z.log.Info("lease lapsed; address freed", "node", r.lease.Address.Short(), "lastSeen", r.seen.UTC().Format(time.RFC3339))
			}
		}
		z.leaseMu.Unlock()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			z.log.Warn("lease sweep", "key", k, "err", err)
		}
	}
	return deleted, nil
}
