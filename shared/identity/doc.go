// Package identity owns a node's keys and the leases relays sign for them.
//
// An Identity is an Ed25519 signing key (which authenticates the node to
// relays and peers) and an X25519 agreement key (for end-to-end encryption
// in later layers). A relay issues a Lease binding the keys to a DDT
// address derived from the signing key and a relay-chosen nonce; anyone
// holding the relay's public key checks it with VerifyLease before
// trusting a contact.
package identity
