//go:build !js

package unicast

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wait"
)

// flakyStore fails the next Put whose key contains fail (once).
type flakyStore struct {
	store.Store
	mu   sync.Mutex
	fail string
}

func (f *flakyStore) Put(k string, v []byte) error {
	f.mu.Lock()
	if f.fail != "" && strings.Contains(k, f.fail) {
		f.fail = ""
		f.mu.Unlock()
		return errors.New("flaky: disk full")
	}
	f.mu.Unlock()
	return f.Store.Put(k, v)
}
func (f *flakyStore) failNext(sub string) { f.mu.Lock(); f.fail = sub; f.mu.Unlock() }

// pair makes a and b friends (alice/bob) and gives them a session as the
// exchange would (a initiator), without the onion chains.
func pair(t *testing.T, a, b *testNode, readyB bool) {
	t.Helper()
	ra, rb := a.users.Record(), b.users.Record()
	now := time.Now().UnixMilli()
	a.s.mu.Lock()
	a.s.friends["bob"] = &friend{Name: "bob", SignKey: rb.Claim.SignKey, AgreeKey: rb.Claim.AgreeKey, OnionKey: b.s.okey.Public(), Address: b.n.Address(), Since: now, State: stateFriend}
	a.s.saveFriendLocked(a.s.friends["bob"])
	a.s.mu.Unlock()
	b.s.mu.Lock()
	b.s.friends["alice"] = &friend{Name: "alice", SignKey: ra.Claim.SignKey, AgreeKey: ra.Claim.AgreeKey, OnionKey: a.s.okey.Public(), Address: a.n.Address(), Since: now, State: stateFriend}
	b.s.saveFriendLocked(b.s.friends["alice"])
	b.s.mu.Unlock()

	x := &exchange{name: "bob", started: time.Now()}
	rand.Read(x.id[:])
	for i := range x.shares {
		rand.Read(x.shares[i][:])
	}
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	copy(x.priv[:], k.Bytes())
	copy(x.pub[:], k.PublicKey().Bytes())
	in := &incoming{name: "alice", ratchet: x.pub, shares: x.shares, have: [4]bool{true, true, true, true}}
	b.s.mu.Lock()
	xb, sealed, err := b.s.receiveSessionLocked(b.s.friends["alice"], x.id, in)
	if err == nil && readyB {
		b.s.sessionReadyLocked(xb)
	}
	b.s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	a.s.mu.Lock()
	_, err = a.s.confirmLocked(a.s.friends["bob"], x, sealed)
	a.s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}

func twoNodes(t *testing.T) (*testNode, *testNode, *flakyStore, *flakyStore) {
	r := newTestRelay(t)
	fa := &flakyStore{Store: store.NewMemory()}
	fb := &flakyStore{Store: store.NewMemory()}
	a := r.join(fa, Config{}, nil)
	b := r.join(fb, Config{}, nil)
	meshed(t, a, b)
	a.register(t, "alice")
	b.register(t, "bob")
	return a, b, fa, fb
}

