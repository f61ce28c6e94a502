package wire

import (
	"fmt"

	"ddt/shared/id"
)

// Relay↔relay messages (types 64–79). Relays federate over a WebSocket
// at /federate; every message flows both ways, each side speaking for its
// own zone. In order:
//
//	RelayChallenge  the first frame from each side: a fresh nonce and the sender's key
//	RelayHello      the second: who the sender is, signed over both nonces and both keys
//	ZoneMembers     the sender's members in batches; Last ends the snapshot
//	MemberJoined    then, as they happen: a member joined the sender's zone
//	MemberLeft      ...or left it
//	ZoneSummary     periodically: the sender's counts
//	RelaySignal     a sender-zone node's signal for a receiver-zone node
//	LedgerCheckpoint  on link up and whenever it grows: the sender's ledger checkpoint
//	LedgerGetEntries  the receiver of a newer checkpoint asks for entries...
//	LedgerEntries     ...and gets them, in pages
//	LedgerGetProof    it asks for a consistency proof between two sizes...
//	LedgerProof       ...and gets it
//	Error (type 9)  a frame was refused; the sender of the Error closes the link
//
// The ledger messages let each relay mirror the zone ledgers of the relays
// it links to (see ddt/shared/ledger). Only a relay's own ledger is served
// over its links: a relay asks the other for entries and proofs of the
// other's log, never of a third relay's.
const (
	TypeRelayChallenge Type = 64
	TypeRelayHello     Type = 65
	TypeZoneMembers    Type = 66
	TypeMemberJoined   Type = 67
	TypeMemberLeft     Type = 68
	TypeZoneSummary    Type = 69
	TypeRelaySignal    Type = 70

	TypeLedgerCheckpoint Type = 71
	TypeLedgerGetEntries Type = 72
	TypeLedgerEntries    Type = 73
	TypeLedgerGetProof   Type = 74
	TypeLedgerProof      Type = 75
)

// FeatureLedger is the relay↔relay service of mirroring each other's zone
// ledgers (the Ledger* messages).
const FeatureLedger = "ledger"

// MaxMemberBatch is the most leases in one ZoneMembers: even with
// MaxZone-long zone names a full batch stays under MaxFrame.
const MaxMemberBatch = 200

// Ledger limits. MaxLedgerEntry and MaxLedgerCheckpoint are the ledger
// package's MaxEntry and MaxCheckpoint (the relay checks they agree).
const (
	MaxLedgerEntry      = 4 << 10  // bytes in one ledger entry
	MaxLedgerCheckpoint = 16 << 10 // bytes in one signed checkpoint note
	MaxLedgerEntries    = 256      // entries in one LedgerEntries, and within MaxLedgerBytes
	MaxLedgerBytes      = 60 << 10 // entry bytes in one LedgerEntries, so the frame stays under MaxFrame
	MaxLedgerProof      = 128      // hashes in one LedgerProof: enough for any tree of 2^63 entries
)

func init() {
	register(
		func() Message { return new(RelayChallenge) },
		func() Message { return new(RelayHello) },
		func() Message { return new(ZoneMembers) },
		func() Message { return new(MemberJoined) },
		func() Message { return new(MemberLeft) },
		func() Message { return new(ZoneSummary) },
		func() Message { return new(RelaySignal) },
		func() Message { return new(LedgerCheckpoint) },
		func() Message { return new(LedgerGetEntries) },
		func() Message { return new(LedgerEntries) },
		func() Message { return new(LedgerGetProof) },
		func() Message { return new(LedgerProof) },
	)
}

// RelayChallenge (relay ↔ relay) opens a federation link: each side sends
// one at once, with a fresh nonce and the relay key it will prove. A relay
// decides from Key whether it links at all (is the key the one named for
// the URL it dialed, is it trusted) before it signs anything.
//
// Layout: nonce (32) | key (32)
type RelayChallenge struct {
	Nonce [32]byte
	Key   [32]byte // the sender's relay key
}

