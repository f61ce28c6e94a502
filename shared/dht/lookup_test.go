package dht

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"ddt/shared/id"
	"ddt/shared/wire"
)

func TestLookupFindsEveryNode(t *testing.T) {
	n := newTestNet(1)
	ds := n.swarm(t, 300, Config{})
	ctx := context.Background()
	var hops []int
	for i, target := range ds {
		from := ds[(i*7+3)%len(ds)]
		if from == target {
			continue
		}
		res, err := from.Lookup(ctx, target.Self())
		if err != nil || !res.Found {
			t.Fatalf("lookup %d: found=%v err=%v", i, res.Found, err)
		}
		if len(res.Closest) == 0 || res.Closest[0] != target.Self() {
			t.Fatalf("lookup %d: Closest does not start with the target", i)
		}
		hops = append(hops, res.Hops)
	}
	slices.Sort(hops)
	if med, worst := hops[len(hops)/2], hops[len(hops)-1]; med > 2 || worst > 4 {
		t.Errorf("hops: median %d, worst %d", med, worst)
	}
}

// trueClosest returns the k addresses of the network closest to target,
// other than skip.
func trueClosest(n *testNet, target, skip id.Address, k int) []id.Address {
	all := slices.DeleteFunc(n.live(), func(a id.Address) bool { return a == skip })
	sortByDistance(target, all)
	return all[:min(k, len(all))]
}

func TestLookupConvergesOnTheClosest(t *testing.T) {
	n := newTestNet(2)
	ds := n.swarm(t, 300, Config{})
	for i := range 30 {
		target := n.address() // nobody's address
		from := ds[i*9]
		res, err := from.Lookup(context.Background(), target)
		if err != nil || res.Found {
			t.Fatalf("lookup of an empty address: found=%v err=%v", res.Found, err)
		}
		if want := trueClosest(n, target, from.Self(), DefaultK); !slices.Equal(res.Closest, want) {
			t.Fatalf("Closest differs from the true %d closest:\n got %v\nwant %v", DefaultK, res.Closest, want)
		}
		if res.Messages > messagesPerK*DefaultK || res.Hops > maxRounds {
			t.Fatalf("unbounded: %+v", res)
		}
	}
	// Every node's own neighbourhood is in its table after bootstrap.
	for _, d := range ds {
		want := trueClosest(n, d.Self(), d.Self(), DefaultK)
		got := d.Closest(d.Self(), DefaultK)
		if !slices.Equal(got, want) {
			t.Fatalf("%s does not know its %d closest", d.Self().Short(), DefaultK)
		}
	}
}

func TestLookupDepartedNode(t *testing.T) {
	n := newTestNet(3)
	ds := n.swarm(t, 100, Config{})
	gone := ds[50].Self()
	n.leave(gone)
	res, err := ds[10].Lookup(context.Background(), gone)
	if err != nil || res.Found {
		t.Fatalf("lookup of a departed node: found=%v err=%v", res.Found, err)
	}
	if slices.Contains(res.Closest, gone) {
		t.Fatal("a departed node is among the closest live nodes")
	}
}

func TestLookupWithoutContacts(t *testing.T) {
	n := newTestNet(4)
	d := n.add(Config{})
	if _, err := d.Lookup(context.Background(), n.address()); !errors.Is(err, ErrNoContacts) {
		t.Fatalf("lookup with an empty table: %v", err)
	}
	if _, _, err := d.Get(context.Background(), n.address()); !errors.Is(err, ErrNoContacts) {
		t.Fatalf("get with an empty table: %v", err)
	}
}

