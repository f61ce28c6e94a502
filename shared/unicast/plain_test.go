package unicast

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainRoundTrip(t *testing.T) {
	for _, p := range []plain{
		{Kind: kindText, Number: 1, ID: [16]byte{1}, Time: 1700000000000, Body: []byte("héllo")},
		{Kind: kindText, Number: 1 << 40, Time: -5, Body: []byte(strings.Repeat("x", MaxText))},
		{Kind: kindReceipt, Number: 7, ID: [16]byte{9}, Time: 3},
		{Kind: kindConfirm, Body: bytes.Repeat([]byte{7}, 32)},
	} {
		got, err := parsePlain(p.marshal())
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if got.Kind != p.Kind || got.Number != p.Number || got.ID != p.ID || got.Time != p.Time || !bytes.Equal(got.Body, p.Body) {
			t.Fatalf("round trip: got %+v, want %+v", got, p)
		}
	}
}

func TestPlainRefuses(t *testing.T) {
	for name, p := range map[string]plain{
		"empty text":    {Kind: kindText, Number: 1},
		"long text":     {Kind: kindText, Number: 1, Body: []byte(strings.Repeat("x", MaxText+1))},
		"not utf-8":     {Kind: kindText, Number: 1, Body: []byte{0xff, 0xfe}},
		"number 0":      {Kind: kindText, Body: []byte("a")},
		"receipt body":  {Kind: kindReceipt, Body: []byte("a")},
		"short confirm": {Kind: kindConfirm, Body: []byte("a")},
		"unknown kind":  {Kind: 9},
	} {
		if _, err := parsePlain(p.marshal()); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	for _, b := range [][]byte{nil, {kindText}, {kindText, 1, 2}} {
		if _, err := parsePlain(b); err == nil {
			t.Errorf("%x: parsed", b)
		}
	}
}

func FuzzPlain(f *testing.F) {
	f.Add((&plain{Kind: kindText, Number: 3, Time: 5, Body: []byte("hi")}).marshal())
	f.Add((&plain{Kind: kindReceipt, Number: 3}).marshal())
	f.Add((&plain{Kind: kindConfirm, Body: make([]byte, 32)}).marshal())
	f.Add([]byte{1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePlain(b)
		if err != nil {
			return
		}
		q, err := parsePlain(p.marshal())
		if err != nil {
			t.Fatalf("re-encoding does not parse: %v", err)
		}
		if q.Kind != p.Kind || q.Number != p.Number || q.ID != p.ID || q.Time != p.Time || !bytes.Equal(q.Body, p.Body) {
			t.Fatalf("re-encoding changed it: %+v, %+v", p, q)
		}
	})
}
