package sim

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ddt/shared/clock"
	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/wire"
)

// ErrGone is what a call to a departed node returns, at once, standing in
// for the timeout a real caller would wait out.
var ErrGone = errors.New("sim: no answer (node departed)")

// Network connects the live nodes' DHTs by address.
type Network struct {
	mu       sync.RWMutex
	nodes    map[id.Address]*dht.DHT
	messages atomic.Int64
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{nodes: map[id.Address]*dht.DHT{}} }

// Endpoint returns the dht.Network that the node at self calls through.
func (n *Network) Endpoint(self id.Address) dht.Network { return endpoint{n: n, self: self} }

// Attach makes d reachable at its address.
func (n *Network) Attach(d *dht.DHT) {
	n.mu.Lock()
	n.nodes[d.Self()] = d
	n.mu.Unlock()
}

// Detach makes the node at a unreachable.
func (n *Network) Detach(a id.Address) {
	n.mu.Lock()
	delete(n.nodes, a)
	n.mu.Unlock()
}

// Messages returns how many requests were sent so far.
func (n *Network) Messages() int64 { return n.messages.Load() }

type endpoint struct {
	n    *Network
	self id.Address
}

var _ dht.Network = endpoint{}

// Call runs the callee's Handle on the caller's goroutine. A refusal
// comes back as a wire.Error reply, as the node layer sends it.
func (e endpoint) Call(ctx context.Context, to id.Address, req wire.Message) (wire.Message, error) {
	e.n.messages.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e.n.mu.RLock()
	d := e.n.nodes[to]
	e.n.mu.RUnlock()
	if d == nil {
		return nil, ErrGone
	}
	reply, err := d.Handle(e.self, req)
	if err != nil {
		return &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}, nil
	}
	return reply, nil
}

// Config configures a simulation. Zero fields take the defaults in
// brackets.
type Config struct {
	Seed uint64
	// DHT is the template for every node's dht.Config; Self, Network and
	// Now are set per node.
	DHT dht.Config
	// Workers run joins, maintenance and measurements in parallel
	// [GOMAXPROCS].
	Workers int
	// Lease is how long a departed node keeps its address [7 days].
	Lease time.Duration
	// Bootstrap contacts a newcomer gets: the closest existing nodes and
	// random ones [8 and 8].
	Closest, Random int
}

// Node is one simulated node.
type Node struct {
	Addr    id.Address
	DHT     *dht.DHT
	Live    bool
	Left    time.Time // when it departed, if not Live
	Records []dht.Record
	key     ed25519.PrivateKey // signs its records
	index   int                // in Sim.live, or -1
}

// Sim is one simulation.
type Sim struct {
	cfg   Config
	Clock *clock.Virtual
	Net   *Network

	mu       sync.Mutex
	rng      *rand.Rand
	live     []*Node
	departed []*Node
	sorted   []id.Address // live addresses, in order
	records  int
	results  []dht.Result // of Lookups since the last Measure
	requests int64        // Net.Messages at the last Measure
	// Puts since the last Measure: how many, how many stored anywhere,
	// and the copies stored in all.
	puts, putsStored, copies int
	last                     time.Time // wall time of the last Report
	start                    time.Time // virtual start
}

// New returns a simulation with no nodes.
func New(cfg Config) *Sim {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 7 * 24 * time.Hour
	}
	if cfg.Closest <= 0 {
		cfg.Closest = 8
	}
	if cfg.Random <= 0 {
		cfg.Random = 8
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &Sim{
		cfg:   cfg,
		Clock: clock.NewVirtual(start),
		Net:   NewNetwork(),
		rng:   rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		last:  time.Now(),
		start: start,
	}
}

// Live returns the live nodes.
func (s *Sim) Live() []*Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.live)
}

// Departed returns the nodes that left and have not returned.
func (s *Sim) Departed() []*Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.departed)
}

func (s *Sim) randomAddress() id.Address {
	var pub, nonce [16]byte
	for i := range pub {
		pub[i], nonce[i] = byte(s.rng.Uint32()), byte(s.rng.Uint32())
	}
	return id.Derive(pub[:], nonce[:])
}

