package unicast

import (
	"bytes"
	"testing"

	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/wire"
)

// A stranger who tries to fill the receiver's box at every holder holdAt
// would try gets only its share of it: a friend's message still finds a
// holder.
func TestMailStrangerCannotFillBox(t *testing.T) {
	cfg := Config{MaxMessage: 1000, MaxPerReceiver: 3000}
	sw := newMailSwarm(t, 6, cfg, nil, nil)
	victim := sw.Nodes[1].Address()
	attacker, friend := sw.svc[2], sw.svc[0]
	near := victim
	near[id.Len-1] ^= 1
	cands, err := attacker.h.Closest(mailCtx(t), near, MailHolders+2)
	if err != nil {
		t.Fatal(err)
	}
	tried, n := 0, 0
	for _, c := range cands {
		if c == victim || tried == MailHolders {
			continue
		}
		tried++
		for i := 0; i < 3; i++ {
			n++
			if c == attacker.h.Lease().Address {
				attacker.mail.put(c, c, &wire.MailboxPut{To: victim, ID: itemID(1000 + n), Frame: frameOf(n, 900)}, attacker.h.Clock().Now())
				continue
			}
			attacker.h.Request(mailCtx(t), c, &wire.MailboxPut{To: victim, ID: itemID(1000 + n), Frame: frameOf(n, 900)})
		}
	}
	if _, err := friend.holdAt(mailCtx(t), victim, itemID(1), frameOf(1, 100)); err != nil {
		t.Errorf("after %d junk puts by a stranger, the friend's message finds no holder: %v (%s)", n, err, codeOf(err))
	}
}

// A stranger who squats an ID it saw on the way (a forwarder of a routed
// put) cannot make the friend's put of that ID a no-op: the holder
// refuses it, the friend's message goes to the next holder, and the
// receiver gets it.
func TestMailIDSquat(t *testing.T) {
	sw := newMailSwarm(t, 5, Config{}, nil, nil)
	victim := sw.Nodes[1].Address()
	friend, attacker := sw.svc[0], sw.svc[2]
	holder, err := friend.holdAt(mailCtx(t), victim, itemID(9), frameOf(9, 10)) // learn the holder
	if err != nil {
		t.Fatal(err)
	}
	collectAll(t, sw.svc[1]) // empty it
	if holder == attacker.h.Lease().Address {
		t.Skip("attacker is the holder")
	}
	if _, err := attacker.h.Request(mailCtx(t), holder, &wire.MailboxPut{To: victim, ID: itemID(7), Frame: []byte("junk")}); err != nil {
		t.Fatal(err)
	}
	real := frameOf(7, 50)
	if h, err := friend.holdAt(mailCtx(t), victim, itemID(7), real); err != nil || h == holder {
		t.Fatalf("the friend's put of a squatted id: held at %s (the squatted holder is %s), %v", h.Short(), holder.Short(), err)
	}
	items := collectAll(t, sw.svc[1])
	for _, it := range items {
		if bytes.Equal(it.frame, real) {
			return
		}
	}
	t.Errorf("the receiver gets %d item(s), none the friend's", len(items))
}

// Junk with a friend's item's ID at the first holder asked, refused for
// good, does not make the receiver acknowledge (drop) the friend's item
// at the next holder unread.
func TestMailCrossHolderCopy(t *testing.T) {
	sw := newMailSwarm(t, 6, Config{}, nil, nil)
	rcv := sw.svc[1]
	self := rcv.h.Lease().Address
	cands, err := rcv.h.Closest(mailCtx(t), self, MailHolders+1)
	if err != nil {
		t.Fatal(err)
	}
	var hs []id.Address
	for _, c := range cands {
		if c != self {
			hs = append(hs, c)
		}
	}
	friendIdx, attIdx := -1, -1
	for i, n := range sw.Nodes {
		a := n.Address()
		if a == self || a == hs[0] || a == hs[1] {
			continue
		}
		if friendIdx < 0 {
			friendIdx = i
		} else if attIdx < 0 {
			attIdx = i
		}
	}
	friend, att := sw.svc[friendIdx], sw.svc[attIdx]
	real := frameOf(5, 60)
	if _, err := att.h.Request(mailCtx(t), hs[0], &wire.MailboxPut{To: self, ID: itemID(5), Frame: []byte("junk")}); err != nil {
		t.Fatal(err)
	}
	// The friend's item went to the second holder (the first was away or full).
	if _, err := friend.h.Request(mailCtx(t), hs[1], &wire.MailboxPut{To: self, ID: itemID(5), Frame: real}); err != nil {
		t.Fatal(err)
	}
	got := false
	_, err = rcv.collect(mailCtx(t), func(from id.Address, frame []byte) error {
		if from != friend.h.Lease().Address {
			return node.Errorf(CodeNotFriend, nil, "not a friend")
		}
		got = got || bytes.Equal(frame, real)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := sw.at(t, hs[1]).mailboxStats()
	if !got {
		t.Errorf("the friend's item was never handled; its holder still holds %d items (acknowledged and dropped if 0)", n)
	}
}
