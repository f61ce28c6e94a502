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
	"container/heap"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20"

	"ddt/shared/id"
	"ddt/shared/wire"
)

// Hops is the number of intermediaries of a chain.
const Hops = 3

// MaxPayload is the most bytes the receiver's slot carries.
const MaxPayload = 256

// Window is how far a layer's time may be behind the hop's clock, and
// MaxAhead how far ahead: a layer dated in the future would stay in a
// hop's replay filter longest, so a flood of them could push honest
// layers out; clocks of nodes admitted by relays agree within seconds.
const (
	Window   = 2 * time.Minute
	MaxAhead = 10 * time.Second
)

// MaxJitter is the most a layer's time is set back from the sender's
// clock, chosen for each layer on its own: hops of one chain (or of the
// four chains of one exchange) cannot match their layers by an equal
// time to the millisecond.
const MaxJitter = 2 * time.Second

// DefaultCapacity is a Replays' Capacity when it is zero: the layers a
// node remembers opening within Window (65,536 tags, about 5 MB of
// memory at most; a flood past it only makes older layers refused).
const DefaultCapacity = 1 << 16

// Errors of Peel and Build.
var (
	// ErrNotForMe: the slot does not open with this key (an onion
	// addressed to someone else, or tampered with on the way).
	ErrNotForMe = errors.New("onion: the layer is not sealed to this node")
	ErrStale    = errors.New("onion: the layer's time is outside the window")
	ErrReplay   = errors.New("onion: this layer was opened before")
	ErrKey      = errors.New("onion: malformed public key")
	ErrPayload  = errors.New("onion: payload too large")
	// ErrMalformed: the layer opened but what it holds is not a layer
	// (its sender did not build it with this package).
	ErrMalformed = errors.New("onion: the layer opened but is malformed")
)

// Encoded public keys: a kind byte, then the X25519 key, then (hybrid
// only) the ML-KEM-768 encapsulation key.
const (
	kindClassic   = 0
	kindHybrid    = 1
	classicKeyLen = 1 + 32
	hybridKeyLen  = 1 + 32 + mlkem.EncapsulationKeySize768
	seedLen       = 32 + mlkem.SeedSize
)

// The HPKE suite of every slot, beside its KEM.
var (
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
	info = []byte("ddt/onion/v1")
)

// KEM ids (RFC 9180, draft-ietf-hpke-pq) and their enc sizes.
const (
	kemClassic = 0x0020 // DHKEM(X25519, HKDF-SHA256)
	kemHybrid  = 0x647a // MLKEM768-X25519
	encClassic = 32
	encHybrid  = mlkem.CiphertextSize768 + 32
)

// A layer's plaintext is always plainLen bytes, so a hop's layer and the
// receiver's look alike: kind | time (u64 ms) | hop: next + stream key;
// final: payload length (u16) + payload | zero padding.
const (
	layerHop   = 0
	layerFinal = 1
	plainLen   = 1 + 8 + 2 + MaxPayload
	sealedLen  = plainLen + 16 // the AEAD's tag
	restLen    = wire.OnionSize - wire.OnionSlot
)

func init() {
	// The hybrid slot is the largest; a change of sizes must fail loudly.
	if 2+encHybrid+sealedLen > wire.OnionSlot || 1+8+id.Len+chacha20.KeySize > plainLen {
		panic("onion: a slot does not fit wire.OnionSlot")
	}
}

// PrivateKey is a node's onion key pair: an X25519 key and an ML-KEM-768
// key, made from 96 bytes of seed.
type PrivateKey struct {
	seed    [seedLen]byte
	hybrid  hpke.PrivateKey
	classic hpke.PrivateKey
	pub     []byte
}

// NewPrivateKey makes a key pair from random bytes read from rand.
func NewPrivateKey(rand io.Reader) (*PrivateKey, error) {
	seed := make([]byte, seedLen)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("onion: reading a key's seed: %w", err)
	}
	return UnmarshalPrivateKey(seed)
}

// Marshal returns the key's seed for storage. Keep it secret.
func (k *PrivateKey) Marshal() []byte { return append([]byte(nil), k.seed[:]...) }

