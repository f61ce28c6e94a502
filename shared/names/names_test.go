package names

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"ddt/shared/dht"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/wire"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
		says     string
	}{
		{"alice", "alice", nil, ""},
		{"Alice42", "alice42", nil, ""},
		{"0", "0", nil, ""},
		{strings.Repeat("Z", 16), strings.Repeat("z", 16), nil, ""},
		{"", "", ErrEmpty, "empty"},
		{strings.Repeat("a", 17), "", ErrTooLong, "17 characters, at most 16"},
		{"al ice", "", ErrChar, `' '`},
		{"bob_1", "", ErrChar, `'_'`},
		{"zoë", "", ErrChar, `'ë'`},
		{"ａｌｉｃｅ", "", ErrChar, "letters and digits"}, // fullwidth letters are not ASCII
		{"alice\x00", "", ErrChar, `'\x00'`},
	} {
		got, err := Normalize(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && (!strings.Contains(err.Error(), tc.says) || !errors.Is(err, wire.ErrBadName)) {
			t.Errorf("Normalize(%q): error %q does not say %q or is not a bad-name error", tc.in, err, tc.says)
		}
	}
}

// node is a claimant: an identity and a lease from relay.
func node(t testing.TB, relay *identity.Identity, zone string) (*identity.Identity, wire.Lease) {
	t.Helper()
	me, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	lease := relay.IssueLease(me.SignKey(), me.AgreeKey(), [16]byte{1, 2, 3}, zone, testNow, 7*24*3600e9)
	return me, lease
}

func TestClaim(t *testing.T) {
	relay, _ := identity.New()
	me, lease := node(t, relay, "a")
	c, err := NewClaim(me, &lease, "Alice", 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "alice" || c.Address != lease.Address || c.Zone != "a" {
		t.Fatalf("claim %+v", c)
	}
	if err := VerifyClaim(c); err != nil {
		t.Fatal(err)
	}
	if _, err := NewClaim(me, &lease, "al/ice", 1); !errors.Is(err, ErrChar) {
		t.Errorf("a claim of a bad name: %v", err)
	}
	other, otherLease := node(t, relay, "a")
	if _, err := NewClaim(other, &lease, "bob", 1); err == nil {
		t.Error("a claim signed with someone else's lease")
	}
	for name, mutate := range map[string]func(c *wire.UserClaim){
		"renamed":       func(c *wire.UserClaim) { c.Name = "mallory" },
		"upper case":    func(c *wire.UserClaim) { c.Name = "Alice" },
		"moved":         func(c *wire.UserClaim) { c.Address = otherLease.Address },
		"rekeyed":       func(c *wire.UserClaim) { c.AgreeKey = [32]byte{9} },
		"version 0":     func(c *wire.UserClaim) { c.Version = 0 },
		"bumped":        func(c *wire.UserClaim) { c.Version = 2 },
		"stolen":        func(c *wire.UserClaim) { c.SignKey = other.SignKey() },
		"bad signature": func(c *wire.UserClaim) { c.Sig[5] ^= 1 },
	} {
		f := *c
		mutate(&f)
		err := VerifyClaim(&f)
		if err == nil {
			t.Errorf("%s claim verifies", name)
		}
	}
	f := *c
	f.SignKey = other.SignKey() // someone else's address, re-signed with their own key
	f.Sig = other.Sign(f.SignedBytes())
	if err := VerifyClaim(&f); !errors.Is(err, ErrForged) {
		t.Errorf("a claim whose address is not derived from its key and nonce: %v", err)
	}
}

func TestEntry(t *testing.T) {
	relay, _ := identity.New()
	me, lease := node(t, relay, "a")
	c, _ := NewClaim(me, &lease, "alice", 1)
	b, err := EntryFor(c)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Hash != Hash("alice") || e.Owner != Owner("alice", me.SignKey()) || !bytes.Equal(e.Marshal(), b) {
		t.Errorf("entry %+v", e)
	}
	// The entry reveals neither the name, nor the address, nor any key.
	for what, secret := range map[string][]byte{"name": []byte("alice"), "address": lease.Address[:],
		"sign key": lease.SignKey[:], "agree key": lease.AgreeKey[:]} {
		if bytes.Contains(b, secret) {
			t.Errorf("the ledger entry holds the %s", what)
		}
	}
	if _, err := ParseEntry([]byte{2, 0, 0}); !errors.Is(err, ErrNotUser) {
		t.Errorf("another kind of entry: %v", err)
	}
	if _, err := ParseEntry(b[:50]); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("a short entry: %v", err)
	}
}

