package registrar

import (
	"fmt"
	"sync/atomic"

	"ddt/shared/names"
	"ddt/shared/wire"
)

// The registrar decides two kinds of names with one engine: usernames
// (wire.FeatureNames) and domains (wire.FeatureSites). A kind says what
// differs — the frames, the ledger entry, the store keys, the checks of a
// claim — and everything else (homes, holders, forwarding, pending
// requests, limits) is shared. Holdings are keyed by kind and hash, so a
// username and a domain of one label are never confused, even though
// their hashes differ anyway ("user/" and "domain/" prefixes).

// kind is one kind of name.
type kind struct {
	id         byte   // its ledger entry's kind byte: names.KindUser, names.KindDomain
	noun       string // "name", "domain": in the sentences nodes read
	feature    string // the service: wire.FeatureNames, wire.FeatureSites
	store      string // store prefix (+ hex of the hash) of the records this relay sequenced
	firstStore string // store prefix of the first holders pinned once two ledgers disagree
	// onePerKey: a key holds at most one of this kind (usernames).
	onePerKey bool
	// maxPerKey, if set, is how many of this kind one key may hold here
	// (domains: MaxDomainsPerKey).
	maxPerKey int
	// stale is the code of a claim at a version not above the holder's.
	stale wire.Code

	parseEntry func([]byte) (names.Entry, error)
	notKind    error // what parseEntry returns for an entry of another kind
	// lookup is the request for the record of hash, with id.
	lookup func(id uint32, hash [32]byte) wire.Message
	// reply is the frame that answers request id with res.
	reply func(id uint32, res *result) wire.Message
	// relayClaim is the request that forwards c, a member's with lease,
	// to the home.
	relayClaim func(id uint32, lease wire.Lease, c claim) wire.Message

	sequenced atomic.Int64 // of this kind, records this relay's store holds
}

// claim is a claim of either kind, checked (checkClaim) before the
// engine sees it.
type claim interface {
	label() string // the name or domain label, for sentences
	hash() [32]byte
	owner() [32]byte // the owner commitment of the claim's key
	signKey() [32]byte
	version() uint64
	entry() ([]byte, error)
	message() wire.Message // the claim, to store
	same(claim) bool
	// prove is the claim's record at index of the ledger of relay (of
	// zone), included in note by proof.
	prove(relay [32]byte, zone string, index uint64, note []byte, proof [][32]byte) record
}

// record is a claim with its ledger proof, of either kind.
type record interface {
	claim() claim
	verify(zoneOf names.ZoneOf) error
	zone() string
}

// result is the kind-free answer to a claim or a lookup: a record, or
// why not.
type result struct {
	code wire.Code
	msg  string
	rec  record
}

// userClaim and userRecord are usernames.
type (
	userClaim  struct{ c *wire.UserClaim }
	userRecord struct{ r *wire.UserRecord }
)

func (u userClaim) label() string          { return u.c.Name }
func (u userClaim) hash() [32]byte         { return names.Hash(u.c.Name) }
func (u userClaim) owner() [32]byte        { return names.Owner(u.c.Name, u.c.SignKey) }
func (u userClaim) signKey() [32]byte      { return u.c.SignKey }
func (u userClaim) version() uint64        { return u.c.Version }
func (u userClaim) entry() ([]byte, error) { return names.EntryFor(u.c) }
func (u userClaim) message() wire.Message  { return u.c }
func (u userClaim) same(o claim) bool {
	v, ok := o.(userClaim)
	return ok && names.Same(u.c, v.c)
}
func (u userClaim) prove(relay [32]byte, zone string, index uint64, note []byte, proof [][32]byte) record {
	return userRecord{&wire.UserRecord{Claim: *u.c, RelayKey: relay, Zone: zone, Index: index, Checkpoint: note, Proof: proof}}
}

func (u userRecord) claim() claim { return userClaim{&u.r.Claim} }
func (u userRecord) zone() string { return u.r.Zone }
func (u userRecord) verify(zoneOf names.ZoneOf) error {
	_, err := names.Verify(u.r, u.r.Claim.Name, zoneOf)
	return err
}

// domainClaim and domainRecord are domains.
type (
	domainClaim  struct{ c *wire.DomainClaim }
	domainRecord struct{ r *wire.DomainRecord }
)

func (d domainClaim) label() string          { return d.c.Domain + ".ddt" }
func (d domainClaim) hash() [32]byte         { return names.DomainHash(d.c.Domain) }
func (d domainClaim) owner() [32]byte        { return names.DomainOwner(d.c.Domain, d.c.SignKey) }
func (d domainClaim) signKey() [32]byte      { return d.c.SignKey }
func (d domainClaim) version() uint64        { return d.c.Version }
func (d domainClaim) entry() ([]byte, error) { return names.EntryForDomain(d.c) }
func (d domainClaim) message() wire.Message  { return d.c }
func (d domainClaim) same(o claim) bool {
	v, ok := o.(domainClaim)
	return ok && names.SameDomainClaim(d.c, v.c)
}
func (d domainClaim) prove(relay [32]byte, zone string, index uint64, note []byte, proof [][32]byte) record {
	return domainRecord{&wire.DomainRecord{Claim: *d.c, RelayKey: relay, Zone: zone, Index: index, Checkpoint: note, Proof: proof}}
}