// admitLocked makes n live at its address with a fresh DHT and returns its
// bootstrap contacts, as a relay would hand them out. s.mu is held.
func (s *Sim) admitLocked(n *Node) []id.Address {
	cfg := s.cfg.DHT
	cfg.Self = n.Addr
	cfg.Network = s.Net.Endpoint(n.Addr)
	cfg.Now = s.Clock.Now
	n.DHT = dht.New(cfg)
	contacts := closestIn(s.sorted, n.Addr, s.cfg.Closest)
	for range min(s.cfg.Random, len(s.live)) {
		contacts = append(contacts, s.live[s.rng.IntN(len(s.live))].Addr)
	}
	n.Live, n.index = true, len(s.live)
	s.live = append(s.live, n)
	at, _ := slices.BinarySearchFunc(s.sorted, n.Addr, id.Address.Compare)
	s.sorted = slices.Insert(s.sorted, at, n.Addr)
	s.Net.Attach(n.DHT)
	return contacts
}

// bootstrap gives n its contacts, runs dht.Bootstrap and publishes its
// records again.
func (s *Sim) bootstrap(ctx context.Context, n *Node, contacts []id.Address) {
	for _, c := range contacts {
		n.DHT.Seen(c)
	}
	if len(contacts) == 0 {
		return
	}
	n.DHT.Bootstrap(ctx)
	for _, r := range n.Records {
		s.put(ctx, n.DHT, r)
	}
}

// Join adds count new nodes, each bootstrapped from the nodes already
// there (joins run Workers at a time).
func (s *Sim) Join(count int) []*Node {
	out := make([]*Node, count)
	s.each(count, func(ctx context.Context, i int) {
		s.mu.Lock()
		n := &Node{Addr: s.randomAddress()}
		contacts := s.admitLocked(n)
		s.mu.Unlock()
		s.bootstrap(ctx, n, contacts)
		out[i] = n
	})
	return out
}

// Leave takes count random live nodes away, silently.
func (s *Sim) Leave(count int) []*Node {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Node
	for range min(count, len(s.live)) {
		n := s.live[s.rng.IntN(len(s.live))]
		s.leaveLocked(n)
		out = append(out, n)
	}
	return out
}

// LeaveNode takes n away, silently.
func (s *Sim) LeaveNode(n *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.Live {
		s.leaveLocked(n)
	}
}

// leaveLocked detaches n. s.mu is held.
func (s *Sim) leaveLocked(n *Node) {
	s.Net.Detach(n.Addr)
	last := s.live[len(s.live)-1]
	s.live[n.index], last.index = last, n.index
	s.live = s.live[:len(s.live)-1]
	if at, ok := slices.BinarySearchFunc(s.sorted, n.Addr, id.Address.Compare); ok {
		s.sorted = slices.Delete(s.sorted, at, at+1)
	}
	n.Live, n.Left, n.index = false, s.Clock.Now(), -1
	n.DHT = nil // a closed tab keeps nothing
	s.departed = append(s.departed, n)
}

// Return brings count random departed nodes back.
func (s *Sim) Return(count int) []*Node {
	s.mu.Lock()
	var back []*Node
	for range min(count, len(s.departed)) {
		back = append(back, s.departed[s.rng.IntN(len(s.departed))])
		s.departed = slices.DeleteFunc(s.departed, func(n *Node) bool { return n == back[len(back)-1] })
	}
	s.mu.Unlock()
	s.each(len(back), func(ctx context.Context, i int) { s.rejoin(ctx, back[i]) })
	return back
}

// ReturnNode brings a departed node back and reports its address: the same
// one if it was away for less than the lease period, a new one otherwise.
func (s *Sim) ReturnNode(n *Node) id.Address {
	s.mu.Lock()
	if n.Live {
		s.mu.Unlock()
		return n.Addr
	}
	s.departed = slices.DeleteFunc(s.departed, func(d *Node) bool { return d == n })
	s.mu.Unlock()
	s.rejoin(context.Background(), n)
	return n.Addr
}

func (s *Sim) rejoin(ctx context.Context, n *Node) {
	s.mu.Lock()
	if s.Clock.Now().Sub(n.Left) >= s.cfg.Lease {
		n.Addr = s.randomAddress() // the lease lapsed; the relay issues a new one
	}
	contacts := s.admitLocked(n)
	s.mu.Unlock()
	s.bootstrap(ctx, n, contacts)
}

