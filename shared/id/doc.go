// Package id owns DDT's 160-bit address space: the Address type, its text
// form (40 lowercase hex digits), the XOR distance Kademlia routes by, and
// the derivation of a node's address from its public key and the nonce a
// relay picked at admission.
//
// Addresses are derived, never chosen: Derive(pub, nonce) is the first 20
// bytes of SHA-256(pub ‖ nonce), so a node cannot place itself in the key
// space without the relay's help.
package id
