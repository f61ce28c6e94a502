// Package ratchet is the end-to-end encryption of a conversation between
// two friends: the keyring the chained key exchange derives (Derive), and
// a double ratchet (the Signal design: X25519 ratchet steps, HKDF-SHA256
// chains, ChaCha20-Poly1305) started from it, so that each message key is
// used once and then forgotten (forward secrecy) and a new X25519 step on
// every reply heals a compromise (post-compromise security). It is built
// from the standard library and golang.org/x/crypto only, with fixed test
// vectors of its own.
//
// The keyring is four keys: K0 the ratchet's root key, K1 the header key
// of messages from the exchange's initiator, K2 that of messages from its
// receiver, K3 the key that confirms the exchange. A message is
//
//	nonce (12) | sealed header (ChaCha20-Poly1305 under the sender's header key) | ciphertext
//
// where the header holds the sender's ratchet public key, the length of
// its previous sending chain and the message's number in the current one;
// the ciphertext is ChaCha20-Poly1305 under the message key, with the
// header and the caller's associated data as additional data.
//
// Skipped message keys (messages that arrive out of order, or never) are
// kept, at most MaxSkipped of them, oldest dropped first; a message more
// than MaxJump ahead of its chain is refused (libsignal's bounds).
package ratchet

import (
	"errors"
	"io"
)

// Bounds on skipped message keys (libsignal's).
const (
	MaxSkipped = 2000
	MaxJump    = 25000
)

// Errors of Open.
var (
	ErrDecrypt = errors.New("ratchet: the message does not decrypt with this session")
	ErrJump    = errors.New("ratchet: the message is too far ahead of its chain")
	ErrOld     = errors.New("ratchet: the message's key was used or dropped already (a replay, or too late)")
	ErrState   = errors.New("ratchet: malformed session state")
)

// Keyring is the four keys the key exchange derives (see the package doc).
type Keyring [4][32]byte

// Derive computes the keyring of the exchange session from its four
// shares and static, the X25519 agreement between the two friends'
// identity keys (identity.Identity.Agree), bound to the initiator's and
// the receiver's identity (Ed25519) keys: HKDF-SHA256 with salt session
// over shares[0..3] || static, info "ddt/unicast/keyring/v1" || from || to.
func Derive(session [16]byte, shares [4][32]byte, static [32]byte, from, to [32]byte) Keyring {
	panic("ratchet: to build")
}

// Confirm is the tag the exchange's receiver sends to prove it derived
// the same keyring: HMAC-SHA256 under K3 of the session id.
func (k *Keyring) Confirm(session [16]byte) [32]byte { panic("ratchet: to build") }

// State is one side of a session. It is not safe for concurrent use.
// Seal and Open change it: save Marshal's bytes before sending or
// acknowledging what they made, so a crash never reuses a key.
type State struct{ _ [0]func() }

// NewInitiator is the state of the exchange's initiator, whose ratchet
// key pair priv (32 bytes of X25519 private key) it announced in its
// shares. It can Open the receiver's first message, and Seal only after.
func NewInitiator(kr Keyring, priv [32]byte) (*State, error) { panic("ratchet: to build") }

// NewReceiver is the state of the exchange's receiver, given the
// initiator's ratchet public key; it can Seal at once (its first message
// is the exchange's confirmation).
func NewReceiver(kr Keyring, theirs [32]byte, rand io.Reader) (*State, error) {
	panic("ratchet: to build")
}

// Seal encrypts plaintext with the next message key, binding ad.
func (s *State) Seal(plaintext, ad []byte, rand io.Reader) ([]byte, error) {
	panic("ratchet: to build")
}

// Open decrypts msg, binding ad. On any error the state is unchanged.
func (s *State) Open(msg, ad []byte) ([]byte, error) { panic("ratchet: to build") }

// CanSeal reports whether Seal may be called (an initiator that has not
// yet opened a message cannot).
func (s *State) CanSeal() bool { panic("ratchet: to build") }

// Marshal returns the state for storage (skipped keys included). Keep it
// secret.
func (s *State) Marshal() []byte { panic("ratchet: to build") }

// Unmarshal restores a state saved with Marshal.
func Unmarshal(b []byte) (*State, error) { panic("ratchet: to build") }

// SafetyNumber is the number two friends compare out of band to know
// that each has the other's real identity key: 60 digits in 12 groups of
// five, the same on both sides (the keys are sorted first), derived by
// iterated SHA-512 of each key (Signal's numeric fingerprint, version 2).
func SafetyNumber(a, b [32]byte) string { panic("ratchet: to build") }
