package wire

import "ddt/shared/id"

// Unicast messages: friends, the chained key exchange, chat and offline
// delivery (package ddt/shared/unicast). Types 128–141.
//
// A friend request and its answer are requests (answered by FriendAck)
// sent to the other node's address, over a data channel if one is open,
// else routed; each carries the sender's verified username record and its
// onion key. On acceptance the acceptor sends four ConnectShares, each
// sealed in an Onion that passes three intermediaries (each hop routes
// the peeled Onion to the next); the receiver answers each with a
// ShareAck routed straight back. Chat messages are ChatMessage requests,
// answered by a ChatMessage (a sealed receipt); for a receiver that is
// offline they go to the node closest to its address as a MailboxPut,
// which the returning receiver collects (MailboxCollect, MailboxItems)
// and acknowledges (MailboxAck). A Presence tells friends a node is back.
const (
	TypeFriendRequest  Type = 128 // request: befriend me (my record, my onion key)
	TypeFriendAnswer   Type = 129 // request: I accept, or decline, your request
	TypeFriendAck      Type = 130 // the answer to a FriendRequest, FriendAnswer or Presence
	TypeOnion          Type = 131 // routed, hop to hop: one chain of the key exchange
	TypeShareAck       Type = 132 // routed, receiver → initiator: share Seq of Session arrived
	TypeChatMessage    Type = 133 // request and its answer: a message sealed with a session
	TypeMailboxPut     Type = 134 // request to the node closest to the receiver: hold this
	TypeMailboxStored  Type = 135 // the answer to a MailboxPut or MailboxAck
	TypeMailboxCollect Type = 136 // request, receiver → holder: what do you hold for me?
	TypeMailboxItems   Type = 137 // the answer: a page of held messages
	TypeMailboxAck     Type = 138 // request, receiver → holder: these arrived; drop them
	TypePresence       Type = 139 // request to a friend: I am online at this address
	TypeKeyRecord      Type = 140 // a node's onion key, as its DHT record holds it
	TypeConnectShare   Type = 141 // the payload an Onion carries to its receiver
)

// FeatureUnicast is the unicast capability: a node that lists it takes
// friend requests, forwards onion layers, holds mail and chats.
const FeatureUnicast = "unicast"

// Unicast limits.
const (
	// MaxOnionKey bounds an encoded onion public key (an ML-KEM-768 key
	// of 1,184 bytes, an X25519 key of 32, a kind byte: 1,217).
	MaxOnionKey = 1280
	// OnionSize is the size of every Onion, whatever hop it is at: four
	// slots of OnionSlot bytes (three intermediaries and the receiver).
	OnionSlot = 1408
	OnionSize = 4 * OnionSlot
	// MaxSealed bounds a sealed chat message (header and ciphertext).
	MaxSealed = 60 << 10
	// MaxMailboxItems bounds the items one MailboxItems or MailboxAck holds.
	MaxMailboxItems = 64
	// MaxFriendName bounds the name a FriendRequest is addressed to.
	MaxFriendName = 64
)

func init() {
	register(
		func() Message { return new(FriendRequest) },
		func() Message { return new(FriendAnswer) },
		func() Message { return new(FriendAck) },
		func() Message { return new(Onion) },
		func() Message { return new(ShareAck) },
		func() Message { return new(ChatMessage) },
		func() Message { return new(MailboxPut) },
		func() Message { return new(MailboxStored) },
		func() Message { return new(MailboxCollect) },
		func() Message { return new(MailboxItems) },
		func() Message { return new(MailboxAck) },
		func() Message { return new(Presence) },
		func() Message { return new(KeyRecord) },
		func() Message { return new(ConnectShare) },
	)
}

// FriendRequest asks the node at its destination to befriend the sender.
// From is the sender's username record: the receiver checks it (ledger
// proof, trusted relay) and that its lease's address is the one the
// request came from, so the name is the sender's. To is the name the
// sender resolved the receiver by, which the receiver checks is its own.
// OnionKey is the sender's onion public key (package unicast/onion), for
// the innermost layer of the key exchange's chains.
type FriendRequest struct {
	From     UserRecord
	To       string
	OnionKey []byte
	Time     int64 // Unix milliseconds at the sender
}

func (*FriendRequest) Type() Type { return TypeFriendRequest }
func (m *FriendRequest) encode(e *encoder) {
	m.From.encode(e)
	e.string(m.To, MaxFriendName, "to")
	e.bytes(m.OnionKey, MaxOnionKey, "onion key")
	e.varint(m.Time)
}
func (m *FriendRequest) decode(d *decoder) {
	m.From.decode(d)
	m.To = d.string(MaxFriendName, "to")
	m.OnionKey = d.bytes(MaxOnionKey, "onion key")
	m.Time = d.varint()
}

