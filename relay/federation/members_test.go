package federation

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"ddt/relay/internal/relaytest"
	"ddt/relay/zone"
	"ddt/shared/id"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// A fake relay that announces a lease of its own for another zone's
// member (the member's keys and nonce, so the same address) does not
// capture that member's signals: they still go to the member's zone. Its
// claim is kept aside, counted, and cannot send signals as the member
// either. A claim of this zone's own member changes nothing either.
func TestFakeRelayCannotCaptureMember(t *testing.T) {
	a := newRelay(t, "zone-a", Config{}, nil)
	local, own := a.node()
	x := a.link("zone-x", nil)
	v := x.member()
	x.Send(&wire.ZoneMembers{Leases: []wire.Lease{v}, Natives: []bool{false}, Last: true})
	wait.Until(t, wait.Default, "the member known", func() bool { return a.fed.Knows(v.Address) })

	f := a.link("zone-f", nil)
	forged := f.id.IssueLease(v.SignKey, v.AgreeKey, v.Nonce, f.info.Zone, time.Now(), zone.LeaseTTL)
	ownForged := f.id.IssueLease(own.SignKey, own.AgreeKey, own.Nonce, f.info.Zone, time.Now(), zone.LeaseTTL)
	if forged.Address != v.Address || ownForged.Address != own.Address {
		t.Fatal("the forged leases name other addresses")
	}
	f.Send(&wire.MemberJoined{Lease: forged})
	f.Send(&wire.MemberJoined{Lease: ownForged})
	wait.Until(t, wait.Default, "the claims counted", func() bool { return a.fed.Stats().Contested == 2 })
	if a.fed.Stats().Members != 1 {
		t.Fatalf("%d federated members, want 1", a.fed.Stats().Members)
	}

	// A node of zone a signals v: it reaches zone x, and nothing reaches f.
	local.Send(&wire.Signal{Peer: v.Address, Session: 7, Kind: wire.SignalOffer, Data: "offer"})
	got := relaytest.Next[*wire.RelaySignal](x.End, "the offer in zone x")
	if got.To != v.Address || got.From != own.Address || got.Data != "offer" {
		t.Fatalf("zone x got %+v", got)
	}
	// The fake relay cannot speak as v, and v can still answer.
	f.Send(&wire.RelaySignal{From: v.Address, To: own.Address, Session: 7, Kind: wire.SignalAnswer, Data: "fake"})
	x.Send(&wire.RelaySignal{From: v.Address, To: own.Address, Session: 7, Kind: wire.SignalAnswer, Data: "real"})
	if s := relaytest.Next[*wire.Signal](local, "the answer"); s.Data != "real" || s.Peer != v.Address {
		t.Fatalf("the local node got %+v", s)
	}
	// Another node of zone a signals a's own member: it stays in the zone.
	other, _ := a.node()
	other.Send(&wire.Signal{Peer: own.Address, Session: 8, Kind: wire.SignalOffer, Data: "local"})
	if s := relaytest.Next[*wire.Signal](local, "the local offer"); s.Data != "local" {
		t.Fatalf("the local node got %+v", s)
	}
	// f got no signal at all (a summary round trip orders the check).
	f.Send(&wire.ZoneSummary{MaxNodes: 9})
	wait.Until(t, wait.Default, "f's summary", func() bool { r, _ := a.fed.Lookup(f.id.SignKey()); return r.Info.MaxNodes == 9 })
	if s := a.fed.Stats(); s.SignalsOut != 1 {
		t.Fatalf("%d signals sent over links, want 1", s.SignalsOut)
	}
	for {
		m, err := f.TryRead()
		if err != nil {
			break
		}
		if _, ok := m.(*wire.RelaySignal); ok {
			t.Fatalf("the fake relay got a signal: %+v", m)
		}
		if _, ok := m.(*wire.ZoneSummary); ok {
			break // a's summaries come after what a sent before them
		}
	}
}

