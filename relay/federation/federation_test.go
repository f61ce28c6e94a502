package federation

import (
	"context"
	"slices"
	"testing"

	"ddt/shared/id"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

func isSignal(m wire.Message) bool { _, ok := m.(*wire.Signal); return ok }

// A relay that sends frame types it invented keeps its link, which goes
// on serving; the frames are counted apart from the refused ones.
func TestLinkSkipsUnknownTypes(t *testing.T) {
	a := newRelay(t, "zone-a", Config{}, nil)
	local, lease := a.node()
	x := a.link("zone-x", nil)
	far := x.member()
	x.Send(&wire.ZoneMembers{Leases: []wire.Lease{far}, Natives: []bool{false}, Last: true})
	wait.Until(t, wait.Default, "the far member is known", func() bool { return a.fed.Knows(far.Address) })
	for _, f := range [][]byte{{wire.Version, 250, 1, 2}, {wire.Version, 77}, {wire.Version, 95, 0xff, 0xff}} {
		x.SendRaw(f)
	}
	x.Send(&wire.RelaySignal{From: far.Address, To: lease.Address, Session: 4, Kind: wire.SignalOffer, Data: "v=0"})
	if s := local.Until("the signal after the unknown frames", isSignal).(*wire.Signal); s.Peer != far.Address || s.Session != 4 {
		t.Fatalf("signal %+v", s)
	}
	if s := a.fed.Stats(); s.Unknown != 3 || s.Dropped != 0 || s.Links != 1 || s.SignalsIn != 1 {
		t.Fatalf("stats %+v", s)
	}
	// A known type relays do not send is refused; a malformed one closes.
	x.Send(&wire.Hello{})
	if e, ok := x.Until("a refusal", func(m wire.Message) bool { _, ok := m.(*wire.Error); return ok }).(*wire.Error); !ok || e.Code != wire.CodeProtocol {
		t.Fatalf("refusal %+v", e)
	}
	x.SendRaw([]byte{wire.Version, byte(wire.TypeRelaySignal), 0xff})
	if e := x.Until("an error", func(m wire.Message) bool { _, ok := m.(*wire.Error); return ok }).(*wire.Error); e.Code != wire.CodeMalformed {
		t.Fatalf("error %+v", e)
	}
	wait.Until(t, wait.Default, "the link closed and its members forgotten", func() bool {
		return a.fed.Stats().Links == 0 && !a.fed.Knows(far.Address)
	})
}

// A service's frames go only to relays that announced its feature, and a
// relay that did not announce it has its frames of it refused.
func TestFeatureGating(t *testing.T) {
	const echo = "echo"
	ping, _ := wire.Marshal(&wire.Ping{ID: 1})
	a := newRelay(t, "zone-a", Config{}, func(f *Federation) {
		f.Handle(wire.TypePing, echo, func(l *Link, m wire.Message) error {
			l.SendMsg(&wire.Pong{ID: m.(*wire.Ping).ID})
			return nil
		})
		f.OnLinkUp(func(l *Link) {
			if l.Has(echo) {
				l.Send(ping)
			}
		})
		f.Periodic(echo, func() []byte { return ping })
	})
	with := a.link("zone-w", wire.Features{echo})
	without := a.link("zone-o", wire.Features{"other"})
	if !slices.Equal(with.hello.Features, wire.Features{echo}) || !slices.Equal(a.fed.Features(), wire.Features{echo}) {
		t.Fatalf("the hello lists %v", with.hello.Features)
	}
	// The link that announced echo gets the link-up frame and the periodic one.
	for range 2 {
		with.Until("a ping", func(m wire.Message) bool { _, ok := m.(*wire.Ping); return ok })
	}
	// The other gets summaries, and never a ping.
	summaries := 0
	without.Until("three summaries", func(m wire.Message) bool {
		if _, ok := m.(*wire.Ping); ok {
			t.Fatal("a relay that did not announce echo got its frame")
		}
		if _, ok := m.(*wire.ZoneSummary); ok {
			summaries++
		}
		return summaries == 3
	})
	if ls := a.fed.Links(echo); len(ls) != 1 || ls[0].Peer().Zone != "zone-w" {
		t.Fatalf("links with echo: %v", ls)
	}
	if ls := a.fed.Links(""); len(ls) != 2 {
		t.Fatalf("%d links", len(ls))
	}
	before := a.fed.Stats().Dropped
	without.Send(&wire.Ping{ID: 7})
	e := without.Until("a refusal", func(m wire.Message) bool { _, ok := m.(*wire.Error); return ok }).(*wire.Error)
	if e.Code != wire.CodeUnsupported {
		t.Fatalf("refusal %+v", e)
	}
	with.Send(&wire.Ping{ID: 8})
	if p := with.Until("the pong", func(m wire.Message) bool { _, ok := m.(*wire.Pong); return ok }).(*wire.Pong); p.ID != 8 {
		t.Fatalf("pong %+v", p)
	}
	if d := a.fed.Stats().Dropped - before; d != 1 || a.fed.Stats().Links != 2 {
		t.Fatalf("dropped %d, links %d", d, a.fed.Stats().Links)
	}
	// What the federation knows of each relay keeps its features.
	for _, k := range a.fed.Known() {
		if k.Features.Has(echo) != (k.Info.Zone == "zone-w") {
			t.Fatalf("relay %s has features %v", k.Info.Zone, k.Features)
		}
	}
}

// Two relays over in-memory pipes: the dialer links, the zones learn each
// other's members, signals cross, and a lost link is redialed.
func TestRelaysOverPipes(t *testing.T) {
	b := newRelay(t, "zone-b", Config{}, nil)
	dials := make(chan transport.Conn, 8)
	a := newRelay(t, "zone-a", Config{Peers: []Peer{{URL: "pipe://b", Key: b.key.SignKey()}}, Dial: func(ctx context.Context, peer string) (transport.Conn, error) {
		x, y := transport.Pipe()
		if !b.fed.Slot() {
			return nil, ErrTooMany
		}
		go b.fed.Serve(context.Background(), y, "pipe")
		dials <- x
		return x, nil
	}}, nil)
	b.fed.Trust(a.key.SignKey())
	linked := func(n int) {
		t.Helper()
		wait.Until(t, wait.Default, "linked", func() bool { return a.fed.Stats().Links == n && b.fed.Stats().Links == n })
	}
	linked(1)
	x, lx := a.node()
	y, ly := b.node()
	wait.Until(t, wait.Default, "members known", func() bool { return a.fed.Knows(ly.Address) && b.fed.Knows(lx.Address) })
	x.Send(&wire.Signal{Peer: ly.Address, Session: 2, Kind: wire.SignalOffer, Data: "o"})
	if s := y.Until("the offer", isSignal).(*wire.Signal); s.Peer != lx.Address || s.Data != "o" {
		t.Fatalf("offer %+v", s)
	}
	x.Send(&wire.Signal{Peer: id.Address{3}, Kind: wire.SignalOffer})
	if e := x.Until("an error", func(m wire.Message) bool { _, ok := m.(*wire.Error); return ok }).(*wire.Error); e.Code != wire.CodeUnknownPeer {
		t.Fatalf("error %+v", e)
	}
	rs := a.fed.Relays()
	if len(rs) != 2 || !rs[0].Self || rs[1].Zone != "zone-b" || !rs[1].Up || a.fed.Joining() {
		t.Fatalf("relays %+v", rs)
	}
	// The link is lost: a forgets b's members and dials again.
	(<-dials).Close()
	wait.Until(t, wait.Default, "a redial", func() bool { return len(dials) > 0 })
	linked(1)
	wait.Until(t, wait.Default, "members known again", func() bool { return a.fed.Knows(ly.Address) && b.fed.Knows(lx.Address) })
}
