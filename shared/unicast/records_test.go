package unicast

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleRecords() []record {
	return []record{
		&friend{Name: "alice", SignKey: [32]byte{1}, AgreeKey: [32]byte{2}, OnionKey: []byte{3, 4}, Address: [20]byte{5},
			Since: 1_780_000_000_000, State: stateFriend, Answer: true, Unread: 3, Sent: 9, Received: 7, Seq: 16, Current: [16]byte{6}, AcceptedAt: -1},
		&request{From: "bob", Address: [20]byte{7}, At: 42, SignKey: [32]byte{8}, AgreeKey: [32]byte{9}, OnionKey: []byte{10}},
		&session{ID: [16]byte{11}, Name: "carol", Initiator: true, Created: 5, Ready: true, State: []byte("ratchet state")},
		&outItem{ID: [16]byte{12}, Number: 4, Text: "hello, bob", At: 6, Session: [16]byte{13}, Sealed: []byte{14, 15}, Hist: keyHistory("bob", 3), PutAt: 7},
		&heldText{Number: 5, ID: [16]byte{16}, Time: 8, Text: "early"},
		&historyEntry{ID: "00ff", From: "dave", To: "", Text: "hi ✓", At: 9, State: "received"},
	}
}

// blank is a zero record of r's type.
func blank(r record) record { return reflect.New(reflect.TypeOf(r).Elem()).Interface().(record) }

func encodeRecord(r record) []byte {
	e := recEncoder{b: []byte{recordVersion}}
	r.encode(&e)
	return e.b
}

func TestRecordsRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		b := encodeRecord(r)
		got := blank(r)
		if err := decodeRecord(b, got); err != nil {
			t.Fatalf("%T: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("%T: got %+v, want %+v", r, got, r)
		}
		// Truncated, with a byte more, or of another version: refused.
		for _, bad := range [][]byte{b[:len(b)-1], append(bytes.Clone(b), 0), append([]byte{recordVersion + 1}, b[1:]...), nil} {
			if err := decodeRecord(bad, blank(r)); !errors.Is(err, errRecord) {
				t.Errorf("%T: %x decodes (%v)", r, bad, err)
			}
		}
	}
}

// FuzzRecords: no stored bytes crash a decoder, and what decodes encodes
// to bytes that decode to the same record (a number may come in a longer
// varint than the one written).
func FuzzRecords(f *testing.F) {
	for i, r := range sampleRecords() {
		f.Add(uint8(i), encodeRecord(r))
	}
	f.Fuzz(func(t *testing.T, kind uint8, b []byte) {
		recs := sampleRecords()
		r := blank(recs[int(kind)%len(recs)])
		if decodeRecord(b, r) != nil {
			return
		}
		again := blank(r)
		if err := decodeRecord(encodeRecord(r), again); err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("%T: %x decodes as %+v, which encodes and decodes as %+v (%v)", r, b, r, again, err)
		}
	})
}
