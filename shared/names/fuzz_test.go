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

// FuzzDomainEntry: any bytes from a ledger either decode as a domain
// entry that encodes back to the same bytes, or are refused.
func FuzzDomainEntry(f *testing.F) {
	e := Entry{Hash: DomainHash("example"), Owner: [32]byte{1}, Claim: [32]byte{2}}
	f.Add(e.MarshalDomain())
	f.Add(e.Marshal())
	f.Add([]byte{KindDomain})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseDomainEntry(b)
		if err != nil {
			return
		}
		if !bytes.Equal(e.MarshalDomain(), b) {
			t.Fatalf("entry %x re-encodes as %x", b, e.MarshalDomain())
		}
	})
}

// FuzzOpenDomain: a DHT value from anyone under a domain's key either
// opens and verifies as the owner's record of that domain, or is refused;
// never a panic, never a record of another domain or key.
func FuzzOpenDomain(f *testing.F) {
	z, me, rec := domainRecord(f, "example", 3)
	r, err := SealDomain(me, rec)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(r.Value, uint64(3))
	f.Add([]byte{}, uint64(1))
	f.Add(r.Value[:len(r.Value)/2], uint64(3))
	f.Fuzz(func(t *testing.T, b []byte, seq uint64) {
		if len(b) > dht.MaxValue {
			return
		}
		d := dht.Record{Key: DomainKey("example"), Seq: seq, Value: b}
		if err := d.Sign(me.SigningKey()); err != nil {
			t.Fatal(err)
		}
		got, err := OpenDomain("example", &d)
		if err != nil {
			return
		}
		if got.Claim.Domain != "example" || got.Claim.SignKey != me.SignKey() || got.Claim.Version != seq {
			t.Fatalf("opened a record %+v", got.Claim)
		}
		if _, err := VerifyDomain(got, z.zoneOf()); err == nil && got.Claim.Site != rec.Claim.Site && got.Claim.Version == rec.Claim.Version {
			t.Fatalf("a record of another site at the same version verified")
		}
	})
}
