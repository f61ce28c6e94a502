package content

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// Misbehaviours of a hostile provider.
const (
	serveCorrupt = iota // the right length, one byte flipped
	serveTooMuch        // every byte, then more
	serveSilent         // takes the ChunkGet, never answers
	serveClose          // half the chunk, then closes the link
	serveHonest         // what a Service sends
	serveTrickle        // one byte each time the test says (x.trickle)
)

// hostile is a node that announces itself as a provider of what it holds
// and then misbehaves as mode says (with manifests it is honest, so a
// download reaches the chunks). It is a capability of its own (the
// content feature) on a real node, beside honest Services.
type hostile struct {
	mode   int
	h      *node.Host
	n      *node.Node
	ov     *hostOverlay
	mu     sync.Mutex
	data   map[chunk.Hash][]byte
	honest map[chunk.Hash]bool
	gets   atomic.Int32 // ChunkGets for chunks it misbehaves with
	asked  chan struct{}
	// trickle releases one byte of each chunk a serveTrickle node serves.
	trickle chan struct{}
}

func (x *hostile) Feature() string { return wire.FeatureContent }

func (x *hostile) Attach(h *node.Host) error {
	x.h, x.ov = h, newHostOverlay(h)
	x.asked = make(chan struct{}, 64)
	x.trickle = make(chan struct{})
	h.HandlePeer(wire.TypeChunkGet, func(from node.PeerInfo, m wire.Message) {
		go x.serve(from.Address, m.(*wire.ChunkGet))
	})
	h.HandlePeer(wire.TypeChunkData, func(node.PeerInfo, wire.Message) {})
	h.HandlePeer(wire.TypeChunkDone, func(node.PeerInfo, wire.Message) {})
	return nil
}

// hold makes x a provider of chunk h (whole: of content h).
func (x *hostile) hold(t testing.TB, h chunk.Hash, data []byte, whole, honest bool) {
	t.Helper()
	x.mu.Lock()
	if x.data == nil {
		x.data, x.honest = map[chunk.Hash][]byte{}, map[chunk.Hash]bool{}
	}
	x.data[h], x.honest[h] = data, honest
	x.mu.Unlock()
	if err := x.ov.Announce(testCtx(t), h.Key(), whole); err != nil {
		t.Fatalf("hostile announce: %v", err)
	}
}

func (x *hostile) serve(to id.Address, m *wire.ChunkGet) {
	x.mu.Lock()
	data, honest := x.data[m.Hash], x.honest[m.Hash]
	x.mu.Unlock()
	mode := x.mode
	if honest {
		mode = serveHonest
	} else {
		x.gets.Add(1)
		select {
		case x.asked <- struct{}{}:
		default:
		}
	}
	ctx := x.h.Life()
	send := func(off int, b []byte) error {
		return x.h.SendBulk(ctx, to, &wire.ChunkData{ID: m.ID, Offset: uint32(off), Data: b})
	}
	frames := func(b []byte, upto int) {
		for off := 0; off < upto; off += wire.MaxChunkData {
			if send(off, b[off:min(off+wire.MaxChunkData, upto)]) != nil {
				return
			}
		}
	}
	switch mode {
	case serveSilent:
		return
	case serveCorrupt:
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 0xff
		frames(bad, len(bad))
	case serveTooMuch:
		frames(data, len(data))
		send(len(data), []byte("and some more"))
	case serveClose:
		frames(data, len(data)/2)
		x.n.Disconnect(to)
		return
	case serveHonest:
		frames(data, min(len(data), int(m.Length)))
	case serveTrickle:
		for off := 0; off < len(data); off++ {
			select {
			case <-x.trickle:
			case <-ctx.Done():
				return
			}
			if send(off, data[off:off+1]) != nil {
				return
			}
		}
	}
	x.h.SendBulk(ctx, to, &wire.ChunkDone{ID: m.ID, Code: wire.ChunkOK})
}

