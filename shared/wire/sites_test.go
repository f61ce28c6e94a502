package wire

import (
	"errors"
	"strings"
	"testing"
)

func sampleDomainClaim(seed byte) DomainClaim {
	return DomainClaim{Domain: "example-1", SignKey: [32]byte{seed, 1}, Site: [32]byte{seed, 2}, Version: 3, Sig: [64]byte{seed, 7}}
}

func init() {
	moreSamples = append(moreSamples, func() []Message {
		c := sampleDomainClaim(6)
		rec := &DomainRecord{Claim: c, RelayKey: [32]byte{9}, Zone: "zone-b", Index: 1 << 33,
			Checkpoint: []byte("ddt.zone/zone-b/09000000\n5\nAAAA\n\n— sig\n"), Proof: [][32]byte{{1}, {2}, {3}}}
		return []Message{
			&c,
			rec,
			&ClaimDomain{ID: 7, Claim: c},
			&DomainLookup{ID: 1<<32 - 1, Hash: [32]byte{4, 5}},
			&DomainResult{ID: 7, Record: rec},
			&DomainResult{ID: 8, Code: CodeNameTaken, Message: "example.ddt belongs to another key"},
			&RelayClaimDomain{ID: 9, Lease: sampleLease(7), Claim: c},
		}
	})
}

func TestDomainLimits(t *testing.T) {
	c := sampleDomainClaim(1)
	c.Domain = strings.Repeat("a", MaxDomain+1)
	if _, err := Marshal(&c); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a 64-byte label: %v", err)
	}
	rec := &DomainRecord{Claim: sampleDomainClaim(1), Proof: make([][32]byte, MaxNameProof+1)}
	if _, err := Marshal(rec); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a proof of %d hashes: %v", MaxNameProof+1, err)
	}
	b, err := Marshal(&DomainResult{ID: 1, Record: &DomainRecord{Claim: sampleDomainClaim(2)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(b[:len(b)-3]); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated record: %v", err)
	}
	if (&DomainResult{Code: CodeNameTaken}).Err() == nil || (&DomainResult{}).Err() != nil {
		t.Error("a result's Err does not tell a refusal from success")
	}
	// Every field but the signature is signed.
	base := sampleDomainClaim(3)
	for _, edit := range []func(*DomainClaim){
		func(c *DomainClaim) { c.Domain = "other" },
		func(c *DomainClaim) { c.SignKey[5] = 1 },
		func(c *DomainClaim) { c.Site[5] = 1 },
		func(c *DomainClaim) { c.Version++ },
	} {
		d := base
		edit(&d)
		if string(d.SignedBytes()) == string(base.SignedBytes()) {
			t.Errorf("a field of %+v is not signed", d)
		}
	}
	d := base
	d.Sig[0] ^= 1
	if string(d.SignedBytes()) != string(base.SignedBytes()) {
		t.Error("the signature is part of what is signed")
	}
}
