package id

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
)

// Len is the length of an address in bytes (160 bits).
const Len = 20

// Address is a 160-bit DDT address.
type Address [Len]byte

// ErrBadAddress is returned by Parse for text that is not 40 hex digits.
var ErrBadAddress = errors.New("id: address must be 40 hex digits")

// Derive returns the address of a node with the given public key and the
// nonce its relay chose: the first 20 bytes of SHA-256(pub ‖ nonce).
func Derive(pub, nonce []byte) Address {
	h := sha256.New()
	h.Write(pub)
	h.Write(nonce)
	var a Address
	copy(a[:], h.Sum(nil))
	return a
}

// Parse reads the text form of an address (case-insensitive).
func Parse(s string) (Address, error) {
	var a Address
	if len(s) != 2*Len {
		return a, fmt.Errorf("%w: got %d characters", ErrBadAddress, len(s))
	}
	if _, err := hex.Decode(a[:], []byte(s)); err != nil {
		return a, fmt.Errorf("%w: %q", ErrBadAddress, s)
	}
	return a, nil
}

// String returns the address as 40 lowercase hex digits.
func (a Address) String() string { return hex.EncodeToString(a[:]) }

// Short returns the first 8 hex digits, for logs.
func (a Address) Short() string { return hex.EncodeToString(a[:4]) }

// IsZero reports whether a is the all-zero address (no address yet).
func (a Address) IsZero() bool { return a == Address{} }

// Xor returns the XOR distance between a and b.
func (a Address) Xor(b Address) Address {
	var d Address
	for i := range a {
		d[i] = a[i] ^ b[i]
	}
	return d
}

// Compare orders addresses (and so distances) as big-endian integers.
func (a Address) Compare(b Address) int { return bytes.Compare(a[:], b[:]) }

// Closer reports whether a is strictly closer to target than b is.
func Closer(target, a, b Address) bool {
	return a.Xor(target).Compare(b.Xor(target)) < 0
}

// CommonPrefixLen returns the number of leading bits a and b share: the
// index of the Kademlia bucket b falls in from a's point of view.
func CommonPrefixLen(a, b Address) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return i*8 + bits.LeadingZeros8(x)
		}
	}
	return Len * 8
}
