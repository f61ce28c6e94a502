// Package node composes the protocol core into one DDT node: the API that
// the browser entry (wasm/) and the native node (relay node) expose.
//
// A Node loads or creates its identity from a Store, then runs a relay
// loop: it connects to its relay's WebSocket, answers the challenge, and
// receives a signed lease and the first peers of its zone. It dials those
// peers with its Transport, signaling through the relay, and accepts
// connections signaled by others. Each data channel starts with a mutual
// proof of lease (PeerHello, PeerProof) and then carries keepalive pings,
// on-demand pings and throughput tests. When the relay goes away the node
// keeps its peers and retries with backoff; a returning node keeps its
// address because the relay remembers its nonce.
//
// A node may hold one username (names.go). Register signs a claim of the
// name for the node's lease and sends it to the relay as a NameClaim; the
// relay has the name's home relay sequence it in its zone ledger and
// answers with a NameResult of the same ID, holding the record. The node
// checks that the record is of the claim it sent and verifies it
// (claim signature, relay checkpoint, inclusion proof, against the relay
// keys its admission named), saves it in the Store, and publishes it in
// the DHT under names.Key, sealed with the name. At each admission the
// saved record is published again, or claimed again at the next version
// if the node came back at another address. Resolve looks a name up in
// the DHT, keeps the best record that verifies (logging and dropping any
// that do not), and asks the relay with a NameLookup only when the DHT
// has none; verified answers are cached for five minutes. Nothing maps an
// address or key back to a name. ViewRecord and ExplainNameError give the
// record and errors as the page and the native node show them.
//
// Everything a user would see comes out as Events to subscribers.
package node
