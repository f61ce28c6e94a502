package wire

import (
	"errors"
	"strings"
	"testing"
)

func sampleClaim(seed byte) UserClaim {
	l := sampleLease(seed)
	return UserClaim{Name: "alice42", Address: l.Address, SignKey: l.SignKey, AgreeKey: l.AgreeKey, Nonce: l.Nonce,
		Zone: l.Zone, Version: 3, Sig: [64]byte{seed, 7}}
}

func init() {
	moreSamples = append(moreSamples, func() []Message {
		c := sampleClaim(6)
		rec := &UserRecord{Claim: c, RelayKey: [32]byte{9}, Zone: "zone-b", Index: 1 << 33,
			Checkpoint: []byte("ddt.zone/zone-b/09000000\n5\nAAAA\n\n— sig\n"), Proof: [][32]byte{{1}, {2}, {3}}}
		return []Message{
			&c,
			rec,
			&NameClaim{ID: 7, Claim: c},
			&NameLookup{ID: 1<<32 - 1, Hash: [32]byte{4, 5}},
			&NameResult{ID: 7, Record: rec},
			&NameResult{ID: 8, Code: CodeNameTaken, Message: "alice42 belongs to another key"},
			&RelayNameClaim{ID: 9, Lease: sampleLease(7), Claim: c},
		}
	})
}

func TestNameLimits(t *testing.T) {
	c := sampleClaim(1)
	c.Name = strings.Repeat("a", MaxName+1)
	if _, err := Marshal(&c); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a 17-byte name: %v", err)
	}
	rec := &UserRecord{Claim: sampleClaim(1), Proof: make([][32]byte, MaxNameProof+1)}
	if _, err := Marshal(rec); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a proof of %d hashes: %v", MaxNameProof+1, err)
	}
	// A result claiming a record but ending early is malformed, not a panic.
	b, err := Marshal(&NameResult{ID: 1, Record: &UserRecord{Claim: sampleClaim(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b[:len(b)-3]); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated record: %v", err)
	}
	if (&NameResult{Code: CodeNameTaken}).Err() == nil || !errors.Is((&NameResult{Code: CodeNameTaken}).Err(), ErrNameTaken) {
		t.Error("a taken result does not report ErrNameTaken")
	}
	sb := c.SignedBytes()
	c.Version++
	if string(sb) == string(c.SignedBytes()) {
		t.Error("the version is not signed")
	}
}