func (*RelayChallenge) Type() Type { return TypeRelayChallenge }
func (c *RelayChallenge) encode(e *encoder) {
	e.fixed(c.Nonce[:])
	e.fixed(c.Key[:])
}
func (c *RelayChallenge) decode(d *decoder) {
	d.fixed(c.Nonce[:])
	d.fixed(c.Key[:])
}

// RelayHello (relay ↔ relay) answers the other side's RelayChallenge: the
// sender's zone, public URL, key and counts, and its signature by
// Relay.Key over RelayHelloSignedBytes. A relay accepts the link only if
// Relay.Key is the key of the sender's challenge, the signature verifies
// over both nonces and both keys as this link saw them, and the key is
// not its own. Features are the services the sender runs over links
// (FeatureLedger, FeatureNames, …): a relay sends a service's frames only
// over links whose other side lists it.
//
// Layout: RelayInfo | sig (64) | features
type RelayHello struct {
	Relay    RelayInfo
	Sig      [64]byte
	Features Features
}

func (*RelayHello) Type() Type { return TypeRelayHello }
func (h *RelayHello) encode(e *encoder) {
	h.Relay.encode(e)
	e.fixed(h.Sig[:])
	h.Features.encode(e)
}
func (h *RelayHello) decode(d *decoder) {
	h.Relay.decode(d)
	d.fixed(h.Sig[:])
	h.Features = decodeFeatures(d)
}