// mixedSwarm is a swarm whose node i runs mk(i), every pair linked.
func mixedSwarm(t testing.TB, count int, mk func(i int, c *node.Config) node.Capability) *nodetest.Swarm {
	t.Helper()
	sw := nodetest.New(t, count, nodetest.Options{Config: func(i int, c *node.Config) {
		c.Capabilities = []node.Capability{mk(i, c)}
	}})
	for i, a := range sw.Nodes {
		for _, b := range sw.Nodes[i+1:] {
			sw.Link(a, b)
		}
	}
	return sw
}

// penalties collects the content.penalty events of n.
func penalties(n *node.Node) func() []PenaltyEvent {
	var mu sync.Mutex
	var got []PenaltyEvent
	n.Subscribe(func(e node.Event) {
		if e.Kind == EventPenalty {
			mu.Lock()
			got = append(got, e.Value.(PenaltyEvent))
			mu.Unlock()
		}
	})
	return func() []PenaltyEvent {
		mu.Lock()
		defer mu.Unlock()
		return append([]PenaltyEvent(nil), got...)
	}
}

// badCase is a swarm of three: node 0 publishes (an honest Service),
// node 1 is hostile, node 2 downloads.
type badCase struct {
	pub, dl *Service
	x       *hostile
	sw      *nodetest.Swarm
}

func newBadCase(t *testing.T, mode int, dlClock clock.Clock) *badCase {
	c := &badCase{x: &hostile{mode: mode}}
	c.sw = mixedSwarm(t, 3, func(i int, nc *node.Config) node.Capability {
		switch i {
		case 1:
			return c.x
		case 2:
			if dlClock != nil {
				// Virtual time jumps; keepalives must not take the
				// jumps for silent peers.
				nc.Clock, nc.KeepAlive, nc.PeerTimeout = dlClock, time.Hour, 2*time.Hour
			}
			c.dl = New(Config{Policy: noReplicas})
			return c.dl
		}
		c.pub = New(Config{})
		return c.pub
	})
	c.x.n = c.sw.Nodes[1]
	return c
}

