package username

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"ddt/shared/dht"
	"ddt/shared/names"
)

// What the nodes that store a name's record see (a FindValue on the
// name's key, as any node may send): one value, signed by a key that is
// neither the owner's identity key nor anything taken from its address,
// and the same key at the owner's next version, which replaces the old
// value. Another node cannot replace it: its own values sit beside it
// under other signers, and the owner's value copied under another signer
// does not resolve.
func TestDHTSignerIsNotTheOwner(t *testing.T) {
	home := newTestLedger(t, "b")
	sw, ns := swarm(t, 8, nil, nil, home.info())
	sw.KademliaLinks()
	owner, mallory, asker := ns[0], ns[3], ns[7]
	ownerKey, ownerAddr := owner.h.Identity().SignKey(), owner.h.Lease().Address
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	findValue := func() []dht.Record {
		t.Helper()
		recs, err := asker.h.Get(ctx, names.Key("alice"))
		if err != nil && len(recs) == 0 {
			t.Fatalf("FindValue on alice's key: %v", err)
		}
		return recs
	}
	// linked reports how signer is tied to the owner, if it visibly is.
	linked := func(signer [32]byte) string {
		switch {
		case signer == ownerKey:
			return "the owner's identity key"
		case bytes.Contains(signer[:], ownerAddr[:]):
			return "holds the owner's address"
		case signer == sha256.Sum256(ownerAddr[:]), signer == sha256.Sum256([]byte(ownerAddr.String())),
			signer == sha256.Sum256(ownerKey[:]):
			return "a hash of the owner's address or key"
		}
		return ""
	}

	v1 := home.sequence(t, claimAs(t, owner, "alice", 1))
	owner.hold(v1)
	owner.publish(ctx, v1)
	recs := findValue()
	if len(recs) != 1 {
		t.Fatalf("%d values under alice's key, want the owner's one", len(recs))
	}
	signer := recs[0].Signer
	if how := linked(signer); how != "" {
		t.Fatalf("the value under alice's key is signed by %x: %s", signer[:4], how)
	}

	// The next version, from the same owner, replaces the value under the
	// same signer: the storing nodes still hold one value.
	v2 := home.sequence(t, claimAs(t, owner, "alice", 2))
	owner.hold(v2)
	owner.publish(ctx, v2)
	recs = findValue()
	if len(recs) != 1 || recs[0].Signer != signer || recs[0].Seq != 2 {
		t.Fatalf("after version 2: %d values, first %x at seq %d; want one, by %x at seq 2", len(recs), recs[0].Signer[:4], recs[0].Seq, signer[:4])
	}

	// Mallory publishes its own (later, so losing) claim of alice at a
	// high version, and the owner's value re-signed by its own key: both
	// sit beside the owner's, which stays, and alice still resolves to the
	// owner's version 2.
	mine := home.sequence(t, claimAs(t, mallory, "alice", 9))
	publishAs(t, mallory, mine)
	copyAs(t, mallory, owner, v2)
	recs = findValue()
	held := false
	for _, r := range recs {
		if r.Signer == signer {
			held = r.Seq == 2
		}
		if how := linked(r.Signer); how != "" {
			t.Errorf("a value under alice's key is signed by %x: %s", r.Signer[:4], how)
		}
	}
	if len(recs) != 3 || !held {
		t.Fatalf("%d values under alice's key; want mallory's two beside the owner's version 2 (held %v)", len(recs), held)
	}
	got, err := asker.Resolve(ctx, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claim.SignKey != ownerKey || got.Claim.Version != 2 {
		t.Fatalf("alice resolves to key %x version %d, want the owner's version 2", got.Claim.SignKey[:4], got.Claim.Version)
	}
}
