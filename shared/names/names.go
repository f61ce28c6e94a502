package names

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/wire"
)

// MaxLen is the longest username: 16 letters and digits, the paper's 128 bits.
const MaxLen = wire.MaxName

// Errors returned by this package, wrapped with detail; test with errors.Is.
var (
	// ErrInvalid: a name that is not 1–16 letters and digits. Every
	// validation error wraps it and wire.ErrBadName.
	ErrInvalid = fmt.Errorf("names: %w", wire.ErrBadName)
	ErrEmpty   = fmt.Errorf("%w: the name is empty", ErrInvalid)
	ErrTooLong = fmt.Errorf("%w: the name is too long", ErrInvalid)
	ErrChar    = fmt.Errorf("%w: the name may hold only letters and digits", ErrInvalid)

	// ErrForged: a claim or record whose signature, address or proof does
	// not verify, or that is for another name.
	ErrForged = errors.New("names: record does not verify")
	// ErrUnknownRelay: a record sequenced by a relay this node does not
	// know, so its checkpoint cannot be checked.
	ErrUnknownRelay = errors.New("names: record from a relay this node does not know")
)

// Problem words an error of this package for people: its message
// without the package's prefix ("invalid name: the name is empty",
// "record does not verify: the checkpoint is not signed by …").
func Problem(err error) string { return strings.TrimPrefix(err.Error(), "names: ") }

// Normalize returns name in its canonical form, lower case, or an error
// that says what is wrong with it: empty, longer than 16 characters, or
// holding something other than the ASCII letters a–z, A–Z and digits 0–9.
// Names are case-insensitive: "Alice" and "alice" are one name.
func Normalize(name string) (string, error) {
	if name == "" {
		return "", ErrEmpty
	}
	for i, r := range name {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return "", fmt.Errorf("%w, not %q (at %d)", ErrChar, r, i)
		}
	}
	if len(name) > MaxLen {
		return "", fmt.Errorf("%w: %d characters, at most %d", ErrTooLong, len(name), MaxLen)
	}
	return strings.ToLower(name), nil
}

// Hash is a name's public handle: SHA-256("user/" ‖ name) of the
// normalized name. Ledger entries and lookups carry only the hash.
func Hash(name string) [32]byte { return sha256.Sum256([]byte("user/" + name)) }

// Key is where a name's record lives in the DHT: the first 20 bytes of Hash.
func Key(name string) id.Address {
	h := Hash(name)
	return id.Address(h[:id.Len])
}

// Owner commits to the key that owns a name without revealing it to
// anyone who does not know the name: SHA-256("owner/" ‖ name ‖ 0 ‖ key).
func Owner(name string, signKey [32]byte) [32]byte {
	b := make([]byte, 0, 6+len(name)+1+32)
	b = append(append(append(append(b, "owner/"...), name...), 0), signKey[:]...)
	return sha256.Sum256(b)
}

// NewClaim signs a claim of name (normalized) for the node with key me,
// at the address of its lease, at version.
func NewClaim(me *identity.Identity, lease *wire.Lease, name string, version uint64) (*wire.UserClaim, error) {
	n, err := Normalize(name)
	if err != nil {
		return nil, err
	}
	c := &wire.UserClaim{Name: n, Address: lease.Address, SignKey: me.SignKey(), AgreeKey: me.AgreeKey(),
		Nonce: lease.Nonce, Zone: lease.Zone, Version: version}
	if c.SignKey != lease.SignKey {
		return nil, errors.New("names: the lease is for another key")
	}
	c.Sig = me.Sign(c.SignedBytes())
	return c, nil
}

// VerifyClaim checks that c names a normalized name, that its address is
// derived from its key, and that its key signed it.
func VerifyClaim(c *wire.UserClaim) error {
	n, err := Normalize(c.Name)
	if err != nil {
		return err
	}
	if n != c.Name {
		return fmt.Errorf("%w: %q is not in canonical form", ErrForged, c.Name)
	}
	if c.Version == 0 {
		return fmt.Errorf("%w: version 0", ErrForged)
	}
	if id.Derive(c.SignKey[:], c.Nonce[:]) != c.Address {
		return fmt.Errorf("%w: address %s is not derived from the claim's key", ErrForged, c.Address.Short())
	}
	if !identity.Verify(c.SignKey, c.SignedBytes(), c.Sig) {
		return fmt.Errorf("%w: the claim's signature does not verify", ErrForged)
	}
	return nil
}

// Same reports whether two claims are byte for byte the same.
func Same(a, b *wire.UserClaim) bool {
	ab, err1 := wire.Marshal(a)
	bb, err2 := wire.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// Home is the relay that sequences every claim of the name with hash h:
// of the relays' keys, the one whose SHA-256 is closest to h by XOR. Every
// relay that knows the same federation picks the same one, so claims of
// one name from any zone meet in one ledger and the first there wins.
// It returns false if keys is empty.
func Home(h [32]byte, keys [][32]byte) ([32]byte, bool) {
	var best, bestD [32]byte
	found := false
	for _, k := range keys {
		kh := sha256.Sum256(k[:])
		var d [32]byte
		for i := range d {
			d[i] = kh[i] ^ h[i]
		}
		if !found || bytes.Compare(d[:], bestD[:]) < 0 || (d == bestD && bytes.Compare(k[:], best[:]) < 0) {
			best, bestD, found = k, d, true
		}
	}
	return best, found
}

// Before reports whether ledger entry a (sequenced at index ai by the relay
// with key ak) takes precedence over entry b for the name with hash h:
// within one ledger, the earlier entry. Across ledgers — which happens
// when the federation changed, or a relay sequenced a name it was not
// asked to — there is no order anyone can compute from the entries (a
// relay can choose its key to be any name's home): which ledger held the
// name first is known to the relays that mirror both, each of which keeps
// the holder it learnt of first and never lets a later ledger displace
// it. Before is false both ways then; a node asks its relay.
func Before(h [32]byte, ak [32]byte, ai uint64, bk [32]byte, bi uint64) bool {
	return ak == bk && ai < bi
}

// Relays are the relays a node believes for one kind of record (those
// its admission named as trusted and running the service), by key, with
// their zones: the only relays whose records it believes, and among which
// a name or domain has its home.
type Relays struct {
	Keys  [][32]byte
	zones map[[32]byte]string
}

// Add believes the relay with key, of zone.
func (rs *Relays) Add(key [32]byte, zone string) {
	if rs.zones == nil {
		rs.zones = make(map[[32]byte]string)
	}
	if _, ok := rs.zones[key]; !ok {
		rs.Keys = append(rs.Keys, key)
	}
	rs.zones[key] = zone
}

// ZoneOf is a ZoneOf over rs.
func (rs Relays) ZoneOf(key [32]byte) (string, bool) {
	z, ok := rs.zones[key]
	return z, ok
}

// Sequenced checks that the relay with key (which says it serves zone)
// is one of rs, for records of what ("usernames", "domains"); the error
// wraps ErrForged.
func (rs Relays) Sequenced(key [32]byte, zone, what string) error {
	if _, ok := rs.zones[key]; !ok {
		return fmt.Errorf("%w: sequenced by the relay of zone %q, which this node's relay does not name as trusted for %s", ErrForged, zone, what)
	}
	return nil
}
