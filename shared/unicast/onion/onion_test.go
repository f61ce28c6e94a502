package onion

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"testing"
	"testing/cryptotest"
	"time"

	"ddt/shared/id"
	"ddt/shared/wire"
)

// seeded is a deterministic source of "random" bytes, for test vectors.
func seeded(seed byte) *mathrand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return mathrand.NewChaCha8(s)
}

// node is one node of a test chain: its key and address.
type node struct {
	key  *PrivateKey
	addr id.Address
}

func newNodes(t testing.TB, r *mathrand.ChaCha8, n int) []node {
	t.Helper()
	nodes := make([]node, n)
	for i := range nodes {
		k, err := NewPrivateKey(r)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i].key = k
		r.Read(nodes[i].addr[:])
	}
	return nodes
}

// classic is the key a build without ML-KEM would publish for k: its
// X25519 part alone.
func classic(k *PrivateKey) []byte {
	pub := k.Public()
	return append([]byte{kindClassic}, pub[1:33]...)
}

func hopsOf(nodes []node, classicAt ...int) []Hop {
	hops := make([]Hop, len(nodes))
	for i, n := range nodes {
		hops[i] = Hop{Address: n.addr, Key: n.key.Public()}
		for _, c := range classicAt {
			if c == i {
				hops[i].Key = classic(n.key)
			}
		}
	}
	return hops
}

var t0 = time.UnixMilli(1_760_000_000_000)

// walk peels o through nodes (3 hops then the receiver), checking each
// hop routes to the next and has the time the tests build at (t0, less
// its jitter), and returns every onion on the way and the
// receiver's payload.
func walk(t *testing.T, nodes []node, o *wire.Onion, now time.Time) ([]*wire.Onion, []byte) {
	t.Helper()
	seen := []*wire.Onion{o}
	for i, n := range nodes {
		p, err := Peel(n.key, o, now)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if i == len(nodes)-1 {
			if !p.Final || p.Forward != nil {
				t.Fatalf("the receiver's layer is not final: %+v", p)
			}
			return seen, p.Payload
		}
		if p.Final || p.Payload != nil {
			t.Fatalf("hop %d reads a payload", i)
		}
		if p.Next != nodes[i+1].addr {
			t.Fatalf("hop %d routes to %v, not %v", i, p.Next, nodes[i+1].addr)
		}
		if p.Time.After(t0) || p.Time.Before(t0.Add(-MaxJitter)) {
			t.Fatalf("hop %d: layer time %v, built at %v (set back at most %v)", i, p.Time, t0, MaxJitter)
		}
		o = p.Forward
		seen = append(seen, o)
	}
	panic("unreachable")
}

func TestChain(t *testing.T) {
	r := seeded(1)
	nodes := newNodes(t, r, Hops+1)
	payload := bytes.Repeat([]byte("the receiver's share. "), 12)[:MaxPayload]
	o, err := Build(hopsOf(nodes[:Hops]), hopsOf(nodes[Hops:])[0], payload, t0, r)
	if err != nil {
		t.Fatal(err)
	}
	seen, got := walk(t, nodes, o, t0.Add(Window-MaxJitter))
	if !bytes.Equal(got, payload) {
		t.Fatalf("payload %q, sent %q", got, payload)
	}
	for i, o := range seen {
		b, err := wire.Marshal(o)
		if err != nil || len(b) > wire.OnionSize+8 {
			t.Fatalf("onion %d: %d bytes on the wire (%v)", i, len(b), err)
		}
		// No hop sees the payload, whole or in part.
		if i < Hops && bytes.Contains(o.Data[:], payload[:32]) {
			t.Fatalf("the onion at hop %d shows the payload", i)
		}
	}
	// Unlinkable: what a hop forwards shares no 32-byte window with
	// what it got, so an observer of both links cannot match them.
	for i := 1; i < len(seen); i++ {
		windows := make(map[[32]byte]bool)
		for j := 0; j+32 <= wire.OnionSize; j++ {
			windows[[32]byte(seen[i-1].Data[j:j+32])] = true
		}
		for j := 0; j+32 <= wire.OnionSize; j++ {
			if windows[[32]byte(seen[i].Data[j:j+32])] {
				t.Fatalf("hop %d forwards bytes %d… of what it got", i-1, j)
			}
		}
	}
}

