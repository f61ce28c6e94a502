// Package names is DDT's usernames: who may hold a name, how a claim of
// one is signed, sequenced and proven, and how a node checks a record
// before it trusts it. It runs natively and in the browser.
//
// A username is 1–16 ASCII letters and digits, case-insensitive (Normalize
// gives the canonical lower-case form), first come first served. A node
// claims one with a [wire.UserClaim] signed by its key, binding the name to
// its address and public keys. Its relay passes the claim to the name's
// home relay ([Home]: of the trusted federated relays that run the
// service, the one whose key hashes closest to the name's hash), which
// refuses it if another key holds the name and otherwise appends an [Entry] to its zone ledger. The answer is
// a [wire.UserRecord]: the claim plus the relay's signed checkpoint and an
// inclusion proof for the entry. Because every claim of one name meets in
// one ledger, "first" is that ledger's order, and every relay decides a
// race the same way. Two ledgers hold claims of one name only if the
// federation changed or a relay sequenced a name it was not asked to;
// then the first holder keeps it: each relay keeps the ledger it learnt
// of first as the holder, and no record settles it ([Before] orders one
// ledger's entries only).
//
// The owner stores its record in the DHT under [Key] (the first 20 bytes
// of SHA-256("user/" ‖ name)), sealed with a key derived from the name and
// signed by a key derived for the name from the owner's private key
// ([Seal], [RecordSigner]), never by the owner's identity key: the nodes
// that store it see a signer linked to nothing but the name's key, the
// same one at every version (so a new version replaces the old, and only
// the owner can make one). Anyone resolving the name opens it ([Open]:
// the DHT signature, the seal, and the owner's signature, inside the seal,
// vouching for that signer) and runs [Verify]: the claim's signature and
// address, the checkpoint's signature by a relay the node knows, and the
// inclusion proof.
//
// There is no reverse lookup. A ledger entry holds only hashes that need
// the name to be read, a DHT value is sealed with the name and signed by
// a key only its owner can link to itself, lookups go by
// the name's hash, and nothing anywhere is keyed or searchable by address.
package names
