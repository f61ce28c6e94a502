// Package nodetest builds swarms of real nodes in one process for the
// tests of the node's capabilities: nodes admitted by an in-process relay
// identity (no relay connection) and linked over in-memory pipes, with a
// control and a bulk channel each, through the node's real handshake.
// From there everything is the real node: its DHT, its overlay routing,
// its capabilities.
package nodetest

import (
	"context"
	"sort"
	"testing"
	"time"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Zone is the zone every swarm node is admitted to.
const Zone = "z"

// Swarm is a set of admitted nodes that trust one relay identity.
type Swarm struct {
	t     testing.TB
	Relay *identity.Identity // signs the nodes' leases
	Info  wire.RelayInfo     // that relay, as nodes trust it
	Nodes []*node.Node
	// RelayFeatures are what the (absent) relay announced to the nodes.
	RelayFeatures wire.Features
}

// Options shape a swarm.
type Options struct {
	// Config, if set, adjusts node i's configuration (e.g. its
	// Capabilities, which must be new values for every node). Relay,
	// Store and Transport are filled in unless set.
	Config func(i int, c *node.Config)
	// Trusted are more relays every node trusts, beside the swarm's own
	// (a name's home relay in another zone, say).
	Trusted []wire.RelayInfo
	// RelayFeatures are what the relay announces (default none).
	RelayFeatures wire.Features
	// Flags, parallel to the swarm's relay and then Trusted, are what the
	// admission vouches for about each (nil: every one trusted, and
	// running the username service if RelayFeatures lists it).
	Flags []wire.RelayFlags
}

// New makes count nodes, each admitted with a lease for its own address
// (nonces 0, 1, …), and closes them when the test ends.
func New(t testing.TB, count int, opts Options) *Swarm {
	t.Helper()
	relay, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	s := &Swarm{t: t, Relay: relay, Info: wire.RelayInfo{Zone: Zone, URL: "http://127.0.0.1:1", Key: relay.SignKey()}, RelayFeatures: opts.RelayFeatures}
	net := transport.NewNetwork()
	relays := append([]wire.RelayInfo{s.Info}, opts.Trusted...)
	for i := 0; i < count; i++ {
		c := node.Config{}
		if opts.Config != nil {
			opts.Config(i, &c)
		}
		if c.Relay == "" {
			c.Relay = s.Info.URL
		}
		if c.Store == nil {
			c.Store = store.NewMemory()
		}
		if c.Transport == nil {
			c.Transport = net.Transport()
		}
		n, err := node.New(c)
		if err != nil {
			t.Fatal(err)
		}
		var nonce [16]byte
		nonce[0], nonce[1] = byte(i), byte(i>>8)
		clk := c.Clock
		if clk == nil {
			clk = clock.System
		}
		now := clk.Now()
		sign, agree := n.Keys()
		lease := relay.IssueLease(sign, agree, nonce, Zone, now, 7*24*time.Hour)
		if err := n.AdmitLocal(lease, relays, opts.Flags, s.RelayFeatures); err != nil {
			t.Fatal(err)
		}
		s.Nodes = append(s.Nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range s.Nodes {
			n.Close()
		}
	})
	return s
}

// Link opens a control and a bulk channel between a and b, as a
// signaled data channel would: an in-memory session pair (its bulk
// channel has back-pressure, as WebRTC's does), signaled directly.
func (s *Swarm) Link(a, b *node.Node) {
	s.t.Helper()
	ca, cb, ba, bb, err := sessionPair()
	if err == nil {
		err = node.Link(a, b, ca, cb, ba, bb)
	}
	if err != nil {
		s.t.Fatalf("link %s–%s: %v", a.Address().Short(), b.Address().Short(), err)
	}
}

// sessionPair connects two in-memory sessions and returns their control
// and bulk channels.
func sessionPair() (ca, cb, ba, bb transport.Conn, err error) {
	mem := transport.NewNetwork().Transport()
	var sb transport.Session
	ready := make(chan struct{})
	deliver := func(to *transport.Session) transport.SendFunc {
		return func(kind wire.SignalKind, data string) {
			go func() {
				<-ready
				(*to).Handle(kind, data)
			}()
		}
	}
	var sa transport.Session
	if sa, err = mem.NewSession(true, deliver(&sb)); err != nil {
		return
	}
	if sb, err = mem.NewSession(false, deliver(&sa)); err != nil {
		return
	}
	close(ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []struct {
		s    transport.Session
		name string
		into *transport.Conn
	}{{sa, transport.Control, &ca}, {sb, transport.Control, &cb}, {sa, transport.Bulk, &ba}, {sb, transport.Bulk, &bb}} {
		if *c.into, err = c.s.Channel(ctx, c.name); err != nil {
			return
		}
	}
	return
}

// KademliaLinks links every node to the closest other node in each of
// its buckets: enough channels for greedy routing to reach anyone.
func (s *Swarm) KademliaLinks() {
	linked := map[[2]id.Address]bool{}
	for _, a := range s.Nodes {
		best := map[int]*node.Node{}
		for _, b := range s.Nodes {
			if a == b {
				continue
			}
			k := id.CommonPrefixLen(a.Address(), b.Address())
			if best[k] == nil || id.Closer(a.Address(), b.Address(), best[k].Address()) {
				best[k] = b
			}
		}
		keys := make([]int, 0, len(best))
		for k := range best {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			b := best[k]
			x, y := a.Address(), b.Address()
			if x.Compare(y) > 0 {
				x, y = y, x
			}
			if !linked[[2]id.Address{x, y}] {
				linked[[2]id.Address{x, y}] = true
				s.Link(a, b)
			}
		}
	}
}
