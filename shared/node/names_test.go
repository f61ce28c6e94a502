package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/dht"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// testLedger is a zone ledger that sequences username claims, as a name's
// home relay does.
type testLedger struct {
	key  *identity.Identity
	zone string

	mu  sync.Mutex
	log *ledger.Log
}

func newTestLedger(t testing.TB, zone string) *testLedger {
	t.Helper()
	k, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin(zone, k.SignKey()), k.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	return &testLedger{key: k, zone: zone, log: l}
}

// append sequences c and returns its index.
func (l *testLedger) append(c *wire.UserClaim) (int64, error) {
	e, err := names.EntryFor(c)
	if err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log.Append(e)
}

// prove returns the record of c, sequenced at idx, proven against the
// ledger's latest checkpoint.
func (l *testLedger) prove(c *wire.UserClaim, idx int64) (*wire.UserRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	note, cp := l.log.Checkpoint()
	p, err := l.log.InclusionProof(idx, cp.Size)
	if err != nil {
		return nil, err
	}
	rec := &wire.UserRecord{Claim: *c, RelayKey: l.key.SignKey(), Zone: l.zone, Index: uint64(idx), Checkpoint: note}
	for _, h := range p {
		rec.Proof = append(rec.Proof, h)
	}
	return rec, nil
}

