package node

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"time"

	"ddt/shared/dht"
	"ddt/shared/id"
)

// Connection budget.
const (
	// DefaultMaxPeers is how many data channels a node keeps open unless
	// configured otherwise: browsers cope with a few dozen.
	DefaultMaxPeers = 32
	// budgetSlack is how far incoming offers may push past the budget
	// before they are refused; the excess is trimmed right after.
	budgetSlack = 8
	// refillBelow: a node left with fewer channels than this (or than its
	// budget) opens more at once instead of at the next maintenance.
	refillBelow = 4
	// fillEvery is how often empty buckets are looked for.
	fillEvery = 10 * time.Second
)

// settleTime protects a new channel from trimming, so two nodes that trim
// differently do not close what they just opened. A variable for tests.
var settleTime = 30 * time.Second

// table returns the node's DHT, nil before admission.
func (n *Node) table() *dht.DHT {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dht
}

// joinedAs makes the DHT for addr, unless it exists already: a node that
// comes back with a new address starts a new table and announces itself
// anew with a self-lookup.
func (n *Node) joinedAs(addr id.Address) *dht.DHT {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dht != nil && n.dhtSelf == addr {
		return n.dht
	}
	n.dht = dht.New(dht.Config{Self: addr, Network: network{n}, Now: n.clock.Now, Logger: n.log.With("part", "dht")})
	n.dhtSelf = addr
	for a := range n.peers {
		n.dht.Seen(a)
	}
	return n.dht
}

// announce looks up the node's own address and refreshes every bucket,
// which fills its routing table and puts it in the tables of the nodes
// closest to it.
func (n *Node) announce(ctx context.Context, d *dht.DHT, self id.Address) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := d.Bootstrap(ctx)
	if err != nil {
		n.log.Info("self-lookup failed", "err", err)
		return
	}
	n.log.Info("announced", "hops", r.Hops, "messages", r.Messages, "contacts", len(d.Contacts()))
	n.fill()
}

// maintain keeps the table and the connection set healthy until ctx ends.
func (n *Node) maintain(ctx context.Context) {
	t := n.clock.NewTicker(n.cfg.MaintainEvery)
	defer t.Stop()
	// Covering buckets is local bookkeeping and costs nothing when they
	// are covered, so it runs often: a first connection that failed, or a
	// channel the other side closed, is replaced within seconds.
	f := n.clock.NewTicker(fillEvery)
	defer f.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.C():
			n.fill()
			n.trim()
			continue
		case <-t.C():
		}
		if d := n.table(); d != nil {
			// Open channels answer keepalives every few seconds: they are
			// alive whether or not the DHT has asked them anything.
			for _, p := range n.Peers() {
				d.Seen(p.Address)
			}
			d.Maintain(ctx)
			n.fill()
			n.trim()
		}
	}
}

// LookupResult is the outcome of Lookup.
type LookupResult = dht.Result

// Lookup finds the node at target through the DHT.
func (n *Node) Lookup(ctx context.Context, target id.Address) (LookupResult, error) {
	d := n.table()
	if d == nil {
		return LookupResult{}, ErrNotAdmitted
	}
	return d.Lookup(ctx, target)
}

// Get collects the valid records the DHT holds under key, as any node
// may ask (FIND_VALUE to the closest nodes). Records are opaque here:
// a username record, for one, is sealed with its name (see Resolve).
func (n *Node) Get(ctx context.Context, key id.Address) ([]dht.Record, error) {
	d := n.table()
	if d == nil {
		return nil, ErrNotAdmitted
	}
	recs, _, err := d.Get(ctx, key)
	return recs, err
}

// Bucket is one non-empty bucket of the routing table, as the page shows
// it: Index is the number of leading bits its addresses share with this
// node's.
type Bucket struct {
	Index     int
	Contacts  int // in the table
	Connected int // with an open data channel
}

// Routing describes the routing table, bucket by bucket.
func (n *Node) Routing() []Bucket {
	d := n.table()
	if d == nil {
		return nil
	}
	n.mu.Lock()
	conn := map[int]int{}
	for a := range n.peers {
		conn[id.CommonPrefixLen(n.lease.Address, a)]++
	}
	n.mu.Unlock()
	var out []Bucket
	for _, b := range d.Buckets() {
		out = append(out, Bucket{Index: b.Index, Contacts: b.Contacts, Connected: conn[b.Index]})
	}
	return out
}

