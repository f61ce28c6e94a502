package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/store"
)

// testKey returns a fixed Ed25519 key for name and the origin DDT would
// give its log in zone "test".
func testKey(name string) (ed25519.PrivateKey, string) {
	seed := sha256.Sum256([]byte(name))
	key := ed25519.NewKeyFromSeed(seed[:])
	return key, "ddt.zone/test/" + hex.EncodeToString(key.Public().(ed25519.PublicKey)[:4])
}

func pubOf(key ed25519.PrivateKey) ed25519.PublicKey { return key.Public().(ed25519.PublicKey) }

// entry returns the i'th test entry of a log; lengths vary from 0 to
// MaxEntry so bundles mix small and full-size entries.
func entry(tag string, i int) []byte {
	e := fmt.Appendf(nil, "%s-%d", tag, i)
	switch i % 7 {
	case 3:
		e = nil
	case 5:
		e = append(e, bytes.Repeat([]byte{byte(i)}, MaxEntry-len(e))...)
	}
	return e
}

func openLog(t testing.TB, st store.Store, key ed25519.PrivateKey, origin string) *Log {
	t.Helper()
	l, err := Open(st, origin, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustOpen(t testing.TB, signed []byte, origin string, pub ed25519.PublicKey) Checkpoint {
	t.Helper()
	cp, err := OpenCheckpoint(signed, origin, pub)
	if err != nil {
		t.Fatalf("OpenCheckpoint(%q): %v", signed, err)
	}
	return cp
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func TestAppendAndRead(t *testing.T) {
	key, origin := testKey("a")
	l := openLog(t, store.NewMemory(), key, origin)
	if l.Size() != 0 {
		t.Fatalf("new log has size %d", l.Size())
	}
	signed, cp := l.Checkpoint()
	if got := mustOpen(t, signed, origin, pubOf(key)); got != cp || cp.Size != 0 || cp.Hash != emptyRoot {
		t.Fatalf("empty checkpoint %+v, note says %+v", cp, got)
	}
	if _, err := l.Entry(0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Entry(0) of empty log: %v", err)
	}

	var all [][]byte
	for round, n := range []int{1, 2, 13, 0, 16, 40, 1, 300} {
		var batch [][]byte
		for range n {
			batch = append(batch, entry("a", len(all)+len(batch)))
		}
		first, err := l.Append(batch...)
		if err != nil {
			t.Fatalf("round %d: Append: %v", round, err)
		}
		if first != int64(len(all)) {
			t.Fatalf("round %d: first = %d, want %d", round, first, len(all))
		}
		all = append(all, batch...)
		if l.Size() != int64(len(all)) {
			t.Fatalf("round %d: Size = %d, want %d", round, l.Size(), len(all))
		}
		signed, cp := l.Checkpoint()
		if got := mustOpen(t, signed, origin, pubOf(key)); got != cp {
			t.Fatalf("Checkpoint returned %+v with a note for %+v", cp, got)
		}
		if err := Audit(all, cp); err != nil {
			t.Fatalf("round %d: Audit: %v", round, err)
		}
	}
	for i, want := range all {
		got, err := l.Entry(int64(i))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Entry(%d) = %.20q, %v; want %.20q", i, got, err, want)
		}
	}
	// Entries pages by MaxBatch.
	var paged [][]byte
	for from := int64(0); from < l.Size(); {
		es, err := l.Entries(from, l.Size())
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 || len(es) > MaxBatch {
			t.Fatalf("Entries(%d, %d) gave %d", from, l.Size(), len(es))
		}
		paged = append(paged, es...)
		from += int64(len(es))
	}
	if !slices.EqualFunc(paged, all, bytes.Equal) {
		t.Fatal("paged entries differ from appended ones")
	}
	// Returned entries do not alias each other.
	es, _ := l.Entries(0, 3)
	_ = append(es[0], "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"...)
	if !bytes.Equal(es[1], all[1]) {
		t.Fatal("appending to one returned entry changed the next")
	}
	for _, r := range [][2]int64{{-1, 2}, {3, 2}, {0, l.Size() + 1}} {
		if _, err := l.Entries(r[0], r[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("Entries(%d, %d): %v, want ErrNotFound", r[0], r[1], err)
		}
	}
	if es, err := l.Entries(5, 5); err != nil || len(es) != 0 {
		t.Errorf("Entries(5, 5) = %d entries, %v", len(es), err)
	}

	// Too large: the whole batch is refused and nothing changes.
	before, _ := l.Checkpoint()
	_, err := l.Append([]byte("ok"), make([]byte, MaxEntry+1))
	wantErr(t, "Append(oversized)", err, ErrTooLarge)
	if after, _ := l.Checkpoint(); !bytes.Equal(before, after) {
		t.Fatal("a refused append changed the checkpoint")
	}
}

// grown is a log built one entry at a time, with its checkpoint at every
// size.
type grown struct {
	log     *Log
	origin  string
	pub     ed25519.PublicKey
	entries [][]byte
	signed  [][]byte     // signed[n]: the checkpoint at size n
	cps     []Checkpoint // cps[n]: what it says
}

func grow(t testing.TB, tag string, n int) *grown {
	t.Helper()
	key, origin := testKey(tag)
	g := &grown{log: openLog(t, store.NewMemory(), key, origin), origin: origin, pub: pubOf(key)}
	g.record()
	for i := range n {
		g.entries = append(g.entries, entry(tag, i))
		if _, err := g.log.Append(g.entries[i]); err != nil {
			t.Fatal(err)
		}
		g.record()
	}
	return g
}

func (g *grown) record() {
	signed, cp := g.log.Checkpoint()
	g.signed = append(g.signed, signed)
	g.cps = append(g.cps, cp)
}

// proofSizes are the tree sizes proofs are checked at: every small size
// and the edges of bundles and of the first two tile levels.
func proofSizes(max int) []int64 {
	var s []int64
	for n := range int64(41) {
		s = append(s, n)
	}
	for _, n := range []int64{63, 64, 65, 127, 128, 129, 255, 256, 257, int64(max)} {
		if n <= int64(max) && n > s[len(s)-1] {
			s = append(s, n)
		}
	}
	return s
}

func TestInclusionProofs(t *testing.T) {
	g := grow(t, "incl", 300)
	for _, size := range proofSizes(300) {
		cp := g.cps[size]
		if err := Audit(g.entries[:size], cp); err != nil {
			t.Fatalf("Audit at size %d: %v", size, err)
		}
		for i := range size {
			p, err := g.log.InclusionProof(i, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", i, size, err)
			}
			if err := VerifyInclusion(cp, i, g.entries[i], p); err != nil {
				t.Fatalf("VerifyInclusion(%d at %d): %v", i, size, err)
			}
			// The same proof says nothing about another entry, index or size.
			wantErr(t, "other entry", VerifyInclusion(cp, i, append(g.entries[i], 'x'), p), ErrBadProof)
			if size > 1 {
				wantErr(t, "other index", VerifyInclusion(cp, (i+1)%size, g.entries[i], p), ErrBadProof)
			}
			if size < 300 {
				wantErr(t, "other size", VerifyInclusion(g.cps[size+1], i, g.entries[i], p), ErrBadProof)
			}
		}
	}
	for _, c := range [][2]int64{{0, 0}, {-1, 5}, {5, 5}, {3, 301}} {
		if _, err := g.log.InclusionProof(c[0], c[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("InclusionProof(%d, %d): %v, want ErrNotFound", c[0], c[1], err)
		}
	}
	wantErr(t, "index beyond checkpoint", VerifyInclusion(g.cps[5], 5, g.entries[5], nil), ErrBadProof)
}

func TestConsistencyProofs(t *testing.T) {
	g := grow(t, "cons", 300)
	sizes := proofSizes(300)
	for _, m := range sizes {
		for _, n := range sizes {
			if m > n {
				continue
			}
			p, err := g.log.ConsistencyProof(m, n)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
			}
			if err := VerifyConsistency(g.cps[m], g.cps[n], p); err != nil {
				t.Fatalf("VerifyConsistency(%d → %d): %v", m, n, err)
			}
			if m > 0 && m < n && n < 300 {
				wantErr(t, fmt.Sprintf("proof %d → %d against %d", m, n, n+1),
					VerifyConsistency(g.cps[m], g.cps[n+1], p), ErrBadProof)
			}
			if m > 0 && m < n {
				bad := slices.Clone(p)
				bad[len(bad)/2][0] ^= 1
				wantErr(t, fmt.Sprintf("tampered proof %d → %d", m, n), VerifyConsistency(g.cps[m], g.cps[n], bad), ErrBadProof)
				wantErr(t, fmt.Sprintf("reversed %d → %d", m, n), VerifyConsistency(g.cps[n], g.cps[m], p), ErrBadProof)
			}
		}
	}
	for _, c := range [][2]int64{{-1, 5}, {6, 5}, {3, 301}} {
		if _, err := g.log.ConsistencyProof(c[0], c[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("ConsistencyProof(%d, %d): %v, want ErrNotFound", c[0], c[1], err)
		}
	}
}

// signAs signs text as a note with key under name.
func signAs(t testing.TB, text, name string, key ed25519.PrivateKey) []byte {
	t.Helper()
	s, err := newSigner(name, key)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func TestTamper(t *testing.T) {
	g := grow(t, "tamper", 20)
	key, _ := testKey("tamper")
	other, otherOrigin := testKey("other")
	cp, signed := g.cps[20], g.signed[20]
	p7, _ := g.log.InclusionProof(7, 20)

	// Entries: a changed one, two swapped.
	changed := slices.Clone(g.entries[7])
	changed = append(changed, '!')
	wantErr(t, "changed entry", VerifyInclusion(cp, 7, changed, p7), ErrBadProof)
	swapped := slices.Clone(g.entries)
	swapped[7], swapped[8] = swapped[8], swapped[7]
	wantErr(t, "swapped entries: Audit", Audit(swapped, cp), ErrBadProof)
	wantErr(t, "swapped entries: inclusion", VerifyInclusion(cp, 7, swapped[7], p7), ErrBadProof)
	wantErr(t, "Audit with one entry missing", Audit(g.entries[:19], cp), ErrBadProof)
	wantErr(t, "Audit of an oversized entry", Audit(append(slices.Clone(g.entries[:19]), make([]byte, MaxEntry+1)), cp), ErrTooLarge)
	badProof := slices.Clone(p7)
	badProof[0][5] ^= 0x40
	wantErr(t, "tampered proof", VerifyInclusion(cp, 7, g.entries[7], badProof), ErrBadProof)
	wantErr(t, "short proof", VerifyInclusion(cp, 7, g.entries[7], p7[1:]), ErrBadProof)

	// Checkpoints.
	text := cp.String()
	sigLine := string(signed[len(text)+1:])
	moreSize := strings.Replace(text, "\n20\n", "\n21\n", 1)
	flipped := slices.Clone(signed)
	flipped[len(flipped)-6] ^= 1 // inside the base64 signature
	if flipped[len(flipped)-6] == '+' || flipped[len(flipped)-6] == '/' {
		t.Fatal("test bug: flipped into a special base64 character")
	}
	for _, c := range []struct {
		name   string
		msg    []byte
		origin string
		want   error
	}{
		{"forged by another key", signAs(t, text, g.origin, other), g.origin, ErrBadSignature},
		{"unsigned", []byte(text), g.origin, ErrBadSignature},
		{"unsigned with a blank line", []byte(text + "\n"), g.origin, ErrMalformed},
		{"size changed under the signature", []byte(moreSize + "\n" + sigLine), g.origin, ErrBadSignature},
		{"signature bytes changed", flipped, g.origin, ErrBadSignature},
		{"opened as another log", signed, otherOrigin, ErrWrongOrigin},
		{"another log's, opened with this key", signAs(t, strings.Replace(text, g.origin, otherOrigin, 1), otherOrigin, key), g.origin, ErrWrongOrigin},
		{"body names another log", signAs(t, strings.Replace(text, g.origin, otherOrigin, 1), g.origin, key), g.origin, ErrWrongOrigin},
		{"not a checkpoint", signAs(t, g.origin+"\nhello\n", g.origin, key), g.origin, ErrMalformed},
		{"garbage", []byte("\x00\x01"), g.origin, ErrBadSignature},
		{"too large", append(slices.Clone(signed), bytes.Repeat([]byte("— x y\n"), MaxCheckpoint)...), g.origin, ErrTooLarge},
		{"invalid origin", signed, "has space", ErrMalformed},
	} {
		_, err := OpenCheckpoint(c.msg, c.origin, g.pub)
		wantErr(t, c.name, err, c.want)
	}

	// A checkpoint for the wrong size: honestly signed, but the proofs
	// were made for another size.
	wantErr(t, "proof for size 20 against size 19", VerifyInclusion(g.cps[19], 7, g.entries[7], p7), ErrBadProof)
	// Or the key signed a size the tree does not have. (An inclusion proof
	// for an entry in a complete left subtree cannot tell — RFC 6962
	// proofs do not bind the size there — but one near the end can, and
	// Audit and consistency always do.)
	lie := mustOpen(t, signAs(t, moreSize, g.origin, key), g.origin, g.pub)
	p18, _ := g.log.InclusionProof(18, 20)
	wantErr(t, "proof against a lying size", VerifyInclusion(lie, 18, g.entries[18], p18), ErrBadProof)
	p20, _ := g.log.ConsistencyProof(19, 20)
	wantErr(t, "consistency against a lying size", VerifyConsistency(g.cps[19], lie, p20), ErrBadProof)
	wantErr(t, "Audit against a lying size", Audit(g.entries, lie), ErrBadProof)

	// Consistency between checkpoints that cannot both be true.
	fork := cp
	fork.Hash[0] ^= 1
	wantErr(t, "same size, two roots", VerifyConsistency(cp, fork, nil), ErrFork)
	wantErr(t, "two origins", VerifyConsistency(cp, Checkpoint{Origin: otherOrigin, Size: 20, Hash: cp.Hash}, nil), ErrWrongOrigin)
	wantErr(t, "proof where none is needed", VerifyConsistency(g.cps[0], cp, tlog.TreeProof{cp.Hash}), ErrBadProof)
}

func TestCheckpointText(t *testing.T) {
	g := grow(t, "text", 3)
	signed := g.signed[3]
	want := fmt.Sprintf("%s\n3\n%s\n\n— %s ", g.origin, g.cps[3].Hash, g.origin)
	if !strings.HasPrefix(string(signed), want) {
		t.Fatalf("checkpoint note\n%s\ndoes not start with\n%s", signed, want)
	}
	// The verifier key works with sumdb/note directly.
	vkey, err := VerifierKey(g.origin, g.pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil || n.Text != g.cps[3].String() {
		t.Fatalf("note.Open: %v, text %q", err, n.Text)
	}
	// A cosignature by another key beside the log's does not hurt, and
	// extension lines are ignored.
	other, otherOrigin := testKey("cosigner")
	s, _ := newSigner(otherOrigin, other)
	cosigned, err := note.Sign(n, s)
	if err != nil {
		t.Fatal(err)
	}
	if cp := mustOpen(t, cosigned, g.origin, g.pub); cp != g.cps[3] {
		t.Fatalf("cosigned checkpoint says %+v", cp)
	}
	key, _ := testKey("text")
	ext := signAs(t, g.cps[3].String()+"ext line\n", g.origin, key)
	if cp := mustOpen(t, ext, g.origin, g.pub); cp != g.cps[3] {
		t.Fatalf("checkpoint with an extension line says %+v", cp)
	}
	for _, bad := range []string{
		g.origin + "\n03\n" + g.cps[3].Hash.String() + "\n",
		g.origin + "\n-3\n" + g.cps[3].Hash.String() + "\n",
		g.origin + "\n+3\n" + g.cps[3].Hash.String() + "\n",
		g.origin + "\n3\n" + g.cps[3].Hash.String()[:40] + "\n",
		g.origin + "\n3\n" + g.cps[3].Hash.String() + "\n\n",
		g.origin + "\n0\n" + g.cps[3].Hash.String() + "\n",
		g.origin + "\n3\n" + g.cps[3].Hash.String(),
		g.origin + "\n3\n",
	} {
		if _, err := parseCheckpoint(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseCheckpoint(%q): %v, want ErrMalformed", bad, err)
		}
	}
	for _, o := range []string{"", "a b", "a+b", "a\nb", strings.Repeat("o", MaxOrigin+1), "\xff"} {
		if _, err := VerifierKey(o, g.pub); !errors.Is(err, ErrMalformed) {
			t.Errorf("VerifierKey(%q): %v, want ErrMalformed", o, err)
		}
		if _, err := Open(store.NewMemory(), o, key); !errors.Is(err, ErrMalformed) {
			t.Errorf("Open(%q): %v, want ErrMalformed", o, err)
		}
	}
	if _, err := VerifierKey(g.origin, g.pub[:31]); !errors.Is(err, ErrMalformed) {
		t.Errorf("VerifierKey(short key): %v", err)
	}
	if _, err := Open(store.NewMemory(), g.origin, key[:10]); !errors.Is(err, ErrMalformed) {
		t.Errorf("Open(short key): %v", err)
	}
}

// faulty is a store whose Puts fail once budget of them have succeeded:
// a crash, as far as the log can tell.
type faulty struct {
	store.Store
	mu     sync.Mutex
	budget int // Puts left; negative: unlimited
	puts   int
}

var errInjected = errors.New("injected failure")

func (f *faulty) Put(key string, value []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.budget == 0 {
		return errInjected
	}
	f.budget--
	f.puts++
	return f.Store.Put(key, value)
}

func (f *faulty) limit(n int) {
	f.mu.Lock()
	f.budget, f.puts = n, 0
	f.mu.Unlock()
}

// TestCrashMidAppend stops an append after each of its writes in turn:
// the log stays as it was, in memory and when reopened, and appending
// afterwards — the same entries or others — gives the same tree as a log
// that never failed.
func TestCrashMidAppend(t *testing.T) {
	key, origin := testKey("crash")
	var prefix, batch, others [][]byte
	for i := range 29 { // ends inside a bundle and a tile
		prefix = append(prefix, entry("crash", i))
	}
	for i := range 40 { // crosses bundles and completes a level-1 hash
		batch = append(batch, entry("batch", i))
		others = append(others, entry("other", i))
	}
	want := func(extra [][]byte) []byte {
		l := openLog(t, store.NewMemory(), key, origin)
		if _, err := l.Append(prefix...); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(extra...); err != nil {
			t.Fatal(err)
		}
		signed, _ := l.Checkpoint()
		return signed
	}
	wantBatch, wantOthers := want(batch), want(others)

	// Count the writes of a clean append.
	f := &faulty{Store: store.NewMemory(), budget: -1}
	l := openLog(t, f, key, origin)
	l.Append(prefix...)
	f.limit(-1)
	l.Append(batch...)
	writes := f.puts
	if writes < 5 {
		t.Fatalf("a clean append made only %d writes", writes)
	}

	for k := range writes {
		for _, then := range []struct {
			name    string
			entries [][]byte
			want    []byte
		}{{"same", batch, wantBatch}, {"others", others, wantOthers}} {
			mem := store.NewMemory()
			f := &faulty{Store: mem, budget: -1}
			l := openLog(t, f, key, origin)
			if _, err := l.Append(prefix...); err != nil {
				t.Fatal(err)
			}
			before, _ := l.Checkpoint()
			f.limit(k)
			if _, err := l.Append(batch...); !errors.Is(err, errInjected) {
				t.Fatalf("append failing after %d writes: %v", k, err)
			}
			if now, _ := l.Checkpoint(); !bytes.Equal(now, before) || l.Size() != int64(len(prefix)) {
				t.Fatalf("failed append after %d writes changed the log to size %d", k, l.Size())
			}
			// Reopened, as after a crash.
			re := openLog(t, mem, key, origin)
			if now, _ := re.Checkpoint(); !bytes.Equal(now, before) {
				t.Fatalf("reopened after %d of %d writes: checkpoint\n%s\nwant\n%s", k, writes, now, before)
			}
			for i, e := range prefix {
				if got, err := re.Entry(int64(i)); err != nil || !bytes.Equal(got, e) {
					t.Fatalf("reopened after %d writes: Entry(%d) = %.20q, %v", k, i, got, err)
				}
			}
			// The reopened log carries on (the one that saw the error
			// does too; see below).
			if _, err := re.Append(then.entries...); err != nil {
				t.Fatalf("%s after %d writes: %v", then.name, k, err)
			}
			if got, _ := re.Checkpoint(); !bytes.Equal(got, then.want) {
				t.Fatalf("%s after a crash at write %d: checkpoint\n%s\nwant\n%s", then.name, k, got, then.want)
			}
		}
	}
	// The log that saw the error, not reopened, also carries on.
	f = &faulty{Store: store.NewMemory(), budget: -1}
	l = openLog(t, f, key, origin)
	l.Append(prefix...)
	f.limit(writes / 2)
	if _, err := l.Append(batch...); !errors.Is(err, errInjected) {
		t.Fatal(err)
	}
	f.limit(-1)
	if _, err := l.Append(others...); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Checkpoint(); !bytes.Equal(got, wantOthers) {
		t.Fatal("the log that saw a failed append grew to a different tree")
	}
}

func TestOpenChecksStore(t *testing.T) {
	key, origin := testKey("check")
	mem := store.NewMemory()
	l := openLog(t, mem, key, origin)
	for i := range 50 {
		l.Append(entry("check", i))
	}
	other, _ := testKey("intruder")
	_, err := Open(mem, origin, other)
	wantErr(t, "Open with another key", err, ErrCorrupt)
	wantErr(t, "Open with another key", err, ErrBadSignature)

	keys, _ := mem.Keys("ledger/log/" + origin + "/hashes/")
	if len(keys) == 0 {
		t.Fatal("no hash tiles stored")
	}
	data, _ := mem.Get(keys[len(keys)-1])
	mem.Delete(keys[len(keys)-1])
	_, err = Open(mem, origin, key)
	wantErr(t, "Open with a tile missing", err, ErrCorrupt)

	data[0] ^= 1
	mem.Put(keys[len(keys)-1], data)
	_, err = Open(mem, origin, key)
	wantErr(t, "Open with a tile changed", err, ErrCorrupt)

	mem.Put(keys[len(keys)-1], data[:33])
	_, err = Open(mem, origin, key)
	wantErr(t, "Open with a torn tile", err, ErrCorrupt)

	// A store that fails at once.
	closed := store.NewMemory()
	closed.Close()
	_, err = Open(closed, origin, key)
	wantErr(t, "Open on a closed store", err, store.ErrClosed)
}

// TestConcurrent reads, proves and verifies while a writer appends; run
// it with -race.
func TestConcurrent(t *testing.T) {
	key, origin := testKey("conc")
	pub := pubOf(key)
	l := openLog(t, store.NewMemory(), key, origin)
	const appends = 200
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	done := make(chan struct{})
	wg.Go(func() {
		defer close(done)
		for i := range appends {
			batch := [][]byte{entry("conc", 2*i), entry("conc", 2*i+1)}
			if _, err := l.Append(batch...); err != nil {
				errs <- err
				return
			}
		}
	})
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			var old Checkpoint
			for {
				select {
				case <-done:
					return
				default:
				}
				signed, cp := l.Checkpoint()
				if c, err := OpenCheckpoint(signed, origin, pub); err != nil || c != cp {
					errs <- fmt.Errorf("checkpoint %+v: %v", c, err)
					return
				}
				if cp.Size == 0 {
					continue
				}
				i := rng.Int64N(cp.Size)
				e, err := l.Entry(i)
				if err == nil && !bytes.Equal(e, entry("conc", int(i))) {
					err = fmt.Errorf("entry %d = %.20q", i, e)
				}
				if err == nil {
					var p tlog.RecordProof
					if p, err = l.InclusionProof(i, cp.Size); err == nil {
						err = VerifyInclusion(cp, i, e, p)
					}
				}
				if err == nil {
					var p tlog.TreeProof
					if p, err = l.ConsistencyProof(old.Size, cp.Size); err == nil {
						if old.Origin == "" {
							old = Checkpoint{Origin: origin, Hash: emptyRoot}
						}
						err = VerifyConsistency(old, cp, p)
					}
				}
				if err != nil {
					errs <- err
					return
				}
				old = cp
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l.Size() != 2*appends {
		t.Fatalf("size %d", l.Size())
	}
}