// Nor does it when the holder's link flaps: its claim kept aside does not
// take over while the holder is away, and when the holder is back and
// claims its member again, signals go to it, not to the fake relay. Only
// the holder saying its member left hands the address on.
func TestFakeRelayCannotCaptureMemberOverAFlap(t *testing.T) {
	a := newRelay(t, "zone-a", Config{}, nil)
	local, _ := a.node()
	x := a.link("zone-x", nil)
	v := x.member()
	x.Send(&wire.ZoneMembers{Leases: []wire.Lease{v}, Natives: []bool{false}, Last: true})
	wait.Until(t, wait.Default, "the member known", func() bool { return a.fed.Knows(v.Address) })
	f := a.link("zone-f", nil)
	f.Send(&wire.MemberJoined{Lease: f.id.IssueLease(v.SignKey, v.AgreeKey, v.Nonce, f.info.Zone, time.Now(), zone.LeaseTTL)})
	wait.Until(t, wait.Default, "the claim kept aside", func() bool { return a.fed.Stats().Contested == 1 })

	x.End.Conn.Close()
	wait.Until(t, wait.Default, "zone x's link down", func() bool { return !a.fed.Linked(x.id.SignKey()) })
	if a.fed.Knows(v.Address) {
		t.Fatal("the fake relay's claim took over while the holder was away")
	}
	if !a.fed.Slot() {
		t.Fatal("no slot for zone x to link again")
	}
	back := &fake{End: relaytest.Serve(t, func(c transport.Conn) { a.fed.Serve(context.Background(), c, "pipe") }), id: x.id, info: x.info}
	back.hello = back.Federate(back.id, back.info, nil)
	back.Send(&wire.ZoneMembers{Leases: []wire.Lease{v}, Natives: []bool{false}, Last: true})
	wait.Until(t, wait.Default, "the member known again", func() bool { return a.fed.Knows(v.Address) })

	local.Send(&wire.Signal{Peer: v.Address, Session: 7, Kind: wire.SignalOffer, Data: "offer"})
	if got := relaytest.Next[*wire.RelaySignal](back.End, "the offer in zone x"); got.To != v.Address {
		t.Fatalf("zone x got %+v", got)
	}
	// The holder says its member left: now the claim kept aside holds it.
	back.Send(&wire.MemberLeft{Address: v.Address})
	back.Send(&wire.ZoneSummary{MaxNodes: 11}) // read after the leave: orders the check
	wait.Until(t, wait.Default, "the leave read", func() bool { r, _ := a.fed.Lookup(x.id.SignKey()); return r.Info.MaxNodes == 11 })
	if !a.fed.Knows(v.Address) {
		t.Fatal("the claim kept aside did not take over when the holder said its member left")
	}
	local.Send(&wire.Signal{Peer: v.Address, Session: 8, Kind: wire.SignalOffer, Data: "offer"})
	if got := relaytest.Next[*wire.RelaySignal](f.End, "the offer in zone f"); got.Session != 8 {
		t.Fatalf("zone f got %+v", got)
	}
}

// leases signs n leases of distinct addresses for the fake relay's zone,
// cheaply: one node key, n nonces.
func (f *fake) leases(n int, from uint32) []wire.Lease {
	node := newIdentity(f.End.T)
	out := make([]wire.Lease, n)
	now := time.Now()
	for i := range out {
		var nonce [16]byte
		binary.BigEndian.PutUint32(nonce[:], from+uint32(i))
		out[i] = f.id.IssueLease(node.SignKey(), node.AgreeKey(), nonce, f.info.Zone, now, zone.LeaseTTL)
	}
	return out
}

// announce sends leases as snapshot batches.
func (f *fake) announce(leases []wire.Lease) {
	for len(leases) > 0 {
		n := min(len(leases), wire.MaxMemberBatch)
		f.Send(&wire.ZoneMembers{Leases: leases[:n], Natives: make([]bool, n), Last: n == len(leases)})
		leases = leases[n:]
	}
}

// The members of all trusted federated zones together are bounded: past
// MaxFederatedMembers a claim is dropped and counted, the link stays, and
// once room is made a new claim is kept again. Untrusted zones together
// hold at most MaxOpenMembers, apart from the trusted zones' room.
func TestFederatedMembersBounded(t *testing.T) {
	a := newRelay(t, "zone-a", Config{Open: true}, nil)
	per := MaxRemoteMembers
	var links []*fake
	for i := 0; i*per < MaxFederatedMembers; i++ {
		x := a.link("zone-"+string(rune('p'+i)), nil)
		x.announce(x.leases(per, 0))
		links = append(links, x)
	}
	wait.Until(t, 2*wait.Default, "the members held", func() bool { return a.fed.Stats().Members == MaxFederatedMembers })
	late := a.link("zone-late", nil)
	one := late.leases(2, 0)
	late.announce(one[:1])
	wait.Until(t, wait.Default, "the claim beyond the bound dropped", func() bool { return a.fed.Stats().MembersFull == 1 })
	if a.fed.Knows(one[0].Address) || a.fed.Stats().Members != MaxFederatedMembers || !a.fed.Linked(late.id.SignKey()) {
		t.Fatalf("stats %+v", a.fed.Stats())
	}
	// A member leaves a full zone: the next claim is kept.
	links[0].Send(&wire.MemberLeft{Address: firstAddress(a, links[0])})
	wait.Until(t, wait.Default, "room made", func() bool { return a.fed.Stats().Members == MaxFederatedMembers-1 })
	late.Send(&wire.MemberJoined{Lease: one[1]})
	wait.Until(t, wait.Default, "the new claim kept", func() bool { return a.fed.Knows(one[1].Address) })

	// Untrusted zones hold up to MaxOpenMembers between them, apart: the
	// trusted zones' room is full, theirs is not.
	u := a.dial("zone-open")
	u.Federate(u.id, u.info, nil)
	before := a.fed.Stats().MembersFull
	u.announce(u.leases(MaxOpenMembers+1, 0))
	wait.Until(t, wait.Default, "the untrusted claims beyond their bound dropped", func() bool { return a.fed.Stats().MembersFull == before+1 })
	if s := a.fed.Stats(); s.Members != MaxFederatedMembers+MaxOpenMembers || !a.fed.Linked(u.id.SignKey()) {
		t.Fatalf("stats %+v", s)
	}
	// A link that ends gives its room back.
	links[1].Conn.Close()
	wait.Until(t, wait.Default, "the zone's members forgotten", func() bool { return a.fed.Stats().Members == MaxFederatedMembers+MaxOpenMembers-per })
	full := a.fed.Stats().MembersFull
	late.announce(late.leases(per-1, 2)) // late holds one already: it is at MaxRemoteMembers now
	wait.Until(t, 2*wait.Default, "the room taken again", func() bool { return a.fed.Stats().Members == MaxFederatedMembers+MaxOpenMembers-1 })
	if s := a.fed.Stats(); s.MembersFull != full || !a.fed.Linked(late.id.SignKey()) {
		t.Fatalf("stats %+v", s)
	}
}

