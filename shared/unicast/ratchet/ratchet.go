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
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
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
	// ErrNoChain: Seal on an initiator that has not opened the
	// receiver's first message yet (CanSeal is false).
	ErrNoChain = errors.New("ratchet: this side cannot send before the other's first message opens")
)

// Keyring is the four keys the key exchange derives (see the package doc).
type Keyring [4][32]byte

// Derive computes the keyring of the exchange session from its four
// shares and static, the X25519 agreement between the two friends'
// identity keys (identity.Identity.Agree), bound to the initiator's and
// the receiver's identity (Ed25519) keys: HKDF-SHA256 with salt session
// over shares[0..3] || static, info "ddt/unicast/keyring/v1" || from || to.
func Derive(session [16]byte, shares [4][32]byte, static [32]byte, from, to [32]byte) Keyring {
	secret := make([]byte, 0, 5*32)
	for _, sh := range shares {
		secret = append(secret, sh[:]...)
	}
	secret = append(secret, static[:]...)
	info := "ddt/unicast/keyring/v1" + string(from[:]) + string(to[:])
	out := hkdfKey(secret, session[:], info, 4*32)
	var kr Keyring
	for i := range kr {
		copy(kr[i][:], out[32*i:])
	}
	clear(secret)
	clear(out)
	return kr
}

// Confirm is the tag the exchange's receiver sends to prove it derived
// the same keyring: HMAC-SHA256 under K3 of the session id.
func (k *Keyring) Confirm(session [16]byte) [32]byte {
	m := hmac.New(sha256.New, k[3][:])
	m.Write(session[:])
	return [32]byte(m.Sum(nil))
}

func hkdfKey(secret, salt []byte, info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, secret, salt, info, n)
	if err != nil {
		panic(err) // only for lengths above 255 hash blocks
	}
	return out
}

// Message layout: nonce | sealed header | ciphertext.
const (
	nonceLen  = chacha20poly1305.NonceSize
	headerLen = 32 + 4 + 4 // ratchet public key | previous chain length | number
	sealedHdr = headerLen + chacha20poly1305.Overhead
	// Overhead is what Seal adds to a plaintext.
	Overhead = nonceLen + sealedHdr + chacha20poly1305.Overhead
)

// maxPrevious is how many of the other side's earlier ratchet keys a
// state remembers, so a replay from an earlier chain is told apart
// (ErrOld) from a message that does not belong to the session.
const maxPrevious = 8

// skipKey names a skipped message key: the chain's ratchet key and the
// message's number in it.
type skipKey struct {
	dh [32]byte
	n  uint32
}

// chains is the part of a State that Open computes on a copy and keeps
// only if the message opens (all-or-nothing).
type chains struct {
	priv     [32]byte // our ratchet private key
	pub      [32]byte // and its public key
	theirs   [32]byte // their ratchet public key (hasTheirs)
	root     [32]byte
	send     [32]byte // sending chain key (hasSend)
	recv     [32]byte // receiving chain key (hasRecv)
	ns, nr   uint32   // messages sent in the sending chain, received in the receiving one
	pn       uint32   // length of the previous sending chain
	previous [][32]byte

	hasTheirs, hasSend, hasRecv bool
	// step: their new ratchet key arrived; the next Seal makes a new
	// key pair of ours first (Open has no randomness, and a key made
	// at sending time is fresher).
	step bool
}

// State is one side of a session. It is not safe for concurrent use.
// Seal and Open change it: save Marshal's bytes before sending or
// acknowledging what they made, so a crash never reuses a key.
type State struct {
	c              chains
	hkSend, hkRecv [32]byte // the fixed header keys of each direction
	skipped        map[skipKey][32]byte
	order          []skipKey // skipped's keys, oldest first; used ones linger until compacted
}

// NewInitiator is the state of the exchange's initiator, whose ratchet
// key pair priv (32 bytes of X25519 private key) it announced in its
// shares. It can Open the receiver's first message, and Seal only after.
func NewInitiator(kr Keyring, priv [32]byte) (*State, error) {
	s := &State{hkSend: kr[1], hkRecv: kr[2], skipped: make(map[skipKey][32]byte)}
	if err := s.c.setKey(priv); err != nil {
		return nil, err
	}
	s.c.root = kr[0]
	return s, nil
}

