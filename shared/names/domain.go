package names

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/wire"
)

// Domains ("example.ddt") follow the username rules where they can: a
// claim signed by its owner, sequenced in the ledger of the domain's home
// relay (Home over the trusted relays that run the sites service), first
// come first served, proven by a checkpoint and an inclusion proof. They
// differ where a domain is public: its label is a DNS label, its owner is
// a key (not an address: the owner may come back from anywhere), its DHT
// record is signed by the owner's identity key and not sealed, and one key
// may hold any number of domains.

// KindDomain marks a domain's ledger entry; its layout is a username
// entry's, with a domain owner commitment:
//
//	kind (1) = KindDomain | DomainHash(label) (32) | DomainOwner(label, key) (32) | SHA-256(claim) (32)
const KindDomain = 2

// Domain errors; test with errors.Is.
var (
	// ErrBadDomain: a label that is not a DNS label of 1–63 of a–z, 0–9
	// and inner hyphens. It wraps wire.ErrBadName.
	ErrBadDomain = fmt.Errorf("names: not a DDT domain: %w", wire.ErrBadName)
	// ErrNotDomain: a ledger entry of another kind of event.
	ErrNotDomain = errors.New("names: not a domain entry")
)

// CheckLabel says what is wrong with a domain's label ("example" of
// example.ddt), or returns nil for a canonical one: 1–63 of the lower-case
// letters a–z, digits 0–9 and hyphens, neither first nor last. Its errors
// are bare sentences ("the name is empty"), for callers to prefix.
func CheckLabel(l string) error {
	switch {
	case l == "":
		return errors.New("the name is empty")
	case len(l) > wire.MaxDomain:
		return fmt.Errorf("%d characters before .ddt, at most %d", len(l), wire.MaxDomain)
	case l[0] == '-' || l[len(l)-1] == '-':
		return errors.New("a hyphen may not begin or end it")
	}
	for i, r := range l {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-') {
			return fmt.Errorf("only letters, digits and inner hyphens, not %q (at %d)", r, i)
		}
	}
	return nil
}

// DomainHash is a domain's public handle: SHA-256("domain/" ‖ label).
// Its ledger entries and lookups carry it.
func DomainHash(label string) [32]byte { return sha256.Sum256([]byte("domain/" + label)) }

// DomainKey is where a domain's record lives in the DHT: the first 20
// bytes of DomainHash.
func DomainKey(label string) id.Address {
	h := DomainHash(label)
	return id.Address(h[:id.Len])
}

// DomainOwner is the owner commitment of a domain entry:
// SHA-256("domain-owner/" ‖ label ‖ 0 ‖ key). Two entries of one label
// with the same commitment are one owner's.
func DomainOwner(label string, signKey [32]byte) [32]byte {
	b := make([]byte, 0, 13+len(label)+1+32)
	b = append(append(append(append(b, "domain-owner/"...), label...), 0), signKey[:]...)
	return sha256.Sum256(b)
}

// NewDomainClaim signs me's claim of the domain with label (canonical:
// see CheckLabel) for the site whose manifest is site, at version (1 for
// a new domain, then one more for every update).
func NewDomainClaim(me *identity.Identity, label string, site [32]byte, version uint64) (*wire.DomainClaim, error) {
	if err := CheckLabel(label); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadDomain, err)
	}
	if version == 0 {
		return nil, errors.New("names: a domain claim's version starts at 1")
	}
	c := &wire.DomainClaim{Domain: label, SignKey: me.SignKey(), Site: site, Version: version}
	c.Sig = me.Sign(c.SignedBytes())
	return c, nil
}

// VerifyDomainClaim checks that c names a canonical label, has a version
// of 1 or more, and is signed by its key.
func VerifyDomainClaim(c *wire.DomainClaim) error {
	if err := CheckLabel(c.Domain); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrForged, c.Domain, err)
	}
	if c.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrForged)
	}
	if !identity.Verify(c.SignKey, c.SignedBytes(), c.Sig) {
		return fmt.Errorf("%w: the claim's signature does not verify", ErrForged)
	}
	return nil
}

