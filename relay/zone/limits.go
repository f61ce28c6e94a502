package zone

import (
	"time"

	"golang.org/x/time/rate"
)

// RecentLimiters is how many departed nodes' rate limiters the zone
// remembers, so that a node that reconnects does not start on a full
// burst again; a limiter is remembered until it would have refilled
// anyway (OfferBurst/OfferRate, 16 s).
const RecentLimiters = 4096

// refillTime is how long after its node left a limiter is full again
// whatever it held: past it, remembering it changes nothing.
const refillTime = time.Duration(OfferBurst/OfferRate) * time.Second

// budget is a node's signaling allowance: it outlives the node's link,
// and goes to its next one.
type budget struct {
	signals *rate.Limiter
	offers  *rate.Limiter
}

func newBudget() *budget {
	return &budget{signals: rate.NewLimiter(SignalRate, SignalBurst), offers: rate.NewLimiter(OfferRate, OfferBurst)}
}

// kept is the budget of a node that left, and when it left.
type kept struct {
	budget *budget
	left   time.Time
}

// departure is one entry of the order budgets were kept in.
type departure struct {
	key  [32]byte
	left time.Time
}

// budgetForLocked is the budget a node with signKey starts with: that
// of the link it replaces, or the one it left with recently, or a full
// one. z.mu is held.
func (z *Zone) budgetForLocked(signKey [32]byte, old *Member) *budget {
	if old != nil {
		return old.budget
	}
	if k, ok := z.recent[signKey]; ok {
		delete(z.recent, signKey)
		return k.budget
	}
	return newBudget()
}

// keepBudgetLocked remembers a departing member's budget, forgetting
// those that have refilled by now and, past RecentLimiters, the oldest.
// z.mu is held.
func (z *Zone) keepBudgetLocked(m *Member) {
	now := z.clock.Now()
	for len(z.departures) > 0 && (len(z.recent) >= RecentLimiters || now.Sub(z.departures[0].left) >= refillTime) {
		d := z.departures[0]
		z.departures = z.departures[1:]
		if k, ok := z.recent[d.key]; ok && k.left.Equal(d.left) {
			delete(z.recent, d.key)
		}
	}
	z.recent[m.lease.SignKey] = kept{m.budget, now}
	z.departures = append(z.departures, departure{m.lease.SignKey, now})
}
