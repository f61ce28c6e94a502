package username

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

	"ddt/shared/clock"
	"ddt/shared/dht"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/names"
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// keyRecordIn is where the client keeps its record in the node's store.
const keyRecordIn = wire.FeatureNames + "/" + keyRecord

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

// info is the relay that keeps l, as nodes trust it.
func (l *testLedger) info() wire.RelayInfo {
	return wire.RelayInfo{Zone: l.zone, Key: l.key.SignKey()}
}

// claimAs signs a claim of name by c's node at its current lease.
func claimAs(t testing.TB, c *Client, name string, version uint64) *wire.UserClaim {
	t.Helper()
	lease := c.h.Lease()
	claim, err := names.NewClaim(c.h.Identity(), &lease, name, version)
	if err != nil {
		t.Fatal(err)
	}
	return claim
}

// publishAs stores c's record rec in the DHT, sealed and signed as the
// client publishes it.
func publishAs(t testing.TB, c *Client, rec *wire.UserRecord) {
	t.Helper()
	r, err := names.Seal(c.h.Identity(), rec)
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, r)
}

// copyAs stores owner's record rec in the DHT re-signed by c, as a node
// that copies another's value would.
func copyAs(t testing.TB, c, owner *Client, rec *wire.UserRecord) {
	t.Helper()
	r, err := names.Seal(owner.h.Identity(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(c.h.Identity().SigningKey()); err != nil {
		t.Fatal(err)
	}
	put(t, c, r)
}

func put(t testing.TB, c *Client, r dht.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if stored, err := c.h.Put(ctx, r); err != nil || stored == 0 {
		t.Fatalf("publishing a record under %s: stored at %d nodes, %v", r.Key.Short(), stored, err)
	}
}

// hold makes rec c's own record, as Register would have.
func (c *Client) hold(rec *wire.UserRecord) {
	c.mu.Lock()
	c.rec = rec
	c.mu.Unlock()
}

// skewed is the system clock, moved on by skew: for a cache's five
// minutes, while every timer runs in real time.
type skewed struct {
	clock.Clock
	skew atomic.Int64
}

func newSkewed() *skewed { return &skewed{Clock: clock.System} }

func (s *skewed) Now() time.Time { return s.Clock.Now().Add(time.Duration(s.skew.Load())) }

// swarm makes count nodes with a username client each, trusting the
// relays of extra too, which run the username service (the swarm's own
// relay is trusted and does not); it returns the clients, by node.
func swarm(t *testing.T, count int, clk clock.Clock, logger *slog.Logger, extra ...wire.RelayInfo) (*nodetest.Swarm, []*Client) {
	t.Helper()
	flags := []wire.RelayFlags{wire.RelayTrusted}
	for range extra {
		flags = append(flags, wire.RelayTrusted|wire.RelayNames)
	}
	return swarmFlags(t, count, clk, logger, extra, flags)
}

// swarmFlags is swarm with the flags the admission gives the swarm's
// relay and then each of extra.
func swarmFlags(t *testing.T, count int, clk clock.Clock, logger *slog.Logger, extra []wire.RelayInfo, flags []wire.RelayFlags) (*nodetest.Swarm, []*Client) {
	t.Helper()
	clients := make([]*Client, count)
	s := nodetest.New(t, count, nodetest.Options{
		Trusted: extra,
		Flags:   flags,
		Config: func(i int, c *node.Config) {
			clients[i] = New()
			c.Capabilities = []node.Capability{clients[i]}
			c.Clock, c.Logger = clk, logger
		},
		RelayFeatures: wire.Features{wire.FeatureNames},
	})
	return s, clients
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
	clk := newSkewed()
	var logs syncBuffer
	home := newTestLedger(t, "b") // the relay of zone b is federated
	sw, ns := swarm(t, 8, clk, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})), home.info())
	sw.KademliaLinks()
	owner, asker := ns[0], ns[7]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rec := home.sequence(t, claimAs(t, owner, "alice", 1))
	owner.hold(rec)
	owner.publish(ctx, rec)
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
	publishAs(t, ns[3], forged)
	copyAs(t, ns[4], owner, rec)
	later := home.sequence(t, claimAs(t, ns[5], "alice", 1))
	publishAs(t, ns[5], later)
	const dropped = "dropped a username record"
	before := strings.Count(logs.String(), dropped)
	got, err = asker.Resolve(ctx, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claim.SignKey != owner.h.Identity().SignKey() {
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
		carol.hold(rec)
		carol.publish(ctx, rec)
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
	clk.skew.Store(int64(resolveTTL + time.Second))
	if v := resolve(false); v != 3 {
		t.Fatalf("after five minutes a resolve gave version %d, want 3", v)
	}

	// No record anywhere and no relay to ask: unavailable once the
	// caller's deadline passes.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	_, err = asker.Resolve(short, "bob", false)
	if e := node.Explain(err); e.Code != node.CodeUnavailable || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("resolve with no record and no relay: %v (%s: %s)", err, e.Code, e.Error)
	}
}