func (d domainRecord) claim() claim { return domainClaim{&d.r.Claim} }
func (d domainRecord) zone() string { return d.r.Zone }
func (d domainRecord) verify(zoneOf names.ZoneOf) error {
	_, err := names.VerifyDomain(d.r, zoneOf)
	return err
}

// claimFrom wraps a stored claim message of either kind.
func claimFrom(m wire.Message) (claim, bool) {
	switch c := m.(type) {
	case *wire.UserClaim:
		return userClaim{c}, true
	case *wire.DomainClaim:
		return domainClaim{c}, true
	}
	return nil, false
}

// newKinds returns the username and the domain kind.
func newKinds() (user, domain *kind) {
	user = &kind{id: names.KindUser, noun: "name", feature: wire.FeatureNames, store: storeNamesPrefix, firstStore: storeFirstPrefix,
		onePerKey: true, stale: wire.CodeBadName, parseEntry: names.ParseEntry, notKind: names.ErrNotUser,
		lookup: func(id uint32, hash [32]byte) wire.Message { return &wire.NameLookup{ID: id, Hash: hash} },
		reply: func(id uint32, res *result) wire.Message {
			out := &wire.NameResult{ID: id, Code: res.code, Message: res.msg}
			if u, ok := res.rec.(userRecord); ok {
				out.Record = u.r
			}
			return out
		},
		relayClaim: func(id uint32, lease wire.Lease, c claim) wire.Message {
			return &wire.RelayNameClaim{ID: id, Lease: lease, Claim: *c.(userClaim).c}
		}}
	domain = &kind{id: names.KindDomain, noun: "domain", feature: wire.FeatureSites, store: storeDomainsPrefix, firstStore: storeDomainFirstPrefix,
		maxPerKey: MaxDomainsPerKey, stale: wire.CodeStale, parseEntry: names.ParseDomainEntry, notKind: names.ErrNotDomain,
		lookup: func(id uint32, hash [32]byte) wire.Message { return &wire.DomainLookup{ID: id, Hash: hash} },
		reply: func(id uint32, res *result) wire.Message {
			out := &wire.DomainResult{ID: id, Code: res.code, Message: res.msg}
			if d, ok := res.rec.(domainRecord); ok {
				out.Record = d.r
			}
			return out
		},
		relayClaim: func(id uint32, lease wire.Lease, c claim) wire.Message {
			return &wire.RelayClaimDomain{ID: id, Lease: lease, Claim: *c.(domainClaim).c}
		}}
	return user, domain
}

// resultOf is the kind-free form of a NameResult or DomainResult.
func resultOf(m wire.Message) *result {
	switch m := m.(type) {
	case *wire.NameResult:
		res := &result{code: m.Code, msg: m.Message}
		if m.Record != nil {
			res.rec = userRecord{m.Record}
		}
		return res
	case *wire.DomainResult:
		res := &result{code: m.Code, msg: m.Message}
		if m.Record != nil {
			res.rec = domainRecord{m.Record}
		}
		return res
	}
	return &result{code: wire.CodeProtocol, msg: fmt.Sprintf("an answer of type %d", m.Type())}
}

// checkClaim checks that c verifies and is the claim of the node with
// lease l: a username binds the lease's keys, address and zone; a domain,
// its sign key.
func checkClaim(c claim, l *wire.Lease) *result {
	switch c := c.(type) {
	case userClaim:
		if err := names.VerifyClaim(c.c); err != nil {
			return refuse(wire.CodeBadName, "%s", claimProblem(err))
		}
		for _, f := range []struct {
			what string
			same bool
		}{
			{"sign key", c.c.SignKey == l.SignKey},
			{"agree key", c.c.AgreeKey == l.AgreeKey},
			{"address", c.c.Address == l.Address},
			{"nonce", c.c.Nonce == l.Nonce},
			{"zone", c.c.Zone == l.Zone},
		} {
			if !f.same {
				return refuse(wire.CodeBadName, "the claim's %s is not the one in your lease", f.what)
			}
		}
	case domainClaim:
		if err := names.VerifyDomainClaim(c.c); err != nil {
			return refuse(wire.CodeBadName, "%s", claimProblem(err))
		}
		if c.c.SignKey != l.SignKey {
			return refuse(wire.CodeBadName, "the domain claim is signed by another key than your lease's: a node claims domains with its own key")
		}
	default:
		return refuse(wire.CodeBadName, "not a claim")
	}
	return nil
}
