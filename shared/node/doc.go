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
// Everything a user would see comes out as Events to subscribers.
package node
