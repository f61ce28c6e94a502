//go:build !js

package site

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/dht"
	"ddt/shared/identity"
	"ddt/shared/names"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// wantCode checks that err is a *node.Error with code.
func wantCode(t testing.TB, err error, code, says string) {
	t.Helper()
	var e *node.Error
	if !errors.As(err, &e) || e.Code != code || !strings.Contains(e.Message, says) {
		t.Fatalf("error %v; want code %s saying %q", err, code, says)
	}
}

// A domain claimed by one node resolves, verified, on another; updates
// by the owner go through (also from a new profile with the same key),
// anyone else's claim is refused, forged DHT records are ignored, and an
// unknown domain is said to be unknown.
func TestDomains(t *testing.T) {
	ctx := context.Background()
	r := newTestRelay(t)
	ownerStore := store.NewMemory()
	owner, reader, mallory := r.join(ownerStore), r.join(nil), r.join(nil)
	meshed(t, owner, reader, mallory)
	site1, site2, site3 := chunk.Hash{1}, chunk.Hash{2}, chunk.Hash{3}

	rec, err := owner.s.Claim(ctx, "Example.DDT", site1)
	if err != nil {
		t.Fatal(err)
	}
	v := ViewOf(rec)
	if v.Domain != "example.ddt" || v.Version != 1 || v.Site != site1.String() || v.Zone != "zone-s" || v.Owner != hexKey(owner.n) {
		t.Fatalf("view %+v", v)
	}
	// Once the DHT holds it, another node resolves it without asking
	// the relay.
	wait.Until(t, wait.Default, "the record in the DHT", func() bool {
		recs, _ := reader.n.Get(ctx, names.DomainKey("example"))
		return len(recs) > 0
	})
	lookups := r.Names.Stats().Lookups
	got, err := reader.s.Resolve(ctx, "example", ResolveOptions{})
	if err != nil || got.Claim.Site != site1 || got.Claim.Version != 1 {
		t.Fatalf("resolve: %+v, %v", got, err)
	}
	if n := r.Names.Stats().Lookups; n != lookups {
		t.Fatalf("the resolve asked the relay (%d lookups, %d before) though the DHT held the record", n, lookups)
	}

	// Someone else's claim: taken, whatever the version.
	_, err = mallory.s.Claim(ctx, "example.ddt", site3)
	wantCode(t, err, CodeTaken, "example.ddt belongs to someone else")

	// The owner's update: version 2, seen by a fresh resolve elsewhere;
	// a cached resolve may still answer version 1 within its TTL.
	up, err := owner.s.Claim(ctx, "example.ddt", site2)
	if err != nil || up.Claim.Version != 2 {
		t.Fatalf("update: %+v, %v", up, err)
	}
	if c, err := reader.s.Resolve(ctx, "example.ddt", ResolveOptions{}); err != nil || c.Claim.Version != 1 {
		t.Fatalf("a cached resolve: %+v, %v", c, err)
	}
	wait.Until(t, wait.Default, "version 2 resolved elsewhere", func() bool {
		got, err := reader.s.Resolve(ctx, "example.ddt", ResolveOptions{MaxAge: -1})
		return err == nil && got.Claim.Version == 2 && got.Claim.Site == site2
	})
	// The same site again is the same record, not a new version.
	if same, err := owner.s.Claim(ctx, "example.ddt", site2); err != nil || same.Claim.Version != 2 {
		t.Fatalf("claiming the same site again: %+v, %v", same, err)
	}

	// Mallory stores forged records under the domain's key: her own
	// claim at a high version with a checkpoint of a relay nobody
	// trusts, and the owner's record with its site changed. Resolvers
	// drop both.
	fake, _ := identity.New()
	forgedClaim, _ := names.NewDomainClaim(mallory.s.h.Identity(), "example", site3, 99)
	forgedRec := &wire.DomainRecord{Claim: *forgedClaim, RelayKey: fake.SignKey(), Zone: "zone-s", Index: 0, Checkpoint: []byte("x")}
	dr, err := names.SealDomain(mallory.s.h.Identity(), forgedRec)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := mallory.s.h.Put(ctx, dr); err != nil || n == 0 {
		t.Fatalf("mallory's put: %d, %v", n, err)
	}
	changed := *up
	changed.Claim.Site = site3
	value, _ := wire.Marshal(&changed)
	stolen := dht.Record{Key: names.DomainKey("example"), Seq: 100, Value: value}
	if err := stolen.Sign(mallory.s.h.Identity().SigningKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := mallory.s.h.Put(ctx, stolen); err != nil {
		t.Fatalf("mallory's second put: %v", err)
	}
	wait.Until(t, wait.Default, "the forged records in the DHT", func() bool {
		recs, _ := reader.n.Get(ctx, names.DomainKey("example"))
		for _, r := range recs {
			if r.Signer == mallory.s.h.Identity().SignKey() {
				return true
			}
		}
		return false
	})
	got, err = reader.s.Resolve(ctx, "example.ddt", ResolveOptions{MaxAge: -1})
	if err != nil || got.Claim.SignKey != owner.s.h.Identity().SignKey() || got.Claim.Site != site2 {
		t.Fatalf("with forged records in the DHT: %+v, %v", got, err)
	}

	// The owner comes back on a new profile (a new store holding only
	// its key): its next claim is version 3, not a refused version 1.
	owner.stop()
	again := store.NewMemory()
	b, err := ownerStore.Get("identity")
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Put("identity", b); err != nil {
		t.Fatal(err)
	}
	back := r.join(again)
	v3, err := back.s.Claim(ctx, "example.ddt", site3)
	if err != nil || v3.Claim.Version != 3 || v3.Claim.SignKey != owner.s.h.Identity().SignKey() {
		t.Fatalf("the owner back: %+v, %v", v3, err)
	}

	// Nobody holds it; and not a domain at all.
	_, err = reader.s.Resolve(ctx, "nobody.ddt", ResolveOptions{})
	wantCode(t, err, CodeUnknownDomain, "nobody holds nobody.ddt")
	_, err = reader.s.Resolve(ctx, "no_body.ddt", ResolveOptions{})
	wantCode(t, err, CodeInvalid, "not a DDT domain")
	_, err = back.s.Claim(ctx, "-x.ddt", site1)
	wantCode(t, err, CodeInvalid, "hyphen")
}

func hexKey(n *node.Node) string {
	sign, _ := n.Keys()
	return ViewOf(&wire.DomainRecord{Claim: wire.DomainClaim{SignKey: sign}}).Owner
}

// A stale DHT node's older version of a domain never replaces a newer
// one this node has seen: a rollback by whoever answers a lookup fails.
func TestResolveNeverGoesBack(t *testing.T) {
	var c recordCache
	c.init(4)
	now := time.Unix(1000, 0)
	v := func(n uint64) *wire.DomainRecord {
		return &wire.DomainRecord{Claim: wire.DomainClaim{Domain: "example", SignKey: [32]byte{1}, Version: n}}
	}
	c.put("example", v(2), now)
	if got := c.put("example", v(1), now.Add(time.Second)); got.Claim.Version != 2 {
		t.Errorf("after version 2, an older version 1 was kept: %d", got.Claim.Version)
	}
	if got := c.get("example", now.Add(time.Second), time.Minute); got == nil || got.Claim.Version != 2 {
		t.Errorf("the cache answers %v, want version 2", got)
	}
	if got := c.put("example", v(3), now.Add(2*time.Second)); got.Claim.Version != 3 {
		t.Errorf("a newer version 3 was not taken: %d", got.Claim.Version)
	}
}

// Many resolves of one domain at once share one lookup, and "nobody holds
// it" is remembered for a moment: a page's requests, or a site linking to
// many unknown domains, cannot make the node ask the relay for each (the
// relay cuts a node that asks too fast).
func TestResolveShared(t *testing.T) {
	r := newTestRelay(t)
	a, bn := r.join(nil), r.join(nil)
	meshed(t, a, bn)
	b := bn.s
	before := r.Names.Stats().Lookups
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() { _, errs[i] = b.Resolve(context.Background(), "nobody-here.ddt", ResolveOptions{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if node.Explain(err).Code != CodeUnknownDomain {
			t.Fatalf("resolve %d of an unknown domain: %v, want code %s", i, err, CodeUnknownDomain)
		}
	}
	for range 10 {
		if _, err := b.Resolve(context.Background(), "nobody-here.ddt", ResolveOptions{}); node.Explain(err).Code != CodeUnknownDomain {
			t.Fatalf("a resolve after: %v", err)
		}
	}
	if n := r.Names.Stats().Lookups - before; n > 2 {
		t.Errorf("50 resolves of one unknown domain asked the relay %d times; want them to share a lookup and its answer", n)
	}
	// A fresh resolve asks again.
	if _, err := b.Resolve(context.Background(), "nobody-here.ddt", ResolveOptions{MaxAge: -1}); node.Explain(err).Code != CodeUnknownDomain {
		t.Fatal(err)
	}
	if n := r.Names.Stats().Lookups - before; n < 2 {
		t.Errorf("a fresh resolve did not ask the relay (%d lookups in all)", n)
	}
}
