// Command relay is DDT's Bootstrapping Router: it serves the web app,
// admits nodes to its zone with signed address leases, and forwards WebRTC
// signaling between admitted nodes. Its signing key and the lease records
// (the nonce behind every address it leased, and when that node was last
// seen) live in a bbolt file under -data, so a relay restart changes no
// one's address; a lease lapses 7 days after its node was last seen.
//
// The command wires the relay's engines, packages below it that serve a
// transport.Conn and never see a socket (the HTTP layer in server.go turns
// each WebSocket into a transport.WebSocket, with keepalive pings):
//
//   - relay/link: the plumbing of one connection, a node's or a relay's:
//     its send queue and writer, its stop with a reason, the reading rules
//     (frames of unknown types are counted and skipped), handler dispatch;
//   - relay/zone: admission, leases, members and signaling; services
//     register node message types with it;
//   - relay/federation: the links to the -peer relays and to relays that
//     dial in, membership, summaries, cross-zone signals; services
//     register link message types with it, with the feature they belong
//     to, and send only to relays that announced it;
//   - relay/zoneledger: the zone's ledger, the mirrors of federated zones'
//     ledgers and their sync over links, /ledger/…;
//   - relay/registrar: usernames, decided at the name's home relay.
//
// Relay (relay.go) is that wiring: NewRelay builds the zone, its
// federation, the ledger service and the username service on one store,
// one key and one clock, in that order, and starts dialing.
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
