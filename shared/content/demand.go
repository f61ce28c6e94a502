package content

import (
	"math"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/dht"
)

// Demand: a chunk in demand gets more replicas, one more for every
// doubling, and loses them again as demand falls.
const (
	// DemandHalfLife is how fast the demand for a chunk fades: a request
	// served this long ago counts half as much as one served now.
	DemandHalfLife = time.Hour
	// DemandBase is the demand (requests served here, each weighted by
	// its age as DemandHalfLife says) from which replicas are added: a
	// demand of 2×DemandBase gives one replica beyond Replicas, 4× two,
	// 8× three...
	DemandBase = 8
	// MaxReplicas caps the replicas demand can ask for: the DHT keeps the
	// records of at most dht.MaxSigners providers under one key, and a
	// holder no one can find would count as missing, so repair would add
	// more forever. (Beyond it, the nodes that downloaded an item and
	// keep it as cache serve it too.)
	MaxReplicas = dht.MaxSigners - 1
	// MaxDemandTracked bounds the chunks whose demand is remembered; the
	// least demanded are forgotten first.
	MaxDemandTracked = 4096
)

// demandRate is an exponentially decaying count of requests: value at the time
// at.
type demandRate struct {
	value float64
	at    time.Time
}

// now is the rate's value decayed to t.
func (d *demandRate) now(t time.Time) float64 {
	dt := t.Sub(d.at)
	if dt <= 0 {
		return d.value
	}
	return d.value * math.Exp2(-float64(dt)/float64(DemandHalfLife))
}

// served records that this node served chunk h (one request).
func (r *replicator) served(h chunk.Hash) {
	t := r.clk.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.demand[h]
	if d == nil {
		if len(r.demand) >= MaxDemandTracked {
			r.forgetDemandLocked(t)
		}
		d = &demandRate{at: t}
		r.demand[h] = d
	}
	d.value, d.at = d.now(t)+1, t
}

// forgetDemandLocked drops the least demanded chunk's count, and every
// count that has faded below one request. r.mu is held.
func (r *replicator) forgetDemandLocked(t time.Time) {
	var least chunk.Hash
	lv := math.Inf(1)
	for h, d := range r.demand {
		v := d.now(t)
		if v < 1 {
			delete(r.demand, h)
			continue
		}
		if v < lv {
			least, lv = h, v
		}
	}
	if len(r.demand) >= MaxDemandTracked {
		delete(r.demand, least)
	}
}

// demandOf is the decayed demand for h now.
func (r *replicator) demandOf(h chunk.Hash) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d := r.demand[h]; d != nil {
		return d.now(r.clk.Now())
	}
	return 0
}

// target is how many replicas h should have, seen from a holder that
// counts live copies of it (its own included): Replicas, plus one for
// every doubling of the demand for h from DemandBase, at most MaxReplicas
// (one fewer than the providers the DHT keeps under a key: the
// publisher's copy is the one more).
//
// The demand is estimated as what this node served times the live
// copies: downloads spread over the holders, so each sees its share, and
// the estimate does not fall just because replicas were added (which
// would remove them again, and so on).
func (r *replicator) target(h chunk.Hash, live int) int {
	n := r.cfg.Replicas
	if v := r.demandOf(h) * float64(max(live, 1)); v >= DemandBase {
		n += int(math.Floor(math.Log2(v / DemandBase)))
	}
	return min(n, MaxReplicas)
}
