package wire

import (
	"errors"
	"strings"
	"testing"
)

func init() {
	moreSamples = append(moreSamples, func() []Message {
		l := sampleLease(4)
		return []Message{
			&RelayChallenge{Nonce: [32]byte{1, 2, 3}, Key: [32]byte{8, 9}},
			&RelayHello{Relay: RelayInfo{Zone: "zone-b", URL: "https://b.example", Key: [32]byte{7}, Nodes: 3, MaxNodes: 1024}, Sig: [64]byte{5}, Features: Features{FeatureLedger, FeatureNames}},
			&ZoneMembers{Leases: []Lease{l, sampleLease(5)}, Natives: []bool{false, true}, Last: true},
			&MemberJoined{Lease: l, Native: true},
			&MemberLeft{Address: l.Address},
			&ZoneSummary{Nodes: 17, MaxNodes: 1 << 31},
			&RelaySignal{From: l.Address, To: sampleLease(6).Address, Session: 99, Kind: SignalOffer, Data: "v=0"},
			&LedgerCheckpoint{Note: []byte("ddt.zone/zone-b/0102abcd\n3\nAAAA\n\n— ddt.zone/zone-b/0102abcd sig\n")},
			&LedgerGetEntries{From: 3, To: 1 << 40},
			&LedgerEntries{From: 7, Entries: [][]byte{[]byte("claim alice"), {0}, []byte("claim bob")}},
			&LedgerGetProof{Old: 5, New: 1 << 33},
			&LedgerProof{Old: 5, New: 9, Hashes: [][32]byte{{1}, {2, 3}, {0xff}}},
		}
	})
}

// A full batch of the largest leases fits one frame.
func TestMemberBatchFitsFrame(t *testing.T) {
	z := &ZoneMembers{Last: true}
	for i := 0; i < MaxMemberBatch; i++ {
		l := sampleLease(byte(i))
		l.Zone = strings.Repeat("z", MaxZone)
		l.Issued, l.Expires = -1<<63, 1<<63-1
		z.Leases = append(z.Leases, l)
		z.Natives = append(z.Natives, true)
	}
	if _, err := Marshal(z); err != nil {
		t.Fatal(err)
	}
	z.Leases = append(z.Leases, z.Leases[0])
	if _, err := Marshal(z); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("batch of %d: %v", len(z.Leases), err)
	}
}

