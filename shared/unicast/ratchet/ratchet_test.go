package ratchet

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"regexp"
	"testing"
)

// seeded is a deterministic source of "random" bytes, for test vectors.
func seeded(seed byte) *mathrand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return mathrand.NewChaCha8(s)
}

func fill[T ~[]byte](r *mathrand.ChaCha8, b T) T { r.Read(b); return b }

// exchange is what the key exchange gives both sides, from seeded bytes.
type exchange struct {
	session  [16]byte
	shares   [4][32]byte
	static   [32]byte
	from, to [32]byte
}

func newExchange(r *mathrand.ChaCha8) exchange {
	var x exchange
	fill(r, x.session[:])
	for i := range x.shares {
		fill(r, x.shares[i][:])
	}
	fill(r, x.static[:])
	fill(r, x.from[:])
	fill(r, x.to[:])
	return x
}

func (x exchange) keyring() Keyring { return Derive(x.session, x.shares, x.static, x.from, x.to) }

// pair is an initiator and a receiver of one session.
func pair(t testing.TB, r *mathrand.ChaCha8) (ini, rcv *State, ad []byte) {
	t.Helper()
	x := newExchange(r)
	var priv [32]byte
	fill(r, priv[:])
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		t.Fatal(err)
	}
	kr := x.keyring()
	if ini, err = NewInitiator(kr, priv); err != nil {
		t.Fatal(err)
	}
	if rcv, err = NewReceiver(kr, [32]byte(k.PublicKey().Bytes()), r); err != nil {
		t.Fatal(err)
	}
	ad = append(append(x.session[:], x.from[:]...), x.to[:]...) // the service's layout
	return ini, rcv, ad
}

func seal(t testing.TB, s *State, text string, ad []byte, r *mathrand.ChaCha8) []byte {
	t.Helper()
	m, err := s.Seal([]byte(text), ad, r)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func open(t testing.TB, s *State, m, ad []byte, want string) {
	t.Helper()
	got, err := s.Open(m, ad)
	if err != nil {
		t.Fatalf("opening %q: %v", want, err)
	}
	if string(got) != want {
		t.Fatalf("opened %q, sealed %q", got, want)
	}
}

func TestDeriveVectors(t *testing.T) {
	x := newExchange(seeded(1))
	kr := x.keyring()
	// Checked against an independent Python implementation of the
	// package doc (hmac, hashlib), as are the other vectors here.
	golden := [4]string{
		"59e8fe664be70c4d8c65840ac27cfde6c29c1b2a86895d1283e9a2409d54bb12",
		"c639d1ea9b5e063a27e4693236a1bbc8cdf75a9cb4edc8cc07d9a934696891bd",
		"3fba9debce7108b3fd980d380c37aba4ccec8607e8f99f3c9729fe2b55a93ab0",
		"7bf13ef70fbf8009c7a6d3334d0490f75adb7d7c619631e5daa968bf9b1679f6",
	}
	for i, k := range kr {
		if got := hex.EncodeToString(k[:]); got != golden[i] {
			t.Errorf("K%d = %s, want %s", i, got, golden[i])
		}
	}
	if got, want := hex.EncodeToString(func() []byte { c := kr.Confirm(x.session); return c[:] }()), "6753c713b5db9a4b5a2cbf8f18c6229a5589cdfa7a062290820fa24d896aac16"; got != want {
		t.Errorf("Confirm = %s, want %s", got, want)
	}
	// Every input counts: the roles, each share, the static agreement.
	variants := []exchange{x, x, x, x}
	variants[0].from, variants[0].to = x.to, x.from
	variants[1].shares[3][31] ^= 1
	variants[2].static[0] ^= 1
	variants[3].session[0] ^= 1
	seen := map[Keyring]bool{kr: true}
	for i, v := range variants {
		k := v.keyring()
		if seen[k] {
			t.Fatalf("variant %d derives a keyring already seen", i)
		}
		seen[k] = true
	}
	if kr.Confirm(x.session) == kr.Confirm(variants[3].session) {
		t.Fatal("Confirm ignores the session")
	}
}

// TestSealVector: a fixed exchange and randomness seal a fixed first
// message, and that message (from its hex) opens on the other side. The
// vector was computed independently too (Python's cryptography: X25519,
// ChaCha20-Poly1305; hmac for HKDF and the chain step).
func TestSealVector(t *testing.T) {
	r := seeded(2)
	ini, rcv, ad := pair(t, r)
	m := seal(t, rcv, "confirm", ad, r)
	const golden = "b0fb9285991c154fb5ba082590e60cc3d4b235d1526e252c2a7abe200de9bea10c3e5a67e8acd3ffed22154d7cd3d9c742a1a876511f90f31b94d1a35e743d77b07f6dcb1d4657d79de7c3e95a57ff0a9f3bc1df22c237e48f1f06"
	if got := hex.EncodeToString(m); got != golden {
		t.Errorf("first message\n got %s\nwant %s", got, golden)
	}
	g, err := hex.DecodeString(golden)
	if err != nil {
		t.Fatal(err)
	}
	open(t, ini, g, ad, "confirm")
}

func TestSafetyNumber(t *testing.T) {
	r := seeded(3)
	var a, b [32]byte
	fill(r, a[:])
	fill(r, b[:])
	n := SafetyNumber(a, b)
	if n != SafetyNumber(b, a) {
		t.Fatal("the two sides see different numbers")
	}
	if !regexp.MustCompile(`^\d{5}( \d{5}){11}$`).MatchString(n) {
		t.Fatalf("safety number %q is not 12 groups of five digits", n)
	}
	const golden = "77318 01262 24286 56603 45687 59629 95103 37138 41859 84383 58089 84251"
	if n != golden {
		t.Errorf("SafetyNumber = %q, want %q", n, golden)
	}
	c := b
	c[0] ^= 1
	if SafetyNumber(a, c) == n {
		t.Fatal("another key gives the same number")
	}
	// Each half is one key's: the key in common shows in both numbers.
	if x, y := fingerprint(a), SafetyNumber(a, c); !bytes.Contains([]byte(stripSpaces(y)), []byte(x)) {
		t.Fatalf("%s is not one half of %s", x, y)
	}
}

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }

