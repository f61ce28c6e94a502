package unicast

import (
	"encoding/binary"
	"errors"
	"fmt"

	"ddt/shared/store"
	"ddt/shared/unicast/ratchet"
	"ddt/shared/wire"
)

// The service's records in the node's store — friends, requests,
// sessions, the outbox, early messages, history — are a version byte and
// their fields in a fixed order: varints, length-prefixed bytes and
// strings with a bound each. (encoding/json's Marshal and Unmarshal
// cost the wasm 0.23 MB when this package used them; see shared/bridge.)

// recordVersion is the layout of every record below.
const recordVersion = 1

// errRecord: a stored record that does not decode (loading drops it).
var errRecord = errors.New("unicast: malformed stored record")

// A record is what the service keeps in the store.
type record interface {
	encode(*recEncoder)
	decode(*recDecoder)
}

// loadRecords decodes each record stored under prefix into fresh() and
// hands it to keep with its key; one that does not decode, or that keep
// refuses (it is not where it belongs, a part of it is corrupt), is
// logged and left out. what names the records in the log.
func (s *Service) loadRecords(prefix, what string, fresh func() record, keep func(key string, r record) error) {
	log := s.h.Logger()
	m, err := store.Scan(s.h.Store(), prefix)
	if err != nil {
		log.Warn("could not read the "+what, "err", err)
	}
	for k, b := range m {
		r := fresh()
		err := decodeRecord(b, r)
		if err == nil {
			err = keep(k, r)
		}
		if err != nil {
			log.Warn("a saved record is corrupt; ignoring it", "of", what, "key", k, "err", err)
		}
	}
}

// errMisplaced is keep's answer for a record stored under another key
// than its own.
var errMisplaced = errors.New("it is not stored under its own key")

func putRecord(st store.Store, key string, r record) error {
	e := recEncoder{b: []byte{recordVersion}}
	r.encode(&e)
	return store.PutDurable(st, key, e.b)
}

func decodeRecord(b []byte, r record) error {
	if len(b) == 0 || b[0] != recordVersion {
		return fmt.Errorf("%w: version %v", errRecord, b[:min(len(b), 1)])
	}
	d := recDecoder{b: b[1:]}
	r.decode(&d)
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d bytes left over", errRecord, len(d.b))
	}
	return d.err
}

// The encoder's and decoder's methods are not inlined: in wasm each
// inlined append or bounds check is a few hundred bytes of code, in
// every field of every record.
type recEncoder struct{ b []byte }

