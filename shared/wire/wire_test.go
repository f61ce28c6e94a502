package wire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"ddt/shared/id"
)

func sampleLease(seed byte) Lease {
	l := Lease{Zone: "zone-a", Issued: 1_700_000_000, Expires: 1_700_604_800}
	for i := range l.SignKey {
		l.SignKey[i] = seed + byte(i)
		l.AgreeKey[i] = seed ^ byte(i)
		l.RelayKey[i] = 7 * byte(i)
	}
	l.Address = id.Derive(l.SignKey[:], l.Nonce[:])
	l.Sig[0], l.Sig[63] = seed, 0xff
	return l
}

// moreSamples holds the samples of message files other than messages.go;
// each test file adds its own in init.
var moreSamples []func() []Message

// samples has one value of every message type, with non-zero fields.
func samples() []Message {
	out := baseSamples()
	for _, f := range moreSamples {
		out = append(out, f()...)
	}
	return out
}

func baseSamples() []Message {
	l := sampleLease(1)
	return []Message{
		&l,
		&Challenge{Zone: "z", RelayKey: [32]byte{1}, Nonce: [32]byte{2, 3}, Features: Features{FeatureNames}},
		&Hello{SignKey: [32]byte{4}, AgreeKey: [32]byte{5}, Native: true, Agent: "ddt-test/1", Sig: [64]byte{6}, Features: Features{"names", "x-2"}},
		&Admitted{Lease: l, Peers: []Lease{sampleLease(2), sampleLease(3)}, Natives: []bool{true, false}, ICEServers: []string{"stun:127.0.0.1:3478"},
			Relays: []RelayInfo{{Zone: "zone-a", URL: "https://a.example", Key: [32]byte{1}, Nodes: 2, MaxNodes: 1024}, {Zone: "zone-b", URL: "http://127.0.0.1:8081", Key: [32]byte{2}}},
			Flags:  []RelayFlags{RelayTrusted | RelayNames, 0}},
		&Refused{Code: CodeZoneFull, Reason: "zone full (2 nodes)", Redirect: "https://b.example", RetryAfterMs: 30000},
		&Signal{Peer: l.Address, Session: 1 << 40, Kind: SignalCandidate, Data: `{"candidate":"x"}`},
		&PeerJoined{Lease: l, Native: true},
		&PeerLeft{Address: l.Address},
		&Error{Code: CodeUnknownPeer, Message: "no node 0000"},
		&PeerHello{Lease: l, Native: true, Nonce: [32]byte{9}, Features: Features{FeatureBulk, FeatureNames}},
		&PeerProof{Sig: [64]byte{8}},
		&Ping{ID: 42},
		&Pong{ID: 42},
		&BenchData{Data: bytes.Repeat([]byte{0xab}, 1000)},
		&BenchEnd{Total: 1 << 26},
		&BenchAck{Received: 1 << 26},
		&Bye{Reason: "tab closed"},
		&Experiment{Label: "echo", Data: []byte{1, 2, 3}},
	}
}

func TestRoundTrip(t *testing.T) {
	seen := map[Type]bool{}
	for _, m := range samples() {
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", m, err)
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatalf("Unmarshal(%T): %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", m, got, m)
		}
		seen[m.Type()] = true
		// Every proper prefix is an error, never a panic or a success.
		for i := 0; i < len(b); i++ {
			if _, err := Unmarshal(b[:i]); err == nil {
				t.Errorf("%T: prefix of %d/%d bytes decoded", m, i, len(b))
			}
		}
		if _, err := Unmarshal(append(b, 0)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%T with a trailing byte: %v", m, err)
		}
	}
	for typ := Type(0); typ < 255; typ++ {
		if newMessage(typ) != nil && !seen[typ] {
			t.Errorf("type %d has no sample", typ)
		}
	}
}

