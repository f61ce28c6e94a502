package content

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"ddt/shared/clock"
	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// FuzzProviderValue: any bytes decode to a value or an error, never a
// panic, and what decodes encodes back to the same bytes.
func FuzzProviderValue(f *testing.F) {
	relay, _ := identity.New()
	me, _ := identity.New()
	lease := relay.IssueLease(me.SignKey(), me.AgreeKey(), [16]byte{9}, "z", time.Unix(1_800_000_000, 0), time.Hour)
	for _, v := range []providerValue{{Expires: 1700000000, Whole: true, Lease: lease}, {Expires: 1, Lease: lease}} {
		b, err := v.marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add(make([]byte, providerHeaderLen+1))
	bad, _ := providerValue{Lease: lease}.marshal()
	bad[8] = 0x80
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseProvider(b)
		if err != nil {
			return
		}
		again, err := v.marshal()
		if err != nil {
			t.Fatalf("decoded %x does not encode: %v", b, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoded %x, re-encoded %x", b, again)
		}
	})
}

// A provider record is believed only if it is signed by the key of a
// lease a trusted relay issued (so it names the address that lease
// derives), is under its own key, and has not expired.
func TestCheckProvider(t *testing.T) {
	relay, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	me, _ := identity.New()
	other, _ := identity.New()
	stranger, _ := identity.New() // a relay nobody here trusts
	now := time.Unix(1_800_000_000, 0)
	nonce := [16]byte{7}
	pub := me.SignKey()
	addr := id.Derive(pub[:], nonce[:])
	key := id.Address{0xaa}
	trust := func(l *wire.Lease) error { return identity.VerifyLease(l, relay.SignKey(), now) }
	rec := func(v providerValue, signer *identity.Identity, k id.Address) dht.Record {
		b, err := v.marshal()
		if err != nil {
			t.Fatal(err)
		}
		r := dht.Record{Key: k, Seq: 1, Value: b}
		if err := r.Sign(signer.SigningKey()); err != nil {
			t.Fatal(err)
		}
		return r
	}
	lease := relay.IssueLease(me.SignKey(), me.AgreeKey(), nonce, "z", now, 7*24*time.Hour)
	good := providerValue{Expires: now.Add(time.Hour).Unix(), Whole: true, Lease: lease}
	if p, err := checkProvider(rec(good, me, key), key, now, trust); err != nil || p.Address != addr || !p.Whole {
		t.Fatalf("a good record: %+v %v", p, err)
	}
	expired := good
	expired.Expires = now.Unix()
	forever := good
	forever.Expires = now.Add(1000 * time.Hour).Unix()
	otherAddr := good
	otherAddr.Lease.Address = id.Address{1}
	untrusted := good
	untrusted.Lease = stranger.IssueLease(me.SignKey(), me.AgreeKey(), nonce, "z", now, 7*24*time.Hour)
	forged := rec(good, me, key)
	forged.Value[0] ^= 1
	for what, r := range map[string]dht.Record{
		"expired":                       rec(expired, me, key),
		"lasting a thousand hours":      rec(forever, me, key),
		"naming an address not its own": rec(otherAddr, me, key),
		"signed by another key":         rec(good, other, key),
		"under another key":             rec(good, me, id.Address{0xbb}),
		"with a broken signature":       forged,
		"with a lease no trusted relay issued (throwaway keys)": rec(untrusted, me, key),
	} {
		if p, err := checkProvider(r, key, now, trust); err == nil {
			t.Errorf("a record %s was believed: %+v", what, p)
		}
	}
}

// A node signs its provider records again every ProviderRefresh on its
// clock (a higher Seq, a later expiry), and once it has left, readers
// stop naming it within ProviderTTL.
func TestProviderRefreshAndExpiry(t *testing.T) {
	vc := clock.NewVirtual(time.Unix(1_800_000_000, 0))
	var svc []*Service
	sw := nodetest.New(t, 3, nodetest.Options{Config: func(i int, c *node.Config) {
		c.Clock, c.KeepAlive, c.PeerTimeout = vc, 24*time.Hour, 48*time.Hour
		s := New(Config{})
		svc = append(svc, s)
		c.Capabilities = []node.Capability{s}
	}})
	for i, a := range sw.Nodes {
		for _, b := range sw.Nodes[i+1:] {
			sw.Link(a, b)
		}
	}
	a, b := svc[0], svc[1]
	id, err := a.Put(testCtx(t), bytes.NewReader([]byte("refreshed")), -1, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	record := func() (seq uint64, exp int64) {
		recs, _ := b.h.Get(testCtx(t), id.Key())
		for _, r := range recs {
			if v, err := parseProvider(r.Value); err == nil && v.Lease.Address == a.ov.Self() {
				return r.Seq, v.Expires
			}
		}
		return 0, 0
	}
	seq0, exp0 := record()
	if seq0 == 0 {
		t.Fatal("no provider record of the publisher")
	}
	vc.Advance(ProviderRefresh + time.Second)
	wait.Until(t, wait.Default, "a refreshed record", func() bool {
		seq, exp := record()
		return seq > seq0 && exp > exp0
	})
	ps, err := b.ov.Providers(testCtx(t), id.Key())
	if i := slices.IndexFunc(ps, func(p Provider) bool { return p.Address == a.ov.Self() }); err != nil || i < 0 || !ps[i].Whole {
		t.Fatalf("providers %+v %v; want the publisher among them, whole", ps, err)
	}
	sw.Nodes[0].Close()
	vc.Advance(ProviderTTL + time.Second)
	ps, _ = b.ov.Providers(testCtx(t), id.Key())
	for _, p := range ps {
		if p.Address == a.ov.Self() {
			t.Fatalf("a provider that left an hour ago is still named: %+v", p)
		}
	}
}
