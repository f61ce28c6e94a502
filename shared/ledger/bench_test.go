//go:build !js

package ledger

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/store"
)

// benchEntry is about the size of a username registration: name,
// address, two public keys and a signature.
func benchEntry(i int) []byte {
	e := make([]byte, 256)
	copy(e, fmt.Sprintf("register user%d", i))
	return e
}

// boltLog opens a log in a fresh bbolt file, closed when tb ends.
func boltLog(tb testing.TB) (*Log, *store.Bolt) {
	tb.Helper()
	key, origin := testKey("bench")
	st := openBolt(tb, filepath.Join(tb.TempDir(), "ledger.db"))
	tb.Cleanup(func() { st.Close() })
	return openLog(tb, st, key, origin), st
}

// appendRate appends n entries in batches of batch and returns entries/s.
func appendRate(tb testing.TB, l *Log, n, batch int) float64 {
	tb.Helper()
	start := time.Now()
	for i := 0; i < n; i += batch {
		es := make([][]byte, 0, batch)
		for j := range min(batch, n-i) {
			es = append(es, benchEntry(i+j))
		}
		if _, err := l.Append(es...); err != nil {
			tb.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// timeEach runs f n times and returns the mean time of one run.
func timeEach(n int, f func(i int)) time.Duration {
	start := time.Now()
	for i := range n {
		f(i)
	}
	return time.Since(start) / time.Duration(n)
}

// TestBenchLedger prints the ledger benchmark table (make bench sets
// DDT_BENCH=1): append rates on bbolt, proof and checkpoint costs, and
// proof sizes.
func TestBenchLedger(t *testing.T) {
	if os.Getenv("DDT_BENCH") == "" {
		t.Skip("set DDT_BENCH=1 to run the ledger benchmark")
	}
	var rows [][2]string
	row := func(what, value string) { rows = append(rows, [2]string{what, value}) }
	rate := func(r float64) string { return fmt.Sprintf("%.0f entries/s", r) }

	// Each Put is one bbolt transaction and one fsync, so the rate is
	// about how many records an append rewrites: an entry bundle, a hash
	// tile or two, and the checkpoint.
	var l *Log
	var st *store.Bolt
	for _, c := range []struct{ n, batch int }{{1000, 1}, {10_000, 16}, {20_000, 100}, {50_000, 1000}} {
		l, st = boltLog(t)
		row(fmt.Sprintf("append to bbolt, %d per call (%d entries of %d B)", c.batch, c.n, len(benchEntry(0))), rate(appendRate(t, l, c.n, c.batch)))
	}

	// Proofs from the last log.
	signed, cp := l.Checkpoint()
	size := cp.Size
	pub := pubOf(mustKey("bench"))
	proofs := make([]tlog.RecordProof, 1000)
	d := timeEach(len(proofs), func(i int) {
		var err error
		if proofs[i], err = l.InclusionProof(int64(i*47), size); err != nil {
			t.Fatal(err)
		}
	})
	row(fmt.Sprintf("inclusion proof from bbolt, %d entries", size), d.Round(100*time.Nanosecond).String())
	d = timeEach(len(proofs), func(i int) {
		if err := VerifyInclusion(cp, int64(i*47), benchEntry(i*47), proofs[i]); err != nil {
			t.Fatal(err)
		}
	})
	row("verify inclusion", d.Round(100*time.Nanosecond).String())
	d = timeEach(1000, func(int) {
		if _, err := OpenCheckpoint(signed, cp.Origin, pub); err != nil {
			t.Fatal(err)
		}
	})
	row("open (verify) a checkpoint", d.Round(100*time.Nanosecond).String())
	old := mustOpenAt(t, l, size/3)
	tp, err := l.ConsistencyProof(old.Size, size)
	if err != nil {
		t.Fatal(err)
	}
	d = timeEach(1000, func(int) {
		if err := VerifyConsistency(old, cp, tp); err != nil {
			t.Fatal(err)
		}
	})
	row("verify consistency", d.Round(100*time.Nanosecond).String())
	row(fmt.Sprintf("proof sizes at %d entries", size), fmt.Sprintf("inclusion %d B, consistency %d B, checkpoint note %d B",
		len(proofs[1])*tlog.HashSize, len(tp)*tlog.HashSize, len(signed)))
	keys, _ := st.Keys("")
	row("store records", fmt.Sprintf("%d for %d entries of %d B", len(keys), size, len(benchEntry(0))))

	var b strings.Builder
	fmt.Fprintf(&b, "Ledger (shared/ledger; bbolt file under %s, one fsync per Put; %d CPUs):\n\n| measure | value |\n|---|---|\n", os.TempDir(), runtime.GOMAXPROCS(0))
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s |\n", r[0], r[1])
	}
	fmt.Print(b.String())
}

// mustOpenAt returns the checkpoint l's tree had at size, as a verifier
// that kept it would hold it.
func mustOpenAt(t testing.TB, l *Log, size int64) Checkpoint {
	t.Helper()
	root, err := l.rootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	return Checkpoint{Origin: l.origin, Size: size, Hash: root}
}

func BenchmarkAppendBolt(b *testing.B) {
	l, _ := boltLog(b)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := l.Append(benchEntry(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkAppendBoltBatch100(b *testing.B) {
	l, _ := boltLog(b)
	batch := make([][]byte, 100)
	for i := range batch {
		batch[i] = benchEntry(i)
	}
	for b.Loop() {
		if _, err := l.Append(batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(100*b.N)/b.Elapsed().Seconds(), "entries/s")
}

func BenchmarkAppendMemory(b *testing.B) {
	key, origin := testKey("bench")
	l := openLog(b, store.NewMemory(), key, origin)
	for i := 0; b.Loop(); i++ {
		if _, err := l.Append(benchEntry(i)); err != nil {
			b.Fatal(err)
		}
	}
}

// benchLog is a memory log of 10,000 entries for the proof benchmarks.
func benchLog(b *testing.B) (*Log, []byte, Checkpoint) {
	key, origin := testKey("bench")
	l := openLog(b, store.NewMemory(), key, origin)
	appendRate(b, l, 10_000, 1000)
	signed, cp := l.Checkpoint()
	return l, signed, cp
}

func BenchmarkInclusionProof(b *testing.B) {
	l, _, cp := benchLog(b)
	for i := 0; b.Loop(); i++ {
		if _, err := l.InclusionProof(int64(i)%cp.Size, cp.Size); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyInclusion(b *testing.B) {
	l, _, cp := benchLog(b)
	p, _ := l.InclusionProof(4321, cp.Size)
	e := benchEntry(4321)
	for b.Loop() {
		if err := VerifyInclusion(cp, 4321, e, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenCheckpoint(b *testing.B) {
	_, signed, cp := benchLog(b)
	pub := pubOf(mustKey("bench"))
	for b.Loop() {
		if _, err := OpenCheckpoint(signed, cp.Origin, pub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyConsistency(b *testing.B) {
	l, _, cp := benchLog(b)
	old := mustOpenAt(b, l, 3333)
	p, _ := l.ConsistencyProof(old.Size, cp.Size)
	for b.Loop() {
		if err := VerifyConsistency(old, cp, p); err != nil {
			b.Fatal(err)
		}
	}
}