func TestFederationRejects(t *testing.T) {
	b, _ := Marshal(&RelaySignal{Kind: SignalBye})
	b[2+20+20+1] = 99 // the kind
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown signal kind: %v", err)
	}
	b, _ = Marshal(&ZoneSummary{})
	b = append(b[:2], 0xff, 0xff, 0xff, 0xff, 0x7f, 0) // nodes beyond 32 bits
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("nodes out of range: %v", err)
	}
	// A member count the frame cannot hold fails before allocating.
	if _, err := Unmarshal([]byte{Version, byte(TypeZoneMembers), 150, 1, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short members: %v", err)
	}
	if _, err := Unmarshal([]byte{Version, byte(TypeZoneMembers), 0xff, 0x0f}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many members: %v", err)
	}
	if _, err := Marshal(&Admitted{Relays: make([]RelayInfo, MaxRelays+1), Flags: make([]RelayFlags, MaxRelays+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many relays: %v", err)
	}
	if _, err := Marshal(&Admitted{Relays: make([]RelayInfo, 2), Flags: make([]RelayFlags, 1)}); !errors.Is(err, ErrMalformed) {
		t.Errorf("flags not parallel to relays: %v", err)
	}
	// An admission whose flags do not match its relays does not decode.
	b, err := Marshal(&Admitted{Relays: make([]RelayInfo, 1), Flags: []RelayFlags{RelayTrusted}})
	if err != nil {
		t.Fatal(err)
	}
	b = append(b[:len(b)-2], 2, byte(RelayTrusted), byte(RelayTrusted))
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("two flags for one relay: %v", err)
	}
}

// The hello's signature covers the role, both nonces, the signer's info
// (its key among it) and the receiver's key: change any and it differs.
func TestRelayHelloSignedBytes(t *testing.T) {
	r := RelayInfo{Zone: "a", URL: "http://127.0.0.1:1", Key: [32]byte{1}, Nodes: 1, MaxNodes: 2}
	own, peer, peerKey := [32]byte{1}, [32]byte{2}, [32]byte{3}
	a := string(RelayHelloSignedBytes(true, own, peer, &r, peerKey))
	r2 := r
	r2.URL = "http://evil"
	r3 := r
	r3.Key = [32]byte{4}
	for what, b := range map[string][]byte{
		"the dialer flag":      RelayHelloSignedBytes(false, own, peer, &r, peerKey),
		"the signer's nonce":   RelayHelloSignedBytes(true, [32]byte{9}, peer, &r, peerKey),
		"the receiver's nonce": RelayHelloSignedBytes(true, own, [32]byte{9}, &r, peerKey),
		"the nonces' order":    RelayHelloSignedBytes(true, peer, own, &r, peerKey),
		"the url":              RelayHelloSignedBytes(true, own, peer, &r2, peerKey),
		"the signer's key":     RelayHelloSignedBytes(true, own, peer, &r3, peerKey),
		"the receiver's key":   RelayHelloSignedBytes(true, own, peer, &r, [32]byte{9}),
	} {
		if a == string(b) {
			t.Errorf("%s is not covered", what)
		}
	}
}

// The fullest ledger messages fit one frame; one more is refused.
func TestLedgerFitsFrame(t *testing.T) {
	le := &LedgerEntries{From: 1<<63 - 1}
	for total := 0; len(le.Entries) < MaxLedgerEntries; {
		n := min(MaxLedgerEntry, MaxLedgerBytes-total)
		le.Entries = append(le.Entries, make([]byte, n))
		total += n
	}
	if _, err := Marshal(le); err != nil {
		t.Fatal(err)
	}
	le.Entries[len(le.Entries)-1] = append(le.Entries[len(le.Entries)-1], 0)
	if _, err := Marshal(le); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d bytes of entries: %v", MaxLedgerBytes+1, err)
	}
	// Decoding refuses it too (15 full entries and one more byte).
	b := []byte{Version, byte(TypeLedgerEntries), 0, 16}
	for i := 0; i < 15; i++ {
		b = append(append(b, 0x80, 0x20), make([]byte, MaxLedgerEntry)...)
	}
	b = append(b, 1, 0)
	if _, err := Unmarshal(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decoding %d bytes of entries: %v", MaxLedgerBytes+1, err)
	}
	if _, err := Marshal(&LedgerEntries{Entries: make([][]byte, MaxLedgerEntries+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d entries: %v", MaxLedgerEntries+1, err)
	}
	if _, err := Marshal(&LedgerEntries{Entries: [][]byte{make([]byte, MaxLedgerEntry+1)}}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an entry of %d bytes: %v", MaxLedgerEntry+1, err)
	}
	p := &LedgerProof{Old: 1<<63 - 1, New: 1<<64 - 1, Hashes: make([][32]byte, MaxLedgerProof)}
	if _, err := Marshal(p); err != nil {
		t.Fatal(err)
	}
	p.Hashes = append(p.Hashes, [32]byte{})
	if _, err := Marshal(p); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d hashes: %v", len(p.Hashes), err)
	}
	if _, err := Marshal(&LedgerCheckpoint{Note: make([]byte, MaxLedgerCheckpoint)}); err != nil {
		t.Fatal(err)
	}
	if _, err := Marshal(&LedgerCheckpoint{Note: make([]byte, MaxLedgerCheckpoint+1)}); !errors.Is(err, ErrTooLarge) {
		t.Fatal("an oversized checkpoint was encoded")
	}
}

func TestLedgerRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"reversed range":       {Version, byte(TypeLedgerGetEntries), 5, 4},
		"backwards proof":      {Version, byte(TypeLedgerGetProof), 5, 4},
		"short proof":          {Version, byte(TypeLedgerProof), 0, 1, 2, 1, 2, 3},
		"short entries":        {Version, byte(TypeLedgerEntries), 0, 100, 1, 0},
		"truncated entry":      {Version, byte(TypeLedgerEntries), 0, 1, 5, 1},
		"truncated checkpoint": {Version, byte(TypeLedgerCheckpoint), 10, 'a'},
	} {
		if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"too many hashes":  {Version, byte(TypeLedgerProof), 0, 0, 0x81, 0x01},
		"too many entries": {Version, byte(TypeLedgerEntries), 0, 0x81, 0x02},
		"huge entry":       {Version, byte(TypeLedgerEntries), 0, 1, 0x81, 0x20},
		"huge checkpoint":  {Version, byte(TypeLedgerCheckpoint), 0x81, 0x80, 0x01},
	} {
		if _, err := Unmarshal(b); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