func TestInitiatorSealsAfterOpening(t *testing.T) {
	r := seeded(4)
	ini, rcv, ad := pair(t, r)
	if ini.CanSeal() || !rcv.CanSeal() {
		t.Fatalf("CanSeal: initiator %v, receiver %v", ini.CanSeal(), rcv.CanSeal())
	}
	if _, err := ini.Seal([]byte("early"), ad, r); !errors.Is(err, ErrNoChain) {
		t.Fatalf("the initiator seals first: %v", err)
	}
	open(t, ini, seal(t, rcv, "confirm", ad, r), ad, "confirm")
	if !ini.CanSeal() {
		t.Fatal("the initiator cannot seal after opening")
	}
	open(t, rcv, seal(t, ini, "hello", ad, r), ad, "hello")
}

// TestConversation: alternating and one-sided runs; every reply moves
// the sender's ratchet key (a new X25519 step), runs on one side do not.
func TestConversation(t *testing.T) {
	r := seeded(5)
	ini, rcv, ad := pair(t, r)
	sides := [2]*State{rcv, ini}
	runs := []int{1, 1, 1, 5, 1, 30, 2, 1, 1, 1, 100, 3, 1, 1, 7}
	turn, count := 0, 0
	for _, run := range runs {
		from, to := sides[turn%2], sides[(turn+1)%2]
		before := from.c.pub
		for i := range run {
			text := fmt.Sprintf("message %d, run of %d", count, run)
			m := seal(t, from, text, ad, r)
			if i == 0 && turn > 0 && from.c.pub == before {
				t.Fatalf("turn %d: a reply without a new ratchet key", turn)
			}
			if i > 0 && from.c.pub != before {
				t.Fatalf("turn %d: a new ratchet key within a run", turn)
			}
			before = from.c.pub
			open(t, to, m, ad, text)
			count++
		}
		turn++
	}
	if len(ini.skipped)+len(rcv.skipped) != 0 {
		t.Fatal("skipped keys kept in an in-order conversation")
	}
}

func TestOutOfOrder(t *testing.T) {
	r := seeded(6)
	ini, rcv, ad := pair(t, r)
	open(t, ini, seal(t, rcv, "confirm", ad, r), ad, "confirm")
	// Chain 1 of the initiator: 0..4, then a reply, then chain 2: 5..9.
	var ms [][]byte
	for i := range 5 {
		ms = append(ms, seal(t, ini, fmt.Sprint(i), ad, r))
	}
	open(t, rcv, ms[1], ad, "1")
	open(t, ini, seal(t, rcv, "reply", ad, r), ad, "reply")
	for i := 5; i < 10; i++ {
		ms = append(ms, seal(t, ini, fmt.Sprint(i), ad, r))
	}
	for _, i := range []int{9, 7, 0, 6, 4, 8, 2, 5, 3} {
		open(t, rcv, ms[i], ad, fmt.Sprint(i))
	}
	for i := range ms {
		if _, err := rcv.Open(ms[i], ad); !errors.Is(err, ErrOld) {
			t.Fatalf("replay of %d: %v", i, err)
		}
	}
	if len(rcv.skipped) != 0 {
		t.Fatalf("%d skipped keys kept after every message arrived", len(rcv.skipped))
	}
}