// publish puts size bytes on the publisher and gives the hostile node the
// same content (its manifest to serve honestly).
func (c *badCase) publish(t *testing.T, size int, seed uint64) (chunk.Hash, []byte) {
	t.Helper()
	data := testBytes(size, seed)
	id, err := c.pub.Put(testCtx(t), bytes.NewReader(data), int64(size), PutOptions{Name: "x"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.pub.readLocal(id)
	if err != nil {
		t.Fatal(err)
	}
	var m chunk.Manifest
	if err := m.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	c.x.hold(t, id, raw, true, true)
	for i, h := range m.Chunks {
		c.x.hold(t, h, data[m.Offset(i):m.Offset(i)+int64(m.ChunkLen(i))], false, false)
	}
	return id, data
}

// A provider that serves corrupt bytes is penalised (content.penalty,
// the penalty box) and the chunks it spoiled come from the honest one:
// the download completes byte-identical; a later download asks it
// nothing.
func TestCorruptProviderPenalised(t *testing.T) { testBadProvider(t, serveCorrupt) }

// A provider that sends more than it was asked for is penalised too.
func TestTooMuchProviderPenalised(t *testing.T) { testBadProvider(t, serveTooMuch) }

func testBadProvider(t *testing.T, mode int) {
	c := newBadCase(t, mode, nil)
	id, data := c.publish(t, 5*chunk.MaxSize+777, 99)
	pens := penalties(c.sw.Nodes[2])
	ctx := testCtx(t)
	if _, err := c.dl.Fetch(ctx, id, GetOptions{}); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if got := readAll(t, c.dl, id); !bytes.Equal(got, data) {
		t.Fatal("the download is not what was put")
	}
	if c.x.gets.Load() == 0 {
		t.Fatal("the hostile provider was never asked for a chunk: the test proves nothing")
	}
	bad := c.sw.Nodes[1].Address()
	if ps := pens(); len(ps) == 0 || ps[0].Peer != bad.String() || ps[0].Reason == "" {
		t.Fatalf("penalties %+v; want the hostile node %s", ps, bad)
	}
	if !c.dl.inPenalty(bad) {
		t.Fatal("the hostile node is not in the penalty box")
	}
	before := c.x.gets.Load()
	id2, data2 := c.publish(t, 3*chunk.MaxSize, 100)
	if _, err := c.dl.Fetch(ctx, id2, GetOptions{}); err != nil {
		t.Fatalf("second fetch: %v", err)
	}
	if got := readAll(t, c.dl, id2); !bytes.Equal(got, data2) {
		t.Fatal("the second download is not what was put")
	}
	if n := c.x.gets.Load(); n != before {
		t.Fatalf("the penalised node was asked %d more times", n-before)
	}
}

// A provider that closes its link in the middle of a chunk: the download
// goes on from the other provider and completes, not penalising it.
func TestProviderClosesMidTransfer(t *testing.T) {
	c := newBadCase(t, serveClose, nil)
	id, data := c.publish(t, 5*chunk.MaxSize+1, 5)
	pens := penalties(c.sw.Nodes[2])
	if _, err := c.dl.Fetch(testCtx(t), id, GetOptions{}); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if got := readAll(t, c.dl, id); !bytes.Equal(got, data) {
		t.Fatal("the download is not what was put")
	}
	if c.x.gets.Load() == 0 {
		t.Fatal("the closing provider was never asked for a chunk: the test proves nothing")
	}
	if ps := pens(); len(ps) != 0 {
		t.Fatalf("a provider that closed was penalised: %+v", ps)
	}
}

// A provider that takes the request and never answers: after FetchStall
// on the downloader's clock the chunk is asked of the other provider.
// The downloader runs on virtual time, which the test advances only
// once the silent node holds a request, so no real 10 s pass.
func TestSilentProviderStalls(t *testing.T) {
	vc := clock.NewVirtual(clock.System.Now())
	c := newBadCase(t, serveSilent, vc)
	id, data := c.publish(t, 5*chunk.MaxSize, 6)
	done := make(chan error, 1)
	go func() {
		_, err := c.dl.Fetch(testCtx(t), id, GetOptions{})
		done <- err
	}()
	ctx := testCtx(t)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if got := readAll(t, c.dl, id); !bytes.Equal(got, data) {
				t.Fatal("the download is not what was put")
			}
			if c.x.gets.Load() == 0 {
				t.Fatal("the silent provider was never asked: the test proves nothing")
			}
			return
		case <-c.x.asked:
			// Once the transfers in flight are the silent node's alone
			// (the honest ones, which a jump would stall too, are
			// done), jump past the stall deadline.
			silent := c.sw.Nodes[1].Address()
			wait.Until(t, wait.Default, "only silent transfers", func() bool {
				c.dl.ov.mu.Lock()
				defer c.dl.ov.mu.Unlock()
				for k := range c.dl.ov.transfers {
					if k.peer != silent {
						return false
					}
				}
				return true
			})
			vc.Advance(FetchStall + time.Millisecond)
		case <-ctx.Done():
			t.Fatal("the download never ended")
		}
	}
}

