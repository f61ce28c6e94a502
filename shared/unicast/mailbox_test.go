package unicast

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/node/nodetest"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// mailCap runs only the mailbox of a Service on a node: the holder's
// handlers and the Host that holdAt and collect use.
type mailCap struct{ s *Service }

func (c mailCap) Feature() string { return wire.FeatureUnicast }
func (c mailCap) Attach(h *node.Host) error {
	c.s.h = h
	c.s.attachMailbox(h)
	return nil
}

// mailSwarm is count linked nodes running mailboxes.
type mailSwarm struct {
	*nodetest.Swarm
	svc []*Service
}

// newMailSwarm makes the swarm; stores, if given, are the nodes' stores
// (the same ones again make the same nodes, restarted); clk, if set, is
// every node's clock.
func newMailSwarm(t *testing.T, count int, cfg Config, clk clock.Clock, stores []store.Store) *mailSwarm {
	t.Helper()
	sw := &mailSwarm{}
	sw.Swarm = nodetest.New(t, count, nodetest.Options{Config: func(i int, c *node.Config) {
		s := New(nil, cfg)
		sw.svc = append(sw.svc, s)
		c.Capabilities = []node.Capability{mailCap{s}}
		if stores != nil {
			c.Store = stores[i]
		}
		if clk != nil {
			c.Clock, c.KeepAlive, c.PeerTimeout = clk, 24*time.Hour, 48*time.Hour
		}
	}})
	for i, a := range sw.Nodes {
		for _, b := range sw.Nodes[i+1:] {
			sw.Link(a, b)
		}
	}
	return sw
}

// at is the service of the node at addr.
func (sw *mailSwarm) at(t *testing.T, addr id.Address) *Service {
	t.Helper()
	for i, n := range sw.Nodes {
		if n.Address() == addr {
			return sw.svc[i]
		}
	}
	t.Fatalf("no node at %s", addr.Short())
	return nil
}

func mailCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func itemID(i int) (x [16]byte) {
	x[0], x[1], x[15] = byte(i), byte(i>>8), 0xaa
	return x
}

func frameOf(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, fmt.Sprintf("frame %d", i))
	return b
}

type got struct {
	from  id.Address
	frame []byte
}