// NewReceiver is the state of the exchange's receiver, given the
// initiator's ratchet public key; it can Seal at once (its first message
// is the exchange's confirmation).
func NewReceiver(kr Keyring, theirs [32]byte, rand io.Reader) (*State, error) {
	s := &State{hkSend: kr[2], hkRecv: kr[1], skipped: make(map[skipKey][32]byte)}
	s.c.root = kr[0]
	s.c.theirs, s.c.hasTheirs = theirs, true
	if err := s.c.sendStep(rand); err != nil {
		return nil, err
	}
	return s, nil
}

func (c *chains) setKey(priv [32]byte) error {
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return fmt.Errorf("ratchet: the ratchet key: %w", err)
	}
	c.priv, c.pub = priv, [32]byte(k.PublicKey().Bytes())
	return nil
}

// dh is the X25519 agreement of our ratchet key and theirs.
func (c *chains) dh() ([]byte, error) {
	k, err := ecdh.X25519().NewPrivateKey(c.priv[:])
	if err != nil {
		return nil, err
	}
	pub, err := ecdh.X25519().NewPublicKey(c.theirs[:])
	if err != nil {
		return nil, err
	}
	return k.ECDH(pub) // fails on a low-order key
}

// kdfRK is the root chain's step: HKDF-SHA256 with the root key as salt
// over the agreement; a new root key and a new chain key.
func kdfRK(root [32]byte, dh []byte) (newRoot, chain [32]byte) {
	out := hkdfKey(dh, root[:], "ddt/unicast/ratchet/v1", 64)
	copy(newRoot[:], out)
	copy(chain[:], out[32:])
	clear(out)
	return newRoot, chain
}

// kdfCK is a chain's step: HMAC-SHA256 of 0x01 is the message key, of
// 0x02 the next chain key.
func kdfCK(ck [32]byte) (next, mk [32]byte) {
	m := hmac.New(sha256.New, ck[:])
	m.Write([]byte{1})
	copy(mk[:], m.Sum(nil))
	m.Reset()
	m.Write([]byte{2})
	copy(next[:], m.Sum(nil))
	return next, mk
}

// messageKey expands a message key into its AEAD key and nonce.
func messageKey(mk [32]byte) (key [32]byte, nonce [nonceLen]byte) {
	out := hkdfKey(mk[:], nil, "ddt/unicast/message/v1", 32+nonceLen)
	copy(key[:], out)
	copy(nonce[:], out[32:])
	clear(out)
	return key, nonce
}

// sendStep makes a new ratchet key pair and the sending chain it gives
// with their key.
func (c *chains) sendStep(rand io.Reader) error {
	var priv [32]byte
	if _, err := io.ReadFull(rand, priv[:]); err != nil {
		return fmt.Errorf("ratchet: reading random bytes: %w", err)
	}
	next := *c
	if err := next.setKey(priv); err != nil {
		return err
	}
	dh, err := next.dh()
	if err != nil {
		return fmt.Errorf("ratchet: their ratchet key: %w", err)
	}
	next.root, next.send = kdfRK(next.root, dh)
	next.hasSend, next.step = true, false
	next.pn, next.ns = next.ns, 0
	*c = next
	return nil
}

// recvStep takes their new ratchet key theirs and the receiving chain it
// gives with ours.
func (c *chains) recvStep(theirs [32]byte) error {
	if c.hasTheirs {
		c.previous = append(c.previous, c.theirs)
		if len(c.previous) > maxPrevious {
			c.previous = slices.Delete(c.previous, 0, len(c.previous)-maxPrevious)
		}
	}
	c.theirs, c.hasTheirs = theirs, true
	dh, err := c.dh()
	if err != nil {
		return ErrDecrypt
	}
	c.root, c.recv = kdfRK(c.root, dh)
	c.hasRecv, c.nr = true, 0
	c.step = true
	return nil
}

// CanSeal reports whether Seal may be called (an initiator that has not
// yet opened a message cannot).
func (s *State) CanSeal() bool { return s.c.hasSend || s.c.step }

