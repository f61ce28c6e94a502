package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
	"ddt/shared/store"
	"ddt/shared/wait"
)

// testSwarm is count nodes running the content service, every pair
// linked (a bulk channel each, with back-pressure).
type testSwarm struct {
	*nodetest.Swarm
	svc []*Service
}

// noReplicas is a policy that holds nothing for others: a node with it
// takes no replicas, so what a test downloads to it is not there before.
var noReplicas = Policy{Types: []string{"x-none/"}}

// newSwarm makes the swarm; without cfg, every node takes no replicas.
func newSwarm(t testing.TB, count int, cfg func(i int) Config) *testSwarm {
	t.Helper()
	ts := &testSwarm{}
	ts.Swarm = nodetest.New(t, count, nodetest.Options{Config: func(i int, c *node.Config) {
		sc := Config{Policy: noReplicas}
		if cfg != nil {
			sc = cfg(i)
		}
		s := New(sc)
		ts.svc = append(ts.svc, s)
		c.Capabilities = []node.Capability{s}
	}})
	for i, a := range ts.Nodes {
		for _, b := range ts.Nodes[i+1:] {
			ts.Link(a, b)
		}
	}
	return ts
}

// testBytes is n pseudo-random bytes (seeded, so runs repeat).
func testBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readAll reads content id at s through Open.
func readAll(t testing.TB, s *Service, id chunk.Hash) []byte {
	t.Helper()
	r, err := s.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func code(err error) string {
	var e *node.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "(not a node.Error)"
}

// TestPutGet: what A puts, B gets byte-identical, at the sizes around
// the chunk boundaries.
func TestPutGet(t *testing.T) {
	ts := newSwarm(t, 3, nil)
	a, b := ts.svc[0], ts.svc[1]
	ctx := testCtx(t)
	for _, n := range []int{0, 1, chunk.MaxSize, chunk.MaxSize + 1, 20<<20 + 12345} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := testBytes(n, uint64(n))
			id, err := a.Put(ctx, bytes.NewReader(data), int64(n), PutOptions{Name: "f.bin", Type: "application/octet-stream"})
			if err != nil {
				t.Fatalf("put: %v", err)
			}
			if st, err := b.Stat(ctx, id); err != nil || st.Size != int64(n) || st.Name != "f.bin" || st.Local && n > 0 {
				t.Fatalf("stat before get: %+v %v", st, err)
			}
			var last Progress
			m, err := b.Fetch(ctx, id, GetOptions{Progress: func(p Progress) { last = p }})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if m.Size != int64(n) || last.Phase != "done" || last.Bytes != int64(n) {
				t.Fatalf("manifest size %d, last progress %+v", m.Size, last)
			}
			if got := readAll(t, b, id); !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, not the %d put", len(got), n)
			}
			st, err := b.Stat(ctx, id)
			if err != nil || !st.Local || st.Pinned {
				t.Fatalf("stat after get: %+v %v", st, err)
			}
			if st, err := a.Stat(ctx, id); err != nil || !st.Pinned || !st.Local {
				t.Fatalf("stat at the publisher: %+v %v", st, err)
			}
		})
	}
}