// collectAll runs collect on s, taking every item.
func collectAll(t *testing.T, s *Service) []got {
	t.Helper()
	var out []got
	n, err := s.collect(mailCtx(t), func(from id.Address, frame []byte) error {
		out = append(out, got{from, frame})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(out) {
		t.Fatalf("collect says it took %d, handled %d", n, len(out))
	}
	return out
}

func codeOf(err error) string {
	var e *node.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestMailPutCollect: what a sender holds at the node closest to an
// offline receiver's address, the receiver collects — exactly those
// items, in order, from that sender — and then the holder has dropped
// them.
func TestMailPutCollect(t *testing.T) {
	sw := newMailSwarm(t, 5, Config{}, nil, nil)
	sender, rcv := sw.svc[0], sw.svc[1]
	to := sw.Nodes[1].Address()
	var holder id.Address
	var frames [][]byte
	for i := range 5 {
		f := frameOf(i, 100+i)
		h, err := sender.holdAt(mailCtx(t), to, itemID(i), f)
		if err != nil {
			t.Fatal(err)
		}
		if h == to {
			t.Fatal("the receiver itself holds its mail")
		}
		if i > 0 && h != holder {
			t.Fatalf("item %d held at %s, the others at %s", i, h.Short(), holder.Short())
		}
		holder = h
		frames = append(frames, f)
	}
	hs := sw.at(t, holder)
	if n, b := hs.mailboxStats(); n != 5 || b != 100+101+102+103+104 {
		t.Fatalf("the holder holds %d items, %d bytes", n, b)
	}
	items := collectAll(t, rcv)
	if len(items) != len(frames) {
		t.Fatalf("collected %d items, held %d", len(items), len(frames))
	}
	for i, it := range items {
		if it.from != sw.Nodes[0].Address() || !bytes.Equal(it.frame, frames[i]) {
			t.Fatalf("item %d: from %s, %q; want the sender's %q", i, it.from.Short(), it.frame[:8], frames[i][:8])
		}
	}
	if n, _ := hs.mailboxStats(); n != 0 {
		t.Fatalf("the holder still holds %d acknowledged items", n)
	}
	if again := collectAll(t, rcv); len(again) != 0 {
		t.Fatalf("collected %d items again", len(again))
	}
}

// TestMailOnlyForReceiver: another node that asks the holder gets
// nothing of the receiver's, and cannot make it drop anything.
func TestMailOnlyForReceiver(t *testing.T) {
	sw := newMailSwarm(t, 5, Config{}, nil, nil)
	to := sw.Nodes[1].Address()
	holder, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(1), frameOf(1, 50))
	if err != nil {
		t.Fatal(err)
	}
	for i, other := range sw.svc {
		if i == 1 || sw.Nodes[i].Address() == holder {
			continue
		}
		resp, err := other.h.Request(mailCtx(t), holder, &wire.MailboxCollect{})
		if err != nil {
			t.Fatal(err)
		}
		if page := resp.(*wire.MailboxItems); len(page.Items) != 0 {
			t.Fatalf("node %d collects the receiver's items: %d", i, len(page.Items))
		}
		resp, err = other.h.Request(mailCtx(t), holder, &wire.MailboxAck{IDs: [][16]byte{itemID(1)}})
		if err != nil {
			t.Fatal(err)
		}
		if n := resp.(*wire.MailboxStored).Count; n != 0 {
			t.Fatalf("node %d drops %d of the receiver's items", i, n)
		}
		if items := collectAll(t, other); len(items) != 0 {
			t.Fatalf("node %d collects %d items", i, len(items))
		}
	}
	if items := collectAll(t, sw.svc[1]); len(items) != 1 {
		t.Fatalf("the receiver collects %d items, want 1", len(items))
	}
}

// TestMailLimits: a message above MaxMessage, a receiver's box past
// MaxPerReceiver, the holder past MaxHeld: each refused with its code,
// and nothing held before is lost.
func TestMailLimits(t *testing.T) {
	cfg := Config{MaxMessage: 1000, MaxPerReceiver: 3000, MaxHeld: 5000, MaxPerSender: 3000, MaxHeldPerSender: 5000}
	sw := newMailSwarm(t, 5, cfg, nil, nil)
	r1 := sw.Nodes[1].Address()
	holder, err := sw.svc[0].holdAt(mailCtx(t), r1, itemID(0), frameOf(0, 900))
	if err != nil {
		t.Fatal(err)
	}
	// The sender and the other receiver: two nodes that are neither.
	var others []int
	for i, n := range sw.Nodes {
		if a := n.Address(); a != r1 && a != holder {
			others = append(others, i)
		}
	}
	sender, r2, rcv2 := sw.svc[others[0]], sw.Nodes[others[1]].Address(), sw.svc[others[1]]
	put := func(to id.Address, i, size int) error {
		_, err := sender.h.Request(mailCtx(t), holder, &wire.MailboxPut{To: to, ID: itemID(i), Frame: frameOf(i, size)})
		return mailRefusal(holder, err)
	}
	if err := put(r1, 1, 1001); codeOf(err) != CodeTooLarge {
		t.Fatalf("a message above MaxMessage: %v (code %q)", err, codeOf(err))
	}
	var re *wire.RemoteError
	if _, err := sender.h.Request(mailCtx(t), holder, &wire.MailboxPut{To: r1, ID: itemID(1), Frame: frameOf(1, 1001)}); !errors.As(err, &re) || re.Code != wire.CodeTooLarge {
		t.Fatalf("on the wire: %v", err)
	}
	// 900-byte frames cost 964: three fit a receiver's 3,000.
	for i := 2; i <= 3; i++ {
		if err := put(r1, i, 900); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(r1, 4, 900); codeOf(err) != CodeMailFull {
		t.Fatalf("a receiver's box past its limit: %v (code %q)", err, codeOf(err))
	}
	if _, err := sender.h.Request(mailCtx(t), holder, &wire.MailboxPut{To: r1, ID: itemID(4), Frame: frameOf(4, 900)}); !errors.As(err, &re) || re.Code != wire.CodeFull {
		t.Fatalf("on the wire: %v", err)
	}
	// Five fit the holder's 5,000: two more for another receiver, not three.
	for i := 5; i <= 6; i++ {
		if err := put(r2, i, 900); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(r2, 7, 900); codeOf(err) != CodeMailFull {
		t.Fatalf("the holder past its limit: %v (code %q)", err, codeOf(err))
	}
	// holdAt refuses a message too large at once, with the code.
	if _, err := sender.holdAt(mailCtx(t), r1, itemID(8), frameOf(8, 1001)); codeOf(err) != CodeTooLarge {
		t.Fatalf("holdAt of a message too large: %v", err)
	}
	if n, b := sw.at(t, holder).mailboxStats(); n != 5 || b != 5*900 {
		t.Fatalf("the holder holds %d items, %d bytes; want 5, 4500", n, b)
	}
	// A full holder leaves the message to the next closest node, where
	// the receiver finds it too.
	spill, err := sender.holdAt(mailCtx(t), r1, itemID(9), frameOf(9, 900))
	if err != nil || spill == holder {
		t.Fatalf("a message for a full holder: held at %s (%v)", spill.Short(), err)
	}
	want := map[[16]byte]bool{}
	for _, i := range []int{0, 2, 3, 9} {
		want[[16]byte(frameOf(i, 900)[:16])] = true
	}
	for _, it := range collectAll(t, sw.svc[1]) {
		delete(want, [16]byte(it.frame[:16]))
	}
	if len(want) != 0 {
		t.Fatalf("%d of the first receiver's items were not collected", len(want))
	}
	// The other receiver's were put at the first one's holder: it asks
	// that node.
	resp, err := rcv2.h.Request(mailCtx(t), holder, &wire.MailboxCollect{})
	if err != nil {
		t.Fatal(err)
	}
	if page := resp.(*wire.MailboxItems); len(page.Items) != 2 {
		t.Fatalf("the second receiver finds %d items, want 2", len(page.Items))
	}
}

// TestMailExpiry: an item is held for MaxAge on the holder's clock, then
// dropped.
func TestMailExpiry(t *testing.T) {
	vc := clock.NewVirtual(time.Unix(1_800_000_000, 0))
	sw := newMailSwarm(t, 4, Config{MaxAge: time.Hour}, vc, nil)
	to := sw.Nodes[1].Address()
	holder, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(1), frameOf(1, 10))
	if err != nil {
		t.Fatal(err)
	}
	hs := sw.at(t, holder)
	vc.Advance(59 * time.Minute)
	if n, _ := hs.mailboxStats(); n != 1 {
		t.Fatalf("held %d items before MaxAge, want 1", n)
	}
	if _, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(2), frameOf(2, 10)); err != nil {
		t.Fatal(err)
	}
	vc.Advance(2 * time.Minute)
	if n, _ := hs.mailboxStats(); n != 1 {
		t.Fatalf("held %d items, want only the later one", n)
	}
	items := collectAll(t, sw.svc[1])
	if len(items) != 1 || !bytes.Equal(items[0].frame, frameOf(2, 10)) {
		t.Fatalf("collected %d items after the first expired, want the second", len(items))
	}
}

// TestMailIdempotent: a second put of one item (the sender's retry) is a
// success and holds it once.
func TestMailIdempotent(t *testing.T) {
	sw := newMailSwarm(t, 4, Config{}, nil, nil)
	to := sw.Nodes[1].Address()
	var holders []id.Address
	for range 3 {
		h, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(7), frameOf(7, 40))
		if err != nil {
			t.Fatal(err)
		}
		holders = append(holders, h)
	}
	if holders[0] != holders[1] || holders[1] != holders[2] {
		t.Fatalf("one item held at %v", holders)
	}
	if n, b := sw.at(t, holders[0]).mailboxStats(); n != 1 || b != 40 {
		t.Fatalf("held %d items, %d bytes; want one", n, b)
	}
	if items := collectAll(t, sw.svc[1]); len(items) != 1 {
		t.Fatalf("collected %d items", len(items))
	}
}

// TestMailRestart: a holder that restarts on its store still holds what
// it held, and the receiver collects it.
func TestMailRestart(t *testing.T) {
	stores := make([]store.Store, 4)
	for i := range stores {
		stores[i] = store.NewMemory()
	}
	sw := newMailSwarm(t, 4, Config{}, nil, stores)
	to := sw.Nodes[1].Address()
	holder, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(1), frameOf(1, 33))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(2), frameOf(2, 44)); err != nil {
		t.Fatal(err)
	}
	for _, n := range sw.Nodes {
		n.Close()
	}
	again := newMailSwarm(t, 4, Config{}, nil, stores)
	if again.Nodes[1].Address() != to {
		t.Fatal("a restarted node has another address")
	}
	if n, b := again.at(t, holder).mailboxStats(); n != 2 || b != 33+44 {
		t.Fatalf("the restarted holder holds %d items, %d bytes; want 2, 77", n, b)
	}
	items := collectAll(t, again.svc[1])
	if len(items) != 2 || !bytes.Equal(items[0].frame, frameOf(1, 33)) || !bytes.Equal(items[1].frame, frameOf(2, 44)) {
		t.Fatalf("collected %d items after the restart", len(items))
	}
	if items[0].from != sw.Nodes[0].Address() {
		t.Fatal("the restarted holder lost who sent the item")
	}
}

