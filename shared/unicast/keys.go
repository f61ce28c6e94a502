package unicast

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/store"
	"ddt/shared/unicast/onion"
	"ddt/shared/wire"
)

// Limits on what the service keeps of others' keys.
const (
	// MaxHopCache bounds the verified KeyRecords kept of candidate hops.
	MaxHopCache = 512
	// hopCacheTTL is how long a verified KeyRecord is used before it is
	// fetched again.
	hopCacheTTL = 10 * time.Minute
	// keyFetchTimeout bounds the DHT lookup of one hop's KeyRecord.
	keyFetchTimeout = 5 * time.Second
	// publishTimeout bounds one publication of our KeyRecord.
	publishTimeout = 30 * time.Second
)

// publishRetries are the pauses before publishing our KeyRecord again
// when no node stored it (a node just admitted has few channels yet).
var publishRetries = []time.Duration{3 * time.Second, 10 * time.Second, 30 * time.Second}

const keyOnion = "onion-key"

// KeyRecordKey is the DHT key of the KeyRecord of the node at addr: the
// first 20 bytes of SHA-256("unicast/keys/" || addr).
func KeyRecordKey(addr id.Address) id.Address {
	h := sha256.Sum256(append([]byte("unicast/keys/"), addr[:]...))
	var k id.Address
	copy(k[:], h[:])
	return k
}

// loadOnionKey reads this node's onion key from the store, or makes and
// saves one.
func (s *Service) loadOnionKey() error {
	st := s.h.Store()
	b, err := st.Get(keyOnion)
	if err == nil {
		if k, err := onion.UnmarshalPrivateKey(b); err == nil {
			s.okey = k
			return nil
		}
		s.h.Logger().Warn("the saved onion key is corrupt; making a new one")
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("unicast: reading the onion key: %w", err)
	}
	k, err := onion.NewPrivateKey(s.rand())
	if err != nil {
		return fmt.Errorf("unicast: making the onion key: %w", err)
	}
	if err := store.PutDurable(st, keyOnion, k.Marshal()); err != nil {
		return fmt.Errorf("unicast: saving the onion key: %w", err)
	}
	s.okey = k
	return nil
}

// publishKeys puts our KeyRecord (the lease and the onion key, signed by
// the node's key) in the DHT, trying again a few times if nobody stores
// it.
func (s *Service) publishKeys(ctx context.Context, lease wire.Lease) {
	h := s.h
	v, err := wire.Marshal(&wire.KeyRecord{Lease: lease, OnionKey: s.okey.Public()})
	if err != nil {
		h.Logger().Warn("could not encode the key record", "err", err)
		return
	}
	r := dht.Record{Key: KeyRecordKey(lease.Address), Seq: uint64(lease.Issued), Value: v}
	if err := r.Sign(h.Identity().SigningKey()); err != nil {
		h.Logger().Warn("could not sign the key record", "err", err)
		return
	}
	var published bool // PutPatiently calls both functions on this goroutine
	h.PutPatiently(ctx, r, "onion key", publishRetries, publishTimeout,
		func(id.Address) bool { return published },
		func(id.Address, int) { published = true })
}

// hopCache keeps the verified onion keys of candidate hops.
type hopCache struct {
	mu sync.Mutex
	m  map[id.Address]cachedHop
}

type cachedHop struct {
	key []byte
	at  time.Time
}

func (c *hopCache) get(a id.Address, now time.Time) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[a]
	if !ok || now.Sub(e.at) > hopCacheTTL || now.Before(e.at) {
		return nil
	}
	return e.key
}

func (c *hopCache) put(a id.Address, key []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[id.Address]cachedHop{}
	}
	if _, ok := c.m[a]; !ok && len(c.m) >= MaxHopCache {
		for k := range c.m { // any one: the cache is only a saving
			delete(c.m, k)
			break
		}
	}
	c.m[a] = cachedHop{key: key, at: now}
}

// hopKey returns the onion key of the node at addr from its KeyRecord in
// the DHT, which must verify: signed by the key of a lease that a
// trusted relay issued for addr.
func (s *Service) hopKey(ctx context.Context, addr id.Address) ([]byte, error) {
	h := s.h
	now := h.Clock().Now()
	if k := s.hops.get(addr, now); k != nil {
		return k, nil
	}
	ctx, cancel := context.WithTimeout(ctx, keyFetchTimeout)
	defer cancel()
	recs, err := h.Get(ctx, KeyRecordKey(addr))
	if err != nil && len(recs) == 0 {
		return nil, err
	}
	var best *wire.KeyRecord
	var why error = fmt.Errorf("no key record for %s", addr.Short())
	for _, r := range recs {
		kr, err := verifyKeyRecord(&r, addr, h.VerifyLease)
		if err != nil {
			why = err
			continue
		}
		if best == nil || kr.Lease.Issued > best.Lease.Issued {
			best = kr
		}
	}
	if best == nil {
		return nil, why
	}
	s.hops.put(addr, best.OnionKey, now)
	return best.OnionKey, nil
}

// verifyKeyRecord checks r as the KeyRecord of addr.
func verifyKeyRecord(r *dht.Record, addr id.Address, verifyLease func(*wire.Lease) error) (*wire.KeyRecord, error) {
	if err := r.Verify(); err != nil {
		return nil, err
	}
	m, err := wire.Unmarshal(r.Value)
	if err != nil {
		return nil, err
	}
	kr, ok := m.(*wire.KeyRecord)
	switch {
	case !ok:
		return nil, fmt.Errorf("a record of type %d under a key record's key", m.Type())
	case kr.Lease.Address != addr:
		return nil, fmt.Errorf("a key record of %s under %s's key", kr.Lease.Address.Short(), addr.Short())
	case kr.Lease.SignKey != r.Signer:
		return nil, errors.New("a key record signed by another key than its lease's")
	}
	if err := verifyLease(&kr.Lease); err != nil {
		return nil, err
	}
	if _, err := onion.Hybrid(kr.OnionKey); err != nil {
		return nil, err
	}
	return kr, nil
}