// UnmarshalPrivateKey restores a key saved with Marshal.
func UnmarshalPrivateKey(b []byte) (*PrivateKey, error) {
	if len(b) != seedLen {
		return nil, fmt.Errorf("onion: a private key is %d bytes, not %d", seedLen, len(b))
	}
	k := new(PrivateKey)
	copy(k.seed[:], b)
	x, err := ecdh.X25519().NewPrivateKey(k.seed[:32])
	if err != nil {
		return nil, fmt.Errorf("onion: the X25519 key: %w", err)
	}
	m, err := mlkem.NewDecapsulationKey768(k.seed[32:])
	if err != nil {
		return nil, fmt.Errorf("onion: the ML-KEM-768 key: %w", err)
	}
	if k.hybrid, err = hpke.NewHybridPrivateKey(m, x); err != nil {
		return nil, fmt.Errorf("onion: the hybrid key: %w", err)
	}
	if k.classic, err = hpke.NewDHKEMPrivateKey(x); err != nil {
		return nil, fmt.Errorf("onion: the X25519 key: %w", err)
	}
	k.pub = make([]byte, 0, hybridKeyLen)
	k.pub = append(k.pub, kindHybrid)
	k.pub = append(k.pub, x.PublicKey().Bytes()...)
	k.pub = append(k.pub, m.EncapsulationKey().Bytes()...)
	return k, nil
}

// Public is the key's public half, encoded (at most wire.MaxOnionKey
// bytes): what a KeyRecord and a friend request carry.
func (k *PrivateKey) Public() []byte { return append([]byte(nil), k.pub...) }

// Hybrid reports whether the encoded public key pub has an ML-KEM-768
// part (then slots sealed to it use MLKEM768X25519); an error if pub is
// malformed.
func Hybrid(pub []byte) (bool, error) {
	pk, err := publicKey(pub)
	if err != nil {
		return false, err
	}
	return pk.KEM().ID() == kemHybrid, nil
}

// publicKey decodes an encoded public key into the HPKE key its slots
// are sealed to.
func publicKey(pub []byte) (hpke.PublicKey, error) {
	if len(pub) == 0 {
		return nil, ErrKey
	}
	switch {
	case pub[0] == kindClassic && len(pub) == classicKeyLen:
		x, err := ecdh.X25519().NewPublicKey(pub[1:])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		return hpke.NewDHKEMPublicKey(x)
	case pub[0] == kindHybrid && len(pub) == hybridKeyLen:
		x, err := ecdh.X25519().NewPublicKey(pub[1:33])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		m, err := mlkem.NewEncapsulationKey768(pub[33:])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKey, err)
		}
		return hpke.NewHybridPublicKey(m, x)
	}
	return nil, fmt.Errorf("%w: kind %d, %d bytes", ErrKey, pub[0], len(pub))
}

// Hop is one node of a chain: its address and its encoded public key.
type Hop struct {
	Address id.Address
	Key     []byte
}