// TestTrickleProviderDeadline: a provider that sends a byte just often
// enough never to stall loses its chunk once the transfer has taken
// transferTime (MinTransferRate), on the downloader's clock, and the
// download completes from the honest provider.
func TestTrickleProviderDeadline(t *testing.T) {
	vc := clock.NewVirtual(clock.System.Now())
	c := newBadCase(t, serveTrickle, vc)
	id, data := c.publish(t, 5*chunk.MaxSize, 8)
	done := make(chan error, 1)
	go func() {
		_, err := c.dl.Fetch(testCtx(t), id, GetOptions{})
		done <- err
	}()
	trickler := c.sw.Nodes[1].Address()
	// each is the bytes of each of the trickler's transfers running.
	each := func() map[uint32]int {
		c.dl.ov.mu.Lock()
		defer c.dl.ov.mu.Unlock()
		out := map[uint32]int{}
		for k, tr := range c.dl.ov.transfers {
			if k.peer == trickler {
				tr.mu.Lock()
				out[k.id] = tr.got
				tr.mu.Unlock()
			}
		}
		return out
	}
	var passed time.Duration
	ctx := testCtx(t)
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if !bytes.Equal(readAll(t, c.dl, id), data) {
				t.Fatal("the download is not what was put")
			}
			if c.x.gets.Load() == 0 {
				t.Fatal("the trickling provider was never asked: the test proves nothing")
			}
			if passed < transferTime(chunk.MaxSize)-FetchStall {
				t.Fatalf("the trickler lost its chunk after %v, before its transfer's deadline", passed)
			}
			return
		case <-ctx.Done():
			t.Fatalf("the download never ended (%v of virtual time passed)", passed)
		default:
		}
		before := each()
		if len(before) == 0 {
			time.Sleep(5 * time.Millisecond) // the honest transfers, or the trickler's not started yet
			continue
		}
		// A byte for every transfer the trickler serves, so none stalls.
		for range before {
			select {
			case c.x.trickle <- struct{}{}:
			case <-time.After(time.Second):
			}
		}
		wait.Until(t, wait.Default, "the bytes to land", func() bool {
			now := each()
			for k, n := range before {
				if m, ok := now[k]; ok && m == n {
					return false
				}
			}
			return true
		})
		// Only the trickler's transfers in flight: a jump must not stall
		// the honest ones.
		wait.Until(t, wait.Default, "only the trickler's transfers", func() bool {
			c.dl.ov.mu.Lock()
			defer c.dl.ov.mu.Unlock()
			for k := range c.dl.ov.transfers {
				if k.peer != trickler {
					return false
				}
			}
			return true
		})
		vc.Advance(FetchStall - time.Second) // never a stall
		passed += FetchStall - time.Second
	}
}

// A manifest that lies (its size needs more chunks than it lists) is
// refused as corrupt, whoever serves it; nothing is stored.
func TestLyingManifest(t *testing.T) {
	c := newBadCase(t, serveHonest, nil)
	raw := []byte("ddt-manifest/1\n")
	raw = append(raw, 1, 'x', 0)              // name "x", no type
	raw = append(raw, 0x80, 0x80, 0x80, 0x04) // size 8 MiB
	raw = append(raw, 0x80, 0x80, 0x80, 0x02) // chunks of 4 MiB
	raw = append(raw, 1)                      // one chunk listed
	raw = append(raw, make([]byte, chunk.HashLen)...)
	lie := chunk.SumGo(raw)
	c.x.hold(t, lie, raw, true, true)
	_, err := c.dl.Fetch(testCtx(t), lie, GetOptions{})
	if code(err) != CodeCorrupt {
		t.Fatalf("fetch of a lying manifest: %v (code %s); want %s", err, code(err), CodeCorrupt)
	}
	if c.dl.lib.Has(lie) {
		t.Fatal("the lying manifest was stored")
	}
}

// A manifest whose chunk is longer than the manifest says: the provider
// sends the 500 bytes asked for, which do not hash to the chunk, and the
// download fails clearly (not "not found") once no provider is left,
// storing nothing.
func TestManifestLiesAboutChunkSize(t *testing.T) {
	c := newBadCase(t, serveHonest, nil)
	real := testBytes(1000, 3)
	h := chunk.SumGo(real)
	m := &chunk.Manifest{Name: "short", Size: 500, ChunkSize: chunk.MaxSize, Chunks: []chunk.Hash{h}}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	mid := chunk.SumGo(raw)
	c.x.hold(t, mid, raw, true, true)
	c.x.hold(t, h, real, false, true)
	_, err = c.dl.Fetch(testCtx(t), mid, GetOptions{})
	if err == nil || code(err) == CodeNotFound {
		t.Fatalf("fetch: %v (code %s); want a failure that is not not-found", err, code(err))
	}
	if c.dl.lib.Has(h) {
		t.Fatal("a chunk of the wrong size was stored")
	}
}

