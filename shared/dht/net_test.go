package dht

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/wire"
)

var errGone = errors.New("testnet: node unreachable")

// handler answers a request in place of a DHT (to play a bad node).
type handler func(from id.Address, req wire.Message) (wire.Message, error)

// testNet connects DHTs in memory. Every request and reply goes through
// the wire codec, as it would between two nodes, and refusals come back
// as wire.Error replies, as the node layer sends them.
type testNet struct {
	mu     sync.Mutex
	nodes  map[id.Address]*DHT
	fake   map[id.Address]handler
	holes  map[id.Address]bool // never answer: a call waits for its context
	calls  map[id.Address]int
	sent   atomic.Int64
	clock  *clock.Virtual
	random *rand.Rand
}

func newTestNet(seed uint64) *testNet {
	return &testNet{
		nodes:  map[id.Address]*DHT{},
		fake:   map[id.Address]handler{},
		holes:  map[id.Address]bool{},
		calls:  map[id.Address]int{},
		clock:  clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		random: rand.New(rand.NewPCG(seed, 1)),
	}
}

type endpoint struct {
	n    *testNet
	self id.Address
}

func (e endpoint) Call(ctx context.Context, to id.Address, req wire.Message) (wire.Message, error) {
	n := e.n
	n.sent.Add(1)
	n.mu.Lock()
	n.calls[to]++
	d, fake, hole := n.nodes[to], n.fake[to], n.holes[to]
	n.mu.Unlock()
	req = throughWire(req)
	var reply wire.Message
	var err error
	switch {
	case hole:
		<-ctx.Done()
		return nil, ctx.Err()
	case fake != nil:
		reply, err = fake(e.self, req)
	case d != nil:
		reply, err = d.Handle(e.self, req)
	default:
		return nil, errGone
	}
	if err != nil {
		reply = &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}
	}
	if reply == nil {
		return nil, errGone
	}
	return throughWire(reply), nil
}

// throughWire encodes and decodes m; a message that cannot cross the
// wire is a test failure waiting to happen, so it panics.
func throughWire(m wire.Message) wire.Message {
	b, err := wire.Marshal(m)
	if err != nil {
		panic(err)
	}
	out, err := wire.Unmarshal(b)
	if err != nil {
		panic(err)
	}
	return out
}

func (n *testNet) address() id.Address {
	var a id.Address
	for i := range a {
		a[i] = byte(n.random.Uint32())
	}
	return a
}

// add creates a DHT at a random address (not yet connected to anyone).
func (n *testNet) add(cfg Config) *DHT {
	if cfg.Self.IsZero() {
		cfg.Self = n.address()
	}
	cfg.Network = endpoint{n: n, self: cfg.Self}
	cfg.Now = n.clock.Now
	d := New(cfg)
	n.mu.Lock()
	n.nodes[cfg.Self] = d
	n.mu.Unlock()
	return d
}

// leave takes a node off the network without a word.
func (n *testNet) leave(a id.Address) {
	n.mu.Lock()
	delete(n.nodes, a)
	n.mu.Unlock()
}

func (n *testNet) callsTo(a id.Address) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[a]
}

// swarm builds count DHTs that join one after another, each knowing a few
// earlier ones, as a relay would introduce them.
func (n *testNet) swarm(t testing.TB, count int, cfg Config) []*DHT {
	t.Helper()
	ds := make([]*DHT, 0, count)
	for range count {
		d := n.add(cfg)
		for range min(len(ds), 8) {
			d.Seen(ds[n.random.IntN(len(ds))].Self())
		}
		if len(ds) > 0 {
			if _, err := d.Bootstrap(context.Background()); err != nil {
				t.Fatalf("bootstrap: %v", err)
			}
		}
		ds = append(ds, d)
	}
	return ds
}

// live returns the addresses of the DHTs on the network.
func (n *testNet) live() []id.Address {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]id.Address, 0, len(n.nodes))
	for a := range n.nodes {
		out = append(out, a)
	}
	return out
}

// maintainAll runs Maintain on every DHT on the network.
func (n *testNet) maintainAll() {
	n.mu.Lock()
	ds := make([]*DHT, 0, len(n.nodes))
	for _, d := range n.nodes {
		ds = append(ds, d)
	}
	n.mu.Unlock()
	for _, d := range ds {
		d.Maintain(context.Background())
	}
}

func newKey(t testing.TB, seed byte) ed25519.PrivateKey {
	t.Helper()
	return ed25519Key(seed)
}

func ed25519Key(seed byte) ed25519.PrivateKey {
	var s [ed25519.SeedSize]byte
	s[0] = seed
	return ed25519.NewKeyFromSeed(s[:])
}

func signed(t testing.TB, priv ed25519.PrivateKey, key id.Address, seq uint64, value string) Record {
	t.Helper()
	r := Record{Key: key, Seq: seq, Value: []byte(value)}
	if err := r.Sign(priv); err != nil {
		t.Fatal(err)
	}
	return r
}