// Build seals payload (at most MaxPayload bytes) for to, through the
// intermediaries hops (exactly Hops of them, in order), with now as every
// layer's time and random bytes from rand. It returns the onion to send
// to hops[0].
//
// It builds from the inside out: the receiver's slot first, then each
// hop's slot in front of the onion the hop will forward, whose first
// three slots the hop's stream key encrypts (the fourth, the hop's own
// random filler, nobody reads).
func Build(hops []Hop, to Hop, payload []byte, now time.Time, rand io.Reader) (*wire.Onion, error) {
	if len(hops) != Hops {
		return nil, fmt.Errorf("onion: a chain has %d intermediaries, not %d", Hops, len(hops))
	}
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrPayload, len(payload), MaxPayload)
	}
	keys := make([]hpke.PublicKey, Hops+1)
	for i, h := range append(hops[:Hops:Hops], to) {
		pk, err := publicKey(h.Key)
		if err != nil {
			return nil, fmt.Errorf("onion: hop %d: %w", i, err)
		}
		keys[i] = pk
	}
	stamp := func() (uint64, error) {
		var b [2]byte
		if _, err := io.ReadFull(rand, b[:]); err != nil {
			return 0, fmt.Errorf("onion: reading random bytes: %w", err)
		}
		back := int64(binary.BigEndian.Uint16(b[:])) % MaxJitter.Milliseconds()
		return uint64(now.UnixMilli() - back), nil
	}
	ms, err := stamp()
	if err != nil {
		return nil, err
	}

	o := new(wire.Onion)
	if _, err := io.ReadFull(rand, o.Data[wire.OnionSlot:]); err != nil {
		return nil, fmt.Errorf("onion: reading random bytes: %w", err)
	}
	var plain [plainLen]byte
	plain[0] = layerFinal
	binary.BigEndian.PutUint64(plain[1:], ms)
	binary.BigEndian.PutUint16(plain[9:], uint16(len(payload)))
	copy(plain[11:], payload)
	if err := seal(o.Data[:wire.OnionSlot], keys[Hops], plain[:], rand); err != nil {
		return nil, err
	}
	for i := Hops - 1; i >= 0; i-- {
		// o is the onion hop i forwards: hop i's own onion is its slot,
		// then o's first three slots under its stream key.
		var key [chacha20.KeySize]byte
		if _, err := io.ReadFull(rand, key[:]); err != nil {
			return nil, fmt.Errorf("onion: reading random bytes: %w", err)
		}
		next := i + 1
		var addr id.Address
		if next < Hops {
			addr = hops[next].Address
		} else {
			addr = to.Address
		}
		if ms, err = stamp(); err != nil {
			return nil, err
		}
		clear(plain[:])
		plain[0] = layerHop
		binary.BigEndian.PutUint64(plain[1:], ms)
		copy(plain[9:], addr[:])
		copy(plain[9+id.Len:], key[:])
		outer := new(wire.Onion)
		stream(key, outer.Data[wire.OnionSlot:], o.Data[:restLen])
		if err := seal(outer.Data[:wire.OnionSlot], keys[i], plain[:], rand); err != nil {
			return nil, err
		}
		clear(key[:])
		o = outer
	}
	clear(plain[:])
	return o, nil
}

// seal fills slot: kem id | enc | HPKE ciphertext of plain | random
// padding, the kem id and the padding bound as additional data (so no
// byte of a slot can change unnoticed).
func seal(slot []byte, pk hpke.PublicKey, plain []byte, rand io.Reader) error {
	kem := pk.KEM().ID()
	binary.BigEndian.PutUint16(slot, kem)
	encLen := encSize(kem)
	pad := slot[2+encLen+sealedLen:]
	if _, err := io.ReadFull(rand, pad); err != nil {
		return fmt.Errorf("onion: reading random bytes: %w", err)
	}
	enc, sender, err := hpke.NewSender(pk, kdf, aead, info)
	if err != nil {
		return fmt.Errorf("onion: sealing a layer: %w", err)
	}
	ct, err := sender.Seal(additional(slot[:2], pad), plain)
	if err != nil {
		return fmt.Errorf("onion: sealing a layer: %w", err)
	}
	if len(enc) != encLen || len(ct) != sealedLen {
		return fmt.Errorf("onion: HPKE gave %d+%d bytes, not %d+%d", len(enc), len(ct), encLen, sealedLen)
	}
	copy(slot[2:], enc)
	copy(slot[2+encLen:], ct)
	return nil
}

func additional(kem, pad []byte) []byte {
	return append(append(make([]byte, 0, len(kem)+len(pad)), kem...), pad...)
}

// encSize is the size of a KEM's enc, 0 for a KEM slots never use.
func encSize(kem uint16) int {
	switch kem {
	case kemClassic:
		return encClassic
	case kemHybrid:
		return encHybrid
	}
	return 0
}