//go:noinline
func (e *recEncoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

//go:noinline
func (e *recEncoder) varint(v int64) { e.b = binary.AppendVarint(e.b, v) }

//go:noinline
func (e *recEncoder) fixed(p []byte) { e.b = append(e.b, p...) }

//go:noinline
func (e *recEncoder) bytes(p []byte) { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }

//go:noinline
func (e *recEncoder) string(s string) { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

//go:noinline
func (e *recEncoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

type recDecoder struct {
	b   []byte
	err error
}

//go:noinline
func (d *recDecoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errRecord, what)
	}
	d.b = nil
}

//go:noinline
func (d *recDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("a number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

//go:noinline
func (d *recDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("a number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

//go:noinline
func (d *recDecoder) fixed(p []byte) {
	if len(d.b) < len(p) {
		d.fail("a fixed field")
		return
	}
	copy(p, d.b)
	d.b = d.b[len(p):]
}

//go:noinline
func (d *recDecoder) bytes(max int, what string) []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.b)) {
		d.fail(what + " too long")
		return nil
	}
	p := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return p
}

//go:noinline
func (d *recDecoder) string(max int, what string) string { return string(d.bytes(max, what)) }

//go:noinline
func (d *recDecoder) bool() bool {
	if len(d.b) == 0 || d.b[0] > 1 {
		d.fail("a boolean")
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

// Bounds of the stored fields.
const (
	maxStoredName  = wire.MaxFriendName
	maxStoredState = 16 // "friend", "requested", "received", …
	maxStoredKey   = 128
)

func (f *friend) encode(e *recEncoder) {
	e.string(f.Name)
	e.fixed(f.SignKey[:])
	e.fixed(f.AgreeKey[:])
	e.bytes(f.OnionKey)
	e.fixed(f.Address[:])
	e.varint(f.Since)
	e.string(f.State)
	e.bool(f.Answer)
	e.uvarint(uint64(f.Unread))
	e.uvarint(f.Sent)
	e.uvarint(f.Received)
	e.uvarint(f.Seq)
	e.fixed(f.Current[:])
	e.varint(f.AcceptedAt)
}

func (f *friend) decode(d *recDecoder) {
	f.Name = d.string(maxStoredName, "name")
	d.fixed(f.SignKey[:])
	d.fixed(f.AgreeKey[:])
	f.OnionKey = d.bytes(wire.MaxOnionKey, "onion key")
	d.fixed(f.Address[:])
	f.Since = d.varint()
	f.State = d.string(maxStoredState, "state")
	f.Answer = d.bool()
	f.Unread = int(min(d.uvarint(), 1<<31))
	f.Sent = d.uvarint()
	f.Received = d.uvarint()
	f.Seq = d.uvarint()
	d.fixed(f.Current[:])
	f.AcceptedAt = d.varint()
}

func (r *request) encode(e *recEncoder) {
	e.string(r.From)
	e.fixed(r.Address[:])
	e.varint(r.At)
	e.fixed(r.SignKey[:])
	e.fixed(r.AgreeKey[:])
	e.bytes(r.OnionKey)
}

func (r *request) decode(d *recDecoder) {
	r.From = d.string(maxStoredName, "name")
	d.fixed(r.Address[:])
	r.At = d.varint()
	d.fixed(r.SignKey[:])
	d.fixed(r.AgreeKey[:])
	r.OnionKey = d.bytes(wire.MaxOnionKey, "onion key")
}

func (x *session) encode(e *recEncoder) {
	e.fixed(x.ID[:])
	e.string(x.Name)
	e.bool(x.Initiator)
	e.varint(x.Created)
	e.bool(x.Ready)
	e.bytes(x.State)
}

func (x *session) decode(d *recDecoder) {
	d.fixed(x.ID[:])
	x.Name = d.string(maxStoredName, "name")
	x.Initiator = d.bool()
	x.Created = d.varint()
	x.Ready = d.bool()
	x.State = d.bytes(ratchet.MaxState, "ratchet state")
}

func (it *outItem) encode(e *recEncoder) {
	e.fixed(it.ID[:])
	e.uvarint(it.Number)
	e.string(it.Text)
	e.varint(it.At)
	e.fixed(it.Session[:])
	e.bytes(it.Sealed)
	e.string(it.Hist)
	e.varint(it.PutAt)
}

func (it *outItem) decode(d *recDecoder) {
	d.fixed(it.ID[:])
	it.Number = d.uvarint()
	it.Text = d.string(MaxText, "text")
	it.At = d.varint()
	d.fixed(it.Session[:])
	it.Sealed = d.bytes(wire.MaxSealed, "sealed message")
	it.Hist = d.string(maxStoredKey, "history key")
	it.PutAt = d.varint()
}

func (h *heldText) encode(e *recEncoder) {
	e.uvarint(h.Number)
	e.fixed(h.ID[:])
	e.varint(h.Time)
	e.string(h.Text)
}

func (h *heldText) decode(d *recDecoder) {
	h.Number = d.uvarint()
	d.fixed(h.ID[:])
	h.Time = d.varint()
	h.Text = d.string(MaxText, "text")
}

// historyEntry is a MessageView as the history keeps it.
type historyEntry MessageView

func (v *historyEntry) encode(e *recEncoder) {
	e.string(v.ID)
	e.string(v.From)
	e.string(v.To)
	e.string(v.Text)
	e.varint(v.At)
	e.string(v.State)
}

func (v *historyEntry) decode(d *recDecoder) {
	v.ID = d.string(32, "id")
	v.From = d.string(maxStoredName, "name")
	v.To = d.string(maxStoredName, "name")
	v.Text = d.string(MaxText, "text")
	v.At = d.varint()
	v.State = d.string(maxStoredState, "state")
}
