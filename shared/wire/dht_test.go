package wire

import (
	"bytes"
	"errors"
	"testing"

	"ddt/shared/id"
)

func init() {
	moreSamples = append(moreSamples, dhtSamples)
}

func dhtSamples() []Message {
	a := id.Derive([]byte("a"), nil)
	b := id.Derive([]byte("b"), nil)
	return []Message{
		&FindNode{Target: a},
		&Nodes{Contacts: []id.Address{a, b}},
		&FindValue{Key: b},
		&Value{Records: [][]byte{{1, 2, 3}, bytes.Repeat([]byte{7}, MaxRecord)}, Contacts: []id.Address{b}},
		&Store{Record: []byte("an encoded record")},
		&Stored{},
	}
}

func TestDHTLimits(t *testing.T) {
	if _, err := Marshal(&Nodes{Contacts: make([]id.Address, MaxContacts+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many contacts: %v", err)
	}
	if _, err := Marshal(&Value{Records: make([][]byte, MaxRecords+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many records: %v", err)
	}
	if _, err := Marshal(&Store{Record: make([]byte, MaxRecord+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized record: %v", err)
	}
	// The largest Value reply fits in a frame.
	full := &Value{Contacts: make([]id.Address, MaxContacts)}
	for range MaxRecords {
		full.Records = append(full.Records, make([]byte, MaxRecord))
	}
	if _, err := Marshal(full); err != nil {
		t.Errorf("largest Value: %v", err)
	}
	// A count that the frame cannot hold fails before allocating.
	if _, err := Unmarshal([]byte{Version, byte(TypeNodes), MaxContacts}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short contact list: %v", err)
	}
	// An empty list decodes as nil, so it round-trips like the samples.
	m, err := Unmarshal([]byte{Version, byte(TypeValue), 0, 0})
	if err != nil || m.(*Value).Records != nil || m.(*Value).Contacts != nil {
		t.Errorf("empty Value = %+v, %v", m, err)
	}
}
