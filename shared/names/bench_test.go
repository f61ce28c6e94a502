package names

import (
	"testing"
)

// BenchmarkVerify is what a resolver pays to check one record: the
// claim's signature, the relay's checkpoint signature and an inclusion
// proof in a ledger of 700 entries (10 hashes).
// `make bench` runs it natively and as wasm in headless Chromium.
func BenchmarkVerify(b *testing.B) {
	al := aliceRecord(b, 700)
	z, rec := al.z, al.rec
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(rec, "alice", z.zoneOf()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenVerify adds opening the sealed DHT value: its signature,
// the decryption and the owner's binding of the signer.
func BenchmarkOpenVerify(b *testing.B) {
	al := aliceRecord(b, 700)
	z := al.z
	sealed, err := Seal(al.me, al.rec)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec, err := Open("alice", &sealed)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Verify(rec, "alice", z.zoneOf()); err != nil {
			b.Fatal(err)
		}
	}
}