// TestMailPages: more than one MailboxItems' worth — by count and by
// size — is collected whole and in order.
func TestMailPages(t *testing.T) {
	sw := newMailSwarm(t, 4, Config{}, nil, nil)
	to := sw.Nodes[1].Address()
	var frames [][]byte
	var holder id.Address
	for i := range wire.MaxMailboxItems + 6 {
		f := frameOf(i, 20)
		if i%30 == 29 {
			f = frameOf(i, 30<<10) // two of these do not fit one page
		}
		h, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(i), f)
		if err != nil {
			t.Fatal(err)
		}
		holder = h
		frames = append(frames, f)
	}
	hs := sw.at(t, holder)
	first := hs.mail.collect(to, [16]byte{}, hs.h.Clock().Now())
	if !first.More || len(first.Items) >= len(frames) {
		t.Fatalf("one page holds %d of %d items (more: %v)", len(first.Items), len(frames), first.More)
	}
	b, err := wire.Marshal(first)
	if err != nil || len(b) > wire.MaxFrame {
		t.Fatalf("a page of %d bytes: %v", len(b), err)
	}
	items := collectAll(t, sw.svc[1])
	if len(items) != len(frames) {
		t.Fatalf("collected %d items, held %d", len(items), len(frames))
	}
	for i := range items {
		if !bytes.Equal(items[i].frame, frames[i]) {
			t.Fatalf("item %d out of order", i)
		}
	}
}