// TestLookupSurvivesBadNodes puts nodes in the swarm that answer with
// random contacts, far too many contacts, made-up contacts right next to
// the target, or garbage. Every honest node must still be found, within
// the lookup's bounds.
func TestLookupSurvivesBadNodes(t *testing.T) {
	n := newTestNet(5)
	ds := n.swarm(t, 300, Config{})
	kinds := []handler{
		func(id.Address, wire.Message) (wire.Message, error) { // random contacts
			cs := make([]id.Address, DefaultK)
			for i := range cs {
				cs[i] = n.address()
			}
			return &wire.Nodes{Contacts: cs}, nil
		},
		func(id.Address, wire.Message) (wire.Message, error) { // too many contacts, self-references
			cs := make([]id.Address, wire.MaxContacts)
			for i := range cs {
				cs[i] = ds[i].Self()
			}
			return &wire.Nodes{Contacts: cs}, nil
		},
		func(_ id.Address, req wire.Message) (wire.Message, error) { // made up, closer than anyone
			target := req.(*wire.FindNode).Target
			cs := make([]id.Address, DefaultK)
			for i := range cs {
				cs[i] = target
				cs[i][id.Len-1] ^= byte(i + 1)
			}
			return &wire.Nodes{Contacts: cs}, nil
		},
		func(id.Address, wire.Message) (wire.Message, error) { return &wire.Pong{}, nil }, // garbage
	}
	bad := map[id.Address]bool{}
	for i := 0; i < len(ds); i += 10 { // one node in ten
		n.fake[ds[i].Self()] = kinds[(i/10)%len(kinds)]
		bad[ds[i].Self()] = true
	}
	ctx := context.Background()
	for i, target := range ds {
		from := ds[(i*13+1)%len(ds)]
		if bad[target.Self()] || bad[from.Self()] || from == target {
			continue
		}
		res, err := from.Lookup(ctx, target.Self())
		if err != nil || !res.Found {
			t.Fatalf("lookup %d with bad nodes around: %+v %v", i, res, err)
		}
		if res.Messages > messagesPerK*DefaultK {
			t.Fatalf("lookup sent %d messages", res.Messages)
		}
	}
	// A node that answers garbage is not found, and after three tries it
	// is out of the asker's table.
	garbage, from := ds[30].Self(), ds[31]
	from.Seen(garbage)
	for range maxFailures {
		if res, _ := from.Lookup(ctx, garbage); res.Found {
			t.Fatal("a node answering garbage counts as found")
		}
	}
	for _, c := range from.Contacts() {
		if c.Address == garbage {
			t.Fatalf("the garbage node is still a contact: %+v", c)
		}
	}
}

// TestLookupSurvivesALiar is the worst case for one lookup: every contact
// it starts from answers with made-up addresses next to the target.
func TestLookupSurvivesALiar(t *testing.T) {
	n := newTestNet(6)
	ds := n.swarm(t, 200, Config{})
	from, target := ds[0], ds[150]
	for _, a := range from.Closest(target.Self(), DefaultAlpha) {
		n.fake[a] = func(_ id.Address, req wire.Message) (wire.Message, error) {
			t := req.(*wire.FindNode).Target
			cs := make([]id.Address, DefaultK)
			for i := range cs {
				cs[i] = t
				cs[i][id.Len-1] ^= byte(i + 1)
			}
			return &wire.Nodes{Contacts: cs}, nil
		}
	}
	res, err := from.Lookup(context.Background(), target.Self())
	if err != nil || !res.Found {
		t.Fatalf("lookup past liars: %+v %v", res, err)
	}
}

func TestUnresponsiveNodeCostsOnlyItsTimeout(t *testing.T) {
	n := newTestNet(7)
	ds := n.swarm(t, 100, Config{})
	from, target := ds[0], ds[60]
	// The contact from asks first never answers.
	hole := from.Closest(target.Self(), 1)[0]
	if hole == target.Self() {
		t.Skip("target is from's closest contact")
	}
	n.holes[hole] = true
	const timeout = 100 * time.Millisecond
	from.cfg.Timeout = timeout
	before := n.callsTo(hole)
	start := time.Now()
	res, err := from.Lookup(context.Background(), target.Self())
	took := time.Since(start)
	if err != nil || !res.Found {
		t.Fatalf("lookup around a silent node: %+v %v", res, err)
	}
	if got := n.callsTo(hole) - before; got != 1 {
		t.Fatalf("the silent node was asked %d times", got)
	}
	// One round waited for the timeout; nothing else waits in memory.
	if took < timeout || took > timeout+2*time.Second {
		t.Fatalf("lookup took %v with one silent node and a %v timeout", took, timeout)
	}
	for _, c := range from.Contacts() {
		if c.Address == hole && c.Failures != 1 {
			t.Fatalf("silent node has %d failures", c.Failures)
		}
	}
}

func TestLookupHonoursContext(t *testing.T) {
	n := newTestNet(8)
	ds := n.swarm(t, 50, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ds[0].Lookup(ctx, ds[40].Self()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled lookup: %v", err)
	}
	// Cancelling is not the contacts' fault.
	for _, c := range ds[0].Contacts() {
		if c.Failures != 0 {
			t.Fatal("a cancelled lookup counted failures")
		}
	}
}
