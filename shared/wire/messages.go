package wire

import (
	"fmt"

	"ddt/shared/id"
)

// Version is the protocol version carried in every frame's first byte.
const Version = 1

// MaxFrame is the largest frame either side sends or accepts.
const MaxFrame = 64 << 10

// Limits on individual fields.
const (
	MaxZone       = 64
	MaxAgent      = 128
	MaxReason     = 512
	MaxURL        = 512
	MaxPeers      = 64
	MaxICEServers = 8
	MaxSignal     = 16 << 10
	MaxBenchData  = 60 << 10
	MaxRelays     = 32 // relays named in one Admitted, the admitting one included
)

// Type identifies a message.
type Type uint8

// Message types. Values are part of the protocol: never renumber. The
// ranges, and those reserved for the capabilities to come, are in doc.go.
const (
	TypeLease      Type = 1
	TypeChallenge  Type = 2
	TypeHello      Type = 3
	TypeAdmitted   Type = 4
	TypeRefused    Type = 5
	TypeSignal     Type = 6
	TypePeerJoined Type = 7
	TypePeerLeft   Type = 8
	TypeError      Type = 9

	TypePeerHello Type = 32
	TypePeerProof Type = 33
	TypePing      Type = 34
	TypePong      Type = 35
	TypeBenchData Type = 36
	TypeBenchEnd  Type = 37
	TypeBenchAck  Type = 38
	TypeBye       Type = 39
)

// Message is any DDT wire message.
type Message interface {
	Type() Type
	encode(*encoder)
	decode(*decoder)
}

// Reply is a message that answers a request by the ID the request
// carried (NameResult answers NameClaim and NameLookup): a node hands it
// to whoever waits for that ID.
type Reply interface {
	Message
	ReplyID() uint32
}

// registry maps each type to a constructor. Each file that defines
// messages registers them in its init, so messages for different layers
// live beside each other without one central list.
var registry = map[Type]func() Message{}

// register adds message types; a duplicate is a programming error.
func register(ctors ...func() Message) {
	for _, c := range ctors {
		t := c().Type()
		if _, dup := registry[t]; dup {
			panic(fmt.Sprintf("wire: type %d registered twice", t))
		}
		registry[t] = c
	}
}

func init() {
	register(
		func() Message { return new(Lease) },
		func() Message { return new(Challenge) },
		func() Message { return new(Hello) },
		func() Message { return new(Admitted) },
		func() Message { return new(Refused) },
		func() Message { return new(Signal) },
		func() Message { return new(PeerJoined) },
		func() Message { return new(PeerLeft) },
		func() Message { return new(Error) },
		func() Message { return new(PeerHello) },
		func() Message { return new(PeerProof) },
		func() Message { return new(Ping) },
		func() Message { return new(Pong) },
		func() Message { return new(BenchData) },
		func() Message { return new(BenchEnd) },
		func() Message { return new(BenchAck) },
		func() Message { return new(Bye) },
	)
}

func newMessage(t Type) Message {
	if c := registry[t]; c != nil {
		return c()
	}
	return nil
}

// Known reports whether this build of the protocol has message type t.
func Known(t Type) bool { return registry[t] != nil }

// TypeOf returns the type byte of frame b, if it has one.
func TypeOf(b []byte) (Type, bool) {
	if len(b) < 2 {
		return 0, false
	}
	return Type(b[1]), true
}

// Marshal encodes m as one frame.
func Marshal(m Message) ([]byte, error) {
	e := encoder{b: make([]byte, 0, 128)}
	e.u8(Version)
	e.u8(uint8(m.Type()))
	m.encode(&e)
	if e.err != nil {
		return nil, e.err
	}
	if len(e.b) > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, len(e.b), MaxFrame)
	}
	return e.b, nil
}

// Unmarshal decodes one frame.
func Unmarshal(b []byte) (Message, error) {
	if len(b) > MaxFrame {
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", ErrTooLarge, len(b), MaxFrame)
	}
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: frame of %d bytes", ErrMalformed, len(b))
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: %d (this node speaks %d)", ErrVersion, b[0], Version)
	}
	m := newMessage(Type(b[1]))
	if m == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownType, b[1])
	}
	d := decoder{b: b[2:]}
	m.decode(&d)
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes after type %d", ErrMalformed, len(d.b), b[1])
	}
	return m, nil
}

