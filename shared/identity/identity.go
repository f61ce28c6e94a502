package identity

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"ddt/shared/id"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Errors returned by this package.
var (
	ErrBadIdentity = errors.New("identity: malformed key material")
	ErrBadLease    = errors.New("identity: lease does not verify")
	ErrExpired     = errors.New("identity: lease expired")
)

// Identity is a node's private keys.
type Identity struct {
	sign  ed25519.PrivateKey
	agree *ecdh.PrivateKey
}

// New makes a fresh identity from crypto/rand.
func New() (*Identity, error) {
	_, sign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	agree, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Identity{sign: sign, agree: agree}, nil
}

// marshalLen is 32 bytes of Ed25519 seed and 32 of X25519 private key.
const marshalLen = 64

// Marshal returns the private keys for storage. Keep the result secret.
func (i *Identity) Marshal() []byte {
	b := make([]byte, 0, marshalLen)
	b = append(b, i.sign.Seed()...)
	return append(b, i.agree.Bytes()...)
}

// Unmarshal restores an identity saved with Marshal.
func Unmarshal(b []byte) (*Identity, error) {
	if len(b) != marshalLen {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadIdentity, len(b), marshalLen)
	}
	agree, err := ecdh.X25519().NewPrivateKey(b[32:])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	return &Identity{sign: ed25519.NewKeyFromSeed(b[:32]), agree: agree}, nil
}

// SignKey is the public Ed25519 key.
func (i *Identity) SignKey() (k [32]byte) {
	copy(k[:], i.sign.Public().(ed25519.PublicKey))
	return k
}

// SigningKey returns the private Ed25519 key, for code that signs with it
// in other formats (a ledger's checkpoints). Keep it secret.
func (i *Identity) SigningKey() ed25519.PrivateKey { return i.sign }

// AgreeKey is the public X25519 key.
func (i *Identity) AgreeKey() (k [32]byte) {
	copy(k[:], i.agree.PublicKey().Bytes())
	return k
}

// Agree is the X25519 agreement between this identity's agree key and
// peer's public one: the secret only the two of them can compute. It
// fails for a key of low order (an all-zero result).
func (i *Identity) Agree(peer [32]byte) ([32]byte, error) {
	var out [32]byte
	pub, err := ecdh.X25519().NewPublicKey(peer[:])
	if err != nil {
		return out, fmt.Errorf("%w: %v", ErrBadIdentity, err)
	}
	s, err := i.agree.ECDH(pub)
	if err != nil {
		return out, fmt.Errorf("identity: agreement: %w", err)
	}
	copy(out[:], s)
	return out, nil
}

// Sign signs msg with the Ed25519 key.
func (i *Identity) Sign(msg []byte) (sig [64]byte) {
	copy(sig[:], ed25519.Sign(i.sign, msg))
	return sig
}

// Verify checks an Ed25519 signature by key over msg.
func Verify(key [32]byte, msg []byte, sig [64]byte) bool {
	return ed25519.Verify(key[:], msg, sig[:])
}

// IssueLease is the relay's side: it signs a lease for a node's keys at
// the address derived from signKey and nonce, valid for ttl from now.
func (i *Identity) IssueLease(signKey, agreeKey [32]byte, nonce [16]byte, zone string, now time.Time, ttl time.Duration) wire.Lease {
	l := wire.Lease{
		Address:  id.Derive(signKey[:], nonce[:]),
		SignKey:  signKey,
		AgreeKey: agreeKey,
		Nonce:    nonce,
		Zone:     zone,
		RelayKey: i.SignKey(),
		Issued:   now.Unix(),
		Expires:  now.Add(ttl).Unix(),
	}
	l.Sig = i.Sign(l.SignedBytes())
	return l
}

// VerifyLease checks that l was signed by relayKey, that its address is
// derived from its key and nonce, and that it has not expired at now.
func VerifyLease(l *wire.Lease, relayKey [32]byte, now time.Time) error {
	if l.RelayKey != relayKey {
		return fmt.Errorf("%w: signed by another relay", ErrBadLease)
	}
	if id.Derive(l.SignKey[:], l.Nonce[:]) != l.Address {
		return fmt.Errorf("%w: address %s is not derived from its key", ErrBadLease, l.Address.Short())
	}
	if !Verify(relayKey, l.SignedBytes(), l.Sig) {
		return fmt.Errorf("%w: bad relay signature", ErrBadLease)
	}
	if now.Unix() >= l.Expires {
		return fmt.Errorf("%w at %s", ErrExpired, time.Unix(l.Expires, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// LoadOrCreate reads the identity saved under key in st, or makes one and
// saves it there on first use.
func LoadOrCreate(st store.Store, key string) (*Identity, error) {
	id, _, err := Open(st, key)
	return id, err
}

// Open is LoadOrCreate that also says whether it made the identity now
// (so nothing of an earlier run can be in st). A record under key that
// is no identity is an error (ErrBadIdentity): see Replace.
func Open(st store.Store, key string) (id *Identity, created bool, err error) {
	b, err := st.Get(key)
	switch {
	case err == nil:
		id, err = Unmarshal(b)
		return id, false, err
	case errors.Is(err, store.ErrNotFound):
		if id, err = New(); err != nil {
			return nil, false, err
		}
		// Durably: a tab closed or crashed right after its first visit
		// must not come back as someone else.
		if err := store.PutDurable(st, key, id.Marshal()); err != nil {
			return nil, false, fmt.Errorf("identity: save: %w", err)
		}
		return id, true, nil
	default:
		return nil, false, fmt.Errorf("identity: load: %w", err)
	}
}

// UnreadableSuffix ends the key Replace keeps an unreadable identity
// record under: "identity.unreadable" for "identity".
const UnreadableSuffix = ".unreadable"

// Replace is what a node does when the record under key is no identity
// (Open failed with ErrBadIdentity): rather than fail to start for good,
// it keeps the unreadable bytes under key+UnreadableSuffix (replacing
// what an earlier Replace kept there), then makes a new identity and saves
// it under key, both durably, so the next Open finds the new one. A relay,
// whose key others pin, should not: its operator decides.
func Replace(st store.Store, key string) (*Identity, error) {
	old, err := st.Get(key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("identity: load: %w", err)
	}
	if err == nil {
		if err := store.PutDurable(st, key+UnreadableSuffix, old); err != nil {
			return nil, fmt.Errorf("identity: keep the unreadable record: %w", err)
		}
	}
	id, err := New()
	if err != nil {
		return nil, err
	}
	if err := store.PutDurable(st, key, id.Marshal()); err != nil {
		return nil, fmt.Errorf("identity: save: %w", err)
	}
	return id, nil
}