// RelayHelloSignedBytes is what a relay signs in its hello: its role
// (dialer: it opened the link, so a hello cannot be reflected back on the
// link it came from), the nonce it sent, the nonce it received, who it is
// (self, whose Key signs) and the key of the relay it believes it talks
// to. Binding both nonces and both keys means a hello is good for one
// link between two given relays only: a relay in the middle that hands
// one relay's hello to another (so that it would believe itself linked to
// the first) is caught, as the hello names the middle relay's key as its
// receiver.
func RelayHelloSignedBytes(dialer bool, ownNonce, peerNonce [32]byte, self *RelayInfo, peerKey [32]byte) []byte {
	e := encoder{b: []byte("ddt/relay-hello/v2\x00")}
	e.bool(dialer)
	e.fixed(ownNonce[:])
	e.fixed(peerNonce[:])
	e.fixed(self.Key[:])
	self.encode(&e)
	e.fixed(peerKey[:])
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

// LedgerCheckpoint (relay ↔ relay) tells the receiver the sender's latest
// signed ledger checkpoint: once after the snapshot, then each time the
// sender's ledger grows. A receiver whose mirror of the sender's ledger is
// behind fetches what it lacks with LedgerGetEntries and LedgerGetProof;
// it checks the note against the sender's key and origin itself.
//
// Layout: note (bytes, at most MaxLedgerCheckpoint)
type LedgerCheckpoint struct {
	Note []byte
}

func (*LedgerCheckpoint) Type() Type { return TypeLedgerCheckpoint }
func (c *LedgerCheckpoint) encode(e *encoder) {
	e.bytes(c.Note, MaxLedgerCheckpoint, "checkpoint")
}
func (c *LedgerCheckpoint) decode(d *decoder) {
	c.Note = d.bytes(MaxLedgerCheckpoint, "checkpoint")
}

// LedgerGetEntries (relay ↔ relay) asks for the entries of the receiver's
// ledger from From (inclusive) to To (exclusive). The receiver answers
// with one LedgerEntries holding a prefix of that range (at least one
// entry when the range is not empty); the asker asks again from where it
// ends. A range beyond the receiver's ledger is refused with an Error
// (CodeProtocol) and the link stays up.
//
// Layout: from | to (uvarints)
type LedgerGetEntries struct {
	From, To uint64
}

func (*LedgerGetEntries) Type() Type { return TypeLedgerGetEntries }
func (g *LedgerGetEntries) encode(e *encoder) {
	e.uvarint(g.From)
	e.uvarint(g.To)
}
func (g *LedgerGetEntries) decode(d *decoder) {
	g.From = d.uvarint()
	g.To = d.uvarint()
	if d.err == nil && g.To < g.From {
		d.fail("ledger range [%d, %d) is reversed", g.From, g.To)
	}
}

// LedgerEntries (relay ↔ relay) answers LedgerGetEntries: the sender's
// entries from From on, at most MaxLedgerEntries of them and
// MaxLedgerBytes of entry bytes together.
//
// Layout: from (uvarint) | count | (entry bytes)*
type LedgerEntries struct {
	From    uint64
	Entries [][]byte // each at most MaxLedgerEntry bytes
}

func (*LedgerEntries) Type() Type { return TypeLedgerEntries }
func (l *LedgerEntries) encode(e *encoder) {
	e.uvarint(l.From)
	e.count(len(l.Entries), MaxLedgerEntries, "ledger entries")
	total := 0
	for _, b := range l.Entries {
		total += len(b)
		e.bytes(b, MaxLedgerEntry, "ledger entry")
	}
	if total > MaxLedgerBytes && e.err == nil {
		e.err = fmt.Errorf("%w: ledger entries hold %d bytes, limit %d", ErrTooLarge, total, MaxLedgerBytes)
	}
}
func (l *LedgerEntries) decode(d *decoder) {
	l.From = d.uvarint()
	n := d.count(MaxLedgerEntries, 1, "ledger entries")
	if n > 0 {
		l.Entries = make([][]byte, n)
	}
	total := 0
	for i := 0; i < n && d.err == nil; i++ {
		l.Entries[i] = d.bytes(MaxLedgerEntry, "ledger entry")
		if total += len(l.Entries[i]); total > MaxLedgerBytes && d.err == nil {
			d.err = fmt.Errorf("%w: ledger entries hold over %d bytes", ErrTooLarge, MaxLedgerBytes)
		}
	}
}

// LedgerGetProof (relay ↔ relay) asks for the proof that the receiver's
// ledger at size New extends itself at size Old (0 ≤ Old ≤ New ≤ its
// size), as ledger.Log.ConsistencyProof gives it. Out of range is
// refused with an Error (CodeProtocol) and the link stays up.
//
// Layout: old | new (uvarints)
type LedgerGetProof struct {
	Old, New uint64
}

func (*LedgerGetProof) Type() Type { return TypeLedgerGetProof }
func (g *LedgerGetProof) encode(e *encoder) {
	e.uvarint(g.Old)
	e.uvarint(g.New)
}
func (g *LedgerGetProof) decode(d *decoder) {
	g.Old = d.uvarint()
	g.New = d.uvarint()
	if d.err == nil && g.New < g.Old {
		d.fail("ledger proof %d → %d goes backwards", g.Old, g.New)
	}
}

// LedgerProof (relay ↔ relay) answers LedgerGetProof: the consistency
// proof from Old to New, at most MaxLedgerProof hashes.
//
// Layout: old | new (uvarints) | count | hash (32)*
type LedgerProof struct {
	Old, New uint64
	Hashes   [][32]byte
}

func (*LedgerProof) Type() Type { return TypeLedgerProof }
func (p *LedgerProof) encode(e *encoder) {
	e.uvarint(p.Old)
	e.uvarint(p.New)
	e.count(len(p.Hashes), MaxLedgerProof, "proof hashes")
	for i := range p.Hashes {
		e.fixed(p.Hashes[i][:])
	}
}
func (p *LedgerProof) decode(d *decoder) {
	p.Old = d.uvarint()
	p.New = d.uvarint()
	n := d.count(MaxLedgerProof, 32, "proof hashes")
	if n > 0 {
		p.Hashes = make([][32]byte, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		d.fixed(p.Hashes[i][:])
	}
}
