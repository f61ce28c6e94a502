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
			&RelayChallenge{Nonce: [32]byte{1, 2, 3}},
			&RelayHello{Relay: RelayInfo{Zone: "zone-b", URL: "https://b.example", Key: [32]byte{7}, Nodes: 3, MaxNodes: 1024}, Sig: [64]byte{5}},
			&ZoneMembers{Leases: []Lease{l, sampleLease(5)}, Natives: []bool{false, true}, Last: true},
			&MemberJoined{Lease: l, Native: true},
			&MemberLeft{Address: l.Address},
			&ZoneSummary{Nodes: 17, MaxNodes: 1 << 31},
			&RelaySignal{From: l.Address, To: sampleLease(6).Address, Session: 99, Kind: SignalOffer, Data: "v=0"},
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
	if _, err := Marshal(&Admitted{Relays: make([]RelayInfo, MaxRelays+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many relays: %v", err)
	}
}

func TestRelayHelloSignedBytes(t *testing.T) {
	r := RelayInfo{Zone: "a", URL: "http://127.0.0.1:1", Key: [32]byte{1}, Nodes: 1, MaxNodes: 2}
	a := string(RelayHelloSignedBytes([32]byte{1}, true, &r))
	if a == string(RelayHelloSignedBytes([32]byte{1}, false, &r)) {
		t.Error("the dialer flag is not covered")
	}
	if a == string(RelayHelloSignedBytes([32]byte{2}, true, &r)) {
		t.Error("the nonce is not covered")
	}
	r2 := r
	r2.URL = "http://evil"
	if a == string(RelayHelloSignedBytes([32]byte{1}, true, &r2)) {
		t.Error("the url is not covered")
	}
}