// stream XORs src into dst with ChaCha20 under key and a zero nonce:
// every stream key is random and used for one onion only.
func stream(key [chacha20.KeySize]byte, dst, src []byte) {
	c, err := chacha20.NewUnauthenticatedCipher(key[:], make([]byte, chacha20.NonceSize))
	if err != nil {
		panic(err) // the sizes are constants
	}
	c.XORKeyStream(dst, src)
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
func Peel(k *PrivateKey, o *wire.Onion, now time.Time) (*Peeled, error) {
	slot := o.Data[:wire.OnionSlot]
	kem := binary.BigEndian.Uint16(slot)
	var priv hpke.PrivateKey
	switch kem {
	case kemHybrid:
		priv = k.hybrid
	case kemClassic:
		priv = k.classic
	default:
		return nil, ErrNotForMe
	}
	encLen := encSize(kem)
	enc := slot[2 : 2+encLen]
	ct := slot[2+encLen : 2+encLen+sealedLen]
	pad := slot[2+encLen+sealedLen:]
	r, err := hpke.NewRecipient(enc, priv, kdf, aead, info)
	if err != nil {
		return nil, ErrNotForMe
	}
	plain, err := r.Open(additional(slot[:2], pad), ct)
	if err != nil {
		return nil, ErrNotForMe
	}
	defer clear(plain)
	p := &Peeled{
		Time: time.UnixMilli(int64(binary.BigEndian.Uint64(plain[1:]))),
		Tag:  sha256.Sum256(enc),
	}
	var used int
	switch plain[0] {
	case layerFinal:
		n := int(binary.BigEndian.Uint16(plain[9:]))
		if n > MaxPayload {
			return nil, fmt.Errorf("%w: a payload of %d bytes", ErrMalformed, n)
		}
		used = 11 + n
		p.Final = true
		p.Payload = append([]byte{}, plain[11:used]...)
	case layerHop:
		used = 9 + id.Len + chacha20.KeySize
		copy(p.Next[:], plain[9:])
		var key [chacha20.KeySize]byte
		copy(key[:], plain[9+id.Len:])
		p.Forward = new(wire.Onion)
		stream(key, p.Forward.Data[:restLen], o.Data[wire.OnionSlot:])
		clear(key[:])
		// The freed slot: random bytes, so the forwarded onion has the
		// size of any other and no relation to this one.
		rand.Read(p.Forward.Data[restLen:])
	default:
		return nil, fmt.Errorf("%w: layer kind %d", ErrMalformed, plain[0])
	}
	for _, b := range plain[used:] {
		if b != 0 {
			return nil, fmt.Errorf("%w: padding not zero", ErrMalformed)
		}
	}
	if d := now.Sub(p.Time); d > Window || d < -MaxAhead {
		return nil, fmt.Errorf("%w: %v off this node's clock", ErrStale, d.Round(time.Second))
	}
	return p, nil
}

// Replays remembers the tags of the layers a node opened until their time
// leaves Window; at most Capacity of them (past it, the oldest is
// forgotten early and layers not newer than it are refused). Zero
// Capacity is DefaultCapacity. It is safe for concurrent use.
type Replays struct {
	Capacity int

	mu    sync.Mutex
	seen  map[[32]byte]struct{}
	order byTime // a min-heap of what seen holds, by layer time
	floor time.Time
}

type seenTag struct {
	tag [32]byte
	at  time.Time
}

type byTime []seenTag

func (h byTime) Len() int           { return len(h) }
func (h byTime) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h byTime) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *byTime) Push(x any)        { *h = append(*h, x.(seenTag)) }
func (h *byTime) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Admit records tag with its layer's time and reports whether it is new
// (false: a replay, or too old to tell).
func (r *Replays) Admit(tag [32]byte, at, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[[32]byte]struct{})
	}
	// A layer from ahead of our clock is remembered as of now, so that
	// no layer can sit above honest ones in the order (and raise the
	// floor past them when a flood makes room).
	if at.After(now) {
		at = now
	}
	// Forget what left the window (Peel refuses such layers anyway), and
	// refuse from then on what is not newer: a clock read a moment
	// earlier on another goroutine must not readmit it.
	for len(r.order) > 0 && now.Sub(r.order[0].at) > Window {
		old := heap.Pop(&r.order).(seenTag)
		delete(r.seen, old.tag)
		if old.at.After(r.floor) {
			r.floor = old.at
		}
	}
	if now.Sub(at) > Window || !at.After(r.floor) {
		return false
	}
	if _, ok := r.seen[tag]; ok {
		return false
	}
	capacity := r.Capacity
	if capacity <= 0 {
		capacity = DefaultCapacity
	}
	if len(r.order) >= capacity && !at.After(r.order[0].at) {
		return false // it would be the first forgotten: too old to tell
	}
	for len(r.order) >= capacity {
		old := heap.Pop(&r.order).(seenTag)
		delete(r.seen, old.tag)
		if old.at.After(r.floor) {
			r.floor = old.at
		}
	}
	if !at.After(r.floor) {
		return false
	}
	r.seen[tag] = struct{}{}
	heap.Push(&r.order, seenTag{tag, at})
	return true
}

// Len is how many tags r remembers.
func (r *Replays) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}
