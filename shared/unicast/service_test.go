//go:build !js

package unicast

import (
	"bytes"
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"ddt/shared/node"
	"ddt/shared/unicast/onion"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

const long = 90 * time.Second // generous: chains retry every ChainTimeout

// sealFor seals a plaintext with from's current session with name, as
// Send does, and returns the ChatMessage (for tests that replay, tamper
// or capture one).
func sealFor(t *testing.T, from *testNode, name string, p plain) *wire.ChatMessage {
	t.Helper()
	s := from.s
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.friends[name]
	x := s.currentLocked(f, s.h.Clock().Now())
	if x == nil {
		t.Fatal("no session")
	}
	sealed, err := x.st.Seal(p.marshal(), ad(x.ID, s.h.Identity().SignKey(), f.SignKey), s.rand())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.saveSessionLocked(x); err != nil {
		t.Fatal(err)
	}
	return &wire.ChatMessage{Session: x.ID, Sealed: sealed}
}

// ask sends m from a to b's address and returns the service code of
// the refusal ("" if taken).
func ask(t *testing.T, a, b *testNode, m wire.Message) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := a.s.h.Request(ctx, b.n.Address(), m)
	if err != nil && !answered(err) {
		t.Fatalf("no answer: %v", err)
	}
	return serviceCode(err)
}

