package dht

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"ddt/shared/id"
	"ddt/shared/wire"
)

// store sends d a Store of r as a peer would, and returns the refusal.
func store(t *testing.T, d *DHT, r Record) error {
	t.Helper()
	raw, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return storeRaw(t, d, raw)
}

func storeRaw(t *testing.T, d *DHT, raw []byte) error {
	t.Helper()
	var peer id.Address
	peer[0] = 0x42
	m, err := d.Handle(peer, &wire.Store{Record: raw})
	if err == nil {
		if _, ok := m.(*wire.Stored); !ok {
			t.Fatalf("Store answered %T", m)
		}
	}
	return err
}

// held returns the records d gives out for key.
func heldBy(t *testing.T, d *DHT, key id.Address) []Record {
	t.Helper()
	m, err := d.Handle(id.Address{1}, &wire.FindValue{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var out []Record
	for _, raw := range m.(*wire.Value).Records {
		var r Record
		if err := r.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestStoreRules(t *testing.T) {
	n := newTestNet(10)
	d := n.add(Config{})
	alice, bob := newKey(t, 1), newKey(t, 2)
	key := userKey("alice")

	if err := store(t, d, signed(t, alice, key, 5, "five")); err != nil {
		t.Fatalf("first store: %v", err)
	}
	// A higher sequence number replaces.
	if err := store(t, d, signed(t, alice, key, 6, "six")); err != nil {
		t.Fatalf("higher seq: %v", err)
	}
	if got := heldBy(t, d, key); len(got) != 1 || string(got[0].Value) != "six" {
		t.Fatalf("held %+v", got)
	}
	// A lower one, or a different one with the same number, is refused.
	if err := store(t, d, signed(t, alice, key, 4, "four")); !errors.Is(err, ErrStale) || wire.CodeOf(err) != wire.CodeStale {
		t.Fatalf("lower seq: %v", err)
	}
	if err := store(t, d, signed(t, alice, key, 6, "SIX")); !errors.Is(err, ErrStale) {
		t.Fatalf("same seq, other value: %v", err)
	}
	// The same record again is a refresh.
	if err := store(t, d, signed(t, alice, key, 6, "six")); err != nil {
		t.Fatalf("same record again: %v", err)
	}
	// Another signer's record under the same key is kept beside it.
	if err := store(t, d, signed(t, bob, key, 1, "bob's")); err != nil {
		t.Fatalf("second signer: %v", err)
	}
	if got := heldBy(t, d, key); len(got) != 2 {
		t.Fatalf("held %d records", len(got))
	}
	// Forged, unsigned, oversized and malformed records are refused with
	// the matching code, and nothing panics.
	forged := signed(t, alice, key, 7, "seven")
	forged.Value = []byte("SEVEN")
	if err := store(t, d, forged); wire.CodeOf(err) != wire.CodeBadSignature {
		t.Fatalf("forged: %v", err)
	}
	if err := store(t, d, Record{Key: key, Seq: 9, Value: []byte("x")}); wire.CodeOf(err) != wire.CodeBadSignature {
		t.Fatalf("unsigned: %v", err)
	}
	big := signed(t, alice, key, 8, "")
	raw, _ := big.Marshal()
	raw = append(raw[:recordOverhead-64], make([]byte, MaxValue+64+1)...)
	binary.BigEndian.PutUint16(raw[id.Len+32+8:], MaxValue+1)
	if err := storeRaw(t, d, raw); wire.CodeOf(err) != wire.CodeTooLarge {
		t.Fatalf("oversized: %v", err)
	}
	if err := storeRaw(t, d, []byte("garbage")); wire.CodeOf(err) != wire.CodeMalformed {
		t.Fatalf("malformed: %v", err)
	}
	if got := heldBy(t, d, key); len(got) != 2 || string(got[0].Value)+string(got[1].Value) == "" {
		t.Fatalf("refusals changed what is held: %+v", got)
	}
}

func TestStoreSignerLimit(t *testing.T) {
	n := newTestNet(11)
	d := n.add(Config{})
	key := userKey("popular")
	for i := range MaxSigners {
		if err := store(t, d, signed(t, newKey(t, byte(i+1)), key, 1, "v")); err != nil {
			t.Fatalf("signer %d: %v", i+1, err)
		}
	}
	err := store(t, d, signed(t, newKey(t, 99), key, 1, "v"))
	if !errors.Is(err, ErrTooManySigners) || wire.CodeOf(err) != wire.CodeFull {
		t.Fatalf("signer %d: %v", MaxSigners+1, err)
	}
	// Signers already held may still update.
	if err := store(t, d, signed(t, newKey(t, 1), key, 2, "w")); err != nil {
		t.Fatalf("update by a held signer: %v", err)
	}
	// Every record fits in one reply.
	if _, err := wire.Marshal(&wire.Value{Records: d.recordsForLocked(key)}); err != nil {
		t.Fatal(err)
	}
}

func TestStoreBounded(t *testing.T) {
	n := newTestNet(12)
	var self id.Address // keys starting 0xff are farthest
	self[id.Len-1] = 1
	d := n.add(Config{Self: self, MaxStored: 3})
	priv := newKey(t, 1)
	far := func(b byte) id.Address { var k id.Address; k[0] = 0xf0 | b; return k }
	near := func(b byte) id.Address { var k id.Address; k[0] = 0x01; k[1] = b; return k }
	for i := range byte(3) {
		if err := store(t, d, signed(t, priv, far(i), 1, "far")); err != nil {
			t.Fatal(err)
		}
	}
	// Full: a farther key is refused, a closer one displaces the farthest.
	if err := store(t, d, signed(t, priv, far(0xf), 1, "farthest")); !errors.Is(err, ErrFull) {
		t.Fatalf("farther key into a full store: %v", err)
	}
	if err := store(t, d, signed(t, priv, near(1), 1, "near")); err != nil {
		t.Fatalf("closer key into a full store: %v", err)
	}
	if d.Stored() != 3 || len(heldBy(t, d, far(2))) != 0 || len(heldBy(t, d, near(1))) != 1 {
		t.Fatalf("stored %d; farthest held: %d", d.Stored(), len(heldBy(t, d, far(2))))
	}
}

func TestStoredRecordExpires(t *testing.T) {
	n := newTestNet(13)
	d := n.add(Config{})
	priv := newKey(t, 1)
	key := userKey("alice")
	r := signed(t, priv, key, 1, "v")
	if err := store(t, d, r); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(20 * time.Hour)
	// Storing the same record again renews it.
	if err := store(t, d, r); err != nil {
		t.Fatal(err)
	}
	n.clock.Advance(35 * time.Hour)
	d.Maintain(context.Background())
	if len(heldBy(t, d, key)) != 1 {
		t.Fatal("a record re-stored 35 h ago is gone")
	}
	n.clock.Advance(time.Hour)
	d.Maintain(context.Background())
	if len(heldBy(t, d, key)) != 0 || d.Stored() != 0 {
		t.Fatal("a record not re-stored for 36 h is still held")
	}
}

func TestHandleRefusesUnknownRequests(t *testing.T) {
	n := newTestNet(14)
	d := n.add(Config{})
	for _, req := range []wire.Message{&wire.Nodes{}, &wire.Bye{}, nil} {
		if _, err := d.Handle(id.Address{9}, req); !errors.Is(err, ErrUnexpected) || wire.CodeOf(err) != wire.CodeProtocol {
			t.Errorf("Handle(%T) = %v", req, err)
		}
	}
	m, err := d.Handle(id.Address{9}, &wire.Ping{ID: 77})
	if err != nil || m.(*wire.Pong).ID != 77 {
		t.Fatalf("ping: %v %v", m, err)
	}
	// The sender is now a contact.
	if cs := d.Contacts(); len(cs) != 1 || cs[0].Address != (id.Address{9}) {
		t.Fatalf("contacts %+v", cs)
	}
}

func TestPutAndGet(t *testing.T) {
	n := newTestNet(15)
	ds := n.swarm(t, 200, Config{})
	ctx := context.Background()
	alice := newKey(t, 1)
	key := userKey("alice")
	stored, err := ds[0].Put(ctx, signed(t, alice, key, 1, "one"))
	if err != nil || stored != DefaultK {
		t.Fatalf("Put: stored %d, %v", stored, err)
	}
	// Stored exactly at the K closest nodes.
	for _, a := range trueClosest(n, key, ds[0].Self(), DefaultK) {
		if len(heldBy(t, n.nodes[a], key)) != 1 {
			t.Fatalf("%s, one of the closest, does not hold the record", a.Short())
		}
	}
	for i := 1; i < len(ds); i += 17 {
		recs, res, err := ds[i].Get(ctx, key)
		if err != nil || !res.Found || len(recs) != 1 || string(recs[0].Value) != "one" {
			t.Fatalf("Get from %d: %+v %+v %v", i, recs, res, err)
		}
	}
	// A newer record wins, even where a holder still has the old one.
	stale := n.nodes[trueClosest(n, key, ds[0].Self(), 1)[0]]
	if _, err := ds[0].Put(ctx, signed(t, alice, key, 2, "two")); err != nil {
		t.Fatal(err)
	}
	stale.mu.Lock()
	stale.store.drop(key, signed(t, alice, key, 1, "").Signer)
	stale.mu.Unlock()
	if err := store(t, stale, signed(t, alice, key, 1, "one")); err != nil {
		t.Fatal(err)
	}
	recs, _, err := ds[50].Get(ctx, key)
	if err != nil || len(recs) != 1 || recs[0].Seq != 2 {
		t.Fatalf("Get after an update: %+v %v", recs, err)
	}
	// The publisher refuses to go back.
	if _, err := ds[0].Put(ctx, signed(t, alice, key, 1, "one")); !errors.Is(err, ErrStale) {
		t.Fatalf("Put of an older record: %v", err)
	}
	if _, err := ds[0].Put(ctx, Record{Key: key, Seq: 3}); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("Put of an unsigned record: %v", err)
	}
	// Nothing under another key.
	recs, res, err := ds[9].Get(ctx, userKey("nobody"))
	if err != nil || res.Found || len(recs) != 0 {
		t.Fatalf("Get of a missing key: %+v %+v %v", recs, res, err)
	}
}

func TestGetIgnoresBadRecords(t *testing.T) {
	n := newTestNet(16)
	ds := n.swarm(t, 60, Config{})
	key := userKey("target")
	good := signed(t, newKey(t, 1), key, 1, "good")
	goodRaw, _ := good.Marshal()
	forged := signed(t, newKey(t, 2), key, 9, "forged")
	forged.Value = []byte("FORGED")
	forgedRaw, _ := forged.Marshal()
	other := signed(t, newKey(t, 3), userKey("other"), 1, "other key")
	otherRaw, _ := other.Marshal()
	liar := trueClosest(n, key, ds[0].Self(), 1)[0]
	n.fake[liar] = func(id.Address, wire.Message) (wire.Message, error) {
		return &wire.Value{Records: [][]byte{forgedRaw, otherRaw, []byte("junk"), goodRaw}}, nil
	}
	recs, res, err := ds[0].Get(context.Background(), key)
	if err != nil || !res.Found || len(recs) != 1 || string(recs[0].Value) != "good" {
		t.Fatalf("Get next to a liar: %+v %+v %v", recs, res, err)
	}
}

func TestRepublishKeepsRecordsAlive(t *testing.T) {
	n := newTestNet(17)
	ds := n.swarm(t, 80, Config{})
	ctx := context.Background()
	owner, quitter := ds[0], ds[1]
	kept, dropped := userKey("kept"), userKey("dropped")
	if _, err := owner.Put(ctx, signed(t, newKey(t, 1), kept, 1, "kept")); err != nil {
		t.Fatal(err)
	}
	r := signed(t, newKey(t, 2), dropped, 1, "dropped")
	if _, err := quitter.Put(ctx, r); err != nil {
		t.Fatal(err)
	}
	quitter.Forget(r.Key, r.Signer)
	// Seven days in 12-hour steps, every node maintaining after each.
	for range 14 {
		n.clock.Advance(12 * time.Hour)
		n.maintainAll()
	}
	asker := ds[70]
	if recs, _, err := asker.Get(ctx, kept); err != nil || len(recs) != 1 {
		t.Fatalf("a republished record is gone after 7 days: %v %v", recs, err)
	}
	if recs, _, _ := asker.Get(ctx, dropped); len(recs) != 0 {
		t.Fatal("a record nobody republished outlived its 36 h")
	}
	// Routing tables survived a week of maintenance too.
	if res, err := asker.Lookup(ctx, ds[40].Self()); err != nil || !res.Found {
		t.Fatalf("lookup after a week: %+v %v", res, err)
	}
}

func TestInactiveContactsEvicted(t *testing.T) {
	n := newTestNet(18)
	ds := n.swarm(t, 40, Config{})
	gone := ds[20].Self()
	n.leave(gone)
	known := func() int {
		c := 0
		for _, d := range ds {
			for _, ct := range d.Contacts() {
				if ct.Address == gone {
					c++
				}
			}
		}
		return c
	}
	had := map[id.Address][]Contact{}
	for _, d := range ds {
		had[d.Self()] = d.Contacts()
	}
	before := known()
	if before == 0 {
		t.Fatal("nobody knew the node")
	}
	// Silent for 36 h of virtual time, with nobody asking it anything,
	// the node is out of every table; everyone else is still in.
	for range 6 {
		n.clock.Advance(6 * time.Hour)
		for _, d := range ds {
			if d.Self() != gone {
				d.Maintain(context.Background())
			}
		}
	}
	if c := known(); c != 0 {
		t.Fatalf("%d tables still hold a node silent for 36 h (of %d)", c, before)
	}
	for _, d := range ds {
		if d.Self() == gone {
			continue
		}
		now := d.Contacts()
		for _, c := range had[d.Self()] {
			if c.Address != gone && !slices.ContainsFunc(now, func(n Contact) bool { return n.Address == c.Address }) {
				t.Fatalf("%s lost a live contact", d.Self().Short())
			}
		}
	}
}

// TestSleepKeepsLiveContacts: a node whose clock jumps 5 days (a laptop
// asleep) keeps the contacts that still answer, and only those.
func TestSleepKeepsLiveContacts(t *testing.T) {
	n := newTestNet(19)
	ds := n.swarm(t, 40, Config{})
	sleeper, gone := ds[0], ds[0].Contacts()[0].Address
	n.leave(gone)
	before := sleeper.Contacts()
	n.clock.Advance(5 * 24 * time.Hour)
	sleeper.Maintain(context.Background())
	after := sleeper.Contacts()
	has := func(a id.Address) bool {
		return slices.ContainsFunc(after, func(c Contact) bool { return c.Address == a })
	}
	if has(gone) {
		t.Fatal("the departed contact survived the sleep")
	}
	for _, c := range before {
		if c.Address != gone && !has(c.Address) {
			t.Fatalf("a live contact was dropped after the sleep (%d of %d left)", len(after), len(before))
		}
	}
	if res, err := sleeper.Lookup(context.Background(), ds[30].Self()); err != nil || !res.Found {
		t.Fatalf("lookup after the sleep: %+v %v", res, err)
	}
}

func TestRefusalsAreLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := newTestNet(20)
	d := n.add(Config{Logger: log})
	forged := signed(t, newKey(t, 1), userKey("x"), 1, "v")
	forged.Seq = 2
	if err := store(t, d, forged); err == nil {
		t.Fatal("forged record stored")
	}
	if out := buf.String(); !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "record refused") ||
		!strings.Contains(out, "bad record signature") {
		t.Fatalf("log: %q", out)
	}
}
