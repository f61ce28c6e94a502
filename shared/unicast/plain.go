package unicast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Kinds of plaintext a session seals.
const (
	kindText    = 1 // a message: its number, id, time and text
	kindReceipt = 2 // the highest number delivered in order
	kindConfirm = 3 // the exchange's confirmation: Keyring.Confirm
)

// plain is the plaintext of a sealed message, in the service's own
// layout: kind u8 | number uvarint | id [16] | time varint (Unix ms) |
// body (the text, or the confirmation tag).
type plain struct {
	Kind   byte
	Number uint64
	ID     [16]byte
	Time   int64
	Body   []byte
}

var errPlain = errors.New("unicast: malformed plaintext")

func (p *plain) marshal() []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*2+16+len(p.Body))
	b = append(b, p.Kind)
	b = binary.AppendUvarint(b, p.Number)
	b = append(b, p.ID[:]...)
	b = binary.AppendVarint(b, p.Time)
	return append(b, p.Body...)
}

// parsePlain decodes b: the kind is known, the body fits the kind (a text
// of at most MaxText bytes of UTF-8, a 32-byte tag, nothing for a
// receipt).
func parsePlain(b []byte) (*plain, error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("%w: empty", errPlain)
	}
	p := &plain{Kind: b[0]}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad number", errPlain)
	}
	p.Number, b = n, b[k:]
	if len(b) < 16 {
		return nil, fmt.Errorf("%w: short id", errPlain)
	}
	copy(p.ID[:], b)
	b = b[16:]
	t, k := binary.Varint(b)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad time", errPlain)
	}
	p.Time, b = t, b[k:]
	switch p.Kind {
	case kindText:
		if len(b) == 0 || len(b) > MaxText || !utf8.Valid(b) {
			return nil, fmt.Errorf("%w: a text of %d bytes, or not UTF-8", errPlain, len(b))
		}
		if p.Number == 0 {
			return nil, fmt.Errorf("%w: message number 0", errPlain)
		}
	case kindReceipt:
		if len(b) != 0 {
			return nil, fmt.Errorf("%w: a receipt with a body", errPlain)
		}
	case kindConfirm:
		if len(b) != 32 {
			return nil, fmt.Errorf("%w: a confirmation of %d bytes", errPlain, len(b))
		}
	default:
		return nil, fmt.Errorf("%w: kind %d", errPlain, p.Kind)
	}
	p.Body = append([]byte(nil), b...)
	return p, nil
}
