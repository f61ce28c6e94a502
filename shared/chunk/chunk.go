package chunk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"ddt/shared/id"
)

// MaxSize is the largest chunk: every chunk of a payload but its last is
// exactly this long.
const MaxSize = 4 << 20

// HashLen is the length of a Hash in bytes.
const HashLen = sha256.Size

// Hash is the SHA-256 of a chunk: its name. A content id is the Hash of
// a manifest's encoding.
type Hash [HashLen]byte

// Errors.
var (
	// ErrBadHash: text that is not 64 hex digits.
	ErrBadHash = errors.New("chunk: a content id is 64 hex digits")
	// ErrCorrupt: bytes whose hash is not the one asked for, or a manifest
	// that contradicts itself.
	ErrCorrupt = errors.New("chunk: corrupt")
	// ErrTooLarge: more bytes than a chunk (or a manifest) may have.
	ErrTooLarge = errors.New("chunk: too large")
)

// Parse reads a Hash from its 64 hex digits (case-insensitive).
func Parse(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashLen {
		return h, fmt.Errorf("%w, not %d characters", ErrBadHash, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("%w: %q is not hex", ErrBadHash, s)
	}
	return h, nil
}

// String is the hash as 64 lower-case hex digits.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Short is the first 8 hex digits, for logs.
func (h Hash) Short() string { return hex.EncodeToString(h[:4]) }

// IsZero reports whether h is the zero Hash (no hash).
func (h Hash) IsZero() bool { return h == Hash{} }

// keyContext separates provider keys from every other DHT key.
const keyContext = "ddt/provide/v1\x00"

// Key is where the DHT keeps the provider records of the chunk (or
// manifest) h, and near which its replicas live: the first 20 bytes of
// SHA-256(context ‖ h).
func (h Hash) Key() id.Address {
	s := sha256.New()
	s.Write([]byte(keyContext))
	s.Write(h[:])
	var a id.Address
	copy(a[:], s.Sum(nil))
	return a
}

// SumGo is the SHA-256 of data by Go's crypto/sha256, on every platform.
func SumGo(data []byte) Hash { return sha256.Sum256(data) }

// Verify checks that data is the chunk h names, at most MaxSize bytes
// and, if size ≥ 0, exactly size bytes long. It hashes with Sum.
func Verify(h Hash, data []byte, size int) error {
	if len(data) > MaxSize {
		return fmt.Errorf("%w: %d bytes, a chunk is at most %d", ErrTooLarge, len(data), MaxSize)
	}
	if size >= 0 && len(data) != size {
		return fmt.Errorf("%w: chunk %s is %d bytes, %d expected", ErrCorrupt, h.Short(), len(data), size)
	}
	got, err := Sum(data)
	if err != nil {
		return err
	}
	if got != h {
		return fmt.Errorf("%w: bytes of chunk %s hash to %s", ErrCorrupt, h.Short(), got.Short())
	}
	return nil
}