func TestEmptyPayload(t *testing.T) {
	r := seeded(2)
	nodes := newNodes(t, r, Hops+1)
	o, err := Build(hopsOf(nodes[:Hops]), hopsOf(nodes[Hops:])[0], nil, t0, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, got := walk(t, nodes, o, t0); len(got) != 0 {
		t.Fatalf("payload %q, sent none", got)
	}
}

// TestNotForMe: no other key opens a layer, neither a stranger's nor
// another hop's of the same chain (a hop cannot read the receiver's slot).
func TestNotForMe(t *testing.T) {
	r := seeded(3)
	nodes := newNodes(t, r, Hops+2)
	stranger := nodes[Hops+1]
	nodes = nodes[:Hops+1]
	o, err := Build(hopsOf(nodes[:Hops]), hopsOf(nodes[Hops:])[0], []byte("secret"), t0, r)
	if err != nil {
		t.Fatal(err)
	}
	seen, _ := walk(t, nodes, o, t0)
	for i, o := range seen {
		for j, n := range append(nodes, stranger) {
			if j == i {
				continue
			}
			if _, err := Peel(n.key, o, t0); !errors.Is(err, ErrNotForMe) {
				t.Fatalf("node %d peels the layer of %d: %v", j, i, err)
			}
		}
	}
}

// TestTamper: a byte changed anywhere in the first slot makes the hop
// refuse it; one changed in a later slot passes this hop (it cannot be
// checked here: the sender cannot know the fillers) and makes the hop
// whose slot it lands in refuse it.
func TestTamper(t *testing.T) {
	r := seeded(4)
	nodes := newNodes(t, r, Hops+1)
	o, err := Build(hopsOf(nodes[:Hops]), hopsOf(nodes[Hops:])[0], []byte("tamper"), t0, r)
	if err != nil {
		t.Fatal(err)
	}
	step := 1
	if testing.Short() {
		step = 13
	}
	for i := 0; i < wire.OnionSlot; i += step {
		bad := *o
		bad.Data[i] ^= 0x40
		if _, err := Peel(nodes[0].key, &bad, t0); !errors.Is(err, ErrNotForMe) {
			t.Fatalf("byte %d of slot 1 changed: %v", i, err)
		}
	}
	for slot := 1; slot <= Hops; slot++ {
		for _, at := range []int{0, 2, 700, wire.OnionSlot - 1} {
			bad := *o
			bad.Data[slot*wire.OnionSlot+at] ^= 1
			cur := &bad
			for hop := 0; hop <= Hops; hop++ {
				p, err := Peel(nodes[hop].key, cur, t0)
				if hop < slot {
					if err != nil {
						t.Fatalf("slot %d byte %d changed: hop %d refuses it (%v), not hop %d", slot+1, at, hop, err, slot)
					}
					cur = p.Forward
					continue
				}
				if !errors.Is(err, ErrNotForMe) {
					t.Fatalf("slot %d byte %d changed: hop %d takes it (%v)", slot+1, at, hop, err)
				}
				break
			}
		}
	}
}

func TestStale(t *testing.T) {
	r := seeded(5)
	nodes := newNodes(t, r, Hops+1)
	o, err := Build(hopsOf(nodes[:Hops]), hopsOf(nodes[Hops:])[0], []byte("late"), t0, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{Window + time.Second, -MaxAhead - MaxJitter - time.Second, -Window, 24 * time.Hour} {
		if _, err := Peel(nodes[0].key, o, t0.Add(d)); !errors.Is(err, ErrStale) {
			t.Fatalf("peeled %v off: %v", d, err)
		}
	}
	for _, d := range []time.Duration{Window - MaxJitter, -MaxAhead + MaxJitter, 0} {
		if _, err := Peel(nodes[0].key, o, t0.Add(d)); err != nil {
			t.Fatalf("peeled %v off: %v", d, err)
		}
	}
}

func TestMixed(t *testing.T) {
	r := seeded(6)
	nodes := newNodes(t, r, Hops+1)
	for _, classicAt := range [][]int{{0}, {1, 3}, {0, 1, 2, 3}, {3}} {
		hops := hopsOf(nodes, classicAt...)
		o, err := Build(hops[:Hops], hops[Hops], []byte("mixed"), t0, r)
		if err != nil {
			t.Fatal(err)
		}
		seen, got := walk(t, nodes, o, t0)
		if string(got) != "mixed" {
			t.Fatalf("classic at %v: payload %q", classicAt, got)
		}
		for i, o := range seen {
			hybrid, err := Hybrid(hops[i].Key)
			if err != nil {
				t.Fatal(err)
			}
			want := uint16(kemClassic)
			if hybrid {
				want = kemHybrid
			}
			if kem := binary.BigEndian.Uint16(o.Data[:]); kem != want {
				t.Fatalf("classic at %v: hop %d's slot is sealed with KEM %#x, not %#x", classicAt, i, kem, want)
			}
		}
	}
}

func TestKeys(t *testing.T) {
	r := seeded(7)
	k, err := NewPrivateKey(r)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := UnmarshalPrivateKey(k.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public(), k2.Public()) || len(k.Public()) > wire.MaxOnionKey {
		t.Fatalf("the key does not survive Marshal, or is too long (%d bytes)", len(k.Public()))
	}
	if h, err := Hybrid(k.Public()); !h || err != nil {
		t.Fatalf("Hybrid(own key) = %v, %v", h, err)
	}
	if h, err := Hybrid(classic(k)); h || err != nil {
		t.Fatalf("Hybrid(classic key) = %v, %v", h, err)
	}
	if _, err := UnmarshalPrivateKey(k.Marshal()[1:]); err == nil {
		t.Fatal("a short seed makes a key")
	}
	pub := k.Public()
	bad := [][]byte{nil, {}, {kindHybrid}, pub[:len(pub)-1], append(pub, 0), {2}, append([]byte{2}, pub[1:]...),
		append([]byte{kindClassic}, pub[1:]...), classic(k)[:32], append([]byte{kindHybrid}, bytes.Repeat([]byte{0xff}, hybridKeyLen-1)...)}
	for i, b := range bad {
		if _, err := Hybrid(b); !errors.Is(err, ErrKey) {
			t.Fatalf("malformed key %d: %v", i, err)
		}
	}
	nodes := newNodes(t, r, Hops+1)
	hops := hopsOf(nodes)
	if _, err := Build(hops[:Hops], hops[Hops], make([]byte, MaxPayload+1), t0, r); !errors.Is(err, ErrPayload) {
		t.Fatalf("an oversized payload: %v", err)
	}
	if _, err := Build(hops[:2], hops[Hops], nil, t0, r); err == nil {
		t.Fatal("a chain of two hops builds")
	}
	hops[1].Key = bad[3]
	if _, err := Build(hops[:Hops], hops[Hops], nil, t0, r); !errors.Is(err, ErrKey) {
		t.Fatalf("a malformed hop key: %v", err)
	}
}

func TestReplays(t *testing.T) {
	var rp Replays
	tag := func(i int) (t [32]byte) { t[0], t[1] = byte(i), byte(i>>8); return }
	if !rp.Admit(tag(1), t0, t0) {
		t.Fatal("a new layer is refused")
	}
	if rp.Admit(tag(1), t0, t0.Add(time.Second)) {
		t.Fatal("a replay is admitted")
	}
	if rp.Admit(tag(2), t0.Add(-Window-time.Millisecond), t0) {
		t.Fatal("a layer older than the window is admitted")
	}
	// Past the window the tag is forgotten (and Peel refuses it as stale).
	if !rp.Admit(tag(3), t0.Add(Window+time.Second), t0.Add(Window+time.Second)) || rp.Len() != 1 {
		t.Fatalf("remembers %d tags past the window, want 1", rp.Len())
	}

	// A layer from ahead of the clock is remembered as of now.
	ahead := Replays{Capacity: 1}
	if !ahead.Admit(tag(1), t0.Add(MaxAhead), t0) || !ahead.Admit(tag(2), t0.Add(time.Millisecond), t0.Add(time.Millisecond)) {
		t.Fatal("a layer from ahead of the clock holds the floor above an honest one")
	}

	small := Replays{Capacity: 4}
	now := t0.Add(time.Second) // the layers' times are behind it
	for i := range 10 {
		if !small.Admit(tag(i), t0.Add(time.Duration(i)*time.Millisecond), now) {
			t.Fatalf("layer %d refused", i)
		}
		if small.Len() > 4 {
			t.Fatalf("remembers %d tags, capacity 4", small.Len())
		}
	}
	// A replay of a forgotten layer is still refused: it is not newer
	// than the oldest forgotten.
	for i := range 10 {
		if small.Admit(tag(i), t0.Add(time.Duration(i)*time.Millisecond), now) {
			t.Fatalf("replay of layer %d admitted", i)
		}
	}
	if !small.Admit(tag(100), now, now) {
		t.Fatal("a newer layer is refused")
	}
	if small.Admit(tag(101), t0, now) {
		t.Fatal("a layer older than the full filter's oldest is admitted")
	}
}

// TestVectors: fixed keys, randomness and time give a fixed onion (its
// first bytes here) that peels to the fixed payload. A change of layout
// or suite changes them; a change of Go's internal use of randomness may
// too (cryptotest.SetGlobalRandom's caveat), then only the prefix moves.
func TestVectors(t *testing.T) {
	cryptotest.SetGlobalRandom(t, 22)
	r := seeded(22)
	nodes := newNodes(t, r, Hops+1)
	hops := hopsOf(nodes, 2)
	o, err := Build(hops[:Hops], hops[Hops], []byte("ddt onion test vector"), t0, r)
	if err != nil {
		t.Fatal(err)
	}
	const golden = "647a377da7b348fe509d1960ef946cc775e07661553de8151503763f094e10cb929eac4f3e785a714aa21c158fa7e418"
	if got := hex.EncodeToString(o.Data[:48]); got != golden {
		t.Errorf("onion prefix\n got %s\nwant %s", got, golden)
	}
	const goldenMid = "0020" // hop 2 (classic) slot's kem id, after peeling twice
	seen, payload := walk(t, nodes, o, t0)
	if got := hex.EncodeToString(seen[2].Data[:2]); got != goldenMid {
		t.Errorf("hop 2's slot starts %s, want %s", got, goldenMid)
	}
	if got := hex.EncodeToString(payload); got != "646474206f6e696f6e207465737420766563746f72" {
		t.Errorf("payload %s", got)
	}
}

func FuzzPeel(f *testing.F) {
	r := seeded(9)
	nodes := newNodes(f, r, Hops+1)
	hops := hopsOf(nodes, 1)
	o, err := Build(hops[:Hops], hops[Hops], []byte("fuzz"), t0, r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(o.Data[:])
	p, err := Peel(nodes[0].key, o, t0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p.Forward.Data[:]) // a classic slot, for hop 1
	f.Add([]byte{0x64, 0x7a})
	f.Add([]byte{0x00, 0x20})
	f.Add([]byte{})
	keys := []*PrivateKey{nodes[0].key, nodes[1].key}
	f.Fuzz(func(t *testing.T, data []byte) {
		var in wire.Onion
		copy(in.Data[:], data)
		for _, k := range keys {
			p, err := Peel(k, &in, t0)
			switch {
			case err == nil:
				if p.Final == (p.Forward != nil) || len(p.Payload) > MaxPayload {
					t.Fatalf("an inconsistent layer: %+v", p)
				}
			case !errors.Is(err, ErrNotForMe) && !errors.Is(err, ErrStale) && !errors.Is(err, ErrMalformed):
				t.Fatalf("an unexpected error: %v", err)
			}
		}
	})
}

func BenchmarkBuild(b *testing.B) {
	r := seeded(10)
	nodes := newNodes(b, r, Hops+1)
	hops := hopsOf(nodes)
	payload := make([]byte, 200)
	for b.Loop() {
		if _, err := Build(hops[:Hops], hops[Hops], payload, t0, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPeel is one hop's work: open a hybrid slot and shift the rest.
func BenchmarkPeel(b *testing.B) {
	r := seeded(11)
	nodes := newNodes(b, r, Hops+1)
	hops := hopsOf(nodes)
	o, err := Build(hops[:Hops], hops[Hops], make([]byte, 200), t0, r)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Peel(nodes[0].key, o, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleBuild() {
	r := seeded(12)
	var keys [Hops + 1]*PrivateKey
	var chain [Hops + 1]Hop
	for i := range chain {
		keys[i], _ = NewPrivateKey(r)
		chain[i] = Hop{Address: id.Address{byte(i + 1)}, Key: keys[i].Public()}
	}
	o, _ := Build(chain[:Hops], chain[Hops], []byte("hello"), t0, r)
	for i := 0; ; i++ {
		p, err := Peel(keys[i], o, t0)
		if err != nil {
			fmt.Println(err)
			return
		}
		if p.Final {
			fmt.Printf("the receiver reads %q\n", p.Payload)
			return
		}
		fmt.Printf("hop %d forwards to %x…\n", i, p.Next[:1])
		o = p.Forward
	}
	// Output:
	// hop 0 forwards to 02…
	// hop 1 forwards to 03…
	// hop 2 forwards to 04…
	// the receiver reads "hello"
}
