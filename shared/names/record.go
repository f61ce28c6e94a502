package names

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/dht"
	"ddt/shared/identity"
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

// Marshal encodes e as a username's ledger entry.
func (e *Entry) Marshal() []byte { return e.marshal(KindUser) }

// marshal encodes e as a ledger entry of kind.
func (e *Entry) marshal(kind byte) []byte {
	b := make([]byte, 0, entrySize)
	b = append(b, kind)
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
	return parseEntry(b, "username")
}

// parseEntry decodes an entry whose kind byte the caller checked.
func parseEntry(b []byte, what string) (Entry, error) {
	if len(b) != entrySize {
		return Entry{}, fmt.Errorf("%w: %s entry of %d bytes, want %d", wire.ErrMalformed, what, len(b), entrySize)
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
	entry, err := EntryFor(&rec.Claim)
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrForged, err)
	}
	return verifyProof(proven{relay: rec.RelayKey, zone: rec.Zone, index: rec.Index, note: rec.Checkpoint, proof: rec.Proof}, entry, zoneOf)
}

// proven is the ledger half of a record: which relay's ledger, of which
// zone, holds the entry at index, included in its checkpoint note by proof.
type proven struct {
	relay [32]byte
	zone  string
	index uint64
	note  []byte
	proof [][32]byte
}

// verifyProof checks that p's checkpoint is signed by a relay the node
// knows for the zone p names and that p.proof shows entry at p.index in
// it, and returns the checkpoint. Errors wrap ErrForged or
// ErrUnknownRelay.
func verifyProof(p proven, entry []byte, zoneOf ZoneOf) (ledger.Checkpoint, error) {
	zone, ok := zoneOf(p.relay)
	if !ok {
		return ledger.Checkpoint{}, fmt.Errorf("%w: zone %q, key %x", ErrUnknownRelay, p.zone, p.relay[:4])
	}
	if zone != p.zone {
		return ledger.Checkpoint{}, fmt.Errorf("%w: the record says zone %q; its relay serves %q", ErrForged, p.zone, zone)
	}
	cp, err := ledger.OpenCheckpoint(p.note, ledger.ZoneOrigin(zone, p.relay), p.relay[:])
	if err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrForged, err)
	}
	proof := make(tlog.RecordProof, len(p.proof))
	for i, h := range p.proof {
		proof[i] = tlog.Hash(h)
	}
	if p.index > 1<<62 {
		return ledger.Checkpoint{}, fmt.Errorf("%w: index %d", ErrForged, p.index)
	}
	if err := ledger.VerifyInclusion(cp, int64(p.index), entry, proof); err != nil {
		return ledger.Checkpoint{}, fmt.Errorf("%w: %w", ErrForged, err)
	}
	return cp, nil
}

// A record in the DHT is sealed with a key only the name gives, and
// signed by a key derived for that name from the owner's identity
// (RecordSigner), so the nodes that store it (and anyone who asks for the
// key's value) learn neither the name nor whose it is unless they already
// know the name; the signer they see is the same for every version the
// owner publishes, and is linked to nothing but the name's key:
//
//	version (1) = 2 | nonce (24) | XChaCha20-Poly1305(key = SHA-256("userkey/" ‖ name), binding (64) | record)
//
// binding is the owner's identity signature over bindingContext ‖ name ‖
// 0 ‖ signer: inside the seal, the owner vouches for the key that signs
// the DHT value, so a value copied under another signer does not open as
// the owner's. The nonce is derived from the plaintext (Ed25519 signatures
// are deterministic), so sealing one record twice gives the same bytes
// (the DHT keeps one value per sequence number). Version 1 values (signed
// by the owner's identity key) are refused.
const sealVersion = 2

// MaxSealed is the largest sealed record, which fits a DHT value.
const MaxSealed = 2048

// Contexts of the DHT signer's derivation and of the binding signature,
// apart from every other key and signature a DDT identity makes.
const (
	signerContext  = "ddt/name-record/v1\x00"
	bindingContext = "ddt/name-record/binding/v1\x00"
)

