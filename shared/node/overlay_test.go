package node

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// swarm makes admitted nodes on one in-memory network, with no relay: all
// signaling must go through the overlay.
func swarm(t testing.TB, count int, cfg Config) []*Node {
	t.Helper()
	nodes, _ := swarmOf(t, count, cfg)
	return nodes
}

// swarmOf is swarm that also returns the relay identity that signed the
// nodes' leases (to sign more, a stranger's).
func swarmOf(t testing.TB, count int, cfg Config) ([]*Node, *identity.Identity) {
	t.Helper()
	relay, _ := identity.New()
	net := transport.NewNetwork()
	var nodes []*Node
	for i := 0; i < count; i++ {
		c := cfg
		c.Relay, c.Store = "http://127.0.0.1:1", store.NewMemory()
		if c.Transport == nil {
			c.Transport = net.Transport()
		}
		n, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		var nonce [16]byte
		nonce[0] = byte(i)
		n.lease = relay.IssueLease(n.id.SignKey(), n.id.AgreeKey(), nonce, "z", time.Now(), time.Hour)
		n.relayKey = relay.SignKey()
		n.joinedAs(n.lease.Address)
		nodes = append(nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.closePeers()
		}
	})
	return nodes, relay
}

// link opens a channel between a and b as if the relay had signaled it.
func link(a, b *Node) {
	ca, cb := transport.Pipe()
	a.addPeer(b.Address(), false, nil, ca, ca, ViaRelay)
	b.addPeer(a.Address(), false, nil, cb, cb, ViaRelay)
}

// byDistance sorts nodes by distance from target, closest first.
func byDistance(target id.Address, nodes []*Node) []*Node {
	out := append([]*Node(nil), nodes...)
	sort.Slice(out, func(i, j int) bool { return id.Closer(target, out[i].Address(), out[j].Address()) })
	return out
}

// chain links nodes so that a message from the first to the last must be
// forwarded by every one in between: each is closer to the last than the one
// before it.
func chain(nodes []*Node) []*Node {
	last := nodes[0]
	rest := byDistance(last.Address(), nodes[1:])
	ordered := append([]*Node{}, rest...)
	// farthest first, so each hop gets closer to last
	for i, j := 0, len(ordered)-1; i < j; i, j = i+1, j-1 {
		ordered[i], ordered[j] = ordered[j], ordered[i]
	}
	ordered = append(ordered, last)
	for i := 0; i+1 < len(ordered); i++ {
		link(ordered[i], ordered[i+1])
	}
	return ordered
}