// FriendAnswer answers a FriendRequest: From is the answerer's record,
// checked as a request's is, Accepted says how it answered, and OnionKey
// is its onion public key.
type FriendAnswer struct {
	From     UserRecord
	Accepted bool
	OnionKey []byte
	Time     int64
}

func (*FriendAnswer) Type() Type { return TypeFriendAnswer }
func (m *FriendAnswer) encode(e *encoder) {
	m.From.encode(e)
	e.bool(m.Accepted)
	e.bytes(m.OnionKey, MaxOnionKey, "onion key")
	e.varint(m.Time)
}
func (m *FriendAnswer) decode(d *decoder) {
	m.From.decode(d)
	m.Accepted = d.bool()
	m.OnionKey = d.bytes(MaxOnionKey, "onion key")
	m.Time = d.varint()
}

// FriendAck is the answer to a FriendRequest, FriendAnswer or Presence
// that was taken (a refusal is a wire Error).
type FriendAck struct{}

func (*FriendAck) Type() Type        { return TypeFriendAck }
func (m *FriendAck) encode(*encoder) {}
func (m *FriendAck) decode(*decoder) {}

// Onion is one chain of the key exchange at one hop: OnionSize bytes, the
// same at every hop (package unicast/onion builds and peels them).
type Onion struct {
	Data [OnionSize]byte
}

func (*Onion) Type() Type          { return TypeOnion }
func (m *Onion) encode(e *encoder) { e.fixed(m.Data[:]) }
func (m *Onion) decode(d *decoder) { d.fixed(m.Data[:]) }

// ShareAck tells the initiator of a key exchange that the share with
// sequence number Seq of Session arrived (so it sends that one again on
// another chain only if no ShareAck comes).
type ShareAck struct {
	Session [16]byte
	Seq     uint8
}

func (*ShareAck) Type() Type { return TypeShareAck }
func (m *ShareAck) encode(e *encoder) {
	e.fixed(m.Session[:])
	e.u8(m.Seq)
}
func (m *ShareAck) decode(d *decoder) {
	d.fixed(m.Session[:])
	m.Seq = d.u8()
}

// ChatMessage is a message sealed with the session Session between two
// friends (package unicast/ratchet seals it: header and ciphertext). As a
// request it carries a message; its answer carries the receiver's sealed
// receipt.
type ChatMessage struct {
	Session [16]byte
	Sealed  []byte
}

func (*ChatMessage) Type() Type { return TypeChatMessage }
func (m *ChatMessage) encode(e *encoder) {
	e.fixed(m.Session[:])
	e.bytes(m.Sealed, MaxSealed, "sealed")
}
func (m *ChatMessage) decode(d *decoder) {
	d.fixed(m.Session[:])
	m.Sealed = d.bytes(MaxSealed, "sealed")
}

// MailboxPut asks the node closest to To to hold Frame (an encoded
// ChatMessage) until To collects it. ID names it: a second put of one ID
// from one sender is the same item.
type MailboxPut struct {
	To    id.Address
	ID    [16]byte
	Frame []byte
}

func (*MailboxPut) Type() Type { return TypeMailboxPut }
func (m *MailboxPut) encode(e *encoder) {
	e.fixed(m.To[:])
	e.fixed(m.ID[:])
	e.bytes(m.Frame, MaxSealed+64, "mailbox frame")
}
func (m *MailboxPut) decode(d *decoder) {
	d.fixed(m.To[:])
	d.fixed(m.ID[:])
	m.Frame = d.bytes(MaxSealed+64, "mailbox frame")
}

// MailboxStored answers a MailboxPut (the item is held) or a MailboxAck
// (Count items were dropped).
type MailboxStored struct {
	Count uint32
}

func (*MailboxStored) Type() Type          { return TypeMailboxStored }
func (m *MailboxStored) encode(e *encoder) { e.uvarint(uint64(m.Count)) }
func (m *MailboxStored) decode(d *decoder) { m.Count = d.uint32("count") }

// MailboxCollect asks the holder for the items it holds for the sender
// (the node whose address the request came from), oldest first, after
// the item After (zero: from the start).
type MailboxCollect struct {
	After [16]byte
}

func (*MailboxCollect) Type() Type          { return TypeMailboxCollect }
func (m *MailboxCollect) encode(e *encoder) { e.fixed(m.After[:]) }
func (m *MailboxCollect) decode(d *decoder) { d.fixed(m.After[:]) }

// MailboxItem is one held message: who put it, when (the holder's clock,
// Unix milliseconds), and the frame.
type MailboxItem struct {
	ID    [16]byte
	From  id.Address
	At    int64
	Frame []byte
}