// One failed store write in Send must not leave a hole in the numbering
// (every later message would wait at bob as "early", for ever).
func TestSendStoreFailureLeavesNoGap(t *testing.T) {
	a, b, fa, _ := twoNodes(t)
	pair(t, a, b, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if res, err := a.s.Send(ctx, "bob", "one"); err != nil {
		t.Fatalf("one: %+v %v", res, err)
	}
	wait.Until(t, 10*time.Second, "one", func() bool { return len(texts(b)) == 1 })
	fa.failNext("outbox/")
	_, err := a.s.Send(ctx, "bob", "two")
	t.Logf("send two (store failure): %v", err)
	for _, s := range []string{"three", "four"} {
		res, err := a.s.Send(ctx, "bob", s)
		t.Logf("send %s: %+v %v", s, res, err)
	}
	time.Sleep(2 * time.Second)
	b.s.mu.Lock()
	early := len(b.s.early["alice"])
	b.s.mu.Unlock()
	t.Logf("bob got %q; %d early held; alice's history states:", texts(b), early)
	h, _ := a.s.History("bob")
	for _, m := range h {
		t.Logf("  %s %s", m.Text, m.State)
	}
	if len(texts(b)) == 1 && early == 2 {
		t.Errorf("after one failed write, messages three and four are never delivered (held early at bob)")
	}
}

// With no ready session (expired, lost, or never made because the friend
// went away), Send to an away friend keeps the message, queued.
func TestSendWithoutSessionQueues(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	pair(t, a, b, true)
	a.s.mu.Lock()
	for _, x := range a.s.sessions {
		x.Created = time.Now().Add(-SessionMaxAge - time.Hour).UnixMilli() // expired
	}
	a.s.mu.Unlock()
	b.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	res, err := a.s.Send(ctx, "bob", "are you there?")
	a.s.mu.Lock()
	n := len(a.s.outbox["bob"])
	a.s.mu.Unlock()
	t.Logf("send: %+v %v (code %s); outbox %d", res, err, node.Explain(err).Code, n)
	if err != nil && n == 0 {
		t.Errorf("a message to an away friend whose session expired is refused and not kept for offline delivery")
	}
}

// The receiver's first message on a fresh session, whose history write
// fails: the open is rolled back (its ready state too), so the message
// opens when it comes again and is delivered.
func TestReceiveStoreFailureRollsBack(t *testing.T) {
	a, b, _, fb := twoNodes(t)
	pair(t, a, b, false)
	fb.failNext("history/")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := a.s.Send(ctx, "bob", "first")
	t.Logf("send first: %+v %v", res, err)
	a.s.flush(ctx, "bob", false) // the retry
	res, err = a.s.Send(ctx, "bob", "second")
	t.Logf("send second: %+v %v", res, err)
	a.s.flush(ctx, "bob", false)
	wait.Until(t, 20*time.Second, "bob gets both messages", func() bool { return len(texts(b)) == 2 })
	a.s.mu.Lock()
	n := len(a.s.outbox["bob"])
	a.s.mu.Unlock()
	t.Logf("bob got %q; alice's outbox %d", texts(b), n)
	if len(texts(b)) == 0 {
		t.Errorf("the first message is lost (and the second waits behind it)")
	}
}

// Alice moved (a new address) while bob was away and missed her
// Presence: bob refuses her message as a stranger's until her Presence,
// which alice sends on that refusal, tells him where she is.
func TestMovedFriendFound(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	pair(t, a, b, true)
	b.s.mu.Lock()
	b.s.friends["alice"].Address = id.Address{0xaa} // alice's old address
	b.s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := a.s.Send(ctx, "bob", "hi from my new address")
	t.Logf("send: %+v %v", res, err)
	a.s.flush(ctx, "bob", true)
	a.s.mu.Lock()
	it := 0
	var putAt int64
	for _, x := range a.s.outbox["bob"] {
		it++
		putAt = x.PutAt
	}
	a.s.mu.Unlock()
	t.Logf("bob got %q; outbox %d putAt %d", texts(b), it, putAt)
	if got := texts(b); len(got) != 1 || !strings.HasSuffix(got[0], "hi from my new address") {
		t.Errorf("bob got %q from his friend at her new address", got)
	}
}

// A friend's message dated where no date can show (or days ahead) is kept
// as of the receiver's clock: the page could not show that conversation
// otherwise.
func TestFarTimeClamped(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	pair(t, a, b, true)
	before := time.Now().UnixMilli()
	for i, at := range []int64{9e15, time.Now().Add(72 * time.Hour).UnixMilli()} {
		var mid [16]byte
		rand.Read(mid[:])
		cm := sealFor(t, a, "bob", plain{Kind: kindText, Number: uint64(i + 1), ID: mid, Time: at, Body: []byte("from the future")})
		if code := ask(t, a, b, cm); code != "" {
			t.Fatalf("message %d refused: %s", i, code)
		}
	}
	hist, err := b.s.History("alice")
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %+v, %v", hist, err)
	}
	for _, m := range hist {
		if m.At < before || m.At > time.Now().UnixMilli() {
			t.Errorf("kept as of %d, not the receiver's clock (%d…now)", m.At, before)
		}
	}
}

// A session dropped while an old reference to it is still in use (a
// flush or a Send that took it before) is not written back to the store:
// it would come back at the next load.
func TestDroppedSessionStaysDropped(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	pair(t, a, b, true)
	s := a.s
	s.mu.Lock()
	x := s.sessions[s.friends["bob"].Current]
	s.dropSessionLocked(x)
	s.saveSessionLocked(x) // the old reference's save
	s.mu.Unlock()
	if _, err := s.h.Store().Get(keySession(x.Name, x.ID)); err == nil {
		t.Fatal("the dropped session is back in the store")
	}
}

// Friend requests nobody answers leave after RequestMaxAge, so they cannot
// keep the list full for good.
func TestRequestsExpire(t *testing.T) {
	a, _, _, _ := twoNodes(t)
	s := a.s
	old := s.h.Clock().Now().Add(-RequestMaxAge - time.Hour).UnixMilli()
	s.mu.Lock()
	for i := range MaxRequests {
		r := &request{From: fmt.Sprintf("asker%d", i), At: old}
		s.requests[r.From] = r
		if err := putRecord(s.h.Store(), keyRequest(r.From), r); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Unlock()
	if got := s.Requests(); len(got) != 0 {
		t.Fatalf("%d requests past RequestMaxAge still wait", len(got))
	}
	if keys, _ := s.h.Store().Keys("requests/"); len(keys) != 0 {
		t.Fatalf("the store keeps %d expired requests", len(keys))
	}
}

// A node that comes back loads what its store holds and leaves out, with
// a warning, what it cannot trust: a record that does not decode, one
// stored under another's key, a session whose ratchet state is corrupt.
func TestLoadSkipsBadRecords(t *testing.T) {
	a, _, _, _ := twoNodes(t)
	s := a.s
	st := s.h.Store()
	good := &friend{Name: "carol"}
	for k, r := range map[string]record{keyFriend("carol"): good, keyFriend("mallory"): &friend{Name: "dave"}} {
		if err := putRecord(st, k, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(keyFriend("erin"), []byte{recordVersion, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	bad := &session{ID: [16]byte{1}, Name: "carol", State: []byte("not a ratchet")}
	if err := putRecord(st, keySession(bad.Name, bad.ID), bad); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.friends, s.sessions = map[string]*friend{}, map[[16]byte]*session{}
	s.loadFriends()
	s.loadSessions()
	names := slices.Sorted(maps.Keys(s.friends))
	_, kept := s.sessions[bad.ID]
	s.mu.Unlock()
	if !slices.Equal(names, []string{"carol"}) {
		t.Errorf("friends loaded: %v, want only carol (dave's record is under mallory's key, erin's does not decode)", names)
	}
	if kept {
		t.Error("a session whose ratchet state is corrupt was loaded")
	}
}
