package ratchet

import (
	"crypto/rand"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// scripted is a rand source that hands out b first (nonce bytes, then a
// chosen ratchet private key), then crypto/rand.
type scripted struct{ b []byte }

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return rand.Read(p)
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func randomPair(t *testing.T) (kr Keyring, ini, rcv *State) {
	for i := range kr {
		rand.Read(kr[i][:])
	}
	var priv [32]byte
	rand.Read(priv[:])
	ini, err := NewInitiator(kr, priv)
	if err != nil {
		t.Fatal(err)
	}
	if rcv, err = NewReceiver(kr, ini.c.pub, rand.Reader); err != nil {
		t.Fatal(err)
	}
	return kr, ini, rcv
}

// Whoever holds only the initiator's header key cannot make the receiver
// open a message on the chain of the initiator's announced key, which has
// no secret yet (it would be the all-zero chain).
func TestNoMessageOnTheAnnouncedKey(t *testing.T) {
	kr, ini, rcv := randomPair(t)
	var hdr [headerLen]byte
	copy(hdr[:], ini.c.pub[:])
	out := make([]byte, nonceLen)
	ha, _ := chacha20poly1305.New(kr[1][:])
	out = ha.Seal(out, out[:nonceLen], hdr[:], nil)
	_, mk := kdfCK([32]byte{})
	key, nonce := messageKey(mk)
	ma, _ := chacha20poly1305.New(key[:])
	out = ma.Seal(out, nonce[:], []byte("forged"), additional(nil, hdr[:]))
	if pt, err := rcv.Open(out, nil); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a message on the zero chain: %q, %v", pt, err)
	}
}

// A friend that comes back to a ratchet key it stepped past (after
// pushing it out of the remembered previous keys) is refused, and the
// state still saves and loads: keys are never derived twice.
func TestReusedRatchetKey(t *testing.T) {
	_, ini, rcv := randomPair(t)
	m, _ := rcv.Seal([]byte("hi"), nil, rand.Reader)
	if _, err := ini.Open(m, nil); err != nil {
		t.Fatal(err)
	}
	sealWith := func(priv *[32]byte) []byte {
		r := &scripted{}
		if priv != nil {
			ini.c.step = true // the friend steps when it likes
			r.b = append(make([]byte, nonceLen), priv[:]...)
		}
		out, err := ini.Seal([]byte("x"), nil, r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var a [32]byte
	rand.Read(a[:])
	var last []byte
	for i := 0; i < 11; i++ { // chain a: only its last message arrives
		if i == 0 {
			last = sealWith(&a)
		} else {
			last = sealWith(nil)
		}
	}
	if _, err := rcv.Open(last, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 9; i++ { // new chains, until a leaves the remembered keys
		var b [32]byte
		rand.Read(b[:])
		if _, err := rcv.Open(sealWith(&b), nil); err != nil {
			t.Fatal(i, err)
		}
	}
	// Chain a again, up to a number past the keys still held for it.
	again := sealWith(&a)
	if _, err := rcv.Open(again, nil); err == nil {
		t.Fatal("the first message of chain a again opened with a kept key")
	}
	for i := 1; i < 12; i++ {
		again = sealWith(nil)
	}
	if _, err := rcv.Open(again, nil); !errors.Is(err, ErrOld) {
		t.Fatalf("chain a again: %v", err)
	}
	if _, err := Unmarshal(rcv.Marshal()); err != nil {
		t.Fatalf("the state after the refusal does not load: %v", err)
	}
}