// MailboxItems answers a MailboxCollect: a page of items (at most
// MaxMailboxItems, and what fits a frame), More if others follow.
type MailboxItems struct {
	Items []MailboxItem
	More  bool
}

func (*MailboxItems) Type() Type { return TypeMailboxItems }
func (m *MailboxItems) encode(e *encoder) {
	e.count(len(m.Items), MaxMailboxItems, "mailbox items")
	for _, it := range m.Items {
		e.fixed(it.ID[:])
		e.fixed(it.From[:])
		e.varint(it.At)
		e.bytes(it.Frame, MaxSealed+64, "mailbox frame")
	}
	e.bool(m.More)
}
func (m *MailboxItems) decode(d *decoder) {
	n := d.count(MaxMailboxItems, 16+id.Len+2, "mailbox items")
	for i := 0; i < n && d.err == nil; i++ {
		var it MailboxItem
		d.fixed(it.ID[:])
		d.fixed(it.From[:])
		it.At = d.varint()
		it.Frame = d.bytes(MaxSealed+64, "mailbox frame")
		m.Items = append(m.Items, it)
	}
	m.More = d.bool()
}

// MailboxAck tells the holder the items IDs arrived: it drops them.
type MailboxAck struct {
	IDs [][16]byte
}

func (*MailboxAck) Type() Type { return TypeMailboxAck }
func (m *MailboxAck) encode(e *encoder) {
	e.count(len(m.IDs), MaxMailboxItems, "mailbox ids")
	for _, x := range m.IDs {
		e.fixed(x[:])
	}
}
func (m *MailboxAck) decode(d *decoder) {
	n := d.count(MaxMailboxItems, 16, "mailbox ids")
	for i := 0; i < n && d.err == nil; i++ {
		var x [16]byte
		d.fixed(x[:])
		m.IDs = append(m.IDs, x)
	}
}

// Presence tells a friend that the sender is online at the address the
// request came from (its username record, so the friend can check the
// address is still the name's).
type Presence struct {
	From UserRecord
}

func (*Presence) Type() Type          { return TypePresence }
func (m *Presence) encode(e *encoder) { m.From.encode(e) }
func (m *Presence) decode(d *decoder) { m.From.decode(d) }

// KeyRecord is a node's onion public key as the DHT holds it (under the
// key unicast.KeyRecordKey(address), signed by the node's key): Lease
// binds the address to that key, OnionKey is the onion public key.
type KeyRecord struct {
	Lease    Lease
	OnionKey []byte
}

func (*KeyRecord) Type() Type { return TypeKeyRecord }
func (m *KeyRecord) encode(e *encoder) {
	m.Lease.encode(e)
	e.bytes(m.OnionKey, MaxOnionKey, "onion key")
}
func (m *KeyRecord) decode(d *decoder) {
	m.Lease.decode(d)
	m.OnionKey = d.bytes(MaxOnionKey, "onion key")
}

// ConnectShare is what an Onion carries to its receiver: share number Seq
// (0–3) of the key exchange Session, from the node whose identity key is
// From to the one whose key is To. Ratchet is the initiator's first
// ratchet public key. Sig is From's signature over SignedBytes.
type ConnectShare struct {
	Session [16]byte
	Seq     uint8
	Share   [32]byte
	Ratchet [32]byte
	From    [32]byte
	To      [32]byte
	Time    int64 // Unix milliseconds at the initiator
	Sig     [64]byte
}

func (*ConnectShare) Type() Type { return TypeConnectShare }
func (m *ConnectShare) encodeBody(e *encoder) {
	e.fixed(m.Session[:])
	e.u8(m.Seq)
	e.fixed(m.Share[:])
	e.fixed(m.Ratchet[:])
	e.fixed(m.From[:])
	e.fixed(m.To[:])
	e.varint(m.Time)
}
func (m *ConnectShare) encode(e *encoder) {
	m.encodeBody(e)
	e.fixed(m.Sig[:])
}
func (m *ConnectShare) decode(d *decoder) {
	d.fixed(m.Session[:])
	m.Seq = d.u8()
	if m.Seq > 3 && d.err == nil {
		d.fail("share sequence number %d above 3", m.Seq)
	}
	d.fixed(m.Share[:])
	d.fixed(m.Ratchet[:])
	d.fixed(m.From[:])
	d.fixed(m.To[:])
	m.Time = d.varint()
	d.fixed(m.Sig[:])
}

// SignedBytes is what the initiator signs: a context string and every
// field but the signature.
func (m *ConnectShare) SignedBytes() []byte {
	e := encoder{b: []byte("ddt/unicast/share/v1\x00")}
	m.encodeBody(&e)
	return e.b
}
