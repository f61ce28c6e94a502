package wire

import "ddt/shared/id"

// Relay↔relay messages (types 64–79). Relays federate over a WebSocket
// at /federate; every message flows both ways, each side speaking for its
// own zone. In order:
//
//	RelayChallenge  the first frame from each side: a fresh nonce
//	RelayHello      the second: who the sender is, signed over the other's nonce
//	ZoneMembers     the sender's members in batches; Last ends the snapshot
//	MemberJoined    then, as they happen: a member joined the sender's zone
//	MemberLeft      ...or left it
//	ZoneSummary     periodically: the sender's counts
//	RelaySignal     a sender-zone node's signal for a receiver-zone node
//	Error (type 9)  a frame was refused; the sender of the Error closes the link
const (
	TypeRelayChallenge Type = 64
	TypeRelayHello     Type = 65
	TypeZoneMembers    Type = 66
	TypeMemberJoined   Type = 67
	TypeMemberLeft     Type = 68
	TypeZoneSummary    Type = 69
	TypeRelaySignal    Type = 70
)

// MaxMemberBatch is the most leases in one ZoneMembers: even with
// MaxZone-long zone names a full batch stays under MaxFrame.
const MaxMemberBatch = 200

func init() {
	register(
		func() Message { return new(RelayChallenge) },
		func() Message { return new(RelayHello) },
		func() Message { return new(ZoneMembers) },
		func() Message { return new(MemberJoined) },
		func() Message { return new(MemberLeft) },
		func() Message { return new(ZoneSummary) },
		func() Message { return new(RelaySignal) },
	)
}

// RelayChallenge (relay ↔ relay) opens a federation link: each side sends
// one at once, and the other proves its relay key by signing Nonce.
//
// Layout: nonce (32)
type RelayChallenge struct {
	Nonce [32]byte
}

func (*RelayChallenge) Type() Type          { return TypeRelayChallenge }
func (c *RelayChallenge) encode(e *encoder) { e.fixed(c.Nonce[:]) }
func (c *RelayChallenge) decode(d *decoder) { d.fixed(c.Nonce[:]) }

// RelayHello (relay ↔ relay) answers the other side's RelayChallenge: the
// sender's zone, public URL, key and counts, and its signature by
// Relay.Key over RelayHelloSignedBytes. A relay accepts the link only if
// the signature verifies and the key is not its own.
//
// Layout: RelayInfo | sig (64)
type RelayHello struct {
	Relay RelayInfo
	Sig   [64]byte
}

func (*RelayHello) Type() Type { return TypeRelayHello }
func (h *RelayHello) encode(e *encoder) {
	h.Relay.encode(e)
	e.fixed(h.Sig[:])
}
func (h *RelayHello) decode(d *decoder) {
	h.Relay.decode(d)
	d.fixed(h.Sig[:])
}

// RelayHelloSignedBytes is what a relay signs to answer peerNonce. dialer
// says whether the signer opened the link, so a hello cannot be reflected
// back on the link it came from.
func RelayHelloSignedBytes(peerNonce [32]byte, dialer bool, r *RelayInfo) []byte {
	e := encoder{b: []byte("ddt/relay-hello/v1\x00")}
	e.fixed(peerNonce[:])
	e.bool(dialer)
	r.encode(&e)
	return e.b
}

// ZoneMembers (relay ↔ relay) carries part of the sender's membership:
// each member's lease, signed by the sender, and whether it is a native
// node. After the hellos each side sends its whole membership as batches
// of at most MaxMemberBatch; the last batch (possibly empty) has Last set.
// The receiver checks every lease against the sender's key and zone.
//
// Layout: count | (Lease, native)* | last
type ZoneMembers struct {
	Leases  []Lease // at most MaxMemberBatch
	Natives []bool  // parallel to Leases
	Last    bool
}

func (*ZoneMembers) Type() Type { return TypeZoneMembers }
func (z *ZoneMembers) encode(e *encoder) {
	e.count(len(z.Leases), MaxMemberBatch, "members")
	for i := range z.Leases {
		z.Leases[i].encode(e)
		e.bool(i < len(z.Natives) && z.Natives[i])
	}
	e.bool(z.Last)
}
func (z *ZoneMembers) decode(d *decoder) {
	n := d.count(MaxMemberBatch, leaseMin+1, "members")
	if n > 0 {
		z.Leases = make([]Lease, n)
		z.Natives = make([]bool, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		z.Leases[i].decode(d)
		z.Natives[i] = d.bool()
	}
	z.Last = d.bool()
}

// MemberJoined (relay ↔ relay) announces a node the sender just admitted.
//
// Layout: Lease | native
type MemberJoined struct {
	Lease  Lease
	Native bool
}

func (*MemberJoined) Type() Type { return TypeMemberJoined }
func (m *MemberJoined) encode(e *encoder) {
	m.Lease.encode(e)
	e.bool(m.Native)
}
func (m *MemberJoined) decode(d *decoder) {
	m.Lease.decode(d)
	m.Native = d.bool()
}

// MemberLeft (relay ↔ relay) announces that a node's link to the sender
// closed.
//
// Layout: address (20)
type MemberLeft struct {
	Address id.Address
}

func (*MemberLeft) Type() Type          { return TypeMemberLeft }
func (m *MemberLeft) encode(e *encoder) { e.fixed(m.Address[:]) }
func (m *MemberLeft) decode(d *decoder) { d.fixed(m.Address[:]) }

// ZoneSummary (relay ↔ relay) reports the sender's counts, after its
// snapshot and then every few seconds; the receiver uses them to pick
// where to redirect newcomers when its own zone is full.
//
// Layout: nodes | maxNodes (uvarints)
type ZoneSummary struct {
	Nodes    uint32
	MaxNodes uint32
}

func (*ZoneSummary) Type() Type { return TypeZoneSummary }
func (s *ZoneSummary) encode(e *encoder) {
	e.uvarint(uint64(s.Nodes))
	e.uvarint(uint64(s.MaxNodes))
}
func (s *ZoneSummary) decode(d *decoder) {
	s.Nodes = d.uint32("nodes")
	s.MaxNodes = d.uint32("max nodes")
}

// RelaySignal (relay ↔ relay) carries a Signal across zones: From is a
// member of the sender's zone, To a member of the receiver's, which
// delivers it to To as Signal{Peer: From}. A relay drops a RelaySignal
// whose From is not a member of the sending zone or whose To is not its
// own member.
//
// Layout: from (20) | to (20) | session | kind (1) | data
type RelaySignal struct {
	From    id.Address
	To      id.Address
	Session uint64
	Kind    SignalKind
	Data    string // at most MaxSignal bytes
}

func (*RelaySignal) Type() Type { return TypeRelaySignal }
func (s *RelaySignal) encode(e *encoder) {
	e.fixed(s.From[:])
	e.fixed(s.To[:])
	e.uvarint(s.Session)
	e.u8(uint8(s.Kind))
	e.string(s.Data, MaxSignal, "signal data")
}
func (s *RelaySignal) decode(d *decoder) {
	d.fixed(s.From[:])
	d.fixed(s.To[:])
	s.Session = d.uvarint()
	s.Kind = SignalKind(d.u8())
	if d.err == nil && (s.Kind < SignalOffer || s.Kind > SignalBye) {
		d.fail("unknown signal kind %d", s.Kind)
	}
	s.Data = d.string(MaxSignal, "signal data")
}
