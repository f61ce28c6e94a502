package wire

// Domain messages. A node claims a domain ("example.ddt") or updates
// its site by sending its relay a ClaimDomain; the relay passes it, as a
// RelayClaimDomain, to the domain's home relay (the same rule as for
// usernames: of the trusted relays that announced FeatureSites, the one
// whose key hashes closest to the domain's hash, see ddt/shared/names),
// which sequences it in its zone ledger and answers with a DomainResult
// holding the DomainRecord: the claim with a proof that it is in that
// ledger. A DomainLookup asks a relay for the record of a domain by its
// hash; relays pass lookups among themselves the same way.
//
// DomainClaim and DomainRecord are encoded as messages of their own so
// they can be signed and stored as bytes (in the DHT, in a relay's store);
// they never travel alone as frames.
const (
	TypeDomainClaim      Type = 112 // an owner's signed claim of a domain, pointing at a site
	TypeDomainRecord     Type = 113 // a claim with its ledger proof
	TypeClaimDomain      Type = 114 // node → relay: claim a domain, or update its site
	TypeDomainLookup     Type = 115 // node → relay, relay → relay: the record of a domain hash
	TypeDomainResult     Type = 116 // relay → node, relay → relay: the answer to either
	TypeRelayClaimDomain Type = 117 // relay → home relay: a member's claim
)

// FeatureSites is the sites capability: a relay that lists it decides
// and answers ClaimDomain and DomainLookup (and, between relays,
// RelayClaimDomain); a node that lists it resolves domains and serves
// sites.
const FeatureSites = "sites"

// Domain limits.
const (
	// MaxDomain is the longest domain label (the part before ".ddt"):
	// a DNS label, 1–63 of a–z, 0–9 and inner hyphens.
	MaxDomain = 63
)

func init() {
	register(
		func() Message { return new(DomainClaim) },
		func() Message { return new(DomainRecord) },
		func() Message { return new(ClaimDomain) },
		func() Message { return new(DomainLookup) },
		func() Message { return new(DomainResult) },
		func() Message { return new(RelayClaimDomain) },
	)
}

// DomainClaim is an owner's signed statement that the domain whose label
// is Domain ("example" for example.ddt; see names.NormalizeDomain) belongs
// to the holder of SignKey and serves the site whose manifest is the
// content Site. Version starts at 1 and grows with every update; the
// domain's home relay sequences a claim only if no other key holds the
// domain and its version is above the last one it sequenced. Sig is by
// SignKey over SignedBytes. A domain is owned by a key, not an address:
// the owner may come back anywhere and update it.
type DomainClaim struct {
	Domain  string
	SignKey [32]byte
	Site    [32]byte // the site manifest's content id (chunk.Hash)
	Version uint64
	Sig     [64]byte
}

func (*DomainClaim) Type() Type { return TypeDomainClaim }

func (c *DomainClaim) encodeBody(e *encoder) {
	e.string(c.Domain, MaxDomain, "domain")
	e.fixed(c.SignKey[:])
	e.fixed(c.Site[:])
	e.uvarint(c.Version)
}

func (c *DomainClaim) encode(e *encoder) {
	c.encodeBody(e)
	e.fixed(c.Sig[:])
}

func (c *DomainClaim) decode(d *decoder) {
	c.Domain = d.string(MaxDomain, "domain")
	d.fixed(c.SignKey[:])
	d.fixed(c.Site[:])
	c.Version = d.uvarint()
	d.fixed(c.Sig[:])
}

// SignedBytes is what the owner signs: a context string and every field
// but the signature.
func (c *DomainClaim) SignedBytes() []byte {
	e := encoder{b: []byte("ddt/domain/claim/v1\x00")}
	c.encodeBody(&e)
	return e.b
}

// DomainRecord is a domain claim and the proof that it was sequenced:
// entry Index of the ledger of zone Zone kept by the relay with RelayKey,
// included in Checkpoint (that relay's signed note) by Proof.
type DomainRecord struct {
	Claim      DomainClaim
	RelayKey   [32]byte
	Zone       string
	Index      uint64
	Checkpoint []byte
	Proof      [][32]byte
}

func (*DomainRecord) Type() Type { return TypeDomainRecord }

func (r *DomainRecord) encode(e *encoder) {
	r.Claim.encode(e)
	encodeSequenced(e, r.RelayKey, r.Zone, r.Index, r.Checkpoint, r.Proof)
}

func (r *DomainRecord) decode(d *decoder) {
	r.Claim.decode(d)
	decodeSequenced(d, &r.RelayKey, &r.Zone, &r.Index, &r.Checkpoint, &r.Proof)
}

// ClaimDomain (node → relay) asks to sequence Claim, which the node
// signed with the key of its lease. ID pairs the DomainResult with it.
type ClaimDomain struct {
	ID    uint32
	Claim DomainClaim
}

func (*ClaimDomain) Type() Type { return TypeClaimDomain }
func (m *ClaimDomain) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	m.Claim.encode(e)
}
func (m *ClaimDomain) decode(d *decoder) {
	m.ID = d.uint32("id")
	m.Claim.decode(d)
}

// DomainLookup (node → relay, relay → relay) asks for the record of the
// domain whose hash (names.DomainHash) is Hash.
type DomainLookup struct {
	ID   uint32
	Hash [32]byte
}

func (*DomainLookup) Type() Type { return TypeDomainLookup }
func (m *DomainLookup) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	e.fixed(m.Hash[:])
}
func (m *DomainLookup) decode(d *decoder) {
	m.ID = d.uint32("id")
	d.fixed(m.Hash[:])
}

// DomainResult (relay → node, relay → relay) answers the ClaimDomain,
// RelayClaimDomain or DomainLookup with the same ID: Code is CodeNone and
// Record is set, or Code says why not (CodeNameTaken, CodeNotFound,
// CodeBadName, CodeUnavailable, …) with a readable Message.
type DomainResult struct {
	ID      uint32
	Code    Code
	Message string
	Record  *DomainRecord
}

func (*DomainResult) Type() Type { return TypeDomainResult }
func (m *DomainResult) encode(e *encoder) {
	encodeAnswer(e, m.ID, m.Code, m.Message)
	e.bool(m.Record != nil)
	if m.Record != nil {
		m.Record.encode(e)
	}
}
func (m *DomainResult) decode(d *decoder) {
	decodeAnswer(d, &m.ID, &m.Code, &m.Message)
	if d.bool() {
		m.Record = new(DomainRecord)
		m.Record.decode(d)
	}
}

// ReplyID is the ID of the request m answers.
func (m *DomainResult) ReplyID() uint32 { return m.ID }

// Err returns the refusal as a *RemoteError, or nil for success.
func (m *DomainResult) Err() error {
	if m.Code == CodeNone {
		return nil
	}
	return &RemoteError{Code: m.Code, Message: m.Message}
}

// RelayClaimDomain (relay → relay) forwards a member's claim to the
// domain's home relay, with the member's Lease (signed by the forwarding
// relay) so the home can check that the claim's key is the member's.
type RelayClaimDomain struct {
	ID    uint32
	Lease Lease
	Claim DomainClaim
}

func (*RelayClaimDomain) Type() Type { return TypeRelayClaimDomain }
func (m *RelayClaimDomain) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	m.Lease.encode(e)
	m.Claim.encode(e)
}
func (m *RelayClaimDomain) decode(d *decoder) {
	m.ID = d.uint32("id")
	m.Lease.decode(d)
	m.Claim.decode(d)
}