func TestHome(t *testing.T) {
	keys := make([][32]byte, 5)
	for i := range keys {
		keys[i][0] = byte(i + 1)
	}
	counts := map[[32]byte]int{}
	for i := 0; i < 1000; i++ {
		h := Hash(strings.Repeat("x", i%16+1) + string(rune('a'+i%26)))
		home, ok := Home(h, keys)
		if !ok {
			t.Fatal("no home among five relays")
		}
		// Any order of the same relays gives the same home.
		rev := [][32]byte{keys[4], keys[2], keys[0], keys[3], keys[1]}
		if h2, _ := Home(h, rev); h2 != home {
			t.Fatalf("home depends on the order of the relays")
		}
		// Across ledgers Before orders nothing, home or not: a relay
		// that ground its key to be the home takes no name by it.
		for _, k := range keys {
			if k != home && (Before(h, home, 1, k, 9) || Before(h, k, 1, home, 9)) {
				t.Fatal("Before orders entries of two ledgers")
			}
		}
		if !Before(h, home, 1, home, 9) || Before(h, home, 9, home, 1) {
			t.Fatal("Before does not order one ledger's entries")
		}
		counts[home]++
	}
	if len(counts) != len(keys) {
		t.Errorf("1000 names spread over %d of 5 relays: %v", len(counts), counts)
	}
	if _, ok := Home(Hash("a"), nil); ok {
		t.Error("a home among no relays")
	}
	if !Before(Hash("a"), keys[0], 3, keys[0], 4) || Before(Hash("a"), keys[0], 4, keys[0], 3) {
		t.Error("within one ledger, the earlier entry must come first")
	}
}

// zoneRelay is a relay's log for record tests.
type zoneRelay struct {
	key  *identity.Identity
	zone string
	log  *ledger.Log
}

func newZoneRelay(t testing.TB, zone string) *zoneRelay {
	t.Helper()
	k, _ := identity.New()
	l, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin(zone, k.SignKey()), k.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	return &zoneRelay{key: k, zone: zone, log: l}
}

