package content

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/id"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// holders is the live peers that hold h as a replica or their own.
func (w *simWorld) holders(h chunk.Hash) []*simPeer {
	var out []*simPeer
	for _, p := range w.live() {
		if c, ok := p.lib.Class(h); ok && c != Cache {
			out = append(out, p)
		}
	}
	return out
}

// TestPublishReplicas: public content gets DefaultReplicas copies besides
// the publisher's, on other nodes, for the manifest and every chunk;
// unicast content exactly one, and repair keeps it at one, also after
// that one holder left.
func TestPublishReplicas(t *testing.T) {
	w := newSimWorld(t, 3, 40, LibraryConfig{})
	p := w.live()[0]
	pub, n := p.put(payload(1, 3000), 1024, "text/plain", false)
	uni, m := p.put(payload(2, 3000), 1024, "text/plain", true)
	if n != DefaultReplicas || m != 1 {
		t.Fatalf("publish placed %d replicas of public content and %d of unicast, want %d and 1", n, m, DefaultReplicas)
	}
	// A type as long as a manifest allows still leaves room for the
	// unicast mark on the wire.
	long := "text/" + strings.Repeat("x", chunk.MaxType-len("text/"))
	if _, m := p.put(payload(7, 100), 1024, long, true); m != 1 {
		t.Errorf("publish placed %d replicas of unicast content of a %d-byte type, want 1", m, len(long))
	}
	w.settle()
	count := func(it simItem) (least, most int) {
		least = 1 << 30
		for _, h := range append([]chunk.Hash{it.id}, it.m.Chunks...) {
			c := w.copies(h)
			least, most = min(least, c), max(most, c)
		}
		return least, most
	}
	if lo, hi := count(pub); lo != DefaultReplicas+1 || hi != DefaultReplicas+1 {
		t.Errorf("public chunks on %d to %d live nodes, want %d on each", lo, hi, DefaultReplicas+1)
	}
	if lo, hi := count(uni); lo != 2 || hi != 2 {
		t.Errorf("unicast chunks on %d to %d live nodes, want 2 (publisher and one replica)", lo, hi)
	}
	w.round()
	w.round()
	if lo, hi := count(uni); lo != 2 || hi != 2 {
		t.Errorf("after repair rounds unicast chunks on %d to %d live nodes, want 2", lo, hi)
	}
	if lo, hi := count(pub); lo != DefaultReplicas+1 || hi != DefaultReplicas+1 {
		t.Errorf("after repair rounds public chunks on %d to %d live nodes, want %d", lo, hi, DefaultReplicas+1)
	}
	// The single replica of the unicast manifest leaves: its publisher
	// places one again, and only one.
	for _, q := range w.holders(uni.id) {
		if q != p {
			w.leave(q)
		}
	}
	w.round()
	w.round()
	if c := w.copies(uni.id); c != 2 {
		t.Errorf("after its replica left and repair, the unicast manifest is on %d live nodes, want 2", c)
	}
	if got, err := w.live()[5].get(uni); err != nil || string(got) != string(uni.data) {
		t.Errorf("unicast content not read back after repair: %v", err)
	}
}

// TestPledgeFullRefuses: a node whose pledge replicas for others fill
// refuses to hold another (a replica never displaces another), says why,
// and keeps every chunk it pinned and every replica it promised.
func TestPledgeFullRefuses(t *testing.T) {
	w := newSimWorld(t, 4, 12, LibraryConfig{})
	peers := w.live()
	full, asker := peers[1], peers[2]
	lib, err := OpenLibrary(store.NewMemoryChunks(), store.NewMemory(), LibraryConfig{Pledge: 2 << 10, Clock: w.s.Clock})
	if err != nil {
		t.Fatal(err)
	}
	// A 2 KiB pledge, before it holds anything; its own content is
	// outside the pledge.
	full.lib = lib
	own, _ := full.put(payload(3, 8<<10), 1024, "text/plain", false)
	w.settle()
	var promised []chunk.Hash
	for i := range 2 {
		data := payload(uint64(10+i), 1024)
		h := chunk.SumGo(data)
		if err := full.lib.Put(h, data, Replica, "text/plain"); err != nil {
			t.Fatalf("filling the pledge: %v", err)
		}
		promised = append(promised, h)
	}

	data := payload(4, 1000)
	h := chunk.SumGo(data)
	if err := asker.lib.Put(h, data, Own, "text/plain"); err != nil {
		t.Fatal(err)
	}
	ask := &wire.ReplicaAsk{Hash: h, Size: 1000, ContentType: "text/plain", Sources: []id.Address{asker.addr}}
	a := full.rep.handleAsk(context.Background(), asker.addr, ask)
	if a.Accepted {
		t.Fatal("a node with a full pledge accepted a replica")
	}
	if !strings.Contains(a.Reason, "pledge") {
		t.Errorf("refusal %q does not say the pledge is full", a.Reason)
	}
	w.settle()
	if full.lib.Has(h) {
		t.Error("the refused chunk is held anyway")
	}
	for _, c := range promised {
		if !full.lib.Has(c) {
			t.Errorf("replica %s dropped for the refused one", c.Short())
		}
	}
	for _, c := range append([]chunk.Hash{own.id}, own.m.Chunks...) {
		if !full.lib.Has(c) {
			t.Errorf("pinned chunk %s evicted", c.Short())
		}
		if cl, _ := full.lib.Class(c); cl != Own {
			t.Errorf("pinned chunk %s is now held as %s", c.Short(), cl)
		}
	}
	// Its own content still got its replicas elsewhere.
	if c := w.copies(own.id); c != DefaultReplicas+1 {
		t.Errorf("the full node's own manifest is on %d live nodes, want %d", c, DefaultReplicas+1)
	}
}