// A befriends B through a swarm with a node that drops onions; the key
// exchange still completes on other chains; they chat both ways, exactly
// once and in order; B goes away, A's three messages are held and B gets
// them, in order, once, when it is back on the same store; a third node
// can neither read nor inject.
func TestFriendsExchangeChatOffline(t *testing.T) {
	r := newTestRelay(t)
	a := r.join(nil, Config{}, nil)
	drop := r.join(nil, Config{DropOnions: true}, nil)
	b := r.join(nil, Config{}, func(s *Service) { s.preferHop = drop.n.Address() })
	eve := r.join(nil, Config{}, nil)
	others := []*testNode{a, b, drop, eve}
	for range 4 {
		others = append(others, r.join(nil, Config{}, nil))
	}
	meshed(t, others...)
	a.register(t, "alice")
	b.register(t, "bob")
	eve.register(t, "eve")

	befriended(t, a, b)
	if got := emitted[RequestView](b, EventFriendRequest); len(got) != 1 || got[0].From != "alice" || got[0].Address != a.n.Address().String() {
		t.Fatalf("friend-request events %+v", got)
	}
	if fa, fb := a.friend("bob"), b.friend("alice"); fa.Safety != fb.Safety || len(fa.Safety) != 71 || fa.State != "friend" || fa.Since == 0 {
		t.Fatalf("friend views %+v / %+v", fa, fb)
	}
	if st := b.s.Stats(); st.ChainsRetried == 0 || st.ChainsSent < 8 {
		t.Fatalf("bob's chains: %+v (every share's first chain went through the dropper)", st)
	}
	if st := drop.s.Stats(); st.OnionsDropped == 0 || st.OnionsForwarded != 0 {
		t.Fatalf("dropper: %+v", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	var ids []string
	for _, text := range []string{"one", "two"} {
		res, err := a.s.Send(ctx, "bob", text)
		if err != nil || res.Delivered != "direct" {
			t.Fatalf("send %q: %+v %v", text, res, err)
		}
		ids = append(ids, res.ID)
	}
	if res, err := b.s.Send(ctx, "alice", "three"); err != nil || res.Delivered != "direct" {
		t.Fatalf("send back: %+v %v", res, err)
	}
	wait.Until(t, long, "messages", func() bool { return len(texts(b)) == 2 && len(texts(a)) == 1 })
	if got := texts(b); !slices.Equal(got, []string{"alice: one", "alice: two"}) {
		t.Fatalf("bob got %q", got)
	}
	if got := texts(a); !slices.Equal(got, []string{"bob: three"}) {
		t.Fatalf("alice got %q", got)
	}
	wait.Until(t, long, "delivered", func() bool { return len(emitted[DeliveredView](a, EventDelivered)) >= 2 })
	for i, d := range emitted[DeliveredView](a, EventDelivered) {
		if d.To != "bob" || d.ID != ids[i] {
			t.Fatalf("delivered event %d: %+v, want %s", i, d, ids[i])
		}
	}
	h, err := a.s.History("bob")
	if err != nil || len(h) != 3 || h[0].State != "delivered" || h[2].From != "bob" {
		t.Fatalf("alice's history %+v %v", h, err)
	}
	if f := b.friend("alice"); f.Unread != 2 {
		t.Fatalf("unread %d", f.Unread)
	} else if b.s.MarkRead("alice"); b.friend("alice").Unread != 0 {
		t.Fatal("MarkRead left unread messages")
	}

	t.Run("third node", func(t *testing.T) {
		marker := "secret-marker-7f3a"
		cm := sealFor(t, a, "bob", plain{Kind: kindReceipt, Time: 1})
		text := sealFor(t, a, "bob", plain{Kind: kindText, Number: 1, Time: 1, Body: []byte(marker)})
		if bytes.Contains(text.Sealed, []byte(marker)) {
			t.Fatal("the sealed message holds its text")
		}
		// Eve cannot open it (no session) nor pass it off as hers.
		if _, err := eve.s.receive(a.n.Address(), text, false); serviceCode(err) != CodeNotFriend {
			t.Fatalf("eve opening a captured message: %v", err)
		}
		if code := ask(t, eve, b, cm); code != CodeNotFriend {
			t.Fatalf("eve injecting a captured message: %q", code)
		}
		if code := ask(t, eve, b, &wire.ChatMessage{Session: [16]byte{1}, Sealed: []byte("hello")}); code != CodeNotFriend {
			t.Fatalf("eve's own message: %q", code)
		}
		tampered := &wire.ChatMessage{Session: cm.Session, Sealed: bytes.Clone(cm.Sealed)}
		tampered.Sealed[len(tampered.Sealed)-1] ^= 1
		if code := ask(t, a, b, tampered); code != CodeForged {
			t.Fatalf("tampered: %q", code)
		}
		if code := ask(t, a, b, cm); code != "" {
			t.Fatalf("the untampered receipt: %q", code)
		}
		if code := ask(t, a, b, cm); code != CodeReplay {
			t.Fatalf("replayed: %q", code)
		}
		// Forged and replayed shares.
		bobKey, aliceKey := b.s.h.Identity().SignKey(), a.s.h.Identity().SignKey()
		forged := &wire.ConnectShare{Session: [16]byte{9}, From: bobKey, To: aliceKey, Time: time.Now().UnixMilli()}
		forged.Sig = eve.s.h.Identity().Sign(forged.SignedBytes())
		if code := serviceCode(a.s.takeShare(forged)); code != CodeForged {
			t.Fatalf("a share eve signed as bob: %q", code)
		}
		own := &wire.ConnectShare{Session: [16]byte{9}, From: eve.s.h.Identity().SignKey(), To: aliceKey, Time: time.Now().UnixMilli()}
		own.Sig = eve.s.h.Identity().Sign(own.SignedBytes())
		if code := serviceCode(a.s.takeShare(own)); code != CodeNotFriend {
			t.Fatalf("eve's own share: %q", code)
		}
		a.s.mu.Lock()
		sid := a.s.friends["bob"].Current
		a.s.mu.Unlock()
		replay := &wire.ConnectShare{Session: sid, Seq: 2, From: bobKey, To: aliceKey, Time: time.Now().UnixMilli()}
		replay.Sig = b.s.h.Identity().Sign(replay.SignedBytes())
		if code := serviceCode(a.s.takeShare(replay)); code != CodeReplay {
			t.Fatalf("a share of a made session: %q", code)
		}
		// A replayed onion layer.
		hop := others[4]
		hops := []onion.Hop{{Address: hop.n.Address(), Key: hop.s.okey.Public()}, {Address: others[5].n.Address(), Key: others[5].s.okey.Public()}, {Address: others[6].n.Address(), Key: others[6].s.okey.Public()}}
		payload, _ := wire.Marshal(own)
		o, err := onion.Build(hops, onion.Hop{Address: a.n.Address(), Key: a.s.okey.Public()}, payload, time.Now(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := hop.s.peel(o); err != nil {
			t.Fatalf("first peel: %v", err)
		}
		if err := hop.s.peel(o); err == nil {
			t.Fatal("a replayed onion was forwarded")
		}
		// A request whose record does not verify, or is another node's.
		rec := *eve.users.Record()
		rec.Index++
		if code := ask(t, eve, b, &wire.FriendRequest{From: rec, To: "bob", OnionKey: eve.s.okey.Public()}); code != CodeForged {
			t.Fatalf("a request with a record that does not verify: %q", code)
		}
		if code := ask(t, eve, b, &wire.FriendRequest{From: *a.users.Record(), To: "bob", OnionKey: eve.s.okey.Public()}); code != CodeForged {
			t.Fatalf("a request with alice's record from eve: %q", code)
		}
		if _, err := a.s.Send(ctx, "bob", strings.Repeat("x", MaxText+1)); node.Explain(err).Code != CodeTooLarge {
			t.Fatalf("an oversized text: %v", err)
		}
		if _, err := eve.s.Send(ctx, "bob", "hi"); node.Explain(err).Code != CodeNotFriend {
			t.Fatalf("a message to a non-friend: %v", err)
		}
		if got := texts(b); len(got) != 2 {
			t.Fatalf("bob was told of %q", got)
		}
	})

	// Offline: bob goes away; alice's messages are held; bob comes back.
	b.stop()
	var held []string
	for _, text := range []string{"four", "five", "six"} {
		res, err := a.s.Send(ctx, "bob", text)
		if err != nil || res.Delivered != "stored" {
			t.Fatalf("send %q to the away bob: %+v %v", text, res, err)
		}
		held = append(held, res.ID)
	}
	b2 := r.join(b.st, Config{}, nil)
	// The stopped node may have taken a message in its last moment
	// without its answer getting out (as a tab closing mid-request):
	// bob, across both runs on one store, gets each once.
	bobGot := func() []string { return append(texts(b), texts(b2)...) }
	wait.Until(t, long, "bob gets the held messages", func() bool { return len(bobGot()) >= 5 })
	wait.Until(t, long, "alice hears they were delivered", func() bool {
		var got []string
		for _, d := range emitted[DeliveredView](a, EventDelivered) {
			got = append(got, d.ID)
		}
		for _, id := range held {
			if !slices.Contains(got, id) {
				return false
			}
		}
		return true
	})
	if got := bobGot(); !slices.Equal(got, []string{"alice: one", "alice: two", "alice: four", "alice: five", "alice: six"}) {
		t.Fatalf("bob, back, got %q", got)
	}
	if len(texts(b2)) == 0 {
		t.Fatal("bob, back, got nothing: the test did not exercise offline delivery")
	}
	h, _ = b2.s.History("alice")
	var hist []string
	for _, m := range h {
		hist = append(hist, m.From+": "+m.Text)
	}
	if !slices.Equal(hist, []string{"alice: one", "alice: two", ": three", "alice: four", "alice: five", "alice: six"}) {
		t.Fatalf("bob's history %q", hist)
	}
}

// In a zone with only four candidate hops, one of them dropping every
// onion (and on every share's first chain), the exchange still completes:
// a share's next chains prefer hops that were in fewer failed chains,
// and take one that failed again when too few others are left.
func TestExchangeInSmallZone(t *testing.T) {
	r := newTestRelay(t)
	a := r.join(nil, Config{}, nil)
	drop := r.join(nil, Config{DropOnions: true}, nil)
	b := r.join(nil, Config{}, func(s *Service) { s.preferHop = drop.n.Address() })
	nodes := []*testNode{a, b, drop}
	for range 3 {
		nodes = append(nodes, r.join(nil, Config{}, nil))
	}
	meshed(t, nodes...)
	a.register(t, "alice")
	b.register(t, "bob")
	befriended(t, a, b)
	if st := b.s.Stats(); st.ChainsRetried < 4 {
		t.Fatalf("bob's chains: %+v (every share's first chain went through the dropper)", st)
	}
}

// befriended makes a befriend b (alice and bob) through the real
// request, answer and key exchange, and waits for both sessions.
func befriended(t *testing.T, a, b *testNode) {
	t.Helper()
	answer := make(chan string, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), long)
		defer cancel()
		got, err := a.s.Befriend(ctx, "bob")
		if err != nil {
			got = "error: " + err.Error()
		}
		answer <- got
	}()
	wait.Until(t, long, "bob gets alice's request", func() bool { return len(b.s.Requests()) == 1 })
	if err := b.s.Accept(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if got := <-answer; got != "accepted" {
		t.Fatalf("Befriend: %s", got)
	}
	wait.Until(t, long, "sessions ready", func() bool {
		return a.friend("bob").Session == "ready" && b.friend("alice").Session == "ready"
	})
}

// A session past SessionMaxAge is made again by a new key exchange before
// the next message goes, and so is one the friend lost (its state gone:
// it answers no-session); the messages arrive either way, once, in order.
func TestSessionRemade(t *testing.T) {
	r := newTestRelay(t)
	a := r.join(nil, Config{}, nil)
	b := r.join(nil, Config{}, nil)
	nodes := []*testNode{a, b}
	for range 4 {
		nodes = append(nodes, r.join(nil, Config{}, nil))
	}
	meshed(t, nodes...)
	a.register(t, "alice")
	b.register(t, "bob")
	befriended(t, a, b)
	current := func(tn *testNode, name string) [16]byte {
		tn.s.mu.Lock()
		defer tn.s.mu.Unlock()
		return tn.s.friends[name].Current
	}
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	send := func(text string) {
		t.Helper()
		if res, err := a.s.Send(ctx, "bob", text); err != nil || res.Delivered != "direct" {
			t.Fatalf("send %q: %+v %v", text, res, err)
		}
	}
	send("before")
	first := current(a, "bob")

	// Expired: alice's sessions are older than SessionMaxAge.
	a.s.mu.Lock()
	for _, x := range a.s.sessions {
		x.Created = a.s.h.Clock().Now().Add(-SessionMaxAge - time.Hour).UnixMilli()
	}
	a.s.mu.Unlock()
	send("after expiry")
	second := current(a, "bob")
	if second == first {
		t.Fatal("the expired session is still alice's current one")
	}

	// Lost: bob forgets every session (a wiped store would).
	b.s.mu.Lock()
	for _, x := range b.s.sessions {
		b.s.dropSessionLocked(x)
	}
	b.s.mu.Unlock()
	send("after loss")
	if current(a, "bob") == second {
		t.Fatal("alice still uses the session bob lost")
	}
	wait.Until(t, long, "bob's messages", func() bool { return len(texts(b)) == 3 })
	if got := texts(b); !slices.Equal(got, []string{"alice: before", "alice: after expiry", "alice: after loss"}) {
		t.Fatalf("bob got %q", got)
	}
}