// Lease is a relay's signed statement that a node with these keys holds
// Address in Zone until Expires (Unix seconds). Address must equal
// id.Derive(SignKey, Nonce); the signature covers SignedBytes.
type Lease struct {
	Address  id.Address
	SignKey  [32]byte // Ed25519
	AgreeKey [32]byte // X25519
	Nonce    [16]byte
	Zone     string // at most MaxZone bytes
	RelayKey [32]byte
	Issued   int64
	Expires  int64
	Sig      [64]byte
}

func (*Lease) Type() Type { return TypeLease }

func (l *Lease) encodeBody(e *encoder) {
	e.fixed(l.Address[:])
	e.fixed(l.SignKey[:])
	e.fixed(l.AgreeKey[:])
	e.fixed(l.Nonce[:])
	e.string(l.Zone, MaxZone, "zone")
	e.fixed(l.RelayKey[:])
	e.varint(l.Issued)
	e.varint(l.Expires)
}

func (l *Lease) encode(e *encoder) {
	l.encodeBody(e)
	e.fixed(l.Sig[:])
}

func (l *Lease) decode(d *decoder) {
	d.fixed(l.Address[:])
	d.fixed(l.SignKey[:])
	d.fixed(l.AgreeKey[:])
	d.fixed(l.Nonce[:])
	l.Zone = d.string(MaxZone, "zone")
	d.fixed(l.RelayKey[:])
	l.Issued = d.varint()
	l.Expires = d.varint()
	d.fixed(l.Sig[:])
}

// SignedBytes is what the relay signs: a context string and every field
// but the signature.
func (l *Lease) SignedBytes() []byte {
	e := encoder{b: []byte("ddt/lease/v1\x00")}
	l.encodeBody(&e)
	return e.b
}

// leaseMin is the least number of bytes an encoded lease takes.
const leaseMin = id.Len + 32 + 32 + 16 + 1 + 32 + 1 + 1 + 64

// Challenge (relay → node) opens the relay protocol. Features are the
// services the relay offers nodes (FeatureNames, …): a node sends a
// service's messages only to a relay that lists it.
//
// Layout: zone | relay key (32) | nonce (32) | features
type Challenge struct {
	Zone     string
	RelayKey [32]byte // Ed25519 key that signs this zone's leases
	Nonce    [32]byte
	Features Features
}

func (*Challenge) Type() Type { return TypeChallenge }
func (c *Challenge) encode(e *encoder) {
	e.string(c.Zone, MaxZone, "zone")
	e.fixed(c.RelayKey[:])
	e.fixed(c.Nonce[:])
	c.Features.encode(e)
}
func (c *Challenge) decode(d *decoder) {
	c.Zone = d.string(MaxZone, "zone")
	d.fixed(c.RelayKey[:])
	d.fixed(c.Nonce[:])
	c.Features = decodeFeatures(d)
}

// Hello (node → relay) answers a Challenge. Sig is the node's Ed25519
// signature over HelloSignedBytes. Features are the capabilities the node
// has (FeatureNames, …): the relay sends a capability's messages only to
// nodes that list it.
//
// Layout: sign key (32) | agree key (32) | native | agent | sig (64) | features
type Hello struct {
	SignKey  [32]byte
	AgreeKey [32]byte
	Native   bool   // a headless native node rather than a browser tab
	Agent    string // software name and version, for logs
	Sig      [64]byte
	Features Features
}

func (*Hello) Type() Type { return TypeHello }
func (h *Hello) encode(e *encoder) {
	e.fixed(h.SignKey[:])
	e.fixed(h.AgreeKey[:])
	e.bool(h.Native)
	e.string(h.Agent, MaxAgent, "agent")
	e.fixed(h.Sig[:])
	h.Features.encode(e)
}
func (h *Hello) decode(d *decoder) {
	d.fixed(h.SignKey[:])
	d.fixed(h.AgreeKey[:])
	h.Native = d.bool()
	h.Agent = d.string(MaxAgent, "agent")
	d.fixed(h.Sig[:])
	h.Features = decodeFeatures(d)
}

