package names

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/ledger"
	"ddt/shared/wire"
)

// A username's ledger entry. It holds no name, address or key, only
// commitments to them, so the public ledger cannot be read backwards:
//
//	kind (1) = KindUser | Hash(name) (32) | Owner(name, key) (32) | SHA-256(claim) (32)
//
// The relay that sequences a claim sees the name; everyone else needs the
// name to know which entry is whose.
const (
	KindUser  = 1
	entrySize = 1 + 32 + 32 + 32
)

// ErrNotUser: a ledger entry of another kind of event.
var ErrNotUser = errors.New("names: not a username entry")

// Entry is a username entry decoded from the ledger.
type Entry struct {
	Hash  [32]byte // Hash(name)
	Owner [32]byte // Owner(name, claimant's key)
	Claim [32]byte // SHA-256 of the encoded claim
}

// EntryFor returns the ledger entry that sequences claim c.
func EntryFor(c *wire.UserClaim) ([]byte, error) {
	b, err := wire.Marshal(c)
	if err != nil {
		return nil, err
	}
	e := Entry{Hash: Hash(c.Name), Owner: Owner(c.Name, c.SignKey), Claim: sha256.Sum256(b)}
	return e.Marshal(), nil
}

// Marshal encodes e as a ledger entry.
func (e *Entry) Marshal() []byte {
	b := make([]byte, 0, entrySize)
	b = append(b, KindUser)
	b = append(b, e.Hash[:]...)
	b = append(b, e.Owner[:]...)
	return append(b, e.Claim[:]...)
}

// ParseEntry decodes a ledger entry; ErrNotUser means it is some other
// kind of event.
func ParseEntry(b []byte) (Entry, error) {
	if len(b) == 0 || b[0] != KindUser {
		return Entry{}, ErrNotUser
	}
	if len(b) != entrySize {
		return Entry{}, fmt.Errorf("%w: username entry of %d bytes, want %d", wire.ErrMalformed, len(b), entrySize)
	}
	var e Entry
	copy(e.Hash[:], b[1:33])
	copy(e.Owner[:], b[33:65])
	copy(e.Claim[:], b[65:97])
	return e, nil
}

// ZoneOf tells which zone the relay with a key serves, if the node knows
// that relay: the federation a node hears of at admission.
type ZoneOf func(relayKey [32]byte) (zone string, ok bool)

// Verify checks rec as the record of name (normalized) before anything
// trusts it: the claim verifies and is for name, the checkpoint is signed
// by a relay the node knows for the zone it names, and the proof shows
// the claim's entry at rec.Index in that checkpoint's tree. It returns the
// checkpoint. Errors wrap ErrForged or ErrUnknownRelay.
func Verify(rec *wire.UserRecord, name string, zoneOf ZoneOf) (ledger.Checkpoint, error) {
	if err := VerifyClaim(&rec.Claim); err != nil {
		return ledger.Checkpoint{}, err
	}
	if rec.Claim.Name != name {
		return ledger.Checkpoint{}, fmt.Errorf("%w: a record of %q, not %q", ErrForged, rec.Claim.Name, name)
	}
	zone, ok := zoneOf(rec.RelayKey)
	if !ok {
		return ledger.Checkpoint{}, fmt.Errorf("%w: zone %q, key %x", ErrUnknownRelay, rec.Zone, rec.RelayKey[:4])
	}
	if zone != rec.Zone {
		return ledger.Checkpoint{}, fmt.Errorf("%w: the record says zone %q; its relay serves %q", ErrForged, rec.Zone, zone)
	}
	cp, err := ledger.OpenCheckpoint(rec.Checkpoint, ledger.ZoneOrigin(zone, rec.RelayKey), rec.RelayKey[:])
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrForged, err)
	}
	entry, err := EntryFor(&rec.Claim)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrForged, err)
	}
	proof := make(tlog.RecordProof, len(rec.Proof))
	for i, h := range rec.Proof {
		proof[i] = tlog.Hash(h)
	}
	if rec.Index > 1<<62 {
		return ledger.Checkpoint{}, fmt.Errorf("%w: index %d", ErrForged, rec.Index)
	}
	if err := ledger.VerifyInclusion(cp, int64(rec.Index), entry, proof); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrForged, err)
	}
	return cp, nil
}

// A record in the DHT is sealed with a key only the name gives, so the
// nodes that store it (and anyone who asks for the key's value) learn
// neither the name nor whose it is unless they already know the name:
//
//	version (1) = 1 | nonce (24) | XChaCha20-Poly1305(key = SHA-256("userkey/" ‖ name), record)
//
// The nonce is derived from the record, so sealing one record twice gives
// the same bytes (the DHT keeps one value per sequence number).
const sealVersion = 1

// MaxSealed is the largest sealed record, which fits a DHT value.
const MaxSealed = 2048

// Seal encrypts rec for the DHT under name (normalized).
func Seal(name string, rec *wire.UserRecord) ([]byte, error) {
	plain, err := wire.Marshal(rec)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(sealKey(name))
	if err != nil {
		return nil, err
	}
	n := sha256.Sum256(append([]byte("ddt/user/nonce\x00"), plain...))
	out := make([]byte, 0, 1+chacha20poly1305.NonceSizeX+len(plain)+aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, n[:chacha20poly1305.NonceSizeX]...)
	out = aead.Seal(out, n[:chacha20poly1305.NonceSizeX], plain, []byte(name))
	if len(out) > MaxSealed {
		return nil, fmt.Errorf("%w: sealed record of %d bytes, limit %d", wire.ErrTooLarge, len(out), MaxSealed)
	}
	return out, nil
}

// Open decrypts a sealed record of name. It does not verify the record:
// call Verify.
func Open(name string, sealed []byte) (*wire.UserRecord, error) {
	if len(sealed) < 1+chacha20poly1305.NonceSizeX || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: not a sealed username record", wire.ErrMalformed)
	}
	aead, err := chacha20poly1305.NewX(sealKey(name))
	if err != nil {
		return nil, err
	}
	nonce := sealed[1 : 1+chacha20poly1305.NonceSizeX]
	plain, err := aead.Open(nil, nonce, sealed[1+chacha20poly1305.NonceSizeX:], []byte(name))
	if err != nil {
		return nil, fmt.Errorf("%w: sealed record does not open with this name", ErrForged)
	}
	m, err := wire.Unmarshal(plain)
	if err != nil {
		return nil, err
	}
	rec, ok := m.(*wire.UserRecord)
	if !ok {
		return nil, fmt.Errorf("%w: sealed a message of type %d, not a username record", wire.ErrMalformed, m.Type())
	}
	return rec, nil
}

func sealKey(name string) []byte {
	k := sha256.Sum256([]byte("userkey/" + name))
	return k[:]
}

// Better reports whether verified record a should be believed over
// verified record b for the same name: the same owner's higher version,
// or, between owners, the earlier entry of one ledger (Before). Records
// of two owners from two ledgers are a conflict no record settles: neither
// is better, and a node asks its relay which ledger holds the name first.
func Better(a, b *wire.UserRecord) bool {
	if a.Claim.SignKey == b.Claim.SignKey {
		return a.Claim.Version > b.Claim.Version
	}
	return Before(Hash(a.Claim.Name), a.RelayKey, a.Index, b.RelayKey, b.Index)
}
