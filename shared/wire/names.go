package wire

import "ddt/shared/id"

// Username messages. A node registers a username by sending its relay a
// NameClaim; the relay forwards it, as a RelayNameClaim, to the name's
// home relay (see ddt/shared/names), which sequences it in its zone
// ledger and answers with a NameResult holding the UserRecord: the claim
// with a proof that it is in that ledger. A NameLookup asks a relay for
// the record of a name by its hash; relays pass lookups among themselves
// the same way.
//
// UserClaim and UserRecord are encoded as messages of their own so they
// can be signed, stored and sealed as bytes (in the DHT, in a relay's
// store), but they never travel alone as frames.
const (
	TypeUserClaim  Type = 10 // a node's signed claim of a username
	TypeUserRecord Type = 11 // a claim with its ledger proof
	TypeNameClaim  Type = 12 // node → relay: register a username
	TypeNameLookup Type = 13 // node → relay, relay → relay: the record of a name hash
	TypeNameResult Type = 14 // relay → node, relay → relay: the answer to either

	TypeRelayNameClaim Type = 76 // relay → home relay: a member's claim
)

// FeatureNames is the username capability: a relay that lists it decides
// and answers NameClaim and NameLookup (and, between relays,
// RelayNameClaim); a node that lists it has the username client.
const FeatureNames = "names"

// Username limits.
const (
	MaxName       = 16   // bytes (letters and digits) in a username: the paper's 128 bits
	MaxNameProof  = 64   // hashes in a record's inclusion proof: enough for 2^64 entries
	MaxNameNote   = 1024 // bytes in a record's signed checkpoint
	MaxNameDetail = 256  // bytes in a NameResult's message
)

func init() {
	register(
		func() Message { return new(UserClaim) },
		func() Message { return new(UserRecord) },
		func() Message { return new(NameClaim) },
		func() Message { return new(NameLookup) },
		func() Message { return new(NameResult) },
		func() Message { return new(RelayNameClaim) },
	)
}

// UserClaim is a node's signed statement that Name (lower-case letters
// and digits, see names.Normalize) belongs to the holder of SignKey, who
// is reached at Address with AgreeKey. Address must be
// id.Derive(SignKey, Nonce), as in the node's lease from Zone. Version
// starts at 1 and grows when the owner claims the name again (a new
// address); Sig is by SignKey over SignedBytes.
type UserClaim struct {
	Name     string
	Address  id.Address
	SignKey  [32]byte
	AgreeKey [32]byte
	Nonce    [16]byte
	Zone     string
	Version  uint64
	Sig      [64]byte
}

func (*UserClaim) Type() Type { return TypeUserClaim }

func (c *UserClaim) encodeBody(e *encoder) {
	e.string(c.Name, MaxName, "name")
	e.fixed(c.Address[:])
	e.fixed(c.SignKey[:])
	e.fixed(c.AgreeKey[:])
	e.fixed(c.Nonce[:])
	e.string(c.Zone, MaxZone, "zone")
	e.uvarint(c.Version)
}

func (c *UserClaim) encode(e *encoder) {
	c.encodeBody(e)
	e.fixed(c.Sig[:])
}

func (c *UserClaim) decode(d *decoder) {
	c.Name = d.string(MaxName, "name")
	d.fixed(c.Address[:])
	d.fixed(c.SignKey[:])
	d.fixed(c.AgreeKey[:])
	d.fixed(c.Nonce[:])
	c.Zone = d.string(MaxZone, "zone")
	c.Version = d.uvarint()
	d.fixed(c.Sig[:])
}

// SignedBytes is what the claimant signs: a context string and every
// field but the signature.
func (c *UserClaim) SignedBytes() []byte {
	e := encoder{b: []byte("ddt/user/claim/v1\x00")}
	c.encodeBody(&e)
	return e.b
}

// UserRecord is a claim and the proof that it was sequenced: entry Index
// of the ledger of zone Zone kept by the relay with RelayKey, included in
// Checkpoint (that relay's signed note) by Proof.
type UserRecord struct {
	Claim      UserClaim
	RelayKey   [32]byte
	Zone       string
	Index      uint64
	Checkpoint []byte
	Proof      [][32]byte
}

func (*UserRecord) Type() Type { return TypeUserRecord }

func (r *UserRecord) encode(e *encoder) {
	r.Claim.encode(e)
	encodeSequenced(e, r.RelayKey, r.Zone, r.Index, r.Checkpoint, r.Proof)
}

func (r *UserRecord) decode(d *decoder) {
	r.Claim.decode(d)
	decodeSequenced(d, &r.RelayKey, &r.Zone, &r.Index, &r.Checkpoint, &r.Proof)
}