// TestMailKeep: an item handle cannot take now stays held; one it
// refuses for good is dropped.
func TestMailKeep(t *testing.T) {
	sw := newMailSwarm(t, 4, Config{}, nil, nil)
	to := sw.Nodes[1].Address()
	var holder id.Address
	for i := range 3 {
		h, err := sw.svc[0].holdAt(mailCtx(t), to, itemID(i), frameOf(i, 10))
		if err != nil {
			t.Fatal(err)
		}
		holder = h
	}
	n, err := sw.svc[1].collect(mailCtx(t), func(_ id.Address, frame []byte) error {
		switch frame[6] {
		case '0':
			return errors.New("the session is not ready yet")
		case '1':
			return node.Errorf(CodeForged, nil, "a message that does not verify")
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("took %d (%v), want 1", n, err)
	}
	if held, _ := sw.at(t, holder).mailboxStats(); held != 1 {
		t.Fatalf("the holder holds %d items, want the one not taken yet", held)
	}
	if items := collectAll(t, sw.svc[1]); len(items) != 1 || !bytes.Equal(items[0].frame, frameOf(0, 10)) {
		t.Fatalf("collected %d items, want the one kept", len(items))
	}
}

func TestMailRecord(t *testing.T) {
	it := wire.MailboxItem{From: id.Address{1, 2}, At: 1_800_000_000_000, Frame: []byte("sealed")}
	seq, back, err := decodeMailRecord(encodeMailRecord(9, it))
	if err != nil || seq != 9 || back.From != it.From || back.At != it.At || !bytes.Equal(back.Frame, it.Frame) {
		t.Fatalf("a record does not survive: %d %+v %v", seq, back, err)
	}
	for _, b := range [][]byte{nil, {1}, encodeMailRecord(0, it), append([]byte{2}, encodeMailRecord(1, it)[1:]...), make([]byte, MaxMailRecord+1)} {
		if _, _, err := decodeMailRecord(b); err == nil {
			t.Fatalf("a malformed record decodes: %x", b[:min(len(b), 16)])
		}
	}
	to, x, ok := parseMailKey(mailKey(id.Address{9}, itemID(3)))
	if !ok || to != (id.Address{9}) || x != itemID(3) {
		t.Fatal("a key does not survive")
	}
	for _, k := range []string{"mail/", "mail/00/11", "other/" + mailKey(to, x)[5:], mailKey(to, x) + "0", "mail/" + string(make([]byte, 40)) + "/" + string(make([]byte, 32))} {
		if _, _, ok := parseMailKey(k); ok {
			t.Fatalf("a malformed key parses: %q", k)
		}
	}
}

func FuzzMailboxRecord(f *testing.F) {
	f.Add(mailKey(id.Address{1}, itemID(1)), encodeMailRecord(1, wire.MailboxItem{From: id.Address{3}, At: 5, Frame: []byte("x")}))
	f.Add("mail/zz", []byte{1})
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, key string, b []byte) {
		if to, x, ok := parseMailKey(key); ok && mailKey(to, x) != key {
			t.Fatalf("key %q parses to another one", key)
		}
		seq, it, err := decodeMailRecord(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeMailRecord(seq, it), b) {
			t.Fatal("a record that decodes does not encode back the same")
		}
	})
}
