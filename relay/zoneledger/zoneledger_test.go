package zoneledger

import (
	"crypto/ed25519"
	"sync"
	"testing"

	"ddt/relay/federation"
	"ddt/relay/internal/relaytest"
	"ddt/relay/internal/stack"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// testRelay is a zone, its federation and the ledger service, in memory.
type testRelay struct {
	t   testing.TB
	fed *federation.Federation
	svc *Service
}

func newTestRelay(t testing.TB, onMirrored func(ID, *ledger.Mirror)) *testRelay {
	t.Helper()
	return newTestRelayWith(t, onMirrored, nil)
}

// newTestRelayWith is newTestRelay with the service's config changed by
// with before New.
func newTestRelayWith(t testing.TB, onMirrored func(ID, *ledger.Mirror), with func(*Config)) *testRelay {
	t.Helper()
	r := stack.New(t)
	cfg := Config{Zone: "zone-a", Key: r.Key, Store: r.Store, Federation: r.Fed}
	if with != nil {
		with(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if onMirrored != nil {
		svc.OnMirrored(onMirrored)
	}
	t.Cleanup(svc.Close) // before the federation closes: Prune starts no deletion after
	r.Start()
	return &testRelay{t: t, fed: r.Fed, svc: svc}
}

// link authenticates a fake relay of zone name, announcing features.
func (r *testRelay) link(name string, features wire.Features) (*relaytest.End, *identity.Identity) {
	r.t.Helper()
	return relaytest.FakeRelay(r.t, r.fed, name, features)
}

// Ledger frames go only to relays that announced the ledger service: at
// link-up, with the summaries and when the log grows. A relay that did
// not announce it has its ledger frames refused, and is not mirrored.
func TestLedgerFramesOnlyWhereAnnounced(t *testing.T) {
	r := newTestRelay(t, nil)
	if _, _, err := r.svc.Sequence([]byte("first")); err != nil {
		t.Fatal(err)
	}
	with, _ := r.link("zone-w", wire.Features{wire.FeatureLedger})
	without, xid := r.link("zone-o", nil)
	checkpoint := func(m wire.Message) bool { _, ok := m.(*wire.LedgerCheckpoint); return ok }
	relaytest.Next[*wire.LedgerCheckpoint](with, "the checkpoint at link-up")
	relaytest.Next[*wire.LedgerCheckpoint](with, "a checkpoint with the summaries")
	r.svc.Sequence([]byte("second"))
	key := r.svc.Key()
	with.Until("the checkpoint of size 2", func(m wire.Message) bool {
		c, ok := m.(*wire.LedgerCheckpoint)
		if !ok {
			return false
		}
		cp, err := ledger.OpenCheckpoint(c.Note, ledger.ZoneOrigin("zone-a", key), ed25519.PublicKey(key[:]))
		return err == nil && cp.Size == 2
	})
	summaries := 0
	without.Until("four summaries", func(m wire.Message) bool {
		if checkpoint(m) {
			t.Fatal("a relay that did not announce the ledger service got a checkpoint")
		}
		if _, ok := m.(*wire.ZoneSummary); ok {
			summaries++
		}
		return summaries == 4
	})
	// Its ledger frames are refused, and nothing of its log is mirrored.
	other, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin("zone-o", xid.SignKey()), xid.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	other.Append([]byte("x"))
	note, _ := other.Checkpoint()
	without.Send(&wire.LedgerCheckpoint{Note: note})
	without.ExpectError(wire.CodeUnsupported)
	without.Send(&wire.LedgerGetEntries{From: 0, To: 1})
	without.ExpectError(wire.CodeUnsupported)
	if n := len(r.svc.Stats().Mirrors); n != 0 {
		t.Fatalf("%d mirrors", n)
	}
	if ls := r.fed.Links(wire.FeatureLedger); len(ls) != 1 || ls[0].Peer().Zone != "zone-w" {
		t.Fatalf("ledger links %v", ls)
	}
}

// A relay that announced the service is mirrored: its checkpoint starts a
// round, the service asks for the proof and the entries, and the update
// reaches the OnMirrored hooks.
func TestMirrorOverALink(t *testing.T) {
	var mu sync.Mutex
	var seen []int64
	r := newTestRelay(t, func(id ID, m *ledger.Mirror) {
		mu.Lock()
		defer mu.Unlock()
		if id.Zone == "zone-w" {
			seen = append(seen, m.Size())
		}
	})
	w, wid := r.link("zone-w", wire.Features{wire.FeatureLedger})
	theirs, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin("zone-w", wid.SignKey()), wid.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	theirs.Append([]byte("a"), []byte("b"), []byte("c"))
	note, _ := theirs.Checkpoint()
	w.Send(&wire.LedgerCheckpoint{Note: note})
	for proved, sent := false, false; !proved || !sent; {
		switch m := w.Read().(type) {
		case *wire.LedgerGetProof:
			p, err := theirs.ConsistencyProof(int64(m.Old), int64(m.New))
			if err != nil {
				t.Fatal(err)
			}
			out := &wire.LedgerProof{Old: m.Old, New: m.New}
			for _, h := range p {
				out.Hashes = append(out.Hashes, h)
			}
			w.Send(out)
			proved = true
		case *wire.LedgerGetEntries:
			es, err := theirs.Entries(int64(m.From), int64(m.To))
			if err != nil {
				t.Fatal(err)
			}
			w.Send(&wire.LedgerEntries{From: m.From, Entries: es})
			sent = true
		}
	}
	wait.Until(t, wait.Default, "the mirror has 3 entries", func() bool { return r.svc.Stats().Mirrors["zone-w"] == 3 })
	if m := r.svc.Mirror("zone-w"); m == nil || m.Size() != 3 {
		t.Fatalf("mirror %v", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0] != 3 {
		t.Fatalf("OnMirrored saw %v", seen)
	}
}