// bindingSize is the binding signature before the record in a sealed value.
const bindingSize = 64

// RecordSigner returns the Ed25519 key that signs me's record of name
// (normalized) in the DHT: HKDF-SHA256 of me's private seed, with
// "ddt/name-record/v1" ‖ 0 ‖ name as info. Only me can compute it, it is
// the same for every version, and without me's private key its public
// half is unlinkable to me's key or address.
func RecordSigner(me *identity.Identity, name string) ed25519.PrivateKey {
	seed, err := hkdf.Key(sha256.New, me.SigningKey().Seed(), nil, signerContext+name, ed25519.SeedSize)
	if err != nil {
		panic("names: HKDF of 32 bytes failed: " + err.Error()) // only for lengths over 255 hashes
	}
	return ed25519.NewKeyFromSeed(seed)
}

func bindingBytes(name string, signer []byte) []byte {
	b := make([]byte, 0, len(bindingContext)+len(name)+1+len(signer))
	return append(append(append(append(b, bindingContext...), name...), 0), signer...)
}

// Seal returns me's record rec ready for the DHT: sealed under its name,
// under the name's Key, at sequence number rec.Claim.Version, signed by
// RecordSigner(me, name). rec must be me's.
func Seal(me *identity.Identity, rec *wire.UserRecord) (dht.Record, error) {
	name := rec.Claim.Name
	if rec.Claim.SignKey != me.SignKey() {
		return dht.Record{}, fmt.Errorf("names: sealing a record of %q claimed by another key", name)
	}
	signer := RecordSigner(me, name)
	binding := me.Sign(bindingBytes(name, signer.Public().(ed25519.PublicKey)))
	value, err := seal(name, binding, rec)
	if err != nil {
		return dht.Record{}, err
	}
	r := dht.Record{Key: Key(name), Seq: rec.Claim.Version, Value: value}
	if err := r.Sign(signer); err != nil {
		return dht.Record{}, err
	}
	return r, nil
}

// seal encrypts binding ‖ rec under name.
func seal(name string, binding [64]byte, rec *wire.UserRecord) ([]byte, error) {
	enc, err := wire.Marshal(rec)
	if err != nil {
		return nil, err
	}
	plain := append(binding[:], enc...)
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

// Open opens r, a DHT record found under the Key of name (normalized): it
// checks r's signature, decrypts the value, and checks that the claim's
// key vouched for r's signer and that r's sequence number is the claim's
// version. It does not verify the record itself: call Verify.
func Open(name string, r *dht.Record) (*wire.UserRecord, error) {
	if r.Key != Key(name) {
		return nil, fmt.Errorf("%w: a value under key %s, not the name's", ErrForged, r.Key.Short())
	}
	if err := r.Verify(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrForged, err)
	}
	sealed := r.Value
	if len(sealed) < 1+chacha20poly1305.NonceSizeX || sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: not a sealed username record of format %d", wire.ErrMalformed, sealVersion)
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
	if len(plain) < bindingSize {
		return nil, fmt.Errorf("%w: a sealed username record of %d bytes", wire.ErrMalformed, len(plain))
	}
	var binding [64]byte
	copy(binding[:], plain)
	m, err := wire.Unmarshal(plain[bindingSize:])
	if err != nil {
		return nil, err
	}
	rec, ok := m.(*wire.UserRecord)
	if !ok {
		return nil, fmt.Errorf("%w: sealed a message of type %d, not a username record", wire.ErrMalformed, m.Type())
	}
	if !identity.Verify(rec.Claim.SignKey, bindingBytes(name, r.Signer[:]), binding) {
		return nil, fmt.Errorf("%w: the claim's key did not vouch for the DHT signer %x", ErrForged, r.Signer[:4])
	}
	if r.Seq != rec.Claim.Version {
		return nil, fmt.Errorf("%w: stored at sequence number %d, the claim is version %d", ErrForged, r.Seq, rec.Claim.Version)
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
