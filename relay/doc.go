// Command relay is DDT's Bootstrapping Router: it serves the web app,
// admits nodes to its zone with signed address leases, and forwards WebRTC
// signaling between admitted nodes. Its signing key and the nonces behind
// every address it leased live in a bbolt file under -data, so a relay
// restart changes no one's address.
//
// Usage:
//
//	relay [flags]                    serve a zone (see relay -h)
//	relay node -relay URL [flags]    run a headless native node
//
// Endpoints: / (the page), /ddt.wasm (compressed as the client accepts),
// /wasm_exec.js, /healthz (JSON counters), /ws (nodes).
package main
