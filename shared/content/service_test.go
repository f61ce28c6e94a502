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
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
)

// testSwarm is count nodes running the content service, every pair
// linked (a bulk channel each, with back-pressure).
type testSwarm struct {
	*nodetest.Swarm
	svc []*Service
}

func newSwarm(t testing.TB, count int, cfg func(i int) Config) *testSwarm {
	t.Helper()
	ts := &testSwarm{}
	ts.Swarm = nodetest.New(t, count, nodetest.Options{Config: func(i int, c *node.Config) {
		var sc Config
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