func TestRejects(t *testing.T) {
	good, _ := Marshal(&Ping{ID: 1})
	bad := append([]byte{}, good...)
	bad[0] = 99
	if _, err := Unmarshal(bad); !errors.Is(err, ErrVersion) {
		t.Errorf("wrong version: %v", err)
	}
	if _, err := Unmarshal([]byte{Version, 200}); !errors.Is(err, ErrMalformed) || !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
	// A known type that does not decode is malformed, never "unknown".
	if _, err := Unmarshal([]byte{Version, byte(TypePing)}); !errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownType) {
		t.Errorf("truncated ping: %v", err)
	}
	if _, err := Unmarshal(make([]byte, MaxFrame+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	// A length prefix far beyond the frame must fail before allocating.
	huge := []byte{Version, byte(TypeBenchData), 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := Unmarshal(huge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge length: %v", err)
	}
	if _, err := Marshal(&Bye{Reason: strings.Repeat("x", MaxReason+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("long reason: %v", err)
	}
	if _, err := Marshal(&Admitted{Peers: make([]Lease, MaxPeers+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many peers: %v", err)
	}
	sig := &Signal{Kind: 77}
	b, _ := Marshal(sig)
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown signal kind: %v", err)
	}
}

func TestFeatures(t *testing.T) {
	f := NewFeatures("names", "bulk", "names")
	if len(f) != 2 || !f.Has("bulk") || !f.Has("names") || f.Has("content") {
		t.Fatalf("NewFeatures = %v", f)
	}
	for _, bad := range []string{"", "Names", "a b", "x/y", strings.Repeat("a", MaxFeature+1)} {
		if _, err := Marshal(&PeerHello{Features: Features{bad}}); err == nil {
			t.Errorf("feature %q encoded", bad)
		}
	}
	many := make(Features, MaxFeatures+1)
	for i := range many {
		many[i] = fmt.Sprintf("f%d", i)
	}
	if _, err := Marshal(&Hello{Features: many}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("%d features: %v", len(many), err)
	}
	// A decoder refuses what an encoder would not write.
	b, _ := Marshal(&PeerHello{Features: Features{"names"}})
	b[len(b)-5] = 'N'
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("upper-case feature decoded: %v", err)
	}
}

func TestKnownAndTypeOf(t *testing.T) {
	if !Known(TypePing) || Known(200) {
		t.Error("Known")
	}
	b, _ := Marshal(&Pong{ID: 1})
	if typ, ok := TypeOf(b); !ok || typ != TypePong {
		t.Errorf("TypeOf = %d %v", typ, ok)
	}
	if _, ok := TypeOf([]byte{Version}); ok {
		t.Error("TypeOf of a 1-byte frame")
	}
}

func TestCodes(t *testing.T) {
	for c, e := range codeErrs {
		if CodeOf(e) != c || c.Err() != e {
			t.Errorf("code %d and %v do not map both ways", c, e)
		}
	}
	remote := (&Error{Code: CodeZoneFull, Message: "1024 nodes"}).Err()
	if !errors.Is(remote, ErrZoneFull) || remote.Error() != "zone full: 1024 nodes" {
		t.Errorf("remote error = %q", remote)
	}
	if Code(999).Err() != ErrInternal || CodeOf(nil) != CodeNone {
		t.Error("unknown code handling")
	}
}

func TestSignedBytesExcludeSignature(t *testing.T) {
	a, b := sampleLease(1), sampleLease(1)
	b.Sig[5] ^= 1
	if !bytes.Equal(a.SignedBytes(), b.SignedBytes()) {
		t.Fatal("signature changes the signed bytes")
	}
	b.Expires++
	if bytes.Equal(a.SignedBytes(), b.SignedBytes()) {
		t.Fatal("expiry is not covered by the signature")
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, m := range samples() {
		b, _ := Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{Version, byte(TypeAdmitted), 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			return
		}
		again, err := Marshal(m)
		if err != nil {
			t.Fatalf("decoded %T does not re-encode: %v", m, err)
		}
		m2, err := Unmarshal(again)
		if err != nil {
			t.Fatalf("re-encoded %T does not decode: %v", m, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("%T changed on a second round trip:\n%+v\n%+v", m, m, m2)
		}
	})
}

func ExampleMarshal() {
	b, _ := Marshal(&Ping{ID: 7})
	m, _ := Unmarshal(b)
	fmt.Printf("% x → %T %d\n", b, m, m.(*Ping).ID)
	// Output: 01 22 07 → *wire.Ping 7
}