// opensAfter proves a failed Open left s as it was: its bytes are the
// same and the genuine message m still opens.
func opensAfter(t *testing.T, s *State, before []byte, m, ad []byte, want string) {
	t.Helper()
	if !bytes.Equal(s.Marshal(), before) {
		t.Fatal("a refused message changed the state")
	}
	open(t, s, m, ad, want)
}

func TestJump(t *testing.T) {
	r := seeded(7)
	ini, rcv, ad := pair(t, r)
	open(t, ini, seal(t, rcv, "confirm", ad, r), ad, "confirm")
	first := seal(t, ini, "first", ad, r)
	var far []byte
	for i := 1; i <= MaxJump+1; i++ {
		m := seal(t, ini, "far", ad, r)
		if i == MaxJump+1 {
			far = m
		}
	}
	before := rcv.Marshal()
	if _, err := rcv.Open(far, ad); !errors.Is(err, ErrJump) {
		t.Fatalf("a message %d ahead: %v", MaxJump+1, err)
	}
	opensAfter(t, rcv, before, first, ad, "first")
	// Now it is MaxJump ahead of the chain: within bounds.
	open(t, rcv, far, ad, "far")
}

func TestSkippedBound(t *testing.T) {
	r := seeded(8)
	ini, rcv, ad := pair(t, r)
	open(t, ini, seal(t, rcv, "confirm", ad, r), ad, "confirm")
	const n = 2500
	ms := make([][]byte, n+1)
	for i := range ms {
		ms[i] = seal(t, ini, fmt.Sprint(i), ad, r)
	}
	open(t, rcv, ms[n], ad, fmt.Sprint(n))
	if len(rcv.skipped) != MaxSkipped {
		t.Fatalf("%d skipped keys kept, want %d", len(rcv.skipped), MaxSkipped)
	}
	for _, i := range []int{0, 1, n - MaxSkipped - 1} {
		if _, err := rcv.Open(ms[i], ad); !errors.Is(err, ErrOld) {
			t.Fatalf("message %d, its key dropped: %v", i, err)
		}
	}
	for _, i := range []int{n - MaxSkipped, n - 1, 1000} {
		open(t, rcv, ms[i], ad, fmt.Sprint(i))
	}
	// More skipped keys in a later chain push out the oldest.
	open(t, ini, seal(t, rcv, "reply", ad, r), ad, "reply")
	var last []byte
	for i := range 11 {
		last = seal(t, ini, fmt.Sprint("late ", i), ad, r)
	}
	open(t, rcv, last, ad, "late 10")
	if len(rcv.skipped) != MaxSkipped {
		t.Fatalf("%d skipped keys kept, want %d", len(rcv.skipped), MaxSkipped)
	}
	if _, err := rcv.Open(ms[n-MaxSkipped+1], ad); !errors.Is(err, ErrOld) {
		t.Fatalf("the oldest skipped key is kept past the bound: %v", err)
	}
}

func TestTamper(t *testing.T) {
	r := seeded(9)
	ini, rcv, ad := pair(t, r)
	open(t, ini, seal(t, rcv, "confirm", ad, r), ad, "confirm")
	m := seal(t, ini, "the genuine one", ad, r)
	before := rcv.Marshal()
	for _, at := range []int{0, 11, 12, 12 + 31, 12 + 39, nonceLen + sealedHdr - 1, nonceLen + sealedHdr, len(m) - 1} {
		bad := bytes.Clone(m)
		bad[at] ^= 0x80
		if _, err := rcv.Open(bad, ad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("byte %d changed: %v", at, err)
		}
	}
	badAD := bytes.Clone(ad)
	badAD[20] ^= 1
	for i, c := range []struct{ m, ad []byte }{{m, badAD}, {m, nil}, {m[:len(m)-1], ad}, {m[:Overhead-1], ad}, {append(bytes.Clone(m), 0), ad}} {
		if _, err := rcv.Open(c.m, c.ad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("case %d: %v", i, err)
		}
	}
	if !bytes.Equal(rcv.Marshal(), before) {
		t.Fatal("a refused message changed the state")
	}
	// Sealed by the other direction's keys: the receiver's own message.
	own := seal(t, rcv, "mine", ad, r)
	before = rcv.Marshal()
	if _, err := rcv.Open(own, ad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a reflected message: %v", err)
	}
	opensAfter(t, rcv, before, m, ad, "the genuine one")

	// A skipped key survives a tampered message that names it.
	a := seal(t, ini, "a", ad, r)
	b := seal(t, ini, "b", ad, r)
	open(t, rcv, b, ad, "b")
	bad := bytes.Clone(a)
	bad[len(bad)-1] ^= 1
	before = rcv.Marshal()
	if _, err := rcv.Open(bad, ad); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a tampered skipped message: %v", err)
	}
	opensAfter(t, rcv, before, a, ad, "a")
}