// HelloSignedBytes is what a node signs to answer challenge c.
func HelloSignedBytes(c *Challenge, signKey, agreeKey [32]byte, native bool) []byte {
	e := encoder{b: []byte("ddt/hello/v1\x00")}
	e.fixed(c.Nonce[:])
	e.fixed(c.RelayKey[:])
	e.string(c.Zone, MaxZone, "zone")
	e.fixed(signKey[:])
	e.fixed(agreeKey[:])
	e.bool(native)
	return e.b
}

// Admitted (relay → node) grants a lease and names the first peers to
// connect to: the closest addresses plus random ones, drawn from the
// relay's zone and from the zones of the relays it is federated with.
// Relays lists every relay the admitting relay knows, itself first; a
// peer's lease is signed by the relay in Relays whose Key equals the
// lease's RelayKey, and a node checks it against that key.
//
// Flags, parallel to Relays, say what the admitting relay vouches for
// about each: RelayTrusted for relays its operator named (only they
// sequence names and are homes), RelayNames for those that run the
// username service, RelaySites for those that run the domain service.
//
// Layout: Lease | count | (Lease, native)* | count | url* | count | RelayInfo* | count | flags (1 byte)*
type Admitted struct {
	Lease      Lease
	Peers      []Lease      // at most MaxPeers
	Natives    []bool       // parallel to Peers: which are native nodes
	ICEServers []string     // STUN/TURN URLs, at most MaxICEServers
	Relays     []RelayInfo  // at most MaxRelays; the admitting relay first
	Flags      []RelayFlags // parallel to Relays
}

// RelayFlags is what an admitting relay vouches for about a relay it
// lists.
type RelayFlags uint8

const (
	// RelayTrusted marks a relay the admitting relay's operator named by
	// key (or pinned at first contact): its ledger may sequence names and
	// it may be a name's home. The admitting relay is always trusted. A
	// relay linked only by open federation is not: its members' leases are
	// good for peering, never for names.
	RelayTrusted RelayFlags = 1 << iota
	// RelayNames marks a relay that runs the username service.
	RelayNames
	// RelaySites marks a relay that runs the domain service
	// (FeatureSites): among the trusted ones, a domain has its home.
	RelaySites
)

// Has reports whether every flag of g is set in f.
func (f RelayFlags) Has(g RelayFlags) bool { return f&g == g }