func TestConnectThroughOverlay(t *testing.T) {
	ns := chain(swarm(t, 4, Config{}))
	a, z := ns[0], ns[len(ns)-1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := a.Connect(ctx, z.Address())
	if err != nil {
		t.Fatalf("connect through the overlay: %v", err)
	}
	if p.Via != ViaOverlay {
		t.Errorf("channel signaled via %q, want overlay", p.Via)
	}
	if _, err := a.Ping(ctx, z.Address()); err != nil {
		t.Errorf("ping over the new channel: %v", err)
	}
	if s := ns[1].OverlayStats(); s.Forwarded == 0 {
		t.Errorf("the first hop forwarded nothing: %+v", s)
	}
	// The new channel is locked: trimming leaves it alone; Disconnect frees it.
	if !a.Disconnect(z.Address()) || a.peer(z.Address()) != nil {
		t.Error("disconnect left the channel open")
	}
}

func TestConnectWithoutRoute(t *testing.T) {
	ns := swarm(t, 2, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// No channel at all and no relay: nothing can carry the offer.
	if _, err := ns[0].Connect(ctx, ns[1].Address()); err == nil {
		t.Fatal("connected without any way to signal")
	}
	if ns[0].locked[ns[1].Address()] {
		t.Error("a failed connect left the address locked")
	}
}

// routedFrom builds a routed Ping RPC from origin to dest, signed by signer.
func routedFrom(origin *Node, signer *Node, dest id.Address, nonce uint64) *wire.Routed {
	inner, _ := wire.Marshal(&wire.RPC{Nonce: 1, Frame: mustMarshal(&wire.Ping{ID: 5})})
	r := &wire.Routed{Dest: dest, TTL: wire.MaxTTL, Nonce: nonce, Time: origin.clock.Now().UnixMilli(), Origin: origin.lease, Frame: inner}
	r.Sig = signer.id.Sign(wire.RoutedSignedBytes(dest, nonce, r.Time, origin.Address(), inner))
	return r
}

func mustMarshal(m wire.Message) []byte {
	b, err := wire.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestRoutedRefusals(t *testing.T) {
	ns := swarm(t, 3, Config{})
	a, b, c := ns[0], ns[1], ns[2]
	link(a, b)
	from := b.peer(a.Address())

	// A message signed by someone else than its claimed origin.
	b.onRouted(from, routedFrom(c, a, b.Address(), 1))
	if s := b.OverlayStats(); s.Delivered != 0 || s.Dropped != 1 {
		t.Errorf("forged origin: %+v", s)
	}
	// A genuine one is delivered once; its replay is dropped.
	good := routedFrom(a, a, b.Address(), 2)
	b.onRouted(from, good)
	b.onRouted(from, good)
	if s := b.OverlayStats(); s.Delivered != 1 || s.Dropped != 2 {
		t.Errorf("replay: %+v", s)
	}
	// For someone else, with no connected peer closer: dropped, not bounced back.
	far := routedFrom(a, a, c.Address(), 3)
	b.onRouted(from, far)
	if s := b.OverlayStats(); s.Forwarded != 0 || s.Dropped != 3 {
		t.Errorf("no route: %+v", s)
	}
	// Out of hops.
	link(b, c)
	spent := routedFrom(a, a, c.Address(), 4)
	spent.TTL = 0
	b.onRouted(from, spent)
	if s := b.OverlayStats(); s.Forwarded != 0 || s.Dropped != 4 {
		t.Errorf("ttl 0: %+v", s)
	}
	// A lease from a relay nobody federates with.
	stranger, _ := identity.New()
	x := routedFrom(a, a, b.Address(), 5)
	x.Origin = stranger.IssueLease(a.id.SignKey(), a.id.AgreeKey(), a.lease.Nonce, "elsewhere", time.Now(), time.Hour)
	x.Sig = a.id.Sign(wire.RoutedSignedBytes(x.Dest, x.Nonce, x.Time, x.Origin.Address, x.Frame))
	b.onRouted(from, x)
	if s := b.OverlayStats(); s.Delivered != 1 || s.Dropped != 5 {
		t.Errorf("foreign lease: %+v", s)
	}
}

func TestRoutedFloodIsBounded(t *testing.T) {
	// The clock stands still (nothing advances it).
	ns := swarm(t, 2, Config{Clock: clock.NewVirtual(time.Now())})
	a, b := ns[0], ns[1]
	link(a, b)
	from := b.peer(a.Address())
	for i := 0; i < 3*routedBurst; i++ {
		b.onRouted(from, routedFrom(a, a, b.Address(), uint64(100+i)))
	}
	// The clock stands still, so the allowance never refills: exactly a
	// burst gets through.
	s := b.OverlayStats()
	if s.Delivered != routedBurst || s.Dropped != 2*routedBurst {
		t.Errorf("flood of %d: %+v", 3*routedBurst, s)
	}
}

func TestBudgetKeepsBucketSpread(t *testing.T) {
	old := settleTime
	settleTime = 0
	ns := swarm(t, 12, Config{MaxPeers: 4})
	settleTime = old
	hub := ns[0]
	for _, o := range ns[1:] {
		link(hub, o)
	}
	if got := len(hub.Peers()); got != 4 {
		t.Fatalf("%d channels open, budget 4", got)
	}
	// Every bucket the hub had a channel in before trimming still has one,
	// as far as the budget allows: the trimmed are from crowded buckets.
	buckets := map[int]int{}
	for _, p := range hub.Peers() {
		buckets[id.CommonPrefixLen(hub.Address(), p.Address)]++
	}
	all := map[int]bool{}
	for _, o := range ns[1:] {
		all[id.CommonPrefixLen(hub.Address(), o.Address())] = true
	}
	if want := min(len(all), 4); len(buckets) < want {
		t.Errorf("channels in %d buckets after trimming, want %d (of %d)", len(buckets), want, len(all))
	}
	// The routing table the page shows counts the same channels.
	for _, b := range hub.Routing() {
		if b.Connected != buckets[b.Index] {
			t.Errorf("bucket %d shows %d channels, has %d", b.Index, b.Connected, buckets[b.Index])
		}
	}
}

func TestCallWithoutRoute(t *testing.T) {
	ns := swarm(t, 2, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := ns[0].call(ctx, ns[1].Address(), &wire.Ping{ID: 1}); !errors.Is(err, ErrNoRoute) {
		t.Errorf("call with no channel: %v", err)
	}
}

// kademliaLinks links every node to the closest other node in each of its
// buckets: the channel set the budget keeps, under which greedy routing
// reaches any address.
func kademliaLinks(ns []*Node) {
	linked := map[[2]id.Address]bool{}
	for _, a := range ns {
		best := map[int]*Node{}
		for _, b := range ns {
			if a == b {
				continue
			}
			k := id.CommonPrefixLen(a.Address(), b.Address())
			if best[k] == nil || id.Closer(a.Address(), b.Address(), best[k].Address()) {
				best[k] = b
			}
		}
		for _, b := range best {
			x, y := a.Address(), b.Address()
			if x.Compare(y) > 0 {
				x, y = y, x
			}
			if !linked[[2]id.Address{x, y}] {
				linked[[2]id.Address{x, y}] = true
				link(a, b)
			}
		}
	}
}

func TestLookupThroughOverlay(t *testing.T) {
	ns := swarm(t, 40, Config{})
	kademliaLinks(ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range ns {
		if _, err := n.Lookup(ctx, n.Address()); err != nil {
			t.Fatalf("self-lookup: %v", err)
		}
	}
	src := ns[0]
	routedBefore := src.OverlayStats().Sent
	for _, target := range ns[1:] {
		r, err := src.Lookup(ctx, target.Address())
		if err != nil || !r.Found {
			t.Errorf("lookup %s: %+v, %v", target.Address().Short(), r, err)
		}
	}
	if src.OverlayStats().Sent == routedBefore {
		t.Error("every query went over a direct channel: the test does not exercise routing")
	}
	var forwarded int64
	for _, n := range ns {
		forwarded += n.OverlayStats().Forwarded
	}
	if forwarded == 0 {
		t.Error("no node forwarded a routed query")
	}
	// An address nobody holds is not found, and the lookup still ends.
	if r, err := src.Lookup(ctx, id.Address{0xde, 0xad}); err != nil || r.Found {
		t.Errorf("lookup of a vacant address: %+v, %v", r, err)
	}
}

// A node with no channel yet cannot send, which is not its contacts'
// fault: lookups fail fast and the table keeps them.
func TestNoRouteKeepsContacts(t *testing.T) {
	ns := swarm(t, 2, Config{})
	a, b := ns[0], ns[1]
	a.table().Seen(b.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		if r, _ := a.Lookup(ctx, b.Address()); r.Found {
			t.Fatal("found a node nothing can reach")
		}
	}
	cs := a.table().Contacts()
	if len(cs) != 1 || cs[0].Address != b.Address() || cs[0].Failures != 0 {
		t.Errorf("contacts after lookups without a route: %+v", cs)
	}
}

func TestGlareRule(t *testing.T) {
	lo, hi := id.Address{1}, id.Address{2}
	for _, c := range []struct {
		mine, theirs string
		self, them   id.Address
		keep         bool
	}{
		{ViaRelay, ViaRelay, lo, hi, true},
		{ViaRelay, ViaRelay, hi, lo, false},
		{ViaOverlay, ViaOverlay, lo, hi, true},
		{ViaOverlay, ViaRelay, lo, hi, false}, // their relay offer reaches; mine may not
		{ViaRelay, ViaOverlay, hi, lo, true},
	} {
		if got := keepOwnOffer(c.mine, c.theirs, c.self, c.them); got != c.keep {
			t.Errorf("mine %s theirs %s self %x: keep %v, want %v", c.mine, c.theirs, c.self[0], got, c.keep)
		}
		// Both sides must agree: exactly one keeps its own offer.
		if keepOwnOffer(c.mine, c.theirs, c.self, c.them) == keepOwnOffer(c.theirs, c.mine, c.them, c.self) {
			t.Errorf("mine %s theirs %s: both sides decide alike", c.mine, c.theirs)
		}
	}
}

// A request whose direct channel dies under it is asked again through
// the overlay, so it still gets its answer.
func TestCallSurvivesClosingChannel(t *testing.T) {
	ns := swarm(t, 3, Config{})
	a, b, c := ns[0], ns[1], ns[2]
	link(a, b)
	link(b, c)
	ca, cc := transport.Pipe()
	a.addPeer(c.Address(), false, nil, ca, ca, ViaRelay)
	c.addPeer(a.Address(), false, nil, cc, cc, ViaRelay)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc.Close() // c's end goes: a's send or its wait for the reply fails over
	m, err := a.call(ctx, c.Address(), &wire.Ping{ID: 77})
	if err != nil {
		t.Fatalf("call after the channel died: %v", err)
	}
	if p, ok := m.(*wire.Pong); !ok || p.ID != 77 {
		t.Fatalf("reply %#v", m)
	}
	if a.OverlayStats().Sent == 0 {
		t.Error("the answer did not come through the overlay")
	}
}

// A routed message replayed after the replay filter had to forget it —
// ReplayCapacity messages later, all within the time window — with a
// forged path is dropped, and the way back to its origin stays the one
// the message really took. (Before, the filter held at most 8,192
// messages and forgot the oldest first; the replay was delivered and its
// forged path became the route for every later answer.)
func TestReplayWithForgedPath(t *testing.T) {
	if ReplayCapacity > 8192 {
		t.Fatalf("ReplayCapacity is %d: the test floods 8,192 messages, past its capacity", ReplayCapacity)
	}
	clk := clock.NewVirtual(time.Now())
	// Keepalives stay out of the way of the clock the test drives.
	ns := swarm(t, 4, Config{Clock: clk, KeepAlive: time.Hour, PeerTimeout: 2 * time.Hour})
	b, origin, hop, x := ns[0], ns[1], ns[2], ns[3]
	link(hop, b)
	link(x, b)
	fromHop, fromX := b.peer(hop.Address()), b.peer(x.Address())

	m := routedFrom(origin, origin, b.Address(), 1)
	m.Path = []id.Address{hop.Address()} // it came through hop
	b.onRouted(fromHop, m)
	if s := b.OverlayStats(); s.Delivered != 1 {
		t.Fatalf("the original was not delivered: %+v", s)
	}
	want := []id.Address{hop.Address()}
	if got := b.routes.back(origin.Address()); !slices.Equal(got, want) {
		t.Fatalf("way back after the original: %v, want %v", got, want)
	}

	// x floods b with messages of its own, at the rate b lets a link
	// hand it (200/s): 8,192 of them, 41 s of its clock, well within
	// RoutedWindow.
	const flood = 8192
	for i := 0; i < flood; i++ {
		clk.Advance(time.Second / routedRate)
		b.onRouted(fromX, routedFrom(x, x, b.Address(), uint64(100+i)))
	}
	if s := b.OverlayStats(); s.Delivered != 1+flood {
		t.Fatalf("the flood was not all delivered: %+v", s)
	}
	if got := b.replay.size(); got > ReplayCapacity || got < flood/2 {
		t.Fatalf("the replay filter holds %d messages (capacity %d)", got, ReplayCapacity)
	}

	// x replays the original, claiming it came through x.
	replay := *m
	replay.Path = []id.Address{x.Address()}
	before := b.OverlayStats()
	b.onRouted(fromX, &replay)
	s := b.OverlayStats()
	if s.Delivered != before.Delivered || s.Replayed != before.Replayed+1 {
		t.Errorf("the replay with a forged path was taken: before %+v, after %+v", before, s)
	}
	if got := b.routes.back(origin.Address()); !slices.Equal(got, want) {
		t.Errorf("the replay redirected the way back to the origin: %v, want %v", got, want)
	}
}

// One origin that floods a node with ReplayCapacity routed messages
// dated as late as the window allows fills the replay filter, but does
// not shut out anyone else: the filter forgets, and refuses from then on
// what is not newer than what it forgot, per origin, so another origin's
// fresh messages are all delivered; the flooder's own forgotten messages
// are refused if replayed.
func TestReplayFloodShutsOutNobodyElse(t *testing.T) {
	clk := clock.NewVirtual(time.Now())
	ns := swarm(t, 4, Config{Clock: clk, KeepAlive: time.Hour, PeerTimeout: 2 * time.Hour})
	b, honest, x := ns[0], ns[1], ns[2]
	link(x, b)
	link(ns[3], b)
	fromX, fromHop := b.peer(x.Address()), b.peer(ns[3].Address())
	dated := func(from *Node, nonce uint64, at time.Time) *wire.Routed {
		r := routedFrom(from, from, b.Address(), nonce)
		r.Time = at.UnixMilli()
		r.Sig = from.id.Sign(wire.RoutedSignedBytes(r.Dest, r.Nonce, r.Time, from.Address(), r.Frame))
		return r
	}
	var first *wire.Routed
	for i := 0; i < ReplayCapacity+1; i++ {
		clk.Advance(time.Second / routedRate)
		m := dated(x, uint64(1000+i), clk.Now().Add(RoutedWindow-time.Second))
		if i == 0 {
			first = m
		}
		b.onRouted(fromX, m)
	}
	if s := b.OverlayStats(); s.Delivered != ReplayCapacity+1 {
		t.Fatalf("the flood was not delivered: %+v", s)
	}
	before := b.OverlayStats()
	const fresh = 100
	for i := 0; i < fresh; i++ {
		clk.Advance(time.Second / routedRate)
		b.onRouted(fromHop, dated(honest, uint64(i+1), clk.Now()))
	}
	if s := b.OverlayStats(); s.Delivered != before.Delivered+fresh {
		t.Errorf("%d of %d fresh messages from another origin delivered after the flood: %+v", s.Delivered-before.Delivered, fresh, s)
	}
	if got := b.replay.size(); got > ReplayCapacity {
		t.Errorf("the replay filter holds %d messages, capacity %d", got, ReplayCapacity)
	}
	before = b.OverlayStats()
	b.onRouted(fromX, first)
	if s := b.OverlayStats(); s.Delivered != before.Delivered || s.Replayed != before.Replayed+1 {
		t.Errorf("the flooder's forgotten first message was taken again: %+v", s)
	}
}

// A routed message whose signed time is outside RoutedWindow is dropped,
// however new it is to the replay filter, and teaches no way back.
func TestRoutedTimeWindow(t *testing.T) {
	clk := clock.NewVirtual(time.Now())
	ns := swarm(t, 3, Config{Clock: clk, KeepAlive: time.Hour, PeerTimeout: 2 * time.Hour})
	b, origin, hop := ns[0], ns[1], ns[2]
	link(hop, b)
	from := b.peer(hop.Address())
	signedAt := func(nonce uint64, at time.Time) *wire.Routed {
		r := routedFrom(origin, origin, b.Address(), nonce)
		r.Time = at.UnixMilli()
		r.Sig = origin.id.Sign(wire.RoutedSignedBytes(r.Dest, r.Nonce, r.Time, origin.Address(), r.Frame))
		r.Path = []id.Address{hop.Address()}
		return r
	}
	now := clk.Now()
	for _, at := range []time.Time{now.Add(-RoutedWindow - time.Second), now.Add(RoutedWindow + time.Second)} {
		b.onRouted(from, signedAt(uint64(at.UnixNano()), at))
	}
	if s := b.OverlayStats(); s.Delivered != 0 || s.Stale != 2 || s.Dropped != 2 {
		t.Errorf("messages signed %s before and after now: %+v", RoutedWindow+time.Second, s)
	}
	if got := b.routes.back(origin.Address()); got != nil {
		t.Errorf("a stale message taught the way back: %v", got)
	}
	// Inside the window it is taken; once the window has passed, its
	// replay is dropped as stale.
	m := signedAt(1, now.Add(-RoutedWindow+time.Second))
	b.onRouted(from, m)
	if s := b.OverlayStats(); s.Delivered != 1 {
		t.Fatalf("a message just inside the window was not delivered: %+v", s)
	}
	clk.Advance(2 * time.Second)
	b.onRouted(from, m)
	if s := b.OverlayStats(); s.Delivered != 1 || s.Stale != 3 {
		t.Errorf("a replay once the window passed: %+v", s)
	}
	// The filter forgets what the window refuses (when it next takes one).
	b.onRouted(from, signedAt(2, clk.Now()))
	if got := b.replay.size(); got != 1 {
		t.Errorf("the replay filter holds %d messages, want only the one still in the window", got)
	}
}

// stuckConn is a link whose sends never complete, as a data channel's
// do once the peer stops reading and the channel's buffer is full.
type stuckConn struct{ transport.Conn }

func (c stuckConn) Send([]byte) error {
	<-c.Done()
	return transport.ErrClosed
}

// A send to a peer whose channel takes nothing returns when its context
// ends, or at the latest after the peer timeout, and at once when the
// peer is closed; a frame sent from a read loop is dropped instead.
func TestSendToStuckPeer(t *testing.T) {
	clk := clock.NewVirtual(time.Now())
	ns := swarm(t, 2, Config{Clock: clk})
	a, b := ns[0], ns[1]
	b.cfg.KeepAlive = time.Hour // b stays quiet: only a's clock matters
	ca, cb := transport.Pipe()
	a.addPeer(b.Address(), false, nil, stuckConn{ca}, stuckConn{ca}, ViaRelay)
	b.addPeer(a.Address(), false, nil, cb, cb, ViaRelay)
	p := a.peer(b.Address())

	// The writer takes one frame into its endless send; then the queue
	// holds what fits, and refuses the next frame at once.
	if err := p.trySend(&wire.Ping{ID: 9}); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, wait.Default, "the writer to be stuck", func() bool {
		p.out.mu.Lock()
		defer p.out.mu.Unlock()
		return !p.out.since.IsZero()
	})
	for _, m := range []wire.Message{&wire.RPC{Frame: make([]byte, 60000)}, &wire.Ping{ID: 9}} {
		for i := 0; p.trySend(m) == nil; i++ {
			if i > MaxQueuedFrames {
				t.Fatal("the send queue took more frames than it holds")
			}
		}
	}
	p.out.mu.Lock()
	held, frames := p.out.bytes, len(p.out.frames)
	p.out.mu.Unlock()
	if q := a.OverlayStats().QueueFull; q != 2 || held > MaxQueuedBytes || frames > MaxQueuedFrames {
		t.Fatalf("the queue holds %d bytes in %d frames; queueFull %d", held, frames, q)
	}

	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- p.send(ctx, &wire.Ping{ID: 1}) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("send with a cancelled context: %v", err)
	}

	timers := clk.Pending()
	go func() { errc <- p.send(context.Background(), &wire.Ping{ID: 2}) }()
	wait.Until(t, wait.Default, "the send to wait for room", func() bool { return clk.Pending() > timers })
	clk.Advance(a.cfg.PeerTimeout)
	if err := <-errc; !errors.Is(err, ErrQueueFull) {
		t.Errorf("send after waiting the peer timeout: %v", err)
	}

	timers = clk.Pending()
	go func() { errc <- p.send(context.Background(), &wire.Ping{ID: 3}) }()
	wait.Until(t, wait.Default, "the send to wait for room", func() bool { return clk.Pending() > timers })
	a.Disconnect(b.Address())
	if err := <-errc; !errors.Is(err, ErrNotConnected) {
		t.Errorf("send to a peer closed meanwhile: %v", err)
	}
	clk.Advance(time.Second) // the goodbye's own limit: the link closes
}

// A node that stops says so, and its peers drop it from their routing
// tables at once: kept, every lookup that met it would wait out a call to
// it. A channel closed for any other reason (here the user's) leaves the
// node in the table: it is still in the network.
func TestStoppedNodeLeavesTables(t *testing.T) {
	ns := swarm(t, 3, Config{})
	a, b, c := ns[0], ns[1], ns[2]
	link(a, b)
	link(a, c)
	link(b, c)
	has := func(n *Node, x id.Address) bool {
		for _, ct := range n.table().Contacts() {
			if ct.Address == x {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !(has(a, b.Address()) && has(a, c.Address()) && has(b, c.Address())) {
		if time.Now().After(deadline) {
			t.Fatal("the nodes never learnt each other")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !a.Disconnect(b.Address()) {
		t.Fatal("a had no channel to b")
	}
	c.closePeers()
	for has(a, c.Address()) || has(b, c.Address()) {
		if time.Now().After(deadline) {
			t.Fatalf("a stopped node is still in its peers' tables: in a's %v, in b's %v", has(a, c.Address()), has(b, c.Address()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !has(a, b.Address()) {
		t.Error("a dropped b from its table when the user closed their channel; b is still in the network")
	}
}

// The relay says a node left: with no channel to check it by (a closed
// tab's went with the tab), the node leaves the routing table; one whose
// channel still answers stays.
func TestRelaySaysLeft(t *testing.T) {
	ns := swarm(t, 3, Config{})
	a, b, c := ns[0], ns[1], ns[2]
	link(a, b)
	a.table().Seen(c.Address())
	a.onPeerLeft(c.Address())
	a.onPeerLeft(b.Address())
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, stayed := true, false
		for _, ct := range a.table().Contacts() {
			left = left && ct.Address != c.Address()
			stayed = stayed || ct.Address == b.Address()
		}
		if left && stayed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the relay said both left: c gone from the table %v, b (still answering) kept %v", left, stayed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