// Connect opens a data channel to addr and keeps it open (it is never
// trimmed) until Disconnect. The offer and answer are routed through the
// overlay when a connected peer is closer to addr; otherwise, or if that
// fails, through the relay.
func (n *Node) Connect(ctx context.Context, addr id.Address) (PeerInfo, error) {
	n.mu.Lock()
	self := n.lease.Address
	if self.IsZero() {
		n.mu.Unlock()
		return PeerInfo{}, ErrNotAdmitted
	}
	if addr == self {
		n.mu.Unlock()
		return PeerInfo{}, fmt.Errorf("node: %s is this node", addr.Short())
	}
	n.locked[addr] = true
	n.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			n.mu.Lock()
			delete(n.locked, addr)
			n.mu.Unlock()
		}
	}()
	tried := map[string]bool{}
	for {
		if p := n.peer(addr); p != nil {
			ok = true
			return p.info(), nil
		}
		n.mu.Lock()
		d := n.dials[addr]
		n.mu.Unlock()
		if d == nil {
			via := ViaOverlay
			if tried[ViaOverlay] || n.nextHop(addr, id.Address{}, true) == nil {
				via = ViaRelay
			}
			if tried[via] {
				return PeerInfo{}, fmt.Errorf("node: could not open a data channel to %s", addr.Short())
			}
			if via == ViaRelay && !n.relayUp() {
				return PeerInfo{}, fmt.Errorf("%w to %s, and the relay is away", ErrNoRoute, addr.Short())
			}
			tried[via] = true
			n.log.Info("connecting", "peer", addr.Short(), "via", via)
			if d = n.connectTo(addr, via, false, false); d == nil {
				continue // raced with an incoming offer, or the peer appeared
			}
		}
		select {
		case <-d.done:
		case <-ctx.Done():
			return PeerInfo{}, ctx.Err()
		}
	}
}

// Disconnect closes the data channel to addr, if any, and lets the
// budget manage it again.
func (n *Node) Disconnect(addr id.Address) bool {
	n.mu.Lock()
	delete(n.locked, addr)
	p := n.peers[addr]
	n.mu.Unlock()
	if p == nil {
		return false
	}
	p.close("closed by the user", true)
	return true
}

// roomForLocked reports whether another channel fits: outgoing attempts
// keep to the budget; incoming offers, and attempts that cover an empty
// bucket, may use the slack. Offers still pending are not counted (their
// own limits, MaxPendingOffers and MaxOffersPerSignaler, bound them), so
// offers that never open cannot keep the node from its own dials; the
// ones that do open count from then on, and trim closes any excess.
func (n *Node) roomForLocked(slack bool) bool {
	used := len(n.peers)
	for _, d := range n.dials {
		if d.initiator {
			used++
		}
	}
	if slack {
		return used < n.cfg.MaxPeers+budgetSlack
	}
	return used < n.cfg.MaxPeers
}

// trim closes channels over the budget. It keeps locked channels, new
// ones, and the routing spread: it closes the least recently used channel
// of the bucket with the most open channels, so every bucket that has a
// channel keeps one and greedy routing still makes progress everywhere.
func (n *Node) trim() {
	for {
		n.mu.Lock()
		if len(n.peers) <= n.cfg.MaxPeers {
			n.mu.Unlock()
			return
		}
		self := n.lease.Address
		perBucket := map[int]int{}
		for a := range n.peers {
			perBucket[id.CommonPrefixLen(self, a)]++
		}
		var victim *peer
		var vCount int
		var vUsed time.Time
		now := n.clock.Now()
		for a, p := range n.peers {
			if n.locked[a] || now.Sub(p.since) < n.settle {
				continue
			}
			c, used := perBucket[id.CommonPrefixLen(self, a)], p.used()
			if victim == nil || c > vCount || (c == vCount && used.Before(vUsed)) {
				victim, vCount, vUsed = p, c, used
			}
		}
		n.mu.Unlock()
		if victim == nil {
			return // everything is locked or new; trim again later
		}
		victim.close("over the connection budget", true)
	}
}

// fill opens channels, through the overlay, to contacts in buckets that
// have none, closest first, using the budget's slack if need be (trimming
// then closes channels of crowded buckets). A channel in every non-empty
// bucket is what lets routed messages reach any address.
func (n *Node) fill() {
	d := n.table()
	if d == nil {
		return
	}
	n.mu.Lock()
	self := n.lease.Address
	now := n.clock.Now()
	for a, t := range n.closedAt {
		if now.Sub(t) > n.settle {
			delete(n.closedAt, a)
		}
	}
	recent := maps.Clone(n.closedAt)
	covered := map[int]bool{}
	for a := range n.peers {
		covered[id.CommonPrefixLen(self, a)] = true
	}
	for a := range n.dials {
		covered[id.CommonPrefixLen(self, a)] = true
	}
	n.mu.Unlock()
	contacts := d.Contacts()
	sort.Slice(contacts, func(i, j int) bool { return id.Closer(self, contacts[i].Address, contacts[j].Address) })
	for _, c := range contacts {
		b := id.CommonPrefixLen(self, c.Address)
		if covered[b] || c.Failures > 0 {
			continue
		}
		if _, lately := recent[c.Address]; lately {
			// Closed moments ago, by us, by the user or by its side's
			// budget: opening it again would only churn.
			continue
		}
		n.mu.Lock()
		room := n.roomForLocked(true)
		n.mu.Unlock()
		if !room {
			return
		}
		covered[b] = true
		via := ViaOverlay
		if n.nextHop(c.Address, id.Address{}, true) == nil {
			via = ViaRelay
		}
		n.connectTo(c.Address, via, true, true)
	}
}

// relayUp reports whether the relay link is open for signaling.
func (n *Node) relayUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.relayOut != nil
}