// A download fetches from several providers at once: with two that hold
// everything, both are asked for chunks.
func TestFetchUsesSeveralProviders(t *testing.T) {
	xs := []*hostile{{mode: serveHonest}, {mode: serveHonest}}
	var dl *Service
	sw := mixedSwarm(t, 3, func(i int, c *node.Config) node.Capability {
		if i < 2 {
			return xs[i]
		}
		dl = New(Config{Policy: noReplicas})
		return dl
	})
	data := testBytes(6*chunk.MaxSize, 21)
	m := &chunk.Manifest{Name: "two", Size: int64(len(data)), ChunkSize: chunk.MaxSize}
	for off := 0; off < len(data); off += chunk.MaxSize {
		m.Chunks = append(m.Chunks, chunk.SumGo(data[off:off+chunk.MaxSize]))
	}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id := chunk.SumGo(raw)
	for i, x := range xs {
		x.n = sw.Nodes[i]
		x.hold(t, id, raw, true, true)
		for j, h := range m.Chunks {
			x.hold(t, h, data[j*chunk.MaxSize:(j+1)*chunk.MaxSize], false, false)
		}
	}
	var last Progress
	if _, err := dl.Fetch(testCtx(t), id, GetOptions{Progress: func(p Progress) { last = p }}); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if got := readAll(t, dl, id); !bytes.Equal(got, data) {
		t.Fatal("the download is not what was put")
	}
	a, b := xs[0].gets.Load(), xs[1].gets.Load()
	if a == 0 || b == 0 || a+b != int32(len(m.Chunks)) {
		t.Fatalf("chunks asked of the two providers: %d and %d, of %d; want both used, each chunk once", a, b, len(m.Chunks))
	}
	if last.Providers != 2 || last.Phase != "done" || last.ChunksDone != len(m.Chunks) {
		t.Fatalf("last progress %+v", last)
	}
}

// greedy is a node that asks for many transfers at once and reads none
// of them until released.
type greedy struct {
	h       *node.Host
	release chan struct{}
	codes   chan uint8
	bytes   sync.Map // transfer id → *atomic.Int64
}

func (g *greedy) Feature() string { return wire.FeatureContent }

func (g *greedy) Attach(h *node.Host) error {
	g.h = h
	h.HandlePeer(wire.TypeChunkGet, func(node.PeerInfo, wire.Message) {})
	h.HandlePeer(wire.TypeChunkData, func(_ node.PeerInfo, m wire.Message) {
		<-g.release // blocks the bulk channel's read loop: back-pressure
		d := m.(*wire.ChunkData)
		n, _ := g.bytes.LoadOrStore(d.ID, new(atomic.Int64))
		n.(*atomic.Int64).Add(int64(len(d.Data)))
	})
	h.HandlePeer(wire.TypeChunkDone, func(_ node.PeerInfo, m wire.Message) { g.codes <- m.(*wire.ChunkDone).Code })
	return nil
}

