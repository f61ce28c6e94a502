package zoneledger

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/relay/internal/relaytest"
	"ddt/shared/clock"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// openLog is zone's log under id, in memory.
func openLog(t testing.TB, id *identity.Identity, zone string) *ledger.Log {
	t.Helper()
	l, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin(zone, id.SignKey()), id.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// announce sends log's checkpoint.
func announce(e *relaytest.End, log *ledger.Log) {
	note, _ := log.Checkpoint()
	e.Send(&wire.LedgerCheckpoint{Note: note})
}

// serveLog answers the relay's ledger requests from log until it has
// sent the proof and every entry up to log's size.
func serveLog(t testing.TB, e *relaytest.End, log *ledger.Log) {
	t.Helper()
	size := uint64(log.Size())
	for proved, sent := false, false; !proved || !sent; {
		switch m := e.Read().(type) {
		case *wire.LedgerGetEntries:
			es, err := log.Entries(int64(m.From), int64(min(m.To, m.From+wire.MaxLedgerEntries)))
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for i, x := range es {
				if total += len(x); total > wire.MaxLedgerBytes {
					es = es[:i]
					break
				}
			}
			e.Send(&wire.LedgerEntries{From: m.From, Entries: es})
			sent = m.From+uint64(len(es)) == size
		case *wire.LedgerGetProof:
			p, err := log.ConsistencyProof(int64(m.Old), int64(m.New))
			if err != nil {
				t.Fatal(err)
			}
			out := &wire.LedgerProof{Old: m.Old, New: m.New}
			for _, h := range p {
				out.Hashes = append(out.Hashes, h)
			}
			e.Send(out)
			proved = m.New == size
		case *wire.Error:
			t.Fatalf("the relay refused a ledger frame: %v", m.Err())
		}
	}
}

// mirrorSize is the size of the relay's mirror of zone (-1 if none).
func (r *testRelay) mirrorSize(zone string) int64 {
	if m := r.svc.Mirror(zone); m != nil {
		return m.Size()
	}
	return -1
}

// linkedTo reports whether the relay's link to zone is up.
func (r *testRelay) linkedTo(zone string) bool {
	for _, l := range r.fed.Links(wire.FeatureLedger) {
		if l.Peer().Zone == zone {
			return true
		}
	}
	return false
}

// liveHeap is the bytes of live heap objects, after a collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// A relay announces a ledger 65,536 entries ahead of its mirror, serves
// every page of entries asked for — each as large as a frame allows —
// and never the consistency proof. The hub holds at most one round's
// bytes: the round is abandoned once its entries pass MaxRoundBytes, and
// counted; the link and the mirror it had stay; a later honest
// announcement still catches up.
func TestLedgerWithheldProofBounded(t *testing.T) {
	r := newTestRelay(t, nil)
	w, wid := r.link("zone-w", wire.Features{wire.FeatureLedger})
	honest := openLog(t, wid, "zone-w")
	honest.Append([]byte("a"), []byte("b"), []byte("c"))
	announce(w, honest)
	serveLog(t, w, honest)
	wait.Until(t, wait.Default, "the mirror has 3 entries", func() bool { return r.mirrorSize("zone-w") == 3 })

	const ahead = 65536
	big := bytes.Repeat([]byte{0xee}, ledger.MaxEntry)
	page := make([][]byte, wire.MaxLedgerBytes/ledger.MaxEntry)
	for i := range page {
		page[i] = big
	}
	// Generous: three rounds' worth and 16 MiB of slack. Holding the whole
	// announced catch-up would take 256 MiB.
	const bound = 3*MaxRoundBytes + 16<<20
	base := liveHeap()
	var peak int64
	w.Send(&wire.LedgerCheckpoint{Note: relaytest.FakeCheckpoint(t, wid, "zone-w", 3+ahead)})
	pages, sent := 0, 0
	for r.svc.Stats().Abandoned == 0 {
		switch m := w.Read().(type) {
		case *wire.LedgerGetEntries:
			n := min(len(page), int(m.To-m.From))
			w.Send(&wire.LedgerEntries{From: m.From, Entries: page[:n]})
			sent += n * ledger.MaxEntry
			if pages++; pages%8 == 0 {
				if grown := liveHeap() - base; grown > peak {
					peak = grown
					if peak > bound {
						t.Fatalf("the hub's heap grew by %d MiB after %d MiB of entries sent, bound %d MiB", peak>>20, sent>>20, bound>>20)
					}
				}
			}
			if m.From+uint64(n) == 3+ahead {
				t.Fatalf("the hub asked for all %d entries (%d MiB)", ahead, sent>>20)
			}
		case *wire.Error:
			t.Fatalf("refused: %v", m.Err())
		}
	}
	if sent > MaxRoundBytes+wire.MaxLedgerBytes {
		t.Fatalf("the hub took %d bytes in one round, limit %d", sent, MaxRoundBytes)
	}
	if grown := liveHeap() - base; grown > MaxRoundBytes/2 {
		t.Fatalf("the abandoned round still holds %d MiB", grown>>20)
	}
	t.Logf("abandoned after %d pages (%d MiB); peak heap growth %d MiB", pages, sent>>20, peak>>20)
	if !r.linkedTo("zone-w") || r.mirrorSize("zone-w") != 3 {
		t.Fatalf("after the abandoned round: linked %v, mirror %d", r.linkedTo("zone-w"), r.mirrorSize("zone-w"))
	}
	// The same size is not tried again on this link: a log only grows.
	w.Send(&wire.LedgerCheckpoint{Note: relaytest.FakeCheckpoint(t, wid, "zone-w", 3+ahead)})
	summaries := 0
	w.Until("two summaries", func(m wire.Message) bool {
		switch m.(type) {
		case *wire.LedgerGetEntries, *wire.LedgerGetProof:
			t.Fatal("the hub asked again toward the size it abandoned")
		case *wire.ZoneSummary:
			summaries++
		}
		return summaries == 2
	})

	honest.Append([]byte("d"), []byte("e"), []byte("f"), []byte("g"))
	announce(w, honest)
	serveLog(t, w, honest)
	wait.Until(t, wait.Default, "the mirror catches up to 7", func() bool { return r.mirrorSize("zone-w") == 7 })
	if st := r.svc.Stats(); st.Abandoned != 1 || st.Forks != 0 || st.Capped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A round whose proof does not come within RoundTimeout (on the
// service's clock) is abandoned and counted; the proof arriving after it
// is dropped without a refusal, and the next announcement catches up.
func TestLedgerRoundDeadline(t *testing.T) {
	vc := clock.NewVirtual(time.Unix(1e9, 0))
	r := newTestRelayWith(t, nil, func(c *Config) { c.Clock = vc })
	w, wid := r.link("zone-w", wire.Features{wire.FeatureLedger})
	honest := openLog(t, wid, "zone-w")
	for i := range 1000 {
		honest.Append(fmt.Appendf(nil, "entry %d", i))
	}
	announce(w, honest)
	var proof *wire.LedgerGetProof
	for got := 0; got < 1000; {
		switch m := w.Read().(type) {
		case *wire.LedgerGetProof:
			proof = m // withheld
		case *wire.LedgerGetEntries:
			es, _ := honest.Entries(int64(m.From), int64(m.To))
			w.Send(&wire.LedgerEntries{From: m.From, Entries: es})
			got += len(es)
		}
	}
	if proof == nil {
		t.Fatal("no proof asked for")
	}
	// Every entry is in; only the proof is missing.
	vc.Advance(RoundTimeout - time.Nanosecond)
	if st := r.svc.Stats(); st.Abandoned != 0 || r.mirrorSize("zone-w") > 0 {
		t.Fatalf("before the deadline: %+v", st)
	}
	vc.Advance(time.Nanosecond)
	wait.Until(t, wait.Default, "the round is abandoned", func() bool { return r.svc.Stats().Abandoned == 1 })

	// The late proof is dropped quietly: no error comes back, the link stays.
	p, _ := honest.ConsistencyProof(int64(proof.Old), int64(proof.New))
	late := &wire.LedgerProof{Old: proof.Old, New: proof.New}
	for _, h := range p {
		late.Hashes = append(late.Hashes, h)
	}
	w.Send(late)
	summaries := 0
	w.Until("two summaries", func(m wire.Message) bool {
		switch m := m.(type) {
		case *wire.Error:
			t.Fatalf("the late proof was refused: %v", m.Err())
		case *wire.ZoneSummary:
			summaries++
		}
		return summaries == 2
	})
	if !r.linkedTo("zone-w") || r.mirrorSize("zone-w") > 0 {
		t.Fatalf("after the deadline: linked %v, mirror %d", r.linkedTo("zone-w"), r.mirrorSize("zone-w"))
	}

	announce(w, honest)
	serveLog(t, w, honest)
	wait.Until(t, wait.Default, "the mirror catches up", func() bool { return r.mirrorSize("zone-w") == 1000 })
	if st := r.svc.Stats(); st.Abandoned != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// usernameSized is n entries as long as a username entry (97 bytes).
func usernameSized(n int) [][]byte {
	es := make([][]byte, n)
	for i := range es {
		es[i] = fmt.Appendf(nil, "%097d", i)
	}
	return es
}

// The README's limit, exactly: a relay MaxCatchUp (65,536) entries ahead
// of the mirror is mirrored in one round; one entry more and it is not —
// no entries are asked for, the round is counted as abandoned and the
// link stays.
func TestLedgerTooFarAheadExactly(t *testing.T) {
	if MaxCatchUp != 65536 {
		t.Fatalf("MaxCatchUp is %d; the README says 65,536", MaxCatchUp)
	}
	r := newTestRelay(t, nil)
	w, wid := r.link("zone-w", wire.Features{wire.FeatureLedger})
	honest := openLog(t, wid, "zone-w")
	if _, err := honest.Append(usernameSized(MaxCatchUp)...); err != nil {
		t.Fatal(err)
	}
	announce(w, honest)
	serveLog(t, w, honest)
	wait.Until(t, 6*wait.Default, "65,536 entries mirrored", func() bool { return r.mirrorSize("zone-w") == MaxCatchUp })

	w.Send(&wire.LedgerCheckpoint{Note: relaytest.FakeCheckpoint(t, wid, "zone-w", 2*MaxCatchUp+1)})
	wait.Until(t, wait.Default, "the round is refused", func() bool { return r.svc.Stats().Abandoned == 1 })
	summaries := 0
	w.Until("two summaries", func(m wire.Message) bool {
		switch m.(type) {
		case *wire.LedgerGetEntries, *wire.LedgerGetProof:
			t.Fatal("the hub asked for a catch-up beyond MaxCatchUp")
		case *wire.ZoneSummary:
			summaries++
		}
		return summaries == 2
	})
	if !r.linkedTo("zone-w") || r.mirrorSize("zone-w") != MaxCatchUp {
		t.Fatalf("linked %v, mirror %d", r.linkedTo("zone-w"), r.mirrorSize("zone-w"))
	}
}

// logs is a slog handler's output, safe to read while written.
type logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logs) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// A relay's mirror grows to MaxMirrorBytes exactly and no further: the
// round that would pass it is dropped, logged once and counted; later
// announcements are not fetched; the link stays, and the mirror is
// served as it was.
func TestLedgerMirrorCapped(t *testing.T) {
	const limit = 500
	var out logs
	r := newTestRelayWith(t, nil, func(c *Config) {
		c.MaxMirrorBytes = limit
		c.Logger = slog.New(slog.NewTextHandler(&out, nil))
	})
	w, wid := r.link("zone-w", wire.Features{wire.FeatureLedger})
	honest := openLog(t, wid, "zone-w")
	hundred := func() []byte { return bytes.Repeat([]byte{'x'}, 100) }
	for range 5 {
		honest.Append(hundred())
	}
	announce(w, honest)
	serveLog(t, w, honest)
	wait.Until(t, wait.Default, "500 bytes mirrored", func() bool { return r.mirrorSize("zone-w") == 5 })

	honest.Append(hundred())
	announce(w, honest)
	for {
		m := w.Read()
		if g, ok := m.(*wire.LedgerGetEntries); ok {
			es, _ := honest.Entries(int64(g.From), int64(g.To))
			w.Send(&wire.LedgerEntries{From: g.From, Entries: es})
			break
		}
	}
	wait.Until(t, wait.Default, "the relay is capped", func() bool { return r.svc.Stats().Capped == 1 })
	honest.Append(hundred())
	announce(w, honest)
	summaries := 0
	w.Until("two summaries", func(m wire.Message) bool {
		switch m.(type) {
		case *wire.LedgerGetEntries, *wire.LedgerGetProof:
			t.Fatal("the hub asked for more of a capped relay's ledger")
		case *wire.ZoneSummary:
			summaries++
		}
		return summaries == 2
	})
	if n := out.count("outgrew the bytes mirrored of one relay"); n != 1 {
		t.Fatalf("the cap was logged %d times", n)
	}
	if !r.linkedTo("zone-w") || r.mirrorSize("zone-w") != 5 || r.svc.Mirror("zone-w").Bytes() != limit {
		t.Fatalf("linked %v, mirror %d", r.linkedTo("zone-w"), r.mirrorSize("zone-w"))
	}
	if st := r.svc.Stats(); st.Capped != 1 || st.Abandoned != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// The mirror of a relay no longer trusted is deleted from the store
// (bbolt) and from /ledger/zone/<zone>/ within a summary round, its
// announcements no longer start a mirror, and a mirror kept of a relay
// distrusted while this one was down is deleted at start.
func TestLedgerPruneUntrusted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	st := relaytest.OpenBolt(t, path)
	var mu sync.Mutex
	distrusted := map[[32]byte]bool{}
	trusted := func(key [32]byte) bool {
		mu.Lock()
		defer mu.Unlock()
		return !distrusted[key]
	}
	var prunedIDs []string
	r := newTestRelayWith(t, nil, func(c *Config) { c.Store = st; c.Trusted = trusted })
	r.svc.OnPruned(func(id ID) { mu.Lock(); prunedIDs = append(prunedIDs, id.Zone); mu.Unlock() })
	mux := http.NewServeMux()
	r.svc.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	status := func(zone string) int {
		resp, err := http.Get(srv.URL + "/ledger/zone/" + zone + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	records := func(id *identity.Identity, zone string) int {
		key := id.SignKey()
		a, _ := st.Keys("ledger/mirror/" + ledger.ZoneOrigin(zone, key) + "/")
		b, _ := st.Keys(fmt.Sprintf("relay/mirrors/%x/", key))
		return len(a) + len(b)
	}

	x, xid := r.link("zone-x", wire.Features{wire.FeatureLedger})
	y, yid := r.link("zone-y", wire.Features{wire.FeatureLedger})
	xlog, ylog := openLog(t, xid, "zone-x"), openLog(t, yid, "zone-y")
	for i := range 40 {
		xlog.Append(fmt.Appendf(nil, "x%d", i))
		ylog.Append(fmt.Appendf(nil, "y%d", i))
	}
	announce(x, xlog)
	serveLog(t, x, xlog)
	announce(y, ylog)
	serveLog(t, y, ylog)
	wait.Until(t, wait.Default, "both mirrored", func() bool { return r.mirrorSize("zone-x") == 40 && r.mirrorSize("zone-y") == 40 })
	if status("zone-x") != 200 || records(xid, "zone-x") == 0 {
		t.Fatal("zone x's mirror not served or not stored")
	}

	mu.Lock()
	distrusted[xid.SignKey()] = true
	mu.Unlock()
	wait.Until(t, wait.Default, "x's mirror is pruned", func() bool { return r.svc.Stats().Pruned == 1 })
	if code := status("zone-x"); code != http.StatusNotFound {
		t.Fatalf("/ledger/zone/zone-x/checkpoint: %d after the prune", code)
	}
	if n := records(xid, "zone-x"); n != 0 {
		t.Fatalf("%d records of x's mirror left in the store", n)
	}
	if status("zone-y") != 200 || r.mirrorSize("zone-y") != 40 {
		t.Fatal("y's mirror went too")
	}
	mu.Lock()
	if len(prunedIDs) != 1 || prunedIDs[0] != "zone-x" {
		t.Fatalf("OnPruned saw %v", prunedIDs)
	}
	mu.Unlock()
	// x announces again: nothing is asked for, nothing is mirrored.
	xlog.Append([]byte("more"))
	announce(x, xlog)
	summaries := 0
	x.Until("two summaries", func(m wire.Message) bool {
		switch m.(type) {
		case *wire.LedgerGetEntries, *wire.LedgerGetProof:
			t.Fatal("the hub asked for an untrusted relay's ledger")
		case *wire.ZoneSummary:
			summaries++
		}
		return summaries == 2
	})
	if r.mirrorSize("zone-x") != -1 || records(xid, "zone-x") != 0 || !r.linkedTo("zone-x") {
		t.Fatal("an untrusted relay's announcement made a mirror, or its link went down")
	}

	// Down: y is distrusted meanwhile; at start its mirror is deleted.
	r.fed.Close()
	r.svc.Close()
	st.Close()
	st = relaytest.OpenBolt(t, path)
	mu.Lock()
	distrusted[yid.SignKey()] = true
	mu.Unlock()
	key, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Zone: "zone-a", Key: key, Store: st, Trusted: trusted})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(svc.Mirrors()); n != 0 || svc.Mirror("zone-y") != nil {
		t.Fatalf("%d mirrors after start", n)
	}
	if n := records(yid, "zone-y"); n != 0 {
		t.Fatalf("%d records of y's mirror left in the store", n)
	}
	if s := svc.Stats(); s.Pruned != 1 {
		t.Fatalf("stats at start %+v", s)
	}
}

// Settled waits for the ledger of every linked trusted relay: until it
// announces, while its mirror is behind what it announced, and at most
// SettleTimeout after its link came up; a relay without the feature
// asked for, or not trusted, is not waited for.
func TestSettled(t *testing.T) {
	vc := clock.NewVirtual(time.Unix(1e9, 0))
	r := newTestRelayWith(t, nil, func(c *Config) { c.Clock = vc })
	if ok, _ := r.svc.Settled(wire.FeatureNames); !ok {
		t.Fatal("a relay with no links is not settled")
	}
	w, wid := r.link("zone-w", wire.Features{wire.FeatureLedger, wire.FeatureNames})
	r.link("zone-o", wire.Features{wire.FeatureLedger}) // runs no names: never waited for names
	if ok, zone := r.svc.Settled(wire.FeatureNames); ok || zone != "zone-w" {
		t.Fatalf("settled before zone w announced its ledger: %v %q", ok, zone)
	}
	honest := openLog(t, wid, "zone-w")
	announce(w, honest) // empty so far
	wait.Until(t, wait.Default, "settled once zone w announced", func() bool { return !unsettled(r.svc) })

	honest.Append([]byte("alice"), []byte("bob"))
	announce(w, honest)
	ask := relaytest.Next[*wire.LedgerGetProof](w, "the proof asked for") // the round is on
	if !unsettled(r.svc) {
		t.Fatal("settled while the mirror is behind the announced ledger")
	}
	p, _ := honest.ConsistencyProof(int64(ask.Old), int64(ask.New))
	proof := &wire.LedgerProof{Old: ask.Old, New: ask.New}
	for _, h := range p {
		proof.Hashes = append(proof.Hashes, h)
	}
	w.Send(proof)
	get := relaytest.Next[*wire.LedgerGetEntries](w, "the entries asked for")
	es, _ := honest.Entries(int64(get.From), int64(get.To))
	w.Send(&wire.LedgerEntries{From: get.From, Entries: es})
	wait.Until(t, wait.Default, "settled once mirrored", func() bool { return !unsettled(r.svc) })

	// A relay that announces a bigger ledger and never serves it keeps
	// the relay unsettled until SettleTimeout after its link came up.
	honest.Append([]byte("carol"))
	announce(w, honest)
	wait.Until(t, wait.Default, "unsettled again", func() bool { return unsettled(r.svc) })
	vc.Advance(SettleTimeout)
	if unsettled(r.svc) {
		t.Fatalf("still unsettled %v after the link came up", SettleTimeout)
	}

	// Dropping the link and linking again buys it no new SettleTimeout.
	w.Conn.Close()
	wait.Until(t, wait.Default, "zone w's link down", func() bool { return !r.linkedTo("zone-w") })
	w2 := relaytest.LinkAs(t, r.fed, wid, "zone-w", wire.Features{wire.FeatureLedger, wire.FeatureNames})
	honest.Append([]byte("dave"))
	announce(w2, honest)
	wait.Until(t, wait.Default, "zone w linked again", func() bool { return r.linkedTo("zone-w") })
	if unsettled(r.svc) {
		t.Fatal("a relay that linked again held this relay up for another SettleTimeout")
	}
}

func unsettled(s *Service) bool { ok, _ := s.Settled(wire.FeatureNames); return !ok }
