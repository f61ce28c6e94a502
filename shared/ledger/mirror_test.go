package ledger

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/store"
)

func openMirror(t testing.TB, st store.Store, g *grown) *Mirror {
	t.Helper()
	m, err := OpenMirror(st, g.origin, g.pub)
	if err != nil {
		t.Fatalf("OpenMirror: %v", err)
	}
	return m
}

// update offers m the checkpoint of g at size n, the entries since m's
// size, and the proof g's log gives for them.
func update(t testing.TB, m *Mirror, g *grown, n int64) error {
	t.Helper()
	from := min(m.Size(), n)
	p, err := g.log.ConsistencyProof(from, n)
	if err != nil {
		t.Fatal(err)
	}
	return m.Update(g.signed[n], g.entries[from:n], p)
}

// sameState fails unless m holds exactly g's first n entries and its
// checkpoint at n.
func sameState(t testing.TB, m *Mirror, g *grown, n int64) {
	t.Helper()
	signed, cp := m.Checkpoint()
	if m.Size() != n || cp != g.cps[n] || (n > 0 && !bytes.Equal(signed, g.signed[n])) {
		t.Fatalf("mirror at size %d (%+v), want size %d", m.Size(), cp, n)
	}
	if n == 0 {
		return
	}
	es, err := m.Entries(0, n)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(es)) != min(n, MaxBatch) || !slices.EqualFunc(es, g.entries[:len(es)], bytes.Equal) {
		t.Fatalf("mirror entries differ from the log's")
	}
}