func (*Admitted) Type() Type { return TypeAdmitted }
func (a *Admitted) encode(e *encoder) {
	a.Lease.encode(e)
	e.count(len(a.Peers), MaxPeers, "peers")
	for i := range a.Peers {
		a.Peers[i].encode(e)
		e.bool(i < len(a.Natives) && a.Natives[i])
	}
	e.count(len(a.ICEServers), MaxICEServers, "ice servers")
	for _, s := range a.ICEServers {
		e.string(s, MaxURL, "ice server")
	}
	e.count(len(a.Relays), MaxRelays, "relays")
	for i := range a.Relays {
		a.Relays[i].encode(e)
	}
	if len(a.Flags) != len(a.Relays) && e.err == nil {
		e.err = fmt.Errorf("%w: %d relay flags for %d relays", ErrMalformed, len(a.Flags), len(a.Relays))
	}
	e.count(len(a.Flags), MaxRelays, "relay flags")
	for _, f := range a.Flags {
		e.u8(uint8(f))
	}
}
func (a *Admitted) decode(d *decoder) {
	a.Lease.decode(d)
	n := d.count(MaxPeers, leaseMin+1, "peers")
	if n > 0 {
		a.Peers = make([]Lease, n)
		a.Natives = make([]bool, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		a.Peers[i].decode(d)
		a.Natives[i] = d.bool()
	}
	n = d.count(MaxICEServers, 1, "ice servers")
	for i := 0; i < n && d.err == nil; i++ {
		a.ICEServers = append(a.ICEServers, d.string(MaxURL, "ice server"))
	}
	n = d.count(MaxRelays, relayInfoMin, "relays")
	if n > 0 {
		a.Relays = make([]RelayInfo, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		a.Relays[i].decode(d)
	}
	n = d.count(MaxRelays, 1, "relay flags")
	if n != len(a.Relays) && d.err == nil {
		d.fail("%d relay flags for %d relays", n, len(a.Relays))
	}
	if n > 0 && d.err == nil {
		a.Flags = make([]RelayFlags, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		a.Flags[i] = RelayFlags(d.u8())
	}
}

// RelayInfo describes a relay: the zone it serves, its public base URL
// (http or https; nodes append /ws), its Ed25519 key (which signs its
// zone's leases) and how many nodes it holds of how many it admits.
//
// Layout: zone | url | key (32) | nodes | maxNodes (uvarints)
type RelayInfo struct {
	Zone     string // at most MaxZone bytes
	URL      string // at most MaxURL bytes
	Key      [32]byte
	Nodes    uint32
	MaxNodes uint32
}

// relayInfoMin is the least number of bytes an encoded RelayInfo takes.
const relayInfoMin = 1 + 1 + 32 + 1 + 1

func (r *RelayInfo) encode(e *encoder) {
	e.string(r.Zone, MaxZone, "zone")
	e.string(r.URL, MaxURL, "relay url")
	e.fixed(r.Key[:])
	e.uvarint(uint64(r.Nodes))
	e.uvarint(uint64(r.MaxNodes))
}

func (r *RelayInfo) decode(d *decoder) {
	r.Zone = d.string(MaxZone, "zone")
	r.URL = d.string(MaxURL, "relay url")
	d.fixed(r.Key[:])
	r.Nodes = d.uint32("nodes")
	r.MaxNodes = d.uint32("max nodes")
}

// Refused (relay → node) declines admission. Redirect names another relay
// to try, if one is known; RetryAfterMs suggests when to try this one again.
type Refused struct {
	Code         Code
	Reason       string
	Redirect     string
	RetryAfterMs uint32
}

func (*Refused) Type() Type { return TypeRefused }
func (r *Refused) encode(e *encoder) {
	e.uvarint(uint64(r.Code))
	e.string(r.Reason, MaxReason, "reason")
	e.string(r.Redirect, MaxURL, "redirect")
	e.uvarint(uint64(r.RetryAfterMs))
}
func (r *Refused) decode(d *decoder) {
	r.Code = Code(d.uvarint())
	r.Reason = d.string(MaxReason, "reason")
	r.Redirect = d.string(MaxURL, "redirect")
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("retry delay out of range")
	}
	r.RetryAfterMs = uint32(v)
}

// SignalKind says what a Signal carries.
type SignalKind uint8

// Signal kinds.
const (
	SignalOffer     SignalKind = 1 // Data: SDP offer
	SignalAnswer    SignalKind = 2 // Data: SDP answer
	SignalCandidate SignalKind = 3 // Data: ICE candidate (JSON of RTCIceCandidateInit)
	SignalBye       SignalKind = 4 // the sender abandoned this session
)

// Signal carries WebRTC signaling between two nodes of a zone. From a node
// Peer is the destination; from the relay it is the source. Session is
// chosen by the offerer and ties a connection attempt's messages together.
type Signal struct {
	Peer    id.Address
	Session uint64
	Kind    SignalKind
	Data    string // at most MaxSignal bytes
}

func (*Signal) Type() Type { return TypeSignal }
func (s *Signal) encode(e *encoder) {
	e.fixed(s.Peer[:])
	e.uvarint(s.Session)
	e.u8(uint8(s.Kind))
	e.string(s.Data, MaxSignal, "signal data")
}
func (s *Signal) decode(d *decoder) {
	d.fixed(s.Peer[:])
	s.Session = d.uvarint()
	s.Kind = SignalKind(d.u8())
	if d.err == nil && (s.Kind < SignalOffer || s.Kind > SignalBye) {
		d.fail("unknown signal kind %d", s.Kind)
	}
	s.Data = d.string(MaxSignal, "signal data")
}

// PeerJoined (relay → node) announces a newly admitted node.
type PeerJoined struct {
	Lease  Lease
	Native bool
}

func (*PeerJoined) Type() Type { return TypePeerJoined }
func (p *PeerJoined) encode(e *encoder) {
	p.Lease.encode(e)
	e.bool(p.Native)
}
func (p *PeerJoined) decode(d *decoder) {
	p.Lease.decode(d)
	p.Native = d.bool()
}

// PeerLeft (relay → node) announces that a node's relay link closed.
type PeerLeft struct {
	Address id.Address
}

func (*PeerLeft) Type() Type          { return TypePeerLeft }
func (p *PeerLeft) encode(e *encoder) { e.fixed(p.Address[:]) }
func (p *PeerLeft) decode(d *decoder) { d.fixed(p.Address[:]) }

// Error reports that a request was refused; the link stays open unless
// the sender closes it.
type Error struct {
	Code    Code
	Message string
}

func (*Error) Type() Type { return TypeError }
func (m *Error) encode(e *encoder) {
	e.uvarint(uint64(m.Code))
	e.string(m.Message, MaxReason, "message")
}
func (m *Error) decode(d *decoder) {
	m.Code = Code(d.uvarint())
	m.Message = d.string(MaxReason, "message")
}

// Err returns m as a Go error that matches its code's sentinel.
func (m *Error) Err() error { return &RemoteError{Code: m.Code, Message: m.Message} }

// PeerHello is the first message on a data channel, from both sides.
// Features are what the sender has: its capabilities (FeatureNames, …)
// and its link's (FeatureBulk). A node sends a capability's messages only
// to a peer that lists it.
//
// Layout: Lease | native | nonce (32) | features
type PeerHello struct {
	Lease    Lease
	Native   bool
	Nonce    [32]byte
	Features Features
}

func (*PeerHello) Type() Type { return TypePeerHello }
func (p *PeerHello) encode(e *encoder) {
	p.Lease.encode(e)
	e.bool(p.Native)
	e.fixed(p.Nonce[:])
	p.Features.encode(e)
}
func (p *PeerHello) decode(d *decoder) {
	p.Lease.decode(d)
	p.Native = d.bool()
	d.fixed(p.Nonce[:])
	p.Features = decodeFeatures(d)
}

// PeerProof proves possession of the lease's key: a signature over
// ProofSignedBytes(the other side's nonce, own address).
type PeerProof struct {
	Sig [64]byte
}

func (*PeerProof) Type() Type          { return TypePeerProof }
func (p *PeerProof) encode(e *encoder) { e.fixed(p.Sig[:]) }
func (p *PeerProof) decode(d *decoder) { d.fixed(p.Sig[:]) }

// ProofSignedBytes is what a node signs to answer a peer's nonce.
func ProofSignedBytes(peerNonce [32]byte, self id.Address) []byte {
	b := append([]byte("ddt/peer/v1\x00"), peerNonce[:]...)
	return append(b, self[:]...)
}

// Ping asks for a Pong with the same ID.
type Ping struct{ ID uint64 }

func (*Ping) Type() Type          { return TypePing }
func (p *Ping) encode(e *encoder) { e.uvarint(p.ID) }
func (p *Ping) decode(d *decoder) { p.ID = d.uvarint() }

// Pong answers a Ping.
type Pong struct{ ID uint64 }

func (*Pong) Type() Type          { return TypePong }
func (p *Pong) encode(e *encoder) { e.uvarint(p.ID) }
func (p *Pong) decode(d *decoder) { p.ID = d.uvarint() }

// BenchData is throughput-test payload; the receiver only counts it.
type BenchData struct{ Data []byte }

func (*BenchData) Type() Type { return TypeBenchData }
func (b *BenchData) encode(e *encoder) {
	e.bytes(b.Data, MaxBenchData, "bench data")
}
func (b *BenchData) decode(d *decoder) { b.Data = d.bytes(MaxBenchData, "bench data") }

// BenchEnd ends a throughput test of Total bytes; the receiver answers
// with BenchAck once it has counted everything before it.
type BenchEnd struct{ Total uint64 }

func (*BenchEnd) Type() Type          { return TypeBenchEnd }
func (b *BenchEnd) encode(e *encoder) { e.uvarint(b.Total) }
func (b *BenchEnd) decode(d *decoder) { b.Total = d.uvarint() }

// BenchAck reports how many bench bytes arrived.
type BenchAck struct{ Received uint64 }

func (*BenchAck) Type() Type          { return TypeBenchAck }
func (b *BenchAck) encode(e *encoder) { e.uvarint(b.Received) }
func (b *BenchAck) decode(d *decoder) { b.Received = d.uvarint() }

// Bye announces that the sender is closing the link, and why.
type Bye struct{ Reason string }

func (*Bye) Type() Type          { return TypeBye }
func (b *Bye) encode(e *encoder) { e.string(b.Reason, MaxReason, "reason") }
func (b *Bye) decode(d *decoder) { b.Reason = d.string(MaxReason, "reason") }
