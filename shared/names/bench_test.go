package names

import (
	"testing"
)

// BenchmarkVerify is what a resolver pays to check one record: the
// claim's signature, the relay's checkpoint signature and an inclusion
// proof in a ledger of 700 entries (10 hashes).
// `make bench` runs it natively and as wasm in headless Chromium.
func BenchmarkVerify(b *testing.B) {
	z := newZoneRelay(b, "b")
	me, lease := node(b, z.key, "a")
	c, _ := NewClaim(me, &lease, "alice", 1)
	rec := z.sequence(b, c, 700)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(rec, "alice", z.zoneOf()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenVerify adds opening the sealed DHT value.
func BenchmarkOpenVerify(b *testing.B) {
	z := newZoneRelay(b, "b")
	me, lease := node(b, z.key, "a")
	c, _ := NewClaim(me, &lease, "alice", 1)
	sealed, err := Seal("alice", z.sequence(b, c, 700))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec, err := Open("alice", sealed)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(rec, "alice", z.zoneOf()); err != nil {
			b.Fatal(err)
		}
	}
}
