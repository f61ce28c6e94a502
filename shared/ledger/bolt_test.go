//go:build !js

package ledger

import (
	"bytes"
	"path/filepath"
	"testing"

	"ddt/shared/store"
)

func openBolt(t testing.TB, path string) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestBoltPersistence reopens a log and a mirror kept in one bbolt file:
// they carry on from the same root, and end where logs that never closed
// end.
func TestBoltPersistence(t *testing.T) {
	key, origin := testKey("bolt")
	path := filepath.Join(t.TempDir(), "relay.db")
	src := grow(t, "neighbour", 90)
	ref := openLog(t, store.NewMemory(), key, origin) // never closed

	var checkpoints [][]byte
	next := 0
	for round, n := range []int{1, 20, 0, 35, 16, 200} {
		st := openBolt(t, path)
		l := openLog(t, st, key, origin)
		m := openMirror(t, st, src)
		if round > 0 {
			if got, _ := l.Checkpoint(); !bytes.Equal(got, checkpoints[len(checkpoints)-1]) {
				t.Fatalf("round %d: reopened log has checkpoint\n%s\nwant\n%s", round, got, checkpoints[len(checkpoints)-1])
			}
			sameState(t, m, src, int64(min(15*round, 90)))
			for i := range next {
				e, err := l.Entry(int64(i))
				if err != nil || !bytes.Equal(e, entry("bolt", i)) {
					t.Fatalf("round %d: Entry(%d) = %.20q, %v", round, i, e, err)
				}
			}
		}
		var batch [][]byte
		for range n {
			batch = append(batch, entry("bolt", next))
			next++
		}
		if _, err := l.Append(batch...); err != nil {
			t.Fatal(err)
		}
		if _, err := ref.Append(batch...); err != nil {
			t.Fatal(err)
		}
		if err := update(t, m, src, int64(min(15*(round+1), 90))); err != nil {
			t.Fatal(err)
		}
		signed, _ := l.Checkpoint()
		want, _ := ref.Checkpoint()
		if !bytes.Equal(signed, want) {
			t.Fatalf("round %d: bolt log checkpoint\n%s\nmemory log\n%s", round, signed, want)
		}
		checkpoints = append(checkpoints, signed)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
