// Package username is the node's username capability: the client beside
// ddt/shared/names (the rules, claims, ledger entries, records and their
// verification), built only on the node's capability API (node.Host).
// It is the worked example in ddt/shared/node's doc.go of how a
// capability is added.
//
// A node holds at most one name. Register signs a claim of the name for
// the node's lease and asks the relay (Host.RelayRequest, a NameClaim;
// only a relay that announced wire.FeatureNames is asked), which has the
// name's home relay sequence it in its zone ledger and answers with a
// NameResult holding the record. The client checks that the record is of
// the claim it sent and verifies it (claim signature, relay checkpoint,
// inclusion proof, against the relays the node's admission flags trusted
// and running names: Host.Relays),
// saves it in its namespace of the node's store (Host.Store), emits the
// "username" event (Host.Emit) and publishes the record in the DHT
// (Host.Put) under names.Key, sealed with the name and signed by the key
// derived for the name (names.Seal), not the node's own. At each admission
// (Host.OnAdmitted) the saved record is published again, or claimed again
// at the next version if the node came back at another address.
//
// Resolve looks a name up in the DHT (Host.Get), drops (and logs) the
// records that do not verify, and takes the best of the rest only if the
// name's home (names.Home among those relays) sequenced it and no other
// ledger's record holds the name for another key; otherwise it asks the
// relay with a NameLookup, which answers from the ledger that holds the
// name first. Verified answers are cached for five minutes, at most 1024. Nothing maps an
// address or key back to a name.
//
// Failures are *node.Error values worded for people, with a code: this
// package's (CodeInvalid, CodeTaken, CodeNotFound, CodeAlreadyRegistered,
// CodeForged) or the node's (unavailable, rate-limited, not-admitted,
// timeout). View is a record as window.ddt and the native node show it.
package username