// newClient makes a node that is not admitted, and its client.
func newClient(t *testing.T) *Client {
	t.Helper()
	c := New()
	_, err := node.New(node.Config{Relay: "http://127.0.0.1:1", Store: store.NewMemory(), Transport: transport.NewNetwork().Transport(),
		Capabilities: []node.Capability{c}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The errors a user sees: which rule a name breaks, and the codes the page
// and the native node show, worded without Go package names.
func TestNameErrors(t *testing.T) {
	n := newClient(t)
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
			e := node.Explain(err)
			if e.Code != CodeInvalid || !strings.Contains(e.Error, tc.says) || strings.Contains(e.Error, "names:") {
				t.Errorf("%s(%q): %s %q, want invalid saying %q", op, tc.name, e.Code, e.Error, tc.says)
			}
		}
	}
	if _, err := n.Register(ctx, "alice"); !errors.Is(err, node.ErrNotAdmitted) {
		t.Errorf("register before admission: %v", err)
	} else if e := node.Explain(err); e.Code != node.CodeNotAdmitted || strings.HasPrefix(e.Error, "node:") {
		t.Errorf("register before admission: %s %q", e.Code, e.Error)
	}
	if _, err := n.Resolve(ctx, "alice", false); !errors.Is(err, node.ErrNotAdmitted) {
		t.Errorf("resolve before admission: %v", err)
	}

	// A node that holds a name cannot take another.
	home := newTestLedger(t, "y")
	_, cs := swarm(t, 1, nil, nil, home.info())
	a := cs[0]
	a.hold(home.sequence(t, claimAs(t, a, "bob", 1)))
	_, err := a.Register(ctx, "Alice")
	if e := node.Explain(err); !errors.Is(err, ErrAlreadyRegistered) || e.Code != CodeAlreadyRegistered ||
		e.Error != `this node is already registered as "bob"` {
		t.Errorf("a second name: %v (%s %q)", err, e.Code, e.Error)
	}
	// Claiming the name it holds at the address it has needs no relay.
	if rec, err := a.Register(ctx, "BOB"); err != nil || rec != a.Record() {
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
		{refusal("bob", &wire.RemoteError{Code: wire.CodeNotFound}), wire.ErrNotFound, CodeNotFound, `no user named "bob"`},
		{refusal("bob", &wire.RemoteError{Code: wire.CodeUnavailable}), wire.ErrUnavailable, node.CodeUnavailable, "try again"},
		{refusal("bob", &wire.RemoteError{Code: wire.CodeRateLimited, Message: "slow down"}), wire.ErrRateLimited, node.CodeRateLimited, "slow down"},
		{refusal("bob", &wire.RemoteError{Code: wire.CodeAlreadyRegistered, Message: `this node is already registered as "alice"`}), wire.ErrAlreadyRegistered, CodeAlreadyRegistered, `already registered as "alice"`},
		{forged(names.ErrForged), names.ErrForged, CodeForged, "the relay's record does not verify: record does not verify"},
	} {
		e := node.Explain(tc.err)
		if !errors.Is(tc.err, tc.sentinel) || e.Code != tc.code || e.Error != tc.says && !strings.Contains(e.Error, tc.says) {
			t.Errorf("%v: %s %q, want %s saying %q", tc.err, e.Code, e.Error, tc.code, tc.says)
		}
	}
	var re *wire.RemoteError
	if !errors.As(refusal("alice", &wire.RemoteError{Code: wire.CodeNameTaken}), &re) {
		t.Error("a refusal hides the relay's error")
	}
}

func TestResolveCacheBounds(t *testing.T) {
	var c cache
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

func TestViewOf(t *testing.T) {
	home := newTestLedger(t, "b")
	sw, cs := swarm(t, 1, nil, nil, home.info())
	a, an := cs[0], sw.Nodes[0]
	for i := 0; i < 5; i++ {
		home.append(claimAs(t, a, fmt.Sprint("x", i), 1))
	}
	rec := home.sequence(t, claimAs(t, a, "alice", 1))
	v := ViewOf(rec)
	if v.Name != "alice" || v.Address != an.Address().String() || v.Zone != "z" || v.Version != 1 ||
		v.Seq != "b:5" || v.Ledger.Zone != "b" || v.Ledger.Index != 5 || v.Ledger.Size != 6 ||
		len(v.SignKey) != 64 || len(v.AgreeKey) != 64 || len(v.Ledger.RelayKey) != 64 {
		t.Errorf("view %+v", v)
	}
}

// A name an earlier version saved outside the namespace ("username") is
// moved into it and kept; a node made fresh has no name to look for.
func TestLegacyRecordAdopted(t *testing.T) {
	home := newTestLedger(t, "y")
	st := store.NewMemory()
	first := New()
	_, err := node.New(node.Config{Relay: "http://127.0.0.1:1", Store: st, Transport: transport.NewNetwork().Transport(), Capabilities: []node.Capability{first}})
	if err != nil {
		t.Fatal(err)
	}
	if !first.h.Fresh() {
		t.Fatal("a node made on an empty store is not fresh")
	}
	// The record as an earlier version kept it: its claim signed by this
	// identity, at the root of the store.
	id := first.h.Identity()
	lease := nodetestLease(t, id)
	claim, err := names.NewClaim(id, &lease, "olga", 1)
	if err != nil {
		t.Fatal(err)
	}
	rec := home.sequence(t, claim)
	b, _ := wire.Marshal(rec)
	if err := st.Put(legacyRecord, b); err != nil {
		t.Fatal(err)
	}
	again := New()
	if _, err := node.New(node.Config{Relay: "http://127.0.0.1:1", Store: st, Transport: transport.NewNetwork().Transport(), Capabilities: []node.Capability{again}}); err != nil {
		t.Fatal(err)
	}
	if again.h.Fresh() || again.Name() != "olga" {
		t.Fatalf("after the upgrade: fresh %v, name %q", again.h.Fresh(), again.Name())
	}
	if _, err := st.Get(legacyRecord); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the legacy record is still there: %v", err)
	}
	if _, err := st.Get(keyRecordIn); err != nil {
		t.Errorf("the record is not in the namespace: %v", err)
	}
}

// nodetestLease is a lease for id from some relay, enough to sign a claim.
func nodetestLease(t *testing.T, id *identity.Identity) wire.Lease {
	t.Helper()
	relay, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	return relay.IssueLease(id.SignKey(), id.AgreeKey(), [16]byte{1}, "z", time.Now(), time.Hour)
}

// A node believes a username record only from the relays its admission
// names as trusted and running the username service, and takes one from
// the DHT alone only if it was sequenced by the name's home among them:
// a record of a relay not flagged trusted is refused as forged, one of a
// trusted relay that is not the home is refused unless the node's relay
// vouches for it (these nodes have none), and the home's is accepted. Two
// ledgers holding the name for two keys settle nothing on their own.
func TestResolveOnlyFromTheHome(t *testing.T) {
	var logs syncBuffer
	home, other, stranger := newTestLedger(t, "h"), newTestLedger(t, "o"), newTestLedger(t, "u")
	sw, ns := swarmFlags(t, 8, nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		[]wire.RelayInfo{home.info(), other.info(), stranger.info()},
		[]wire.RelayFlags{wire.RelayTrusted, wire.RelayTrusted | wire.RelayNames, wire.RelayTrusted | wire.RelayNames, wire.RelayNames})
	sw.KademliaLinks()
	asker := ns[7]
	// Names whose home among the trusted relays with the service is home.
	var homed []string
	for i := 0; len(homed) < 4; i++ {
		name := fmt.Sprintf("u%d", i)
		if h, _ := names.Home(names.Hash(name), [][32]byte{home.key.SignKey(), other.key.SignKey()}); h == home.key.SignKey() {
			homed = append(homed, name)
		}
	}
	ctx := context.Background()
	resolve := func(name string) (*wire.UserRecord, node.ErrorView) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		rec, err := asker.Resolve(short, name, true)
		if err != nil {
			return rec, node.Explain(err)
		}
		return rec, node.ErrorView{}
	}
	publishOwn := func(c *Client, l *testLedger, name string) *wire.UserRecord {
		t.Helper()
		rec := l.sequence(t, claimAs(t, c, name, 1))
		publishAs(t, c, rec)
		return rec
	}

	// Sequenced by a relay the admission does not flag trusted.
	publishOwn(ns[0], stranger, homed[0])
	if rec, e := resolve(homed[0]); rec != nil || e.Code != CodeForged || !strings.Contains(e.Error, "does not name as trusted") {
		t.Errorf("a record of an untrusted relay: %v, %s %q", rec != nil, e.Code, e.Error)
	}
	// Sequenced by a trusted relay that is not the name's home.
	publishOwn(ns[1], other, homed[1])
	if rec, e := resolve(homed[1]); rec != nil || e.Code != CodeForged || !strings.Contains(e.Error, "not this name's home") {
		t.Errorf("a record of a trusted relay that is not the home: %v, %s %q", rec != nil, e.Code, e.Error)
	}
	// Sequenced by the home.
	want := publishOwn(ns[2], home, homed[2])
	if rec, e := resolve(homed[2]); rec == nil || !names.Same(&rec.Claim, &want.Claim) {
		t.Errorf("the home's record: %s %q", e.Code, e.Error)
	}
	// The home's record of one key beside another ledger's of another
	// key: the DHT settles nothing; the node's relay would.
	publishOwn(ns[3], other, homed[3])
	publishOwn(ns[4], home, homed[3])
	if rec, e := resolve(homed[3]); rec != nil || e.Code != CodeForged {
		t.Errorf("two ledgers' records for two keys: %v, %s %q", rec != nil, e.Code, e.Error)
	}
	if n := strings.Count(logs.String(), "does not name as trusted"); n == 0 {
		t.Errorf("the untrusted relay's record was not logged:\n%s", logs.String())
	}
}