// Seal encrypts plaintext with the next message key, binding ad.
func (s *State) Seal(plaintext, ad []byte, rand io.Reader) ([]byte, error) {
	if !s.CanSeal() {
		return nil, ErrNoChain
	}
	out := make([]byte, nonceLen, Overhead+len(plaintext))
	if _, err := io.ReadFull(rand, out); err != nil {
		return nil, fmt.Errorf("ratchet: reading random bytes: %w", err)
	}
	next := s.c
	if next.step {
		if err := next.sendStep(rand); err != nil {
			return nil, err
		}
	}
	if next.ns == math.MaxUint32 {
		return nil, errors.New("ratchet: the sending chain is exhausted; make a new session")
	}
	var mk [32]byte
	next.send, mk = kdfCK(next.send)
	var hdr [headerLen]byte
	copy(hdr[:], next.pub[:])
	binary.BigEndian.PutUint32(hdr[32:], next.pn)
	binary.BigEndian.PutUint32(hdr[36:], next.ns)
	next.ns++

	ha, _ := chacha20poly1305.New(s.hkSend[:])
	out = ha.Seal(out, out[:nonceLen], hdr[:], ad)
	key, nonce := messageKey(mk)
	ma, _ := chacha20poly1305.New(key[:])
	out = ma.Seal(out, nonce[:], plaintext, additional(ad, hdr[:]))
	clear(mk[:])
	clear(key[:])
	s.c = next
	return out, nil
}

// additional is a message's additional data: the caller's, then the
// header.
func additional(ad, hdr []byte) []byte {
	return append(append(make([]byte, 0, len(ad)+len(hdr)), ad...), hdr...)
}