// sequence appends c (after filler entries) and returns its record.
func (z *zoneRelay) sequence(t testing.TB, c *wire.UserClaim, filler int) *wire.UserRecord {
	t.Helper()
	for i := 0; i < filler; i++ {
		if _, err := z.log.Append([]byte{2, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	e, err := EntryFor(c)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := z.log.Append(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := z.log.Append([]byte{2, 0xff}); err != nil { // the record proves against a later checkpoint
		t.Fatal(err)
	}
	note, cp := z.log.Checkpoint()
	p, err := z.log.InclusionProof(idx, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	rec := &wire.UserRecord{Claim: *c, RelayKey: z.key.SignKey(), Zone: z.zone, Index: uint64(idx), Checkpoint: note}
	for _, h := range p {
		rec.Proof = append(rec.Proof, h)
	}
	return rec
}

func (z *zoneRelay) zoneOf() ZoneOf {
	return func(k [32]byte) (string, bool) {
		if k == z.key.SignKey() {
			return z.zone, true
		}
		return "", false
	}
}

// alice is the usual fixture: a zone-b relay that sequenced the claim of
// "alice" by a node of zone a (me, with lease) after filler other entries.
type alice struct {
	z     *zoneRelay
	me    *identity.Identity
	lease wire.Lease
	rec   *wire.UserRecord
}

func aliceRecord(t testing.TB, filler int) alice {
	t.Helper()
	z := newZoneRelay(t, "b")
	me, lease := node(t, z.key, "a")
	c, err := NewClaim(me, &lease, "alice", 1)
	if err != nil {
		t.Fatal(err)
	}
	return alice{z: z, me: me, lease: lease, rec: z.sequence(t, c, filler)}
}

func TestVerifyRecord(t *testing.T) {
	al := aliceRecord(t, 6)
	z, me, rec := al.z, al.me, al.rec
	if _, err := Verify(rec, "alice", z.zoneOf()); err != nil {
		t.Fatal(err)
	}
	other := newZoneRelay(t, "b")
	mallory, mlease := node(t, z.key, "a")
	mc, _ := NewClaim(mallory, &mlease, "mallory", 1)
	for name, tc := range map[string]struct {
		mutate func(r *wire.UserRecord)
		want   error
	}{
		"another name's record": {func(r *wire.UserRecord) {}, ErrForged},
		"wrong index":           {func(r *wire.UserRecord) { r.Index-- }, ErrForged},
		"index past the tree":   {func(r *wire.UserRecord) { r.Index = 1 << 40 }, ErrForged},
		"huge index":            {func(r *wire.UserRecord) { r.Index = 1 << 63 }, ErrForged},
		"proof hash flipped":    {func(r *wire.UserRecord) { r.Proof[1][3] ^= 1 }, ErrForged},
		"proof cut short":       {func(r *wire.UserRecord) { r.Proof = r.Proof[:len(r.Proof)-1] }, ErrForged},
		"no proof":              {func(r *wire.UserRecord) { r.Proof = nil }, ErrForged},
		"claim swapped":         {func(r *wire.UserRecord) { r.Claim = *mc; r.Claim.Name = "alice" }, ErrForged},
		"claim bumped":          {func(r *wire.UserRecord) { r.Claim.Version = 2; r.Claim.Sig = me.Sign(r.Claim.SignedBytes()) }, ErrForged},
		"checkpoint edited": {func(r *wire.UserRecord) {
			r.Checkpoint = bytes.Replace(r.Checkpoint, []byte("\n8\n"), []byte("\n9\n"), 1)
		}, ErrForged},
		"zone relabelled":        {func(r *wire.UserRecord) { r.Zone = "a" }, ErrForged},
		"unknown relay":          {func(r *wire.UserRecord) { r.RelayKey = other.key.SignKey() }, ErrUnknownRelay},
		"another relay's ledger": {func(r *wire.UserRecord) { r.Checkpoint, _ = other.log.Checkpoint() }, ErrForged},
	} {
		r := *rec
		r.Proof = append([][32]byte(nil), rec.Proof...)
		r.Checkpoint = append([]byte(nil), rec.Checkpoint...)
		tc.mutate(&r)
		want := "alice"
		if name == "another name's record" {
			want = "bob"
		}
		if _, err := Verify(&r, want, z.zoneOf()); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestSeal(t *testing.T) {
	// A big ledger: the proof is long, and the sealed record still fits a DHT value.
	al := aliceRecord(t, 3000)
	z, me, lease, rec := al.z, al.me, al.lease, al.rec
	r, err := Seal(me, rec)
	if err != nil {
		t.Fatal(err)
	}
	if r.Key != Key("alice") || r.Seq != 1 || r.Verify() != nil {
		t.Fatalf("sealed record under %s at seq %d (verify: %v)", r.Key.Short(), r.Seq, r.Verify())
	}
	again, _ := Seal(me, rec)
	if !bytes.Equal(r.Value, again.Value) || r.Signer != again.Signer {
		t.Error("sealing one record twice gives different bytes")
	}
	// What the storing nodes see links to nothing of the owner's.
	seen, _ := r.Marshal()
	for what, secret := range map[string][]byte{"name": []byte("alice"), "address": lease.Address[:], "sign key": lease.SignKey[:]} {
		if bytes.Contains(seen, secret) {
			t.Errorf("the sealed record shows the %s", what)
		}
	}
	// The next version is signed by the same key, so it replaces this one.
	c2, _ := NewClaim(me, &lease, "alice", 2)
	r2, err := Seal(me, z.sequence(t, c2, 0))
	if err != nil || r2.Signer != r.Signer || r2.Seq != 2 {
		t.Errorf("version 2 sealed by %x at seq %d (%v); want %x at 2", r2.Signer[:4], r2.Seq, err, r.Signer[:4])
	}
	got, err := Open("alice", &r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(got, "alice", z.zoneOf()); err != nil {
		t.Fatal(err)
	}

	other, _ := node(t, z.key, "a")
	if _, err := Seal(other, rec); err == nil {
		t.Error("sealed another key's record")
	}
	if RecordSigner(other, "alice").Equal(RecordSigner(me, "alice")) || RecordSigner(me, "bob").Equal(RecordSigner(me, "alice")) {
		t.Error("two owners, or two names, derive one DHT signer")
	}
	resign := func(r *dht.Record, k ed25519.PrivateKey) {
		if err := r.Sign(k); err != nil {
			t.Fatal(err)
		}
	}
	for name, tc := range map[string]struct {
		mutate func(r *dht.Record)
		want   error
	}{
		"another name's key":       {func(r *dht.Record) { r.Key = Key("alicf"); resign(r, RecordSigner(me, "alice")) }, ErrForged},
		"bad signature":            {func(r *dht.Record) { r.Sig[0] ^= 1 }, ErrForged},
		"tampered value":           {func(r *dht.Record) { r.Value[40] ^= 1; resign(r, RecordSigner(me, "alice")) }, ErrForged},
		"copied by another signer": {func(r *dht.Record) { resign(r, RecordSigner(other, "alice")) }, ErrForged},
		"another sequence number":  {func(r *dht.Record) { r.Seq = 7; resign(r, RecordSigner(me, "alice")) }, ErrForged},
		"two bytes":                {func(r *dht.Record) { r.Value = []byte{2, 1}; resign(r, RecordSigner(me, "alice")) }, wire.ErrMalformed},
		"format 1, by the owner's key": {func(r *dht.Record) {
			r.Value = append([]byte{1}, r.Value[1:]...)
			resign(r, me.SigningKey())
		}, wire.ErrMalformed},
	} {
		c := r
		c.Value = bytes.Clone(r.Value)
		tc.mutate(&c)
		if _, err := Open("alice", &c); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// The owner's value put under another name's key does not open as that name.
	c := r
	c.Key = Key("alicf")
	resign(&c, RecordSigner(me, "alice"))
	if _, err := Open("alicf", &c); !errors.Is(err, ErrForged) {
		t.Errorf("opened with another name: %v", err)
	}
}

func TestBetter(t *testing.T) {
	z := newZoneRelay(t, "b")
	a, alease := node(t, z.key, "a")
	b, blease := node(t, z.key, "a")
	ca, _ := NewClaim(a, &alease, "alice", 1)
	cb, _ := NewClaim(b, &blease, "alice", 1)
	ra := z.sequence(t, ca, 0)
	rb := z.sequence(t, cb, 0)
	if !Better(ra, rb) || Better(rb, ra) {
		t.Error("the earlier claim of another key must win")
	}
	ca2, _ := NewClaim(a, &alease, "alice", 2)
	ra2 := z.sequence(t, ca2, 0)
	if !Better(ra2, ra) || Better(ra, ra2) {
		t.Error("the owner's newer version must win over its older one")
	}
	// A claim of the name by another key in another relay's ledger is a
	// conflict no record settles, whichever relay is the name's home.
	y := newZoneRelay(t, "y")
	c, clease := node(t, y.key, "y")
	cc, _ := NewClaim(c, &clease, "alice", 1)
	rc := y.sequence(t, cc, 0)
	if Better(rc, ra) || Better(ra, rc) {
		t.Error("a record of another ledger was judged better or worse on its own")
	}
}
