package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"ddt/shared/id"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Lease records. For every key it admitted, the relay keeps the last
// lease it issued and when that node was last seen: at admission, while
// it stays connected (refreshed at every sweep) and when it leaves. A
// node that comes back within leaseLapse gets the same nonce, so the same
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

func (h *Hub) loadLease(k string) (leaseRecord, error) {
	b, err := h.cfg.Store.Get(k)
	if err != nil {
		return leaseRecord{}, err
	}
	r, err := parseLeaseRecord(b)
	if err != nil {
		return r, fmt.Errorf("stored lease %s is corrupt: %w", k, err)
	}
	return r, nil
}

func (h *Hub) saveLease(k string, r *leaseRecord) error {
	b, err := r.marshal()
	if err != nil {
		return err
	}
	return h.cfg.Store.Put(k, b)
}

// lapsed reports whether a node last seen at seen has lost its address by now.
func lapsed(seen, now time.Time) bool { return !now.Before(seen.Add(leaseLapse)) }

// connected reports whether a node holds addr in this zone right now.
func (h *Hub) connected(addr id.Address) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clients[addr] != nil
}

// leaseFor issues a lease for a node's keys: at its old address unless it
// has been away for leaseLapse or longer, at a fresh one otherwise.
func (h *Hub) leaseFor(signKey, agreeKey [32]byte, log *slog.Logger) (wire.Lease, error) {
	h.leaseMu.Lock()
	defer h.leaseMu.Unlock()
	now := h.now()
	k := leaseKey(signKey)
	var nonce [16]byte
	r, err := h.loadLease(k)
	switch {
	case err == nil && lapsed(r.seen, now) && !h.connected(r.lease.Address):
		log.Info("lease lapsed: the node was away too long and gets a new address",
			"old", r.lease.Address.Short(), "lastSeen", r.seen.UTC().Format(time.RFC3339), "lapse", leaseLapse)
		rand.Read(nonce[:])
	case err == nil:
		nonce = r.lease.Nonce
	case errors.Is(err, store.ErrNotFound):
		rand.Read(nonce[:])
	default:
		return wire.Lease{}, err
	}
	l := h.key.IssueLease(signKey, agreeKey, nonce, h.cfg.Zone, now, leaseTTL)
	return l, h.saveLease(k, &leaseRecord{lease: l, seen: now})
}

// touch records that the node holding l was seen now.
func (h *Hub) touch(l *wire.Lease) error {
	h.leaseMu.Lock()
	defer h.leaseMu.Unlock()
	k := leaseKey(l.SignKey)
	r, err := h.loadLease(k)
	if err != nil || r.lease.Address != l.Address {
		// Missing, corrupt, or replaced by a lease this link does not
		// hold: the connected node's lease is the one that counts.
		r.lease = *l
	}
	r.seen = h.now()
	return h.saveLease(k, &r)
}

// sweep refreshes the records of connected nodes and deletes lapsed ones,
// freeing their addresses. It returns how many it deleted.
func (h *Hub) sweep() (int, error) {
	h.mu.Lock()
	live := make([]wire.Lease, 0, len(h.clients))
	for _, c := range h.clients {
		live = append(live, c.lease)
	}
	h.mu.Unlock()
	for i := range live {
		if err := h.touch(&live[i]); err != nil {
			return 0, err
		}
	}
	keys, err := h.cfg.Store.Keys(storeLeasePrefix)
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, k := range keys {
		h.leaseMu.Lock()
		r, err := h.loadLease(k)
		now := h.now()
		if err == nil && lapsed(r.seen, now) && !h.connected(r.lease.Address) {
			if err = h.cfg.Store.Delete(k); err == nil {
				deleted++
				h.log.Info("lease lapsed; address freed", "node", r.lease.Address.Short(), "lastSeen", r.seen.UTC().Format(time.RFC3339))
			}
		}
		h.leaseMu.Unlock()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			h.log.Warn("lease sweep", "key", k, "err", err)
		}
	}
	return deleted, nil
}