// A peer gets at most MaxServing transfers at once; its other requests
// are answered ChunkBusy, and the ones served arrive whole once it reads.
// A request beyond the chunk is refused, one for a chunk not held is
// answered not-found.
func TestServingLimits(t *testing.T) {
	g := &greedy{release: make(chan struct{}), codes: make(chan uint8, 64)}
	var s *Service
	sw := mixedSwarm(t, 2, func(i int, c *node.Config) node.Capability {
		if i == 0 {
			s = New(Config{})
			return s
		}
		return g
	})
	data := testBytes(chunk.MaxSize, 31)
	id, err := s.Put(testCtx(t), bytes.NewReader(data), -1, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := mustManifest(t, s, id).Chunks[0]
	server := sw.Nodes[0].Address()
	const asks = MaxServing + 6
	for i := range asks {
		if err := g.h.Send(server, &wire.ChunkGet{ID: uint32(i + 1), Hash: h, Length: chunk.MaxSize}); err != nil {
			t.Fatal(err)
		}
	}
	wait.Until(t, wait.Default, "the server at its limit", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.serving[sw.Nodes[1].Address()] == MaxServing
	})
	close(g.release)
	count := map[uint8]int{}
	for range asks {
		select {
		case c := <-g.codes:
			count[c]++
		case <-testCtx(t).Done():
			t.Fatalf("answers so far %v", count)
		}
	}
	if count[wire.ChunkOK] != MaxServing || count[wire.ChunkBusy] != asks-MaxServing {
		t.Fatalf("answers %v; want %d served and %d busy", count, MaxServing, asks-MaxServing)
	}
	full := 0
	g.bytes.Range(func(_, v any) bool {
		if v.(*atomic.Int64).Load() == chunk.MaxSize {
			full++
		}
		return true
	})
	if full != MaxServing {
		t.Fatalf("%d transfers arrived whole, want %d", full, MaxServing)
	}
	for _, tc := range []struct {
		get  wire.ChunkGet
		want uint8
	}{
		{wire.ChunkGet{ID: 100, Hash: id, Offset: 1000, Length: 1}, wire.ChunkRefused}, // the manifest is shorter
		{wire.ChunkGet{ID: 101, Hash: chunk.SumGo([]byte("no")), Length: 2}, wire.ChunkNotFound},
	} {
		if err := g.h.Send(server, &tc.get); err != nil {
			t.Fatal(err)
		}
		select {
		case c := <-g.codes:
			if c != tc.want {
				t.Fatalf("ChunkGet %+v answered %d, want %d", tc.get, c, tc.want)
			}
		case <-testCtx(t).Done():
			t.Fatal("no answer")
		}
	}
}

// A payload of repeated blocks (a file of zeros) lists one chunk many
// times: the download asks for it once and reads back every copy.
func TestRepeatedChunksFetchedOnce(t *testing.T) {
	x := &hostile{mode: serveHonest}
	var dl *Service
	sw := mixedSwarm(t, 2, func(i int, c *node.Config) node.Capability {
		if i == 0 {
			return x
		}
		dl = New(Config{Policy: noReplicas})
		return dl
	})
	x.n = sw.Nodes[0]
	data := make([]byte, 4*chunk.MaxSize+10)
	copy(data[len(data)-10:], "the end...")
	m := &chunk.Manifest{Name: "zeros", Size: int64(len(data)), ChunkSize: chunk.MaxSize}
	for off := 0; off < len(data); off += chunk.MaxSize {
		m.Chunks = append(m.Chunks, chunk.SumGo(data[off:min(off+chunk.MaxSize, len(data))]))
	}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	id := chunk.SumGo(raw)
	x.hold(t, id, raw, true, true)
	x.hold(t, m.Chunks[0], data[:chunk.MaxSize], false, false)
	x.hold(t, m.Chunks[4], data[4*chunk.MaxSize:], false, false)
	var chunks []int
	var last Progress
	if _, err := dl.Fetch(testCtx(t), id, GetOptions{OnChunk: func(i int) { chunks = append(chunks, i) }, Progress: func(p Progress) { last = p }}); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if got := readAll(t, dl, id); !bytes.Equal(got, data) {
		t.Fatal("the download is not what was put")
	}
	if n := x.gets.Load(); n != 2 {
		t.Fatalf("%d transfers for 2 distinct chunks", n)
	}
	if len(chunks) != 5 || last.ChunksDone != 5 || last.Bytes != int64(len(data)) {
		t.Fatalf("chunks reported %v, last progress %+v", chunks, last)
	}
}
