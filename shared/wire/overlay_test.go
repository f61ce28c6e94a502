package wire

import (
	"errors"
	"testing"

	"ddt/shared/id"
)

func init() {
	moreSamples = append(moreSamples, func() []Message {
		l := sampleLease(4)
		inner, _ := Marshal(&Ping{ID: 9})
		return []Message{
			&RPC{Nonce: 1 << 50, Reply: true, Frame: inner},
			&Routed{Dest: l.Address, TTL: 7, Nonce: 99, Time: 1_800_000_000_000, Origin: l, Sig: [64]byte{1, 2},
				Route: []id.Address{{1}, {2}}, Path: []id.Address{{3}}, Frame: inner},
		}
	})
}

func TestRoutedLimits(t *testing.T) {
	l := sampleLease(5)
	b, err := Marshal(&Routed{TTL: MaxTTL + 1, Origin: l})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("ttl above the limit: %v", err)
	}
	if _, err := Marshal(&Routed{Origin: l, Frame: make([]byte, MaxInner+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized inner frame: %v", err)
	}
	if _, err := Marshal(&Routed{Origin: l, Path: make([]id.Address, MaxTTL+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("path longer than the hop limit: %v", err)
	}
	a := RoutedSignedBytes(l.Address, 1, 5, l.Address, []byte("x"))
	if string(a) == string(RoutedSignedBytes(l.Address, 2, 5, l.Address, []byte("x"))) {
		t.Error("the nonce is not signed")
	}
	if string(a) == string(RoutedSignedBytes(l.Address, 1, 6, l.Address, []byte("x"))) {
		t.Error("the time is not signed")
	}
}