// encodeSequenced writes where a record's claim was sequenced and the
// proof of it, the fields every kind of record (usernames, domains)
// shares: the relay's key, its zone, the entry's index, the relay's
// signed checkpoint and the inclusion proof.
func encodeSequenced(e *encoder, key [32]byte, zone string, index uint64, checkpoint []byte, proof [][32]byte) {
	e.fixed(key[:])
	e.string(zone, MaxZone, "zone")
	e.uvarint(index)
	e.bytes(checkpoint, MaxNameNote, "checkpoint")
	e.count(len(proof), MaxNameProof, "proof")
	for _, h := range proof {
		e.fixed(h[:])
	}
}

// decodeSequenced reads what encodeSequenced wrote.
func decodeSequenced(d *decoder, key *[32]byte, zone *string, index *uint64, checkpoint *[]byte, proof *[][32]byte) {
	d.fixed(key[:])
	*zone = d.string(MaxZone, "zone")
	*index = d.uvarint()
	*checkpoint = d.bytes(MaxNameNote, "checkpoint")
	n := d.count(MaxNameProof, 32, "proof")
	if n > 0 {
		*proof = make([][32]byte, n)
		for i := range *proof {
			d.fixed((*proof)[i][:])
		}
	}
}

// NameClaim (node → relay) asks to register Claim, which the node signed
// for its own lease. ID pairs the NameResult with it.
type NameClaim struct {
	ID    uint32
	Claim UserClaim
}

func (*NameClaim) Type() Type { return TypeNameClaim }
func (m *NameClaim) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	m.Claim.encode(e)
}
func (m *NameClaim) decode(d *decoder) {
	m.ID = d.uint32("id")
	m.Claim.decode(d)
}

// NameLookup (node → relay, relay → relay) asks for the record of the
// name whose hash (names.Hash: SHA-256("user/" ‖ name)) is Hash. Only a
// name's hash is ever asked for; nothing is looked up by address.
type NameLookup struct {
	ID   uint32
	Hash [32]byte
}

func (*NameLookup) Type() Type { return TypeNameLookup }
func (m *NameLookup) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	e.fixed(m.Hash[:])
}
func (m *NameLookup) decode(d *decoder) {
	m.ID = d.uint32("id")
	d.fixed(m.Hash[:])
}

// NameResult (relay → node, relay → relay) answers the NameClaim,
// RelayNameClaim or NameLookup with the same ID: Code is CodeNone and
// Record is set, or Code says why not (CodeNameTaken, CodeNotFound,
// CodeBadName, CodeUnavailable, …) with a readable Message.
type NameResult struct {
	ID      uint32
	Code    Code
	Message string
	Record  *UserRecord
}

func (*NameResult) Type() Type { return TypeNameResult }
func (m *NameResult) encode(e *encoder) {
	encodeAnswer(e, m.ID, m.Code, m.Message)
	e.bool(m.Record != nil)
	if m.Record != nil {
		m.Record.encode(e)
	}
}
func (m *NameResult) decode(d *decoder) {
	decodeAnswer(d, &m.ID, &m.Code, &m.Message)
	if d.bool() {
		m.Record = new(UserRecord)
		m.Record.decode(d)
	}
}

// encodeAnswer writes the head every answer to a claim or a lookup
// shares: the request's ID, and the refusal's code and message.
func encodeAnswer(e *encoder, id uint32, code Code, message string) {
	e.uvarint(uint64(id))
	e.uvarint(uint64(code))
	e.string(message, MaxNameDetail, "message")
}

// decodeAnswer reads what encodeAnswer wrote.
func decodeAnswer(d *decoder, id *uint32, code *Code, message *string) {
	*id = d.uint32("id")
	c := d.uvarint()
	if c > 0xffff {
		d.fail("error code %d", c)
	}
	*code = Code(c)
	*message = d.string(MaxNameDetail, "message")
}

// ReplyID is the ID of the request m answers.
func (m *NameResult) ReplyID() uint32 { return m.ID }

// Err returns the refusal as a *RemoteError, or nil for success.
func (m *NameResult) Err() error {
	if m.Code == CodeNone {
		return nil
	}
	return &RemoteError{Code: m.Code, Message: m.Message}
}

// RelayNameClaim (relay → relay) forwards a member's claim to the relay
// that sequences the name, with the member's Lease (signed by the
// forwarding relay) so the home relay can check the claim against it.
type RelayNameClaim struct {
	ID    uint32
	Lease Lease
	Claim UserClaim
}

func (*RelayNameClaim) Type() Type { return TypeRelayNameClaim }
func (m *RelayNameClaim) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	m.Lease.encode(e)
	m.Claim.encode(e)
}
func (m *RelayNameClaim) decode(d *decoder) {
	m.ID = d.uint32("id")
	m.Lease.decode(d)
	m.Claim.decode(d)
}