// Public content is replicated at publication (content.replicas says on
// how many nodes, the publisher's own among them), and once its publisher has left a node that held none
// of it still gets it, byte-identical, from the replicas.
func TestReplicasServeAfterPublisherLeaves(t *testing.T) {
	ts := newSwarm(t, 8, func(int) Config { return Config{} })
	pub := ts.svc[0]
	events := make(chan ReplicasEvent, 4)
	ts.Nodes[0].Subscribe(func(e node.Event) {
		if e.Kind == EventReplicas {
			events <- e.Value.(ReplicasEvent)
		}
	})
	data := testBytes(2*chunk.MaxSize+5, 11)
	id, err := pub.Put(testCtx(t), bytes.NewReader(data), int64(len(data)), PutOptions{Name: "r", Type: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.ID != id.String() || e.Replicas < DefaultReplicas+1 { // the publisher's copy counts
			t.Fatalf("replicas event %+v; want %d copies for %s", e, DefaultReplicas+1, id)
		}
	case <-testCtx(t).Done():
		t.Fatal("no replicas event")
	}
	// The replicas fetch what they accepted in the background: wait until
	// every chunk is on DefaultReplicas nodes besides the publisher.
	m := mustManifest(t, pub, id)
	all := append([]chunk.Hash{id}, m.Chunks...)
	held := func(s *Service) int {
		n := 0
		for _, h := range all {
			if s.lib.Has(h) {
				n++
			}
		}
		return n
	}
	wait.Until(t, wait.Default, "replicas fetched", func() bool {
		for _, h := range all {
			n := 0
			for _, s := range ts.svc[1:] {
				if s.lib.Has(h) {
					n++
				}
			}
			if n < DefaultReplicas {
				return false
			}
		}
		return true
	})
	var reader *Service
	for _, s := range ts.svc[1:] {
		if reader == nil || held(s) < held(reader) {
			reader = s
		}
	}
	if held(reader) == len(all) {
		t.Fatal("every node holds all of it: the test proves nothing")
	}
	ts.Nodes[0].Close()
	if _, err := reader.Fetch(testCtx(t), id, GetOptions{}); err != nil {
		t.Fatalf("fetch after the publisher left: %v", err)
	}
	if got := readAll(t, reader, id); !bytes.Equal(got, data) {
		t.Fatal("the content read back from replicas is not what was put")
	}
}

func mustManifest(t testing.TB, s *Service, id chunk.Hash) *chunk.Manifest {
	t.Helper()
	m, err := s.Manifest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A node that restarts with its stores announces again what it held: a
// node of the new network, which never saw its old records, finds it and
// gets its content.
func TestRestartReannounces(t *testing.T) {
	nodeStore, chunks := store.NewMemory(), store.NewMemoryChunks()
	pub := New(Config{Chunks: chunks})
	first := nodetest.New(t, 1, nodetest.Options{Config: func(i int, c *node.Config) {
		c.Store = nodeStore
		c.Capabilities = []node.Capability{pub}
	}})
	data := testBytes(chunk.MaxSize+3, 61)
	id, err := pub.Put(testCtx(t), bytes.NewReader(data), -1, PutOptions{Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	first.Nodes[0].Close()

	var reader *Service
	again := nodetest.New(t, 2, nodetest.Options{Config: func(i int, c *node.Config) {
		if i == 0 {
			c.Store = nodeStore // its identity, lease nonce and library index
			c.Capabilities = []node.Capability{New(Config{Chunks: chunks})}
			return
		}
		reader = New(Config{Policy: noReplicas})
		c.Capabilities = []node.Capability{reader}
	}})
	again.Link(again.Nodes[0], again.Nodes[1])
	if again.Nodes[0].Address() != first.Nodes[0].Address() {
		t.Fatal("the restarted node has another address")
	}
	wait.Until(t, wait.Default, "the restarted node found", func() bool {
		ps, _ := reader.ov.Providers(testCtx(t), id.Key())
		return len(ps) == 1 && ps[0].Whole
	})
	if _, err := reader.Fetch(testCtx(t), id, GetOptions{}); err != nil {
		t.Fatalf("fetch from the restarted node: %v", err)
	}
	if got := readAll(t, reader, id); !bytes.Equal(got, data) {
		t.Fatal("content read back from the restarted node is not what was put")
	}
}

// Sources: content put straight into a node's library is fetched, whole
// and intact, when that node is named. A named source that does not hold
// it is no fault of its own: the fetch goes on to the lookup, and nobody
// is penalised. (Whether the holder's start-up reannouncement saw the
// content first is not controlled here, so this does not show that the
// lookup was skipped; the site test's first visit does, in time.)
func TestFetchFromSources(t *testing.T) {
	ts := newSwarm(t, 3, nil)
	holder, reader, other := ts.svc[0], ts.svc[1], ts.svc[2]
	data := testBytes(5000, 9)
	h := chunk.SumGo(data)
	m := chunk.Manifest{Name: "quiet.txt", Type: "text/plain", Size: int64(len(data)), ChunkSize: chunk.MaxSize, Chunks: []chunk.Hash{h}}
	raw, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cid := chunk.SumGo(raw)
	for _, c := range []struct {
		h chunk.Hash
		b []byte
	}{{h, data}, {cid, raw}} {
		if err := holder.Library().Put(c.h, c.b, Own, "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Fetch(testCtx(t), cid, GetOptions{Sources: []id.Address{ts.Nodes[1].Address()}}); err != nil && node.Explain(err).Code != CodeNotFound {
		t.Fatalf("fetch naming a node that does not hold it: %v, want it found through the lookup or not found", err)
	}
	if other.inPenalty(ts.Nodes[1].Address()) {
		t.Error("a named source that did not hold the content was penalised")
	}
	if _, err := reader.Fetch(testCtx(t), cid, GetOptions{Sources: []id.Address{ts.Nodes[0].Address()}}); err != nil {
		t.Fatalf("fetch naming its holder: %v", err)
	}
	if got := readAll(t, reader, cid); !bytes.Equal(got, data) {
		t.Errorf("read %d bytes, want the holder's %d", len(got), len(data))
	}
}
