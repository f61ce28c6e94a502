package wire

import (
	"encoding/binary"
	"fmt"
)

// encoder appends fields to a buffer and remembers the first limit it broke.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) u8(v uint8)       { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) fixed(p []byte)   { e.b = append(e.b, p...) }

func (e *encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func (e *encoder) bytes(p []byte, max int, field string) {
	if len(p) > max && e.err == nil {
		e.err = fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, field, len(p), max)
	}
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *encoder) string(s string, max int, field string) {
	if len(s) > max && e.err == nil {
		e.err = fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, field, len(s), max)
	}
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) count(n, max int, field string) {
	if n > max && e.err == nil {
		e.err = fmt.Errorf("%w: %s has %d entries, limit %d", ErrTooLarge, field, n, max)
	}
	e.uvarint(uint64(n))
}

// decoder reads fields from a frame; after the first error every read
// returns zero values and the error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (d *decoder) u8() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("bad boolean")
		return false
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// uint32 reads an unsigned varint that must fit 32 bits.
func (d *decoder) uint32(field string) uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("%s out of range", field)
		return 0
	}
	return uint32(v)
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fixed(p []byte) {
	if d.err != nil {
		return
	}
	if len(d.b) < len(p) {
		d.fail("truncated")
		return
	}
	copy(p, d.b)
	d.b = d.b[len(p):]
}

func (d *decoder) length(max int, field string) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(max) {
		d.err = fmt.Errorf("%w: %s claims %d, limit %d", ErrTooLarge, field, n, max)
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(max int, field string) []byte {
	n := d.length(max, field)
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail("%s truncated", field)
		return nil
	}
	p := make([]byte, n)
	copy(p, d.b)
	d.b = d.b[n:]
	return p
}

func (d *decoder) string(max int, field string) string {
	n := d.length(max, field)
	if d.err != nil {
		return ""
	}
	if len(d.b) < n {
		d.fail("%s truncated", field)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// count reads a list length; each entry needs at least minEntry bytes, so
// a short frame cannot make the decoder allocate a long list.
func (d *decoder) count(max, minEntry int, field string) int {
	n := d.length(max, field)
	if d.err == nil && n*minEntry > len(d.b) {
		d.fail("%s truncated", field)
		return 0
	}
	return n
}
