package wire

import (
	"errors"
	"testing"
)

func init() {
	moreSamples = append(moreSamples, func() []Message {
		rec := UserRecord{Claim: sampleClaim(4), RelayKey: [32]byte{9}, Zone: "zone-a", Index: 12,
			Checkpoint: []byte("ddt.zone/zone-a/09000000\n13\nAAAA\n\n— sig\n"), Proof: [][32]byte{{1}, {2}}}
		on := &Onion{}
		for i := range on.Data {
			on.Data[i] = byte(i)
		}
		return []Message{
			&FriendRequest{From: rec, To: "bob7", OnionKey: []byte{1, 2, 3}, Time: 1_780_000_000_000},
			&FriendAnswer{From: rec, Accepted: true, OnionKey: []byte{4, 5}, Time: -3},
			&FriendAck{},
			on,
			&ShareAck{Session: [16]byte{1, 2}, Seq: 3},
			&ChatMessage{Session: [16]byte{3}, Sealed: []byte("sealed bytes")},
			&MailboxPut{To: sampleLease(2).Address, ID: [16]byte{7}, Frame: []byte{9, 9}},
			&MailboxStored{Count: 5},
			&MailboxCollect{After: [16]byte{8}},
			&MailboxItems{Items: []MailboxItem{{ID: [16]byte{1}, From: sampleLease(3).Address, At: 99, Frame: []byte{1}},
				{ID: [16]byte{2}, From: sampleLease(4).Address, At: 100, Frame: []byte{2, 3}}}, More: true},
			&MailboxAck{IDs: [][16]byte{{1}, {2}}},
			&Presence{From: rec},
			&KeyRecord{Lease: sampleLease(5), OnionKey: []byte{6, 7, 8}},
			&ConnectShare{Session: [16]byte{4}, Seq: 2, Share: [32]byte{5}, Ratchet: [32]byte{6}, From: [32]byte{7}, To: [32]byte{8}, Time: 1, Sig: [64]byte{9}},
		}
	})
}

func TestUnicastLimits(t *testing.T) {
	if _, err := Marshal(&ChatMessage{Sealed: make([]byte, MaxSealed+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a sealed message above MaxSealed: %v", err)
	}
	if _, err := Marshal(&MailboxAck{IDs: make([][16]byte, MaxMailboxItems+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("an ack of %d ids: %v", MaxMailboxItems+1, err)
	}
	b, err := Marshal(&ConnectShare{Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	b[2+16] = 4 // the sequence number
	if _, err := Unmarshal(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("share number 4: %v", err)
	}
	base := ConnectShare{Session: [16]byte{1}, Seq: 1, Share: [32]byte{2}, Ratchet: [32]byte{3}, From: [32]byte{4}, To: [32]byte{5}, Time: 6}
	for _, edit := range []func(*ConnectShare){
		func(c *ConnectShare) { c.Session[3] = 1 },
		func(c *ConnectShare) { c.Seq = 2 },
		func(c *ConnectShare) { c.Share[3] = 1 },
		func(c *ConnectShare) { c.Ratchet[3] = 1 },
		func(c *ConnectShare) { c.From[3] = 1 },
		func(c *ConnectShare) { c.To[3] = 1 },
		func(c *ConnectShare) { c.Time++ },
	} {
		d := base
		edit(&d)
		if string(d.SignedBytes()) == string(base.SignedBytes()) {
			t.Errorf("a field of %+v is not signed", d)
		}
	}
	if OnionSize+1024 > MaxInner {
		t.Errorf("an onion of %d bytes does not fit a routed frame (%d)", OnionSize, MaxInner)
	}
}
