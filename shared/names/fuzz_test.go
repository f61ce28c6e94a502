package names

import (
	"bytes"
	"testing"

	"ddt/shared/dht"
	"ddt/shared/wire"
)

// FuzzEntry: any bytes from a ledger either decode as a username entry
// that encodes back to the same bytes, or are refused.
func FuzzEntry(f *testing.F) {
	e := Entry{Hash: Hash("alice"), Owner: [32]byte{1}, Claim: [32]byte{2}}
	f.Add(e.Marshal())
	f.Add([]byte{KindUser})
	f.Add([]byte{2, 1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEntry(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Marshal(), b) {
			t.Fatalf("entry %x re-encodes as %x", b, e.Marshal())
		}
	})
}

// FuzzOpenRecord: a DHT value from anyone, signed by any key (the owner's
// DHT signer here), either opens and verifies as the record of the name,
// or is refused with an error; never a panic, never a record for another
// name.
func FuzzOpenRecord(f *testing.F) {
	al := aliceRecord(f, 5)
	z, me, rec := al.z, al.me, al.rec
	sealed, err := Seal(me, rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed.Value)
	plain, _ := wire.Marshal(rec)
	f.Add(plain)
	f.Add([]byte{1})
	f.Add([]byte{sealVersion})
	signer := RecordSigner(me, "alice")
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > dht.MaxValue {
			return
		}
		d := dht.Record{Key: Key("alice"), Seq: 1, Value: b}
		if err := d.Sign(signer); err != nil {
			t.Fatal(err)
		}
		r, err := Open("alice", &d)
		if err != nil {
			return
		}
		if _, err := Verify(r, "alice", z.zoneOf()); err == nil && (r.Claim.Name != "alice" || r.Claim.SignKey != me.SignKey()) {
			t.Fatalf("a record of %q by another key verified", r.Claim.Name)
		}
	})
}
