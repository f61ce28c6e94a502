// Package onion builds and peels the onions of the key exchange's chains:
// a fixed-size message whose every layer is sealed to one hop with HPKE
// (crypto/hpke, RFC 9180), so that each intermediary learns only the hop
// before it (the node that routed the onion to it) and the hop after it
// (the address in its layer), and the receiver alone reads the payload.
//
// An onion is wire.OnionSize bytes: four slots of wire.OnionSlot, one per
// intermediary and one for the receiver. A hop opens the first slot with
// its private key, which gives the next address and a key that decrypts
// the rest (a ChaCha20 stream); it shifts the rest forward and fills the
// freed slot with random bytes, so the onion it forwards has the same
// size and, to anyone without the keys, no relation to the one it got.
// No hop can tell its place in the chain.
//
// A slot is sealed with the hybrid post-quantum KEM MLKEM768X25519 when
// the hop's key has an ML-KEM-768 part, with DHKEM(X25519) otherwise;
// KDF HKDF-SHA256, AEAD ChaCha20-Poly1305. Every layer carries the
// sender's clock: a layer outside Window is refused, and a hop remembers
// the layers it opened (Replays) so a replayed onion is refused.
package onion

import (
	"errors"
	"io"
	"time"

	"ddt/shared/id"
	"ddt/shared/wire"
)

// Hops is the number of intermediaries of a chain.
const Hops = 3

// MaxPayload is the most bytes the receiver's slot carries.
const MaxPayload = 256

// Window is how far a layer's time may be from the hop's clock.
const Window = 2 * time.Minute

// Errors of Peel and Build.
var (
	// ErrNotForMe: the slot does not open with this key (an onion
	// addressed to someone else, or tampered with on the way).
	ErrNotForMe = errors.New("onion: the layer is not sealed to this node")
	ErrStale    = errors.New("onion: the layer's time is outside the window")
	ErrReplay   = errors.New("onion: this layer was opened before")
	ErrKey      = errors.New("onion: malformed public key")
	ErrPayload  = errors.New("onion: payload too large")
)

// PrivateKey is a node's onion key pair: an X25519 key and an ML-KEM-768
// key, made from 96 bytes of seed.
type PrivateKey struct{ _ [0]func() }

// NewPrivateKey makes a key pair from random bytes read from rand.
func NewPrivateKey(rand io.Reader) (*PrivateKey, error) { panic("onion: to build") }

// Marshal returns the key's seed for storage. Keep it secret.
func (k *PrivateKey) Marshal() []byte { panic("onion: to build") }

// UnmarshalPrivateKey restores a key saved with Marshal.
func UnmarshalPrivateKey(b []byte) (*PrivateKey, error) { panic("onion: to build") }

// Public is the key's public half, encoded (at most wire.MaxOnionKey
// bytes): what a KeyRecord and a friend request carry.
func (k *PrivateKey) Public() []byte { panic("onion: to build") }

// Hybrid reports whether the encoded public key pub has an ML-KEM-768
// part (then slots sealed to it use MLKEM768X25519); an error if pub is
// malformed.
func Hybrid(pub []byte) (bool, error) { panic("onion: to build") }

// Hop is one node of a chain: its address and its encoded public key.
type Hop struct {
	Address id.Address
	Key     []byte
}

// Build seals payload (at most MaxPayload bytes) for to, through the
// intermediaries hops (exactly Hops of them, in order), with now as every
// layer's time and random bytes from rand. It returns the onion to send
// to hops[0].
func Build(hops []Hop, to Hop, payload []byte, now time.Time, rand io.Reader) (*wire.Onion, error) {
	panic("onion: to build")
}

// Peeled is what a hop or the receiver gets from its layer.
type Peeled struct {
	// Final: this node is the receiver; Payload is set, Next and
	// Forward are not.
	Final   bool
	Payload []byte
	// Next is the address to route Forward to.
	Next    id.Address
	Forward *wire.Onion
	// Time is the layer's time; Tag identifies the layer for Replays.
	Time time.Time
	Tag  [32]byte
}

// Peel opens the first slot of o with k at now (its time must be within
// Window of now). It does not consult a replay filter: the caller checks
// Peeled.Tag with a Replays.
func Peel(k *PrivateKey, o *wire.Onion, now time.Time) (*Peeled, error) { panic("onion: to build") }

// Replays remembers the tags of the layers a node opened until their time
// leaves Window; at most Capacity of them (past it, the oldest is
// forgotten early and layers not newer than it are refused).
type Replays struct {
	Capacity int
}

// Admit records tag with its layer's time and reports whether it is new
// (false: a replay, or too old to tell).
func (r *Replays) Admit(tag [32]byte, at, now time.Time) bool { panic("onion: to build") }
