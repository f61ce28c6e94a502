package wire

import "ddt/shared/id"

// DHT messages (types 48–63) travel between two nodes over a data channel.
// Each request has exactly one reply:
//
//	FindNode  → Nodes
//	FindValue → Value
//	Store     → Stored, or Error (CodeBadSignature, CodeTooLarge,
//	            CodeMalformed, CodeStale, CodeFull)
//	Ping      → Pong (the peer-link messages, reused)
//
// The messages carry no request id: the node layer wraps each request and
// its reply in its own envelope, which correlates them. A node answers a
// request it does not understand with Error (CodeProtocol).

// DHT message types.
const (
	TypeFindNode  Type = 48
	TypeNodes     Type = 49
	TypeFindValue Type = 50
	TypeValue     Type = 51
	TypeStore     Type = 52
	TypeStored    Type = 53
)

// DHT limits.
const (
	// MaxContacts bounds the contacts in one Nodes or Value reply. A node
	// answers with at most its bucket size (20); the rest is headroom.
	MaxContacts = 32
	// MaxRecords bounds the records in one Value reply: a key holds at
	// most this many signers' records.
	MaxRecords = 8
	// MaxRecord bounds one encoded DHT record (see package dht): a value
	// of up to 2 KiB with its key, signer, sequence number and signature.
	MaxRecord = 2304
)

func init() {
	register(
		func() Message { return new(FindNode) },
		func() Message { return new(Nodes) },
		func() Message { return new(FindValue) },
		func() Message { return new(Value) },
		func() Message { return new(Store) },
		func() Message { return new(Stored) },
	)
}

// FindNode (node → node) asks for the contacts the receiver knows closest
// to Target by XOR distance.
//
//	Target (20 bytes)
type FindNode struct {
	Target id.Address
}

func (*FindNode) Type() Type          { return TypeFindNode }
func (m *FindNode) encode(e *encoder) { e.fixed(m.Target[:]) }
func (m *FindNode) decode(d *decoder) { d.fixed(m.Target[:]) }

// Nodes (node → node) answers FindNode with the receiver's closest
// contacts, closest first, never the asker itself.
//
//	count (uvarint, at most MaxContacts) | count × address (20 bytes)
type Nodes struct {
	Contacts []id.Address
}

func (*Nodes) Type() Type          { return TypeNodes }
func (m *Nodes) encode(e *encoder) { encodeContacts(e, m.Contacts) }
func (m *Nodes) decode(d *decoder) { m.Contacts = decodeContacts(d) }

// FindValue (node → node) asks for the records stored under Key, and for
// the receiver's contacts closest to Key.
//
//	Key (20 bytes)
type FindValue struct {
	Key id.Address
}

func (*FindValue) Type() Type          { return TypeFindValue }
func (m *FindValue) encode(e *encoder) { e.fixed(m.Key[:]) }
func (m *FindValue) decode(d *decoder) { d.fixed(m.Key[:]) }

// Value (node → node) answers FindValue: every record the receiver holds
// under the key (one per signer), each an encoded DHT record the asker
// must verify, and the receiver's closest contacts as in Nodes.
//
//	count (uvarint, at most MaxRecords) | count × record (uvarint length,
//	at most MaxRecord bytes) | contacts as in Nodes
type Value struct {
	Records  [][]byte
	Contacts []id.Address
}

func (*Value) Type() Type { return TypeValue }
func (m *Value) encode(e *encoder) {
	e.count(len(m.Records), MaxRecords, "records")
	for _, r := range m.Records {
		e.bytes(r, MaxRecord, "record")
	}
	encodeContacts(e, m.Contacts)
}
func (m *Value) decode(d *decoder) {
	n := d.count(MaxRecords, 1, "records")
	for i := 0; i < n && d.err == nil; i++ {
		m.Records = append(m.Records, d.bytes(MaxRecord, "record"))
	}
	m.Contacts = decodeContacts(d)
}

// Store (node → node) asks the receiver to keep an encoded DHT record. It
// answers Stored, or Error when it refuses the record (bad signature, too
// large, malformed, older than the one it holds, or no room).
//
//	record (uvarint length, at most MaxRecord bytes)
type Store struct {
	Record []byte
}

func (*Store) Type() Type          { return TypeStore }
func (m *Store) encode(e *encoder) { e.bytes(m.Record, MaxRecord, "record") }
func (m *Store) decode(d *decoder) { m.Record = d.bytes(MaxRecord, "record") }

// Stored (node → node) answers a Store the receiver accepted. It has no
// body.
type Stored struct{}

func (*Stored) Type() Type      { return TypeStored }
func (*Stored) encode(*encoder) {}
func (*Stored) decode(*decoder) {}

func encodeContacts(e *encoder, cs []id.Address) {
	e.count(len(cs), MaxContacts, "contacts")
	for i := range cs {
		e.fixed(cs[i][:])
	}
}

func decodeContacts(d *decoder) []id.Address {
	n := d.count(MaxContacts, id.Len, "contacts")
	if n == 0 || d.err != nil {
		return nil
	}
	cs := make([]id.Address, n)
	for i := range cs {
		d.fixed(cs[i][:])
	}
	return cs
}
