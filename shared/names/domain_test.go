package names

import (
	"errors"
	"strings"
	"testing"

	"ddt/shared/dht"
	"ddt/shared/identity"
	"ddt/shared/wire"
)

// sequenceDomain appends c's entry to z's ledger (after filler entries)
// and returns its record, proven against a later checkpoint.
func (z *zoneRelay) sequenceDomain(t testing.TB, c *wire.DomainClaim, filler int) *wire.DomainRecord {
	t.Helper()
	for i := 0; i < filler; i++ {
		if _, err := z.log.Append([]byte{9, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	e, err := EntryForDomain(c)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := z.log.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := z.log.Append([]byte{9, 0xff}); err != nil {
		t.Fatal(err)
	}
	note, cp := z.log.Checkpoint()
	p, err := z.log.InclusionProof(idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	rec := &wire.DomainRecord{Claim: *c, RelayKey: z.key.SignKey(), Zone: z.zone, Index: uint64(idx), Checkpoint: note}
	for _, h := range p {
		rec.Proof = append(rec.Proof, h)
	}
	return rec
}

func domainRecord(t testing.TB, label string, version uint64) (*zoneRelay, *identity.Identity, *wire.DomainRecord) {
	t.Helper()
	z := newZoneRelay(t, "b")
	me, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewDomainClaim(me, label, [32]byte{7}, version)
	if err != nil {
		t.Fatal(err)
	}
	return z, me, z.sequenceDomain(t, c, 3)
}

func TestCheckLabel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		says string
	}{
		{"example", ""},
		{"a", ""},
		{"x-1-y", ""},
		{strings.Repeat("a", 63), ""},
		{"", "empty"},
		{strings.Repeat("a", 64), "64 characters"},
		{"-a", "hyphen"},
		{"a-", "hyphen"},
		{"Example", "'E'"},
		{"a.b", "'.'"},
		{"zoë", "'ë'"},
	} {
		err := CheckLabel(tc.in)
		if (err == nil) != (tc.says == "") || err != nil && !strings.Contains(err.Error(), tc.says) {
			t.Errorf("CheckLabel(%q) = %v; want an error saying %q", tc.in, err, tc.says)
		}
	}
}

func TestDomainClaim(t *testing.T) {
	me, _ := identity.New()
	c, err := NewDomainClaim(me, "example", [32]byte{1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDomainClaim(c); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDomainClaim(me, "Ex ample", [32]byte{1}, 1); !errors.Is(err, ErrBadDomain) || !errors.Is(err, wire.ErrBadName) {
		t.Errorf("a claim of a bad label: %v", err)
	}
	if _, err := NewDomainClaim(me, "example", [32]byte{1}, 0); err == nil {
		t.Error("a claim at version 0 was made")
	}
	for _, tc := range []struct {
		what string
		edit func(c *wire.DomainClaim)
		says string
	}{
		{"another site", func(c *wire.DomainClaim) { c.Site[0] ^= 1 }, "signature"},
		{"another version", func(c *wire.DomainClaim) { c.Version = 2 }, "signature"},
		{"another owner", func(c *wire.DomainClaim) { c.SignKey[0] ^= 1 }, "signature"},
		{"another label", func(c *wire.DomainClaim) { c.Domain = "exampl" }, "signature"},
		{"upper case", func(c *wire.DomainClaim) { c.Domain = "Example" }, "'E'"},
		{"version 0", func(c *wire.DomainClaim) { c.Version = 0 }, "version 0"},
	} {
		f := *c
		tc.edit(&f)
		if err := VerifyDomainClaim(&f); !errors.Is(err, ErrForged) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v; want forged, saying %q", tc.what, err, tc.says)
		}
	}
	// A domain and a username of one label have different handles.
	if DomainHash("alice") == Hash("alice") || DomainOwner("alice", me.SignKey()) == Owner("alice", me.SignKey()) {
		t.Error("domain and username handles collide")
	}
}

func TestDomainEntryKinds(t *testing.T) {
	me, _ := identity.New()
	c, _ := NewDomainClaim(me, "example", [32]byte{1}, 1)
	b, err := EntryForDomain(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseEntry(b); !errors.Is(err, ErrNotUser) {
		t.Errorf("a domain entry parsed as a username's: %v", err)
	}
	e, err := ParseDomainEntry(b)
	if err != nil || e.Hash != DomainHash("example") || e.Owner != DomainOwner("example", me.SignKey()) {
		t.Fatalf("domain entry %+v, %v", e, err)
	}
	if string(e.MarshalDomain()) != string(b) {
		t.Error("a domain entry does not re-encode to its bytes")
	}
	user := Entry{Hash: Hash("alice")}
	if _, err := ParseDomainEntry(user.Marshal()); !errors.Is(err, ErrNotDomain) {
		t.Errorf("a username entry parsed as a domain's: %v", err)
	}
	if _, err := ParseDomainEntry(b[:40]); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("a short domain entry: %v", err)
	}
}

func TestVerifyDomain(t *testing.T) {
	z, me, rec := domainRecord(t, "example", 1)
	if _, err := VerifyDomain(rec, z.zoneOf()); err != nil {
		t.Fatal(err)
	}
	other := newZoneRelay(t, "b")
	mallory, _ := identity.New()
	for _, tc := range []struct {
		what string
		edit func(r *wire.DomainRecord)
		want error
	}{
		{"a forged site", func(r *wire.DomainRecord) { r.Claim.Site[1] ^= 1 }, ErrForged},
		{"another label", func(r *wire.DomainRecord) { r.Claim.Domain = "exampla" }, ErrForged},
		{"version 0", func(r *wire.DomainRecord) { r.Claim.Version = 0 }, ErrForged},
		{"a bad proof", func(r *wire.DomainRecord) { r.Proof[0][0] ^= 1 }, ErrForged},
		{"another index", func(r *wire.DomainRecord) { r.Index++ }, ErrForged},
		{"a huge index", func(r *wire.DomainRecord) { r.Index = 1 << 63 }, ErrForged},
		{"another zone", func(r *wire.DomainRecord) { r.Zone = "c" }, ErrForged},
		{"an unknown relay", func(r *wire.DomainRecord) { r.RelayKey = other.key.SignKey() }, ErrUnknownRelay},
		{"a claim re-signed by another key", func(r *wire.DomainRecord) {
			c, _ := NewDomainClaim(mallory, "example", r.Claim.Site, r.Claim.Version)
			r.Claim = *c
		}, ErrForged},
	} {
		f := *rec
		f.Proof = append([][32]byte(nil), rec.Proof...)
		tc.edit(&f)
		if _, err := VerifyDomain(&f, z.zoneOf()); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v; want %v", tc.what, err, tc.want)
		}
	}
	// The DHT record opens as the domain's, and only under its key and
	// signed by its owner.
	r, err := SealDomain(me, rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenDomain("example", &r)
	if err != nil || !SameDomainClaim(&got.Claim, &rec.Claim) {
		t.Fatalf("OpenDomain: %v", err)
	}
	if _, err := OpenDomain("exampla", &r); !errors.Is(err, ErrForged) {
		t.Errorf("a record opened as another domain's: %v", err)
	}
	if _, err := SealDomain(mallory, rec); err == nil {
		t.Error("sealed a record of another key")
	}
	// Mallory stores the owner's record under the domain's key, signed
	// by herself: refused, it is not her claim.
	stolen := dht.Record{Key: DomainKey("example"), Seq: rec.Claim.Version, Value: r.Value}
	if err := stolen.Sign(mallory.SigningKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDomain("example", &stolen); !errors.Is(err, ErrForged) {
		t.Errorf("a record signed by another key opened: %v", err)
	}
	// The owner's value at a sequence number other than the version.
	wrongSeq := dht.Record{Key: DomainKey("example"), Seq: 9, Value: r.Value}
	if err := wrongSeq.Sign(me.SigningKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDomain("example", &wrongSeq); !errors.Is(err, ErrForged) {
		t.Errorf("a record at the wrong sequence number opened: %v", err)
	}
	// A tampered value no longer carries the DHT signature.
	r.Value[len(r.Value)-1] ^= 1
	if _, err := OpenDomain("example", &r); !errors.Is(err, ErrForged) {
		t.Errorf("a tampered record opened: %v", err)
	}
}

func TestBetterDomain(t *testing.T) {
	z, me, v1 := domainRecord(t, "example", 1)
	c2, _ := NewDomainClaim(me, "example", [32]byte{8}, 2)
	v2 := z.sequenceDomain(t, c2, 0)
	if !BetterDomain(v2, v1) || BetterDomain(v1, v2) {
		t.Error("the higher version of the owner is not the better record")
	}
	mallory, _ := identity.New()
	cm, _ := NewDomainClaim(mallory, "example", [32]byte{9}, 5)
	vm := z.sequenceDomain(t, cm, 0)
	if BetterDomain(vm, v1) || !BetterDomain(v1, vm) {
		t.Error("a later claim of another key beat the first within one ledger")
	}
}
