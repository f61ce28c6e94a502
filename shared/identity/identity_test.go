package identity

import (
	"errors"
	"testing"
	"time"

	"ddt/shared/wire"
)

func TestMarshalRoundTrip(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Unmarshal(a.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if a.SignKey() != b.SignKey() || a.AgreeKey() != b.AgreeKey() {
		t.Fatal("keys changed across Marshal/Unmarshal")
	}
	if _, err := Unmarshal(make([]byte, 10)); !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("short key material: %v", err)
	}
}

func TestLease(t *testing.T) {
	relay, _ := New()
	node, _ := New()
	now := time.Unix(1_800_000_000, 0)
	l := relay.IssueLease(node.SignKey(), node.AgreeKey(), [16]byte{1}, "z", now, time.Hour)
	if err := VerifyLease(&l, relay.SignKey(), now); err != nil {
		t.Fatalf("fresh lease: %v", err)
	}
	if err := VerifyLease(&l, relay.SignKey(), now.Add(time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired lease: %v", err)
	}
	other, _ := New()
	if err := VerifyLease(&l, other.SignKey(), now); !errors.Is(err, ErrBadLease) {
		t.Fatalf("other relay: %v", err)
	}
	tampered := []func(*wire.Lease){
		func(l *wire.Lease) { l.Zone = "y" },
		func(l *wire.Lease) { l.Expires += 3600 },
		func(l *wire.Lease) { l.Address[0] ^= 1 },
		func(l *wire.Lease) { l.Nonce[0] ^= 1; l.Address = [20]byte{} },
		func(l *wire.Lease) { l.Sig[10] ^= 1 },
	}
	for i, f := range tampered {
		c := l
		f(&c)
		if err := VerifyLease(&c, relay.SignKey(), now); !errors.Is(err, ErrBadLease) {
			t.Errorf("tampering %d accepted: %v", i, err)
		}
	}
}

func TestSign(t *testing.T) {
	a, _ := New()
	sig := a.Sign([]byte("hi"))
	if !Verify(a.SignKey(), []byte("hi"), sig) || Verify(a.SignKey(), []byte("ho"), sig) {
		t.Fatal("signature check wrong")
	}
}

func FuzzUnmarshal(f *testing.F) {
	a, _ := New()
	f.Add(a.Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		i, err := Unmarshal(b)
		if err != nil {
			return
		}
		j, err := Unmarshal(i.Marshal())
		if err != nil || i.SignKey() != j.SignKey() || i.AgreeKey() != j.AgreeKey() {
			t.Fatalf("identity does not round-trip: %v", err)
		}
	})
}

func TestAgree(t *testing.T) {
	a, _ := New()
	b, _ := New()
	ab, err := a.Agree(b.AgreeKey())
	if err != nil {
		t.Fatal(err)
	}
	ba, err := b.Agree(a.AgreeKey())
	if err != nil {
		t.Fatal(err)
	}
	if ab != ba || ab == ([32]byte{}) {
		t.Fatalf("the two sides computed %x and %x", ab, ba)
	}
	c, _ := New()
	if ac, _ := a.Agree(c.AgreeKey()); ac == ab {
		t.Fatal("another peer's key gives the same secret")
	}
	if _, err := a.Agree([32]byte{}); err == nil {
		t.Fatal("the all-zero key (low order) was agreed with")
	}
}
