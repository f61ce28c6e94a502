// Command relay is DDT's Bootstrapping Router: it serves the web app,
// admits nodes to its zone with signed address leases, and forwards WebRTC
// signaling between admitted nodes. Its signing key and the lease records
// (the nonce behind every address it leased, and when that node was last
// seen) live in a bbolt file under -data, so a relay restart changes no
// one's address; a lease lapses 7 days after its node was last seen.
//
// Relays federate (federation.go): each dials its -peer relays, both sides
// prove their keys, and they exchange their zones' signed memberships,
// joins and leaves, and counts. A newcomer's peers come from every linked
// zone, its signals to another zone's nodes cross the link, and a full
// zone redirects to the linked relay with the most room.
//
// Each relay keeps its zone's ledger (ledger.go), an append-only log of
// public events signed with the relay key, in the same bbolt file, and
// mirrors the ledgers of the relays it links to: checkpoints are announced
// over the link, and a mirror that is behind fetches the entries and a
// consistency proof and accepts them only if they verify. A fork is
// refused, kept as evidence and counted.
//
// Usernames (names.go): a node's NameClaim is decided by the name's home
// relay (ddt/shared/names.Home over every federated relay this one knows),
// here or — as a RelayNameClaim carrying the node's lease — over the link
// to it; the home sequences the claim's entry in its ledger, keeps the
// claim in its store under the name's hash, and answers a NameResult with
// the record and its inclusion proof. Who holds a name is known from this
// relay's ledger and from the first entry of each name in the mirrored
// ledgers; lookups go by the name's hash only. Nothing is keyed by address.
//
// Usage:
//
//	relay [flags]                    serve a zone (see relay -h)
//	relay node -relay URL [flags]    run a headless native node
//	relay audit -relay URL [-zone Z] [-names]
//	                                 check a relay's (or its mirror's) ledger
//
// Endpoints: / (the page), /ddt.wasm (compressed as the client accepts),
// /wasm_exec.js, /healthz (JSON counters, usernames among them), /relays (JSON: the relays it
// knows), /ledger/… and /ledger/zone/<zone>/… (the zone ledger and the
// mirrors: checkpoint, entries, proofs), /ws (nodes, from any origin),
// /federate (relays).
package main