// TestPolicyRefuses: a node that holds only images for others refuses a
// replica of another type, and a chunk its user fetched of that type is
// not turned into one, both with a reason; an image it takes.
func TestPolicyRefuses(t *testing.T) {
	w := newSimWorld(t, 11, 4, LibraryConfig{Policy: Policy{Types: []string{"image/"}}})
	q, asker := w.live()[0], w.live()[1]
	ask := func(data []byte, typ string) *wire.ReplicaAnswer {
		h := chunk.SumGo(data)
		if err := asker.lib.Put(h, data, Own, typ); err != nil {
			t.Fatal(err)
		}
		return q.rep.handleAsk(context.Background(), asker.addr, &wire.ReplicaAsk{Hash: h, Size: uint32(len(data)), ContentType: typ, Sources: []id.Address{asker.addr}})
	}
	if a := ask(payload(20, 500), "video/mp4"); a.Accepted || !strings.Contains(a.Reason, "type") {
		t.Errorf("a video replica on an image-only node: accepted %v, reason %q; want refused, saying the type", a.Accepted, a.Reason)
	}
	fetched := payload(21, 500)
	if err := q.lib.Put(chunk.SumGo(fetched), fetched, Cache, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	if a := ask(fetched, "video/mp4"); a.Accepted || a.Reason == "" {
		t.Errorf("a cached video asked for as a replica: accepted %v, reason %q; want refused with a reason", a.Accepted, a.Reason)
	}
	if c, _ := q.lib.Class(chunk.SumGo(fetched)); c != Cache {
		t.Errorf("the cached video is now held as %s", c)
	}
	img := payload(22, 500)
	if a := ask(img, "image/png"); !a.Accepted {
		t.Fatalf("an image replica refused: %s", a.Reason)
	}
	w.settle()
	if c, ok := q.lib.Class(chunk.SumGo(img)); !ok || c != Replica {
		t.Errorf("the accepted image is held %v as %s, want a replica", ok, c)
	}
}

// waitIdle waits until r has no replica left to fetch.
func waitIdle(t *testing.T, r *replicator) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !r.idle(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("replica fetches still pending after a minute")
		}
	}
}

// gatedHost holds every replica fetch until its gate opens, so asks stay
// pending; it counts the fetches running at once.
type gatedHost struct {
	*simPeer
	gate chan struct{}

	mu            sync.Mutex
	running, most int
}

func (g *gatedHost) fetch(ctx context.Context, h chunk.Hash, size int, sources []id.Address, c Class, typ string) error {
	g.mu.Lock()
	g.running++
	g.most = max(g.most, g.running)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.simPeer.fetch(ctx, h, size, sources, c, typ)
}

// TestAskLimits: one asker gets at most MaxAsksPerPeer replicas pending,
// all askers together MaxPendingReplicas, and at most MaxReplicaFetches
// are fetched at once; asks beyond are refused with a reason.
func TestAskLimits(t *testing.T) {
	w := newSimWorld(t, 5, 4, LibraryConfig{})
	g := &gatedHost{simPeer: w.live()[0], gate: make(chan struct{})}
	r := newReplicator(g, replicaConfig{}, w.s.Clock, nil)
	rng := rand.New(rand.NewPCG(5, 5))
	ask := func(from id.Address) *wire.ReplicaAnswer {
		var h chunk.Hash
		for i := range h {
			h[i] = byte(rng.Uint32())
		}
		return r.handleAsk(context.Background(), from, &wire.ReplicaAsk{Hash: h, Size: 1024, ContentType: "text/plain", Sources: []id.Address{from}})
	}
	asker := func(i int) id.Address { return id.Derive([]byte("asker"), []byte{byte(i)}) }
	for i := range MaxAsksPerPeer {
		if a := ask(asker(0)); !a.Accepted {
			t.Fatalf("ask %d of one peer refused: %s", i+1, a.Reason)
		}
	}
	if a := ask(asker(0)); a.Accepted || a.Reason == "" {
		t.Errorf("ask %d of one peer: accepted %v, reason %q; want a refusal with a reason", MaxAsksPerPeer+1, a.Accepted, a.Reason)
	}
	peers := MaxPendingReplicas / MaxAsksPerPeer
	for p := 1; p < peers; p++ {
		for range MaxAsksPerPeer {
			if a := ask(asker(p)); !a.Accepted {
				t.Fatalf("ask of peer %d refused with %d pending: %s", p, p*MaxAsksPerPeer, a.Reason)
			}
		}
	}
	if a := ask(asker(peers)); a.Accepted || a.Reason == "" {
		t.Errorf("ask with %d pending: accepted %v, reason %q; want a refusal with a reason", MaxPendingReplicas, a.Accepted, a.Reason)
	}
	close(g.gate)
	waitIdle(t, r)
	if g.most > MaxReplicaFetches {
		t.Errorf("%d replica fetches ran at once, at most %d allowed", g.most, MaxReplicaFetches)
	}
	// Once they are done (these chunks exist nowhere, so they failed), the
	// asker may ask again.
	if a := ask(asker(0)); !a.Accepted {
		t.Errorf("ask after the pending ones ended refused: %s", a.Reason)
	}
	waitIdle(t, r)
}
