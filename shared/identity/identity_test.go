package identity

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"ddt/shared/store"
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

// A record under the identity's key that is no identity makes Open fail
// with ErrBadIdentity and changes nothing; Replace keeps its bytes under
// key+".unreadable" and makes a new identity that every later Open
// returns.
func TestReplaceUnreadable(t *testing.T) {
	st := store.NewMemory()
	corrupt := []byte("not an identity: a truncated or foreign record")
	if err := st.Put("identity", corrupt); err != nil {
		t.Fatal(err)
	}
	if id, _, err := Open(st, "identity"); id != nil || !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("Open of a corrupt record: %v, %v; want ErrBadIdentity", id, err)
	}
	if b, err := st.Get("identity"); err != nil || !bytes.Equal(b, corrupt) {
		t.Fatalf("Open changed the corrupt record: %q, %v", b, err)
	}
	id, err := Replace(st, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := st.Get("identity" + UnreadableSuffix); err != nil || !bytes.Equal(b, corrupt) {
		t.Fatalf("the unreadable record: %q, %v; want it kept", b, err)
	}
	for range 2 {
		again, created, err := Open(st, "identity")
		if err != nil || created || again.SignKey() != id.SignKey() || again.AgreeKey() != id.AgreeKey() {
			t.Fatalf("Open after Replace: created %v, same keys %v, %v", created, err == nil && again.SignKey() == id.SignKey(), err)
		}
	}
	// With nothing stored, Replace makes an identity and keeps nothing.
	empty := store.NewMemory()
	if _, err := Replace(empty, "identity"); err != nil {
		t.Fatal(err)
	}
	if _, err := empty.Get("identity" + UnreadableSuffix); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Replace with nothing stored kept %v", err)
	}
}