func TestMirrorFollowsLog(t *testing.T) {
	g := grow(t, "src", 300)
	m := openMirror(t, store.NewMemory(), g)
	if signed, cp := m.Checkpoint(); signed != nil || cp.Size != 0 || cp.Hash != emptyRoot {
		t.Fatalf("new mirror: %q, %+v", signed, cp)
	}
	for _, n := range []int64{0, 1, 2, 3, 17, 32, 33, 100, 256, 257, 300} {
		if err := update(t, m, g, n); err != nil {
			t.Fatalf("update to %d: %v", n, err)
		}
		sameState(t, m, g, n)
		// The mirror serves proofs as the log does.
		for _, i := range []int64{0, n / 2, n - 1} {
			if n == 0 {
				break
			}
			p, err := m.InclusionProof(i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyInclusion(g.cps[n], i, g.entries[i], p); err != nil {
				t.Fatalf("mirror's proof of %d at %d: %v", i, n, err)
			}
			e, err := m.Entry(i)
			if err != nil || !bytes.Equal(e, g.entries[i]) {
				t.Fatalf("mirror Entry(%d) = %.20q, %v", i, e, err)
			}
		}
		if n > 1 {
			p, _ := m.ConsistencyProof(1, n)
			if err := VerifyConsistency(g.cps[1], g.cps[n], p); err != nil {
				t.Fatalf("mirror's consistency proof 1 → %d: %v", n, err)
			}
		}
	}

	// Older checkpoints and replays change nothing and are no error.
	for _, n := range []int64{0, 1, 150, 299, 300} {
		if err := m.Update(g.signed[n], nil, nil); err != nil {
			t.Fatalf("older checkpoint %d: %v", n, err)
		}
		sameState(t, m, g, 300)
	}

	// Reopened, the mirror has the same state.
	st := store.NewMemory()
	m = openMirror(t, st, g)
	update(t, m, g, 120)
	sameState(t, openMirror(t, st, g), g, 120)
}

func TestMirrorRefusesFork(t *testing.T) {
	// Two logs under one key share 40 entries, then diverge.
	a := grow(t, "fork", 80)
	key, origin := testKey("fork")
	b := &grown{log: openLog(t, store.NewMemory(), key, origin), origin: origin, pub: pubOf(key)}
	b.record()
	for i := range 80 {
		e := entry("fork", i)
		if i >= 40 {
			e = entry("split", i)
		}
		b.entries = append(b.entries, e)
		b.log.Append(e)
		b.record()
	}
	if a.cps[40] != b.cps[40] || a.cps[41] == b.cps[41] {
		t.Fatal("test bug: logs do not share exactly 40 entries")
	}

	m := openMirror(t, store.NewMemory(), a)
	if err := update(t, m, a, 60); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{41, 50, 60, 61, 80} {
		// b's checkpoint with b's entries and b's proof from the
		// mirror's size.
		from := min(m.Size(), n)
		p, _ := b.log.ConsistencyProof(from, n)
		err := m.Update(b.signed[n], b.entries[from:n], p)
		if !errors.Is(err, ErrFork) {
			t.Errorf("mirror at 60 offered b at %d: %v, want ErrFork", n, err)
		}
		// b's checkpoint with a's entries and a's proof.
		if n > 60 {
			p, _ = a.log.ConsistencyProof(60, n)
			if err := m.Update(b.signed[n], a.entries[60:n], p); !errors.Is(err, ErrFork) {
				t.Errorf("mirror at 60 offered b at %d with a's proof: %v, want ErrFork", n, err)
			}
		}
		sameState(t, m, a, 60)
	}
	// The shared prefix is no fork, and the honest log still moves the
	// mirror on.
	if err := m.Update(b.signed[40], nil, nil); err != nil {
		t.Errorf("checkpoint of the shared prefix: %v", err)
	}
	if err := update(t, m, a, 80); err != nil {
		t.Fatalf("honest update after refused forks: %v", err)
	}
	sameState(t, m, a, 80)

	// A mirror that met b first, just past the split, refuses a.
	m = openMirror(t, store.NewMemory(), b)
	if err := update(t, m, b, 41); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{41, 60} {
		from := min(m.Size(), n)
		p, _ := a.log.ConsistencyProof(from, n)
		if err := m.Update(a.signed[n], a.entries[from:n], p); !errors.Is(err, ErrFork) {
			t.Errorf("mirror at b's 41 offered a at %d: %v, want ErrFork", n, err)
		}
	}
	sameState(t, m, b, 41)
}

func TestMirrorRefusesBadUpdates(t *testing.T) {
	g := grow(t, "bad", 60)
	other := grow(t, "stranger", 60)
	st := store.NewMemory()
	m := openMirror(t, st, g)
	if err := update(t, m, g, 30); err != nil {
		t.Fatal(err)
	}
	p, _ := g.log.ConsistencyProof(30, 50)
	next := g.entries[30:50]

	changed := slices.Clone(next)
	changed[4] = []byte("not what was logged")
	swapped := slices.Clone(next)
	swapped[0], swapped[1] = swapped[1], swapped[0]
	replayed := slices.Clone(next)
	replayed[5] = g.entries[10] // an entry already in the mirror, offered again in another's place
	bigger := slices.Clone(next)
	bigger[3] = make([]byte, MaxEntry+1)
	badProof := slices.Clone(p)
	badProof[0][0] ^= 1
	forged := signAs(t, g.cps[50].String(), g.origin, mustKey("stranger"))

	for _, c := range []struct {
		name    string
		signed  []byte
		entries [][]byte
		proof   tlog.TreeProof
		want    error
	}{
		{"changed entry", g.signed[50], changed, p, ErrBadProof},
		{"swapped entries", g.signed[50], swapped, p, ErrBadProof},
		{"replayed entry", g.signed[50], replayed, p, ErrBadProof},
		{"one entry short", g.signed[50], next[1:], p, ErrBadProof},
		{"one entry too many", g.signed[50], g.entries[29:50], p, ErrBadProof},
		{"oversized entry", g.signed[50], bigger, p, ErrTooLarge},
		{"tampered proof", g.signed[50], next, badProof, ErrFork},
		{"no proof", g.signed[50], next, nil, ErrFork},
		{"forged checkpoint", forged, next, p, ErrBadSignature},
		{"unsigned checkpoint", []byte(g.cps[50].String()), next, p, ErrBadSignature},
		{"another log's checkpoint", other.signed[50], next, p, ErrWrongOrigin},
	} {
		err := m.Update(c.signed, c.entries, c.proof)
		wantErr(t, c.name, err, c.want)
		sameState(t, m, g, 30)
	}
	// A mirror of nothing yet cannot be forked: a garbled proof is just
	// that.
	fresh := openMirror(t, store.NewMemory(), g)
	wantErr(t, "first update with a needless proof", fresh.Update(g.signed[5], g.entries[:5], tlog.TreeProof{{}}), ErrBadProof)

	// Refused updates leave nothing that hurts the next one, in this
	// mirror or in one reopened from its store.
	re := openMirror(t, st, g)
	sameState(t, re, g, 30)
	if err := update(t, re, g, 40); err != nil {
		t.Fatal(err)
	}
	sameState(t, re, g, 40)
	m = openMirror(t, st, g)
	if err := update(t, m, g, 50); err != nil {
		t.Fatal(err)
	}
	sameState(t, m, g, 50)
}

func mustKey(name string) []byte {
	key, _ := testKey(name)
	return key
}

// sumBytes is the length of g's first n entries.
func sumBytes(g *grown, n int64) int64 {
	var total int64
	for _, e := range g.entries[:n] {
		total += int64(len(e))
	}
	return total
}

// Bytes counts what the mirror holds, across updates and reopening, and
// recounts when its record names another size (a crash between the
// checkpoint and the count).
func TestMirrorBytes(t *testing.T) {
	g := grow(t, "bytes", 70)
	st := store.NewMemory()
	m := openMirror(t, st, g)
	if m.Bytes() != 0 {
		t.Fatalf("empty mirror holds %d bytes", m.Bytes())
	}
	for _, n := range []int64{1, 17, 40} {
		if err := update(t, m, g, n); err != nil {
			t.Fatal(err)
		}
		if m.Bytes() != sumBytes(g, n) {
			t.Fatalf("at %d: %d bytes, want %d", n, m.Bytes(), sumBytes(g, n))
		}
	}
	// A refused update changes nothing.
	if err := m.Update(g.signed[60], g.entries[40:59], nil); err == nil {
		t.Fatal("a bad update was accepted")
	}
	if m.Bytes() != sumBytes(g, 40) {
		t.Fatalf("after a refused update: %d bytes", m.Bytes())
	}
	if got := openMirror(t, st, g).Bytes(); got != sumBytes(g, 40) {
		t.Fatalf("reopened: %d bytes, want %d", got, sumBytes(g, 40))
	}
	// The checkpoint moved on but the count did not: recounted.
	stale, err := st.Get("ledger/mirror/" + g.origin + "/bytes")
	if err != nil {
		t.Fatal(err)
	}
	update(t, m, g, 70)
	st.Put("ledger/mirror/"+g.origin+"/bytes", stale)
	if got := openMirror(t, st, g).Bytes(); got != sumBytes(g, 70) {
		t.Fatalf("reopened over a stale count: %d bytes, want %d", got, sumBytes(g, 70))
	}
}

// Delete leaves nothing of the mirror in the store, and an empty mirror
// that can grow again from size 0.
func TestMirrorDelete(t *testing.T) {
	g := grow(t, "delete", 50)
	other := grow(t, "kept", 5)
	st := store.NewMemory()
	m := openMirror(t, st, g)
	kept := openMirror(t, st, other)
	update(t, m, g, 50)
	update(t, kept, other, 5)
	if err := m.Delete(); err != nil {
		t.Fatal(err)
	}
	if keys, _ := st.Keys("ledger/mirror/" + g.origin + "/"); len(keys) != 0 {
		t.Fatalf("records left: %q", keys)
	}
	sameState(t, m, g, 0)
	sameState(t, openMirror(t, st, g), g, 0)
	sameState(t, openMirror(t, st, other), other, 5)
	if m.Bytes() != 0 {
		t.Fatalf("deleted mirror holds %d bytes", m.Bytes())
	}
	if err := update(t, m, g, 20); err != nil {
		t.Fatal(err)
	}
	sameState(t, openMirror(t, st, g), g, 20)
}

// DeleteMirror deletes a mirror whose records no longer verify.
func TestDeleteCorruptMirror(t *testing.T) {
	g := grow(t, "corrupt", 40)
	st := store.NewMemory()
	update(t, openMirror(t, st, g), g, 40)
	st.Put("ledger/mirror/"+g.origin+"/checkpoint", []byte("garbage"))
	if _, err := OpenMirror(st, g.origin, g.pub); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opening the corrupt mirror: %v", err)
	}
	if err := DeleteMirror(st, g.origin); err != nil {
		t.Fatal(err)
	}
	if keys, _ := st.Keys("ledger/mirror/"); len(keys) != 0 {
		t.Fatalf("records left: %q", keys)
	}
	sameState(t, openMirror(t, st, g), g, 0)
}