// Open decrypts msg, binding ad. On any error the state is unchanged.
func (s *State) Open(msg, ad []byte) ([]byte, error) {
	if len(msg) < Overhead {
		return nil, ErrDecrypt
	}
	ha, _ := chacha20poly1305.New(s.hkRecv[:])
	hdr, err := ha.Open(nil, msg[:nonceLen], msg[nonceLen:nonceLen+sealedHdr], ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	ct := msg[nonceLen+sealedHdr:]
	theirs := [32]byte(hdr[:32])
	pn := binary.BigEndian.Uint32(hdr[32:])
	n := binary.BigEndian.Uint32(hdr[36:])
	aad := additional(ad, hdr)

	at := skipKey{theirs, n}
	if mk, ok := s.skipped[at]; ok {
		pt, err := decrypt(mk, ct, aad)
		if err != nil {
			return nil, err
		}
		delete(s.skipped, at)
		s.compact()
		return pt, nil
	}

	next := s.c
	next.previous = slices.Clone(next.previous)
	var skip []skipped
	budget := MaxJump // what one message may make us derive, over both chains
	if !next.hasTheirs || theirs != next.theirs {
		if slices.Contains(next.previous, theirs) || s.skippedOf(theirs) {
			// A key of theirs we stepped past: its chain is over, and
			// stepping to it again would derive keys we already hold.
			return nil, ErrOld
		}
		// A new chain of theirs: keep the keys of what the old one
		// still had to come, then step.
		if next.hasRecv {
			if skip, err = next.skipTo(pn, skip, &budget); err != nil {
				return nil, err
			}
		}
		if err := next.recvStep(theirs); err != nil {
			return nil, err
		}
	}
	if !next.hasRecv {
		// The receiver before the initiator's first message: the key
		// the initiator announced has no receiving chain yet (its first
		// message comes under a new key), so nothing opens under it.
		return nil, ErrDecrypt
	}
	if n < next.nr {
		return nil, ErrOld
	}
	if skip, err = next.skipTo(n, skip, &budget); err != nil {
		return nil, err
	}
	var mk [32]byte
	next.recv, mk = kdfCK(next.recv)
	next.nr++
	pt, err := decrypt(mk, ct, aad)
	clear(mk[:])
	if err != nil {
		return nil, err
	}
	s.c = next
	for _, k := range skip {
		s.keep(k.at, k.mk)
	}
	return pt, nil
}

type skipped struct {
	at skipKey
	mk [32]byte
}

// skipTo advances the receiving chain to message number until, adding
// the keys of the messages it passes to skip (only the newest MaxSkipped
// can be kept anyway).
func (c *chains) skipTo(until uint32, skip []skipped, budget *int) ([]skipped, error) {
	if until < c.nr {
		return skip, nil // a previous chain shorter than what we got: it lies, nothing to keep
	}
	if int64(until-c.nr) > int64(*budget) {
		return nil, ErrJump
	}
	*budget -= int(until - c.nr)
	for c.nr < until {
		var mk [32]byte
		c.recv, mk = kdfCK(c.recv)
		skip = append(skip, skipped{skipKey{c.theirs, c.nr}, mk})
		c.nr++
	}
	if len(skip) > MaxSkipped {
		skip = slices.Delete(skip, 0, len(skip)-MaxSkipped)
	}
	return skip, nil
}

// keep adds a skipped key, dropping the oldest past MaxSkipped.
func (s *State) keep(at skipKey, mk [32]byte) {
	if _, ok := s.skipped[at]; ok {
		return // held already: order lists each key once
	}
	s.skipped[at] = mk
	s.order = append(s.order, at)
	for len(s.skipped) > MaxSkipped {
		old := s.order[0]
		s.order = s.order[1:]
		delete(s.skipped, old)
	}
	s.compact()
}

// skippedOf reports whether a skipped key of the ratchet key pub is held.
func (s *State) skippedOf(pub [32]byte) bool {
	for k := range s.skipped {
		if k.dh == pub {
			return true
		}
	}
	return false
}

// compact drops the used keys from order when they are half of it.
func (s *State) compact() {
	if len(s.order) <= 2*len(s.skipped)+16 {
		return
	}
	live := make([]skipKey, 0, len(s.skipped))
	for _, k := range s.order {
		if _, ok := s.skipped[k]; ok {
			live = append(live, k)
		}
	}
	s.order = live
}

func decrypt(mk [32]byte, ct, aad []byte) ([]byte, error) {
	key, nonce := messageKey(mk)
	a, _ := chacha20poly1305.New(key[:])
	pt, err := a.Open(nil, nonce[:], ct, aad)
	clear(key[:])
	if err != nil {
		return nil, ErrDecrypt
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

// Marshal layout, version 1: version | flags | our private key | their
// key | root | send | recv | the header keys (send, recv) | ns | nr | pn |
// previous count (u8) and keys | skipped count (u16) and, oldest first,
// each key's chain, number and message key.
const (
	stateVersion = 1
	fixedLen     = 2 + 7*32 + 3*4 + 1 + 2
	skippedLen   = 32 + 4 + 32
	// MaxState bounds a marshalled state.
	MaxState = fixedLen + maxPrevious*32 + MaxSkipped*skippedLen
)

const (
	flagTheirs = 1 << iota
	flagSend
	flagRecv
	flagStep
)

// Marshal returns the state for storage (skipped keys included). Keep it
// secret.
func (s *State) Marshal() []byte {
	s.compact()
	b := make([]byte, 0, fixedLen+len(s.c.previous)*32+len(s.skipped)*skippedLen)
	var flags byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{s.c.hasTheirs, flagTheirs}, {s.c.hasSend, flagSend}, {s.c.hasRecv, flagRecv}, {s.c.step, flagStep}} {
		if f.on {
			flags |= f.bit
		}
	}
	b = append(b, stateVersion, flags)
	for _, k := range [][32]byte{s.c.priv, s.c.theirs, s.c.root, s.c.send, s.c.recv, s.hkSend, s.hkRecv} {
		b = append(b, k[:]...)
	}
	b = binary.BigEndian.AppendUint32(b, s.c.ns)
	b = binary.BigEndian.AppendUint32(b, s.c.nr)
	b = binary.BigEndian.AppendUint32(b, s.c.pn)
	b = append(b, byte(len(s.c.previous)))
	for _, k := range s.c.previous {
		b = append(b, k[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.skipped)))
	for _, at := range s.order {
		mk, ok := s.skipped[at]
		if !ok {
			continue
		}
		b = append(b, at.dh[:]...)
		b = binary.BigEndian.AppendUint32(b, at.n)
		b = append(b, mk[:]...)
	}
	return b
}

// Unmarshal restores a state saved with Marshal.
func Unmarshal(b []byte) (*State, error) {
	if len(b) < fixedLen || len(b) > MaxState {
		return nil, fmt.Errorf("%w: %d bytes", ErrState, len(b))
	}
	if b[0] != stateVersion {
		return nil, fmt.Errorf("%w: version %d", ErrState, b[0])
	}
	flags := b[1]
	if flags&^(flagTheirs|flagSend|flagRecv|flagStep) != 0 {
		return nil, fmt.Errorf("%w: flags %#x", ErrState, flags)
	}
	s := &State{skipped: make(map[skipKey][32]byte)}
	s.c.hasTheirs = flags&flagTheirs != 0
	s.c.hasSend = flags&flagSend != 0
	s.c.hasRecv = flags&flagRecv != 0
	s.c.step = flags&flagStep != 0
	if (s.c.hasRecv || s.c.step) && !s.c.hasTheirs {
		return nil, fmt.Errorf("%w: a receiving chain without their key", ErrState)
	}
	r := bytes.NewReader(b[2:])
	var priv [32]byte
	for _, k := range []*[32]byte{&priv, &s.c.theirs, &s.c.root, &s.c.send, &s.c.recv, &s.hkSend, &s.hkRecv} {
		r.Read(k[:])
	}
	if err := s.c.setKey(priv); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	var nums [13]byte
	r.Read(nums[:])
	s.c.ns = binary.BigEndian.Uint32(nums[0:])
	s.c.nr = binary.BigEndian.Uint32(nums[4:])
	s.c.pn = binary.BigEndian.Uint32(nums[8:])
	np := int(nums[12])
	if np > maxPrevious || r.Len() < np*32+2 {
		return nil, fmt.Errorf("%w: %d previous keys", ErrState, np)
	}
	for range np {
		var k [32]byte
		r.Read(k[:])
		s.c.previous = append(s.c.previous, k)
	}
	var cnt [2]byte
	r.Read(cnt[:])
	ns := int(binary.BigEndian.Uint16(cnt[:]))
	if ns > MaxSkipped || r.Len() != ns*skippedLen {
		return nil, fmt.Errorf("%w: %d skipped keys in %d bytes", ErrState, ns, r.Len())
	}
	for range ns {
		var at skipKey
		var mk [32]byte
		var n [4]byte
		r.Read(at.dh[:])
		r.Read(n[:])
		r.Read(mk[:])
		at.n = binary.BigEndian.Uint32(n[:])
		if _, dup := s.skipped[at]; dup {
			return nil, fmt.Errorf("%w: a skipped key twice", ErrState)
		}
		s.skipped[at] = mk
		s.order = append(s.order, at)
	}
	return s, nil
}

// SafetyNumber is the number two friends compare out of band to know
// that each has the other's real identity key: 60 digits in 12 groups of
// five, the same on both sides (the keys are sorted first), derived by
// iterated SHA-512 of each key (Signal's numeric fingerprint, version 2).
func SafetyNumber(a, b [32]byte) string {
	x, y := fingerprint(a), fingerprint(b)
	if y < x {
		x, y = y, x
	}
	digits := x + y
	var sb strings.Builder
	for i := 0; i < len(digits); i += 5 {
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(digits[i : i+5])
	}
	return sb.String()
}

// fingerprintIterations is Signal's count of SHA-512 rounds.
const fingerprintIterations = 5200

// fingerprint is one key's 30 digits, as libsignal's
// NumericFingerprintGenerator makes them: hash starts as version 0 (u16)
// | key | "ddt", then 5,200 rounds of hash = SHA-512(hash | key); its
// first 30 bytes, six chunks of five, each a big-endian 40-bit number
// mod 100,000.
func fingerprint(key [32]byte) string {
	h := sha512.New()
	sum := append([]byte{0, 0}, key[:]...)
	sum = append(sum, "ddt"...)
	for range fingerprintIterations {
		h.Reset()
		h.Write(sum)
		h.Write(key[:])
		sum = h.Sum(sum[:0])
	}
	var sb strings.Builder
	for i := 0; i < 30; i += 5 {
		var v uint64
		for _, c := range sum[i : i+5] {
			v = v<<8 | uint64(c)
		}
		fmt.Fprintf(&sb, "%05d", v%100000)
	}
	return sb.String()
}