// firstAddress is an address that x's zone holds in a.
func firstAddress(a *relay, x *fake) (addr id.Address) {
	a.fed.mu.Lock()
	defer a.fed.mu.Unlock()
	for ad := range a.fed.relays[x.id.SignKey()].members {
		return ad
	}
	a.t.Fatal("the zone holds nothing")
	return
}

// In open federation an untrusted relay's claim never takes an address
// from a trusted relay, and a trusted relay's claim takes one from an
// untrusted relay: signals go to the trusted zone either way.
func TestTrustedClaimOutranksUntrusted(t *testing.T) {
	a := newRelay(t, "zone-a", Config{Open: true}, nil)
	local, own := a.node()
	u := a.dial("zone-u")
	u.Federate(u.id, u.info, nil)
	x := a.link("zone-x", nil)
	// The untrusted relay claims first; the trusted one's claim wins.
	n := newIdentity(t)
	first := u.id.IssueLease(n.SignKey(), n.AgreeKey(), [16]byte{1}, u.info.Zone, time.Now(), zone.LeaseTTL)
	u.Send(&wire.MemberJoined{Lease: first})
	wait.Until(t, wait.Default, "the untrusted claim held", func() bool { return a.fed.Knows(first.Address) })
	x.Send(&wire.MemberJoined{Lease: x.id.IssueLease(n.SignKey(), n.AgreeKey(), [16]byte{1}, x.info.Zone, time.Now(), zone.LeaseTTL)})
	wait.Until(t, wait.Default, "the trusted claim taken over", func() bool { return holder(a, first.Address) == "zone-x" })
	// The trusted relay claims first; the untrusted one's claim is kept aside.
	m := newIdentity(t)
	second := x.id.IssueLease(m.SignKey(), m.AgreeKey(), [16]byte{2}, x.info.Zone, time.Now(), zone.LeaseTTL)
	x.Send(&wire.MemberJoined{Lease: second})
	wait.Until(t, wait.Default, "the trusted claim held", func() bool { return a.fed.Knows(second.Address) })
	u.Send(&wire.MemberJoined{Lease: u.id.IssueLease(m.SignKey(), m.AgreeKey(), [16]byte{2}, u.info.Zone, time.Now(), zone.LeaseTTL)})
	wait.Until(t, wait.Default, "the untrusted claim counted", func() bool { return a.fed.Stats().Contested == 1 })
	if h := holder(a, second.Address); h != "zone-x" {
		t.Fatalf("the address went to %s", h)
	}
	for i, addr := range []id.Address{first.Address, second.Address} {
		local.Send(&wire.Signal{Peer: addr, Session: uint64(i), Kind: wire.SignalOffer})
		if s := relaytest.Next[*wire.RelaySignal](x.End, "the offer in the trusted zone"); s.To != addr || s.From != own.Address {
			t.Fatalf("zone x got %+v", s)
		}
	}
	if s := a.fed.Stats(); s.SignalsOut != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// holder is the zone of the relay whose claim of addr a follows.
func holder(a *relay, addr id.Address) string {
	a.fed.mu.Lock()
	defer a.fed.mu.Unlock()
	if m := a.fed.remote[addr]; m != nil {
		return m.relay.info.Zone
	}
	return ""
}