// TestMarshal: states saved mid-conversation, with skipped keys and a
// pending ratchet step, go on as if never saved.
func TestMarshal(t *testing.T) {
	r := seeded(10)
	ini, rcv, ad := pair(t, r)
	for _, s := range []*State{ini, rcv} {
		restored, err := Unmarshal(s.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(restored.Marshal(), s.Marshal()) {
			t.Fatal("a fresh state does not survive Marshal")
		}
	}
	open(t, ini, seal(t, rcv, "confirm", ad, r), ad, "confirm")
	m0 := seal(t, ini, "0", ad, r)
	m1 := seal(t, ini, "1", ad, r)
	m2 := seal(t, ini, "2", ad, r)
	open(t, rcv, m2, ad, "2") // 0 and 1 skipped; rcv has a step to make
	restore := func(s *State) *State {
		t.Helper()
		b := s.Marshal()
		if len(b) > MaxState {
			t.Fatalf("%d bytes, above MaxState", len(b))
		}
		x, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	ini, rcv = restore(ini), restore(rcv)
	open(t, rcv, m0, ad, "0")
	reply := seal(t, rcv, "reply", ad, r)
	ini, rcv = restore(ini), restore(rcv)
	open(t, ini, reply, ad, "reply")
	open(t, rcv, m1, ad, "1")
	open(t, rcv, seal(t, ini, "after", ad, r), ad, "after")
	if _, err := rcv.Open(m2, ad); !errors.Is(err, ErrOld) {
		t.Fatalf("a replay after a restore: %v", err)
	}
}

func TestUnmarshalRefuses(t *testing.T) {
	r := seeded(11)
	ini, rcv, ad := pair(t, r)
	open(t, ini, seal(t, rcv, "confirm", ad, r), ad, "confirm")
	seal(t, ini, "skipped", ad, r)
	open(t, rcv, seal(t, ini, "next", ad, r), ad, "next")
	good := rcv.Marshal()
	if _, err := Unmarshal(good); err != nil {
		t.Fatal(err)
	}
	bad := [][]byte{nil, good[:10], good[:len(good)-1], append(bytes.Clone(good), 0)}
	v := bytes.Clone(good)
	v[0] = 2
	bad = append(bad, v)
	f := bytes.Clone(good)
	f[1] |= 0x80
	bad = append(bad, f)
	dup := append(bytes.Clone(good), good[len(good)-skippedLen:]...)
	dup[fixedLen-2+len(rcv.c.previous)*32+1]++ // the count, for two copies of one key
	bad = append(bad, dup)
	for i, b := range bad {
		if _, err := Unmarshal(b); !errors.Is(err, ErrState) {
			t.Fatalf("case %d: %v", i, err)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	r := seeded(12)
	ini, rcv, ad := pair(f, r)
	f.Add(ini.Marshal())
	f.Add(rcv.Marshal())
	open(f, ini, seal(f, rcv, "confirm", ad, r), ad, "confirm")
	seal(f, ini, "skipped", ad, r)
	open(f, rcv, seal(f, ini, "next", ad, r), ad, "next")
	f.Add(rcv.Marshal())
	f.Add([]byte{stateVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("an error that is not ErrState: %v", err)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), b) {
			t.Fatal("a state that unmarshals does not marshal back the same")
		}
		// It must be usable without a crash, whatever it holds.
		s.Open(b, nil)
		if s.CanSeal() {
			s.Seal(b, nil, seeded(0))
		}
	})
}

func FuzzOpen(f *testing.F) {
	r := seeded(13)
	ini, rcv, ad := pair(f, r)
	open(f, ini, seal(f, rcv, "confirm", ad, r), ad, "confirm")
	state := rcv.Marshal()
	for _, text := range []string{"", "hello", string(make([]byte, 300))} {
		f.Add(seal(f, ini, text, ad, r))
	}
	f.Add(make([]byte, Overhead))
	f.Fuzz(func(t *testing.T, m []byte) {
		s, err := Unmarshal(state)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(m, ad); err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrOld) && !errors.Is(err, ErrJump) {
				t.Fatalf("an unexpected error: %v", err)
			}
			if !bytes.Equal(s.Marshal(), state) {
				t.Fatal("a refused message changed the state")
			}
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	r := seeded(14)
	ini, rcv, ad := pair(b, r)
	open(b, ini, seal(b, rcv, "confirm", ad, r), ad, "confirm")
	msg := make([]byte, 1024)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := ini.Seal(msg, ad, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	r := seeded(15)
	ini, rcv, ad := pair(b, r)
	open(b, ini, seal(b, rcv, "confirm", ad, r), ad, "confirm")
	msg := make([]byte, 1024)
	ms := make([][]byte, b.N)
	for i := range ms {
		ms[i], _ = ini.Seal(msg, ad, r)
	}
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := range b.N {
		if _, err := rcv.Open(ms[i], ad); err != nil {
			b.Fatal(err)
		}
	}
}