func (l *testLedger) sequence(t testing.TB, c *wire.UserClaim) *wire.UserRecord {
	t.Helper()
	idx, err := l.append(c)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := l.prove(c, idx)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// claimAs signs a claim of name by n at its current lease.
func claimAs(t testing.TB, n *Node, name string, version uint64) *wire.UserClaim {
	t.Helper()
	n.mu.Lock()
	lease := n.lease
	n.mu.Unlock()
	c, err := names.NewClaim(n.id, &lease, name, version)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publishAs stores value under name's key in n's DHT, signed by n.
func publishAs(t testing.TB, n *Node, name string, seq uint64, rec *wire.UserRecord) {
	t.Helper()
	sealed, err := names.Seal(name, rec)
	if err != nil {
		t.Fatal(err)
	}
	r := dht.Record{Key: names.Key(name), Seq: seq, Value: sealed}
	if err := r.Sign(n.id.SigningKey()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if stored, err := n.table().Put(ctx, r); err != nil || stored == 0 {
		t.Fatalf("publishing a record of %q: stored at %d nodes, %v", name, stored, err)
	}
}

// syncBuffer is a log destination for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A record published by its owner is found by another node through the
// DHT alone (these nodes have no relay), verified, and cached; records
// that do not verify are dropped and logged, and a later claim of the
// name by another key loses to the owner's.
func TestResolveThroughDHT(t *testing.T) {
	var skew atomic.Int64
	var logs syncBuffer
	ns := swarm(t, 8, Config{
		Now:    func() time.Time { return time.Now().Add(time.Duration(skew.Load())) },
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	home := newTestLedger(t, "b")
	for _, n := range ns {
		n.zoneKeys[home.key.SignKey()] = home.zone // the relay of zone b is federated
	}
	kademliaLinks(ns)
	owner, asker := ns[0], ns[7]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rec := home.sequence(t, claimAs(t, owner, "alice", 1))
	owner.mu.Lock()
	owner.userRec = rec
	owner.mu.Unlock()
	owner.publishName(ctx, rec)
	owner.mu.Lock()
	stored := owner.published.version
	owner.mu.Unlock()
	if stored != 1 {
		t.Fatal("the owner's record was not stored by any node")
	}

	got, err := asker.Resolve(ctx, "Alice", false)
	if err != nil {
		t.Fatalf("resolve through the DHT: %v", err)
	}
	if !names.Same(&got.Claim, &rec.Claim) || got.Index != rec.Index {
		t.Fatalf("resolved %+v, want the owner's record", got.Claim)
	}
	if mine, err := owner.Resolve(ctx, "alice", true); err != nil || !names.Same(&mine.Claim, &rec.Claim) {
		t.Fatalf("the owner resolving its own name: %v", err)
	}

	// Other nodes store records under the same key: a claim of alice by
	// another key whose proof is tampered with, the owner's genuine record
	// signed into the DHT by someone else, and a genuine but later claim
	// by another key. The first two do not verify; the third loses.
	forged := home.sequence(t, claimAs(t, ns[3], "alice", 1))
	forged.Proof[0][0] ^= 1
	publishAs(t, ns[3], "alice", 1, forged)
	publishAs(t, ns[4], "alice", 1, rec)
	later := home.sequence(t, claimAs(t, ns[5], "alice", 1))
	publishAs(t, ns[5], "alice", 1, later)
	const dropped = "dropped a username record"
	before := strings.Count(logs.String(), dropped)
	got, err = asker.Resolve(ctx, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claim.SignKey != owner.id.SignKey() {
		t.Fatalf("resolved a record of key %x, not the owner's", got.Claim.SignKey[:4])
	}
	if n := strings.Count(logs.String(), dropped) - before; n != 2 {
		t.Errorf("%d records logged as not verifying, want 2:\n%s", n, logs.String())
	}

	// An owner moves on to new versions: an asker that resolved lately
	// answers from memory until it asks afresh or five minutes pass.
	carol := ns[1]
	publish := func(version uint64) {
		rec := home.sequence(t, claimAs(t, carol, "carol", version))
		carol.mu.Lock()
		carol.userRec = rec
		carol.mu.Unlock()
		carol.publishName(ctx, rec)
	}
	resolve := func(fresh bool) uint64 {
		t.Helper()
		got, err := asker.Resolve(ctx, "carol", fresh)
		if err != nil {
			t.Fatalf("resolve (fresh %v): %v", fresh, err)
		}
		return got.Claim.Version
	}
	publish(1)
	if v := resolve(false); v != 1 {
		t.Fatalf("resolved version %d, want 1", v)
	}
	publish(2)
	if v := resolve(false); v != 1 {
		t.Fatalf("a cached resolve gave version %d, want 1 from memory", v)
	}
	if v := resolve(true); v != 2 {
		t.Fatalf("a fresh resolve gave version %d, want 2", v)
	}
	publish(3)
	if v := resolve(false); v != 2 {
		t.Fatalf("the fresh answer did not refresh the cache: version %d, want 2", v)
	}
	skew.Store(int64(resolveTTL + time.Second))
	if v := resolve(false); v != 3 {
		t.Fatalf("after five minutes a resolve gave version %d, want 3", v)
	}

	// No record anywhere and no relay to ask: unavailable once the
	// caller's deadline passes.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = asker.Resolve(short, "bob", false)
	if code, msg := ExplainNameError(err); code != CodeUnavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("resolve with no record and no relay: %v (%s: %s)", err, code, msg)
	}
}

// newNode makes a node that is not admitted.
func newNode(t *testing.T) *Node {
	t.Helper()
	n, err := New(Config{Relay: "http://127.0.0.1:1", Store: store.NewMemory(), Transport: transport.NewNetwork().Transport()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The errors a user sees: which rule a name breaks, and the codes the page
// and the native node show, worded without Go package names.
func TestNameErrors(t *testing.T) {
	n := newNode(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, says string
	}{
		{"", "the name is empty"},
		{strings.Repeat("a", 17), "too long: 17 characters, at most 16"},
		{"bob_1", "only letters and digits, not '_'"},
		{"zoë", "only letters and digits, not 'ë'"},
	} {
		for op, call := range map[string]func() error{
			"register": func() error { _, err := n.Register(ctx, tc.name); return err },
			"resolve":  func() error { _, err := n.Resolve(ctx, tc.name, false); return err },
		} {
			err := call()
			if !errors.Is(err, names.ErrInvalid) || !errors.Is(err, wire.ErrBadName) {
				t.Errorf("%s(%q): %v, want an invalid-name error", op, tc.name, err)
				continue
			}
			code, msg := ExplainNameError(err)
			if code != CodeInvalid || !strings.Contains(msg, tc.says) || strings.Contains(msg, "names:") {
				t.Errorf("%s(%q): %s %q, want invalid saying %q", op, tc.name, code, msg, tc.says)
			}
		}
	}
	if _, err := n.Register(ctx, "alice"); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("register before admission: %v", err)
	} else if code, msg := ExplainNameError(err); code != CodeNotAdmitted || strings.HasPrefix(msg, "node:") {
		t.Errorf("register before admission: %s %q", code, msg)
	}
	if _, err := n.Resolve(ctx, "alice", false); !errors.Is(err, ErrNotAdmitted) {
		t.Errorf("resolve before admission: %v", err)
	}

	// A node that holds a name cannot take another.
	relay, _ := identity.New()
	a := admitted(t, relay)
	home := newTestLedger(t, "z")
	a.zoneKeys[home.key.SignKey()] = "z"
	a.userRec = home.sequence(t, claimAs(t, a, "bob", 1))
	_, err := a.Register(ctx, "Alice")
	if code, msg := ExplainNameError(err); !errors.Is(err, ErrAlreadyRegistered) || code != CodeAlreadyRegistered ||
		msg != `this node is already registered as "bob"` {
		t.Errorf("a second name: %v (%s %q)", err, code, msg)
	}
	// Claiming the name it holds at the address it has needs no relay.
	if rec, err := a.Register(ctx, "BOB"); err != nil || rec != a.userRec {
		t.Errorf("the name it holds: %v", err)
	}

	// Refusals from the relay keep their sentinel and read as the relay
	// words them, or as the node does if the relay gives no reason.
	for _, tc := range []struct {
		err        error
		sentinel   error
		code, says string
	}{
		{refusal("alice", &wire.RemoteError{Code: wire.CodeNameTaken, Message: `"alice" is taken`}), wire.ErrNameTaken, CodeTaken, `"alice" is taken`},
		{refusal("alice", &wire.RemoteError{Code: wire.CodeNameTaken}), wire.ErrNameTaken, CodeTaken, `"alice" is taken`},
		{notFound("bob"), wire.ErrNotFound, CodeNotFound, `no user named "bob"`},
		{refusal("bob", &wire.RemoteError{Code: wire.CodeUnavailable}), wire.ErrUnavailable, CodeUnavailable, "try again"},
		{refusal("bob", &wire.RemoteError{Code: wire.CodeRateLimited, Message: "slow down"}), wire.ErrRateLimited, CodeRateLimited, "slow down"},
		{fmt.Errorf("node: the relay's record does not verify: %w", names.ErrForged), names.ErrForged, CodeForged, "the relay's record does not verify: record does not verify"},
	} {
		code, msg := ExplainNameError(tc.err)
		if !errors.Is(tc.err, tc.sentinel) || code != tc.code || msg != tc.says && !strings.Contains(msg, tc.says) {
			t.Errorf("%v: %s %q, want %s saying %q", tc.err, code, msg, tc.code, tc.says)
		}
	}
	var re *wire.RemoteError
	if !errors.As(refusal("alice", &wire.RemoteError{Code: wire.CodeNameTaken}), &re) {
		t.Error("a refusal hides the relay's error")
	}
}

func TestResolveCacheBounds(t *testing.T) {
	var c resolveCache
	t0 := time.Now()
	rec := func(i int) *wire.UserRecord { return &wire.UserRecord{Index: uint64(i)} }
	for i := 0; i < resolveCacheSize+10; i++ {
		c.put(fmt.Sprint("n", i), rec(i), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(c.m) != resolveCacheSize {
		t.Fatalf("%d records cached, limit %d", len(c.m), resolveCacheSize)
	}
	for i := 0; i < 10; i++ {
		if c.get(fmt.Sprint("n", i), t0) != nil {
			t.Errorf("the oldest record n%d is still cached", i)
		}
	}
	last := fmt.Sprint("n", resolveCacheSize+9)
	if r := c.get(last, t0.Add(time.Minute)); r == nil || r.Index != resolveCacheSize+9 {
		t.Error("the newest record is gone")
	}
	if c.get(last, t0.Add(resolveTTL+time.Minute)) != nil {
		t.Error("a record older than five minutes was answered")
	}
}

func TestViewRecord(t *testing.T) {
	relay, _ := identity.New()
	a := admitted(t, relay)
	home := newTestLedger(t, "b")
	for i := 0; i < 5; i++ {
		home.append(claimAs(t, a, fmt.Sprint("x", i), 1))
	}
	rec := home.sequence(t, claimAs(t, a, "alice", 1))
	v := ViewRecord(rec)
	if v.Name != "alice" || v.Address != a.Address().String() || v.Zone != "z" || v.Version != 1 ||
		v.Seq != "b:5" || v.Ledger.Zone != "b" || v.Ledger.Index != 5 || v.Ledger.Size != 6 ||
		len(v.SignKey) != 64 || len(v.AgreeKey) != 64 || len(v.Ledger.RelayKey) != 64 {
		t.Errorf("view %+v", v)
	}
}

func TestStripPrefixes(t *testing.T) {
	for in, want := range map[string]string{
		"names: invalid name: the name is empty":              "invalid name: the name is empty",
		"node: this node is already registered as \"bob\"":    "this node is already registered as \"bob\"",
		"names: record does not verify: ledger: bad proof: x": "record does not verify: bad proof: x",
		"hostnames: stay": "hostnames: stay",
		"":                "",
	} {
		if got := stripPrefixes(in); got != want {
			t.Errorf("stripPrefixes(%q) = %q, want %q", in, got, want)
		}
	}
}