// SameDomainClaim reports whether two domain claims are byte for byte
// the same.
func SameDomainClaim(a, b *wire.DomainClaim) bool {
	ab, err1 := wire.Marshal(a)
	bb, err2 := wire.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// EntryForDomain returns the ledger entry that sequences domain claim c.
func EntryForDomain(c *wire.DomainClaim) ([]byte, error) {
	b, err := wire.Marshal(c)
	if err != nil {
		return nil, err
	}
	e := Entry{Hash: DomainHash(c.Domain), Owner: DomainOwner(c.Domain, c.SignKey), Claim: sha256.Sum256(b)}
	return e.marshal(KindDomain), nil
}

// ParseDomainEntry decodes a domain's ledger entry; ErrNotDomain means
// it is some other kind of event (a username's among them).
func ParseDomainEntry(b []byte) (Entry, error) {
	if len(b) == 0 || b[0] != KindDomain {
		return Entry{}, ErrNotDomain
	}
	return parseEntry(b, "domain")
}

// MarshalDomain encodes e as a domain's ledger entry.
func (e *Entry) MarshalDomain() []byte { return e.marshal(KindDomain) }

// VerifyDomain checks rec before anything trusts it: its claim verifies,
// its checkpoint is signed by a relay the node knows for the zone it
// names, and its proof shows the claim's entry at rec.Index in that
// checkpoint's tree. It returns the checkpoint. The caller checks that
// the record is of the domain it asked for. Errors wrap ErrForged or
// ErrUnknownRelay.
func VerifyDomain(rec *wire.DomainRecord, zoneOf ZoneOf) (ledger.Checkpoint, error) {
	if err := VerifyDomainClaim(&rec.Claim); err != nil {
		return ledger.Checkpoint{}, err
	}
	entry, err := EntryForDomain(&rec.Claim)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrForged, err)
	}
	return verifyProof(proven{relay: rec.RelayKey, zone: rec.Zone, index: rec.Index, note: rec.Checkpoint, proof: rec.Proof}, entry, zoneOf)
}

// BetterDomain reports whether verified record a should be believed over
// verified record b of the same domain: the same owner's higher version,
// or, between owners, the earlier entry of one ledger (Before).
func BetterDomain(a, b *wire.DomainRecord) bool {
	if a.Claim.SignKey == b.Claim.SignKey {
		return a.Claim.Version > b.Claim.Version
	}
	return Before(DomainHash(a.Claim.Domain), a.RelayKey, a.Index, b.RelayKey, b.Index)
}

// A domain's DHT record is public: the wire-encoded DomainRecord, under
// DomainKey, at sequence number Claim.Version, signed by the owner's
// identity key (so only the owner can store a version, and a higher one
// replaces a lower, BEP 44 style).

// SealDomain returns me's record rec ready for the DHT. rec must be me's.
func SealDomain(me *identity.Identity, rec *wire.DomainRecord) (dht.Record, error) {
	if rec.Claim.SignKey != me.SignKey() {
		return dht.Record{}, fmt.Errorf("names: publishing a record of %q claimed by another key", rec.Claim.Domain)
	}
	value, err := wire.Marshal(rec)
	if err != nil {
		return dht.Record{}, err
	}
	if len(value) > dht.MaxValue {
		return dht.Record{}, fmt.Errorf("%w: domain record of %d bytes, limit %d", wire.ErrTooLarge, len(value), dht.MaxValue)
	}
	r := dht.Record{Key: DomainKey(rec.Claim.Domain), Seq: rec.Claim.Version, Value: value}
	if err := r.Sign(me.SigningKey()); err != nil {
		return dht.Record{}, err
	}
	return r, nil
}

// OpenDomain decodes r, a DHT record found under the DomainKey of label:
// it checks r's signature, that its signer is the claim's key, that it is
// of label, and that its sequence number is the claim's version. It does
// not verify the record's proof: call VerifyDomain.
func OpenDomain(label string, r *dht.Record) (*wire.DomainRecord, error) {
	if r.Key != DomainKey(label) {
		return nil, fmt.Errorf("%w: a value under key %s, not the domain's", ErrForged, r.Key.Short())
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForged, err)
	}
	m, err := wire.Unmarshal(r.Value)
	if err != nil {
		return nil, err
	}
	rec, ok := m.(*wire.DomainRecord)
	if !ok {
		return nil, fmt.Errorf("%w: a DHT value of type %d, not a domain record", wire.ErrMalformed, m.Type())
	}
	if rec.Claim.Domain != label {
		return nil, fmt.Errorf("%w: a record of %q, not %q", ErrForged, rec.Claim.Domain, label)
	}
	if r.Signer != rec.Claim.SignKey {
		return nil, fmt.Errorf("%w: stored by key %x, the domain's claim is by %x", ErrForged, r.Signer[:4], rec.Claim.SignKey[:4])
	}
	if r.Seq != rec.Claim.Version {
		return nil, fmt.Errorf("%w: stored at sequence number %d, the claim is version %d", ErrForged, r.Seq, rec.Claim.Version)
	}
	return rec, nil
}