// Advance moves the clock by d and then runs Maintain on every live node.
func (s *Sim) Advance(d time.Duration) {
	s.Clock.Advance(d)
	nodes := s.Live()
	s.each(len(nodes), func(ctx context.Context, i int) {
		if d := nodes[i].DHT; d != nil {
			d.Maintain(ctx)
		}
	})
}

// Publish has count random live nodes each publish one signed record; the
// owners keep them alive by republishing.
func (s *Sim) Publish(count int) {
	s.mu.Lock()
	owners := make([]*Node, 0, count)
	keys := make([]id.Address, 0, count)
	for range min(count, len(s.live)) {
		n := s.live[s.rng.IntN(len(s.live))]
		if n.key == nil {
			var seed [ed25519.SeedSize]byte
			for i := range seed {
				seed[i] = byte(s.rng.Uint32())
			}
			n.key = ed25519.NewKeyFromSeed(seed[:])
		}
		s.records++
		owners = append(owners, n)
		keys = append(keys, id.Derive([]byte("sim/record"), fmt.Append(nil, s.records)))
	}
	s.mu.Unlock()
	s.each(len(owners), func(ctx context.Context, i int) {
		n := owners[i]
		r := dht.Record{Key: keys[i], Seq: 1, Value: fmt.Appendf(nil, "record %d of %s", i, n.Addr.Short())}
		if err := r.Sign(n.key); err != nil {
			panic(err)
		}
		s.mu.Lock()
		n.Records = append(n.Records, r)
		d := n.DHT
		s.mu.Unlock()
		if d != nil {
			s.put(ctx, d, r)
		}
	})
}

// put publishes r from d and counts the outcome for the next Report.
func (s *Sim) put(ctx context.Context, d *dht.DHT, r dht.Record) {
	stored, _ := d.Put(ctx, r)
	s.mu.Lock()
	s.puts++
	if stored > 0 {
		s.putsStored++
	}
	s.copies += stored
	s.mu.Unlock()
}

// Lookup looks up target from the node at from.
func (s *Sim) Lookup(from *Node, target id.Address) (dht.Result, error) {
	if from.DHT == nil {
		return dht.Result{}, fmt.Errorf("sim: %s is not live", from.Addr.Short())
	}
	return from.DHT.Lookup(context.Background(), target)
}

// Holders returns how many live nodes have a in their routing table.
func (s *Sim) Holders(a id.Address) int {
	c := 0
	for _, n := range s.Live() {
		if slices.ContainsFunc(n.DHT.Contacts(), func(ct dht.Contact) bool { return ct.Address == a }) {
			c++
		}
	}
	return c
}

// each runs f(0..count-1) on Workers goroutines and waits for all.
func (s *Sim) each(count int, f func(ctx context.Context, i int)) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(s.cfg.Workers, count) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				f(ctx, i)
			}
		})
	}
	wg.Wait()
}

// closestIn returns the k addresses of sorted (in address order) closest
// to target by XOR distance, target itself left out. The addresses sharing
// at least L leading bits with target form one run of sorted; the longest
// prefix whose run holds k addresses bounds the search.
func closestIn(sorted []id.Address, target id.Address, k int) []id.Address {
	if k <= 0 || len(sorted) == 0 {
		return nil
	}
	_, present := slices.BinarySearchFunc(sorted, target, id.Address.Compare)
	var lo, hi int
	for l := id.Len * 8; l >= 0; l-- {
		lo, hi = prefixRun(sorted, target, l)
		n := hi - lo
		if present {
			n-- // target is in every run of its own prefixes
		}
		if n >= k {
			break
		}
	}
	run := slices.DeleteFunc(slices.Clone(sorted[lo:hi]), func(a id.Address) bool { return a == target })
	slices.SortFunc(run, func(a, b id.Address) int { return a.Xor(target).Compare(b.Xor(target)) })
	return run[:min(k, len(run))]
}

// prefixRun returns the range of sorted whose addresses share the first l
// bits of target.
func prefixRun(sorted []id.Address, target id.Address, l int) (int, int) {
	first, last := target, target
	for bit := l; bit < id.Len*8; bit++ {
		mask := byte(0x80) >> (bit % 8)
		first[bit/8] &^= mask
		last[bit/8] |= mask
	}
	lo, _ := slices.BinarySearchFunc(sorted, first, id.Address.Compare)
	hi, found := slices.BinarySearchFunc(sorted, last, id.Address.Compare)
	if found {
		hi++
	}
	return lo, hi
}
