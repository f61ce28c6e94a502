package dht

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"

	"ddt/shared/id"
	"ddt/shared/wire"
)

// MaxValue is the largest record value.
const MaxValue = 2048

// recordOverhead is the size of a record's fixed fields:
// key, signer, sequence number, value length and signature.
const recordOverhead = id.Len + 32 + 8 + 2 + 64

// MaxRecord is the largest encoded record.
const MaxRecord = recordOverhead + MaxValue

// An encoded record must fit the wire's limit (this fails to compile if not).
var _ [wire.MaxRecord - MaxRecord]struct{}

// recordContext separates record signatures from every other signature a
// DDT key makes.
const recordContext = "ddt/dht/record/v1\x00"

// Record is a signed, versioned value stored under Key (BEP 44 style).
// Several signers may store under one key; for one signer, a record with a
// higher Seq replaces a lower one. Callers derive keys themselves, e.g. the
// first 20 bytes of SHA-256("user/" ‖ name).
//
// Encoding (Marshal), all integers big-endian:
//
//	Key (20) | Signer (32) | Seq (8) | value length (2) | Value | Sig (64)
//
// Sig is the signer's Ed25519 signature over SignedBytes: a context
// string, Key, Seq and Value.
type Record struct {
	Key    id.Address
	Signer [32]byte // Ed25519 public key
	Seq    uint64
	Value  []byte // at most MaxValue bytes
	Sig    [64]byte
}

// SignedBytes is what the signer signs.
func (r *Record) SignedBytes() []byte {
	b := make([]byte, 0, len(recordContext)+id.Len+8+len(r.Value))
	b = append(b, recordContext...)
	b = append(b, r.Key[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	return append(b, r.Value...)
}

// Sign sets Signer to priv's public key and signs the record.
func (r *Record) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("dht: signing key of %d bytes", len(priv))
	}
	if len(r.Value) > MaxValue {
		return fmt.Errorf("%w: value of %d bytes, limit %d", ErrTooLarge, len(r.Value), MaxValue)
	}
	copy(r.Signer[:], priv.Public().(ed25519.PublicKey))
	copy(r.Sig[:], ed25519.Sign(priv, r.SignedBytes()))
	return nil
}

// Verify checks the value's size and the signature.
func (r *Record) Verify() error {
	if len(r.Value) > MaxValue {
		return fmt.Errorf("%w: value of %d bytes, limit %d", ErrTooLarge, len(r.Value), MaxValue)
	}
	if r.Signer == ([32]byte{}) || r.Sig == ([64]byte{}) {
		return ErrUnsigned
	}
	if !ed25519.Verify(r.Signer[:], r.SignedBytes(), r.Sig[:]) {
		return ErrBadSignature
	}
	return nil
}

// Marshal encodes r. It fails only for a value over MaxValue.
func (r *Record) Marshal() ([]byte, error) {
	if len(r.Value) > MaxValue {
		return nil, fmt.Errorf("%w: value of %d bytes, limit %d", ErrTooLarge, len(r.Value), MaxValue)
	}
	b := make([]byte, 0, recordOverhead+len(r.Value))
	b = append(b, r.Key[:]...)
	b = append(b, r.Signer[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Value)))
	b = append(b, r.Value...)
	return append(b, r.Sig[:]...), nil
}

// Unmarshal decodes an encoded record into r. It checks the layout and
// the limits, not the signature (see Verify). Value is a copy; b may be
// reused.
func (r *Record) Unmarshal(b []byte) error {
	if len(b) > MaxRecord {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxRecord)
	}
	if len(b) < recordOverhead {
		return fmt.Errorf("%w: %d bytes, at least %d needed", ErrMalformed, len(b), recordOverhead)
	}
	n := int(binary.BigEndian.Uint16(b[id.Len+32+8:]))
	if n > MaxValue {
		return fmt.Errorf("%w: value of %d bytes, limit %d", ErrTooLarge, n, MaxValue)
	}
	if len(b) != recordOverhead+n {
		return fmt.Errorf("%w: %d bytes for a value of %d", ErrMalformed, len(b), n)
	}
	var out Record
	copy(out.Key[:], b)
	b = b[id.Len:]
	copy(out.Signer[:], b)
	b = b[32:]
	out.Seq = binary.BigEndian.Uint64(b)
	b = b[8+2:]
	out.Value = bytes.Clone(b[:n])
	copy(out.Sig[:], b[n:])
	*r = out
	return nil
}

// same reports whether r and o are the same signed record.
func (r *Record) same(o *Record) bool {
	return r.Key == o.Key && r.Signer == o.Signer && r.Seq == o.Seq && r.Sig == o.Sig && bytes.Equal(r.Value, o.Value)
}
