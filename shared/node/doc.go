// Package node is the host of a DDT node: what wasm/ (a browser tab) and
// relay's node command (a headless node) run, and what every capability
// — usernames, content, sites, chat, channels, streams, credits — builds
// on. It imports none of them.
//
// # The node
//
// A Node loads or creates its identity from a Store, then runs a relay
// loop: it connects to its relay's WebSocket, answers the challenge
// (announcing its features), and receives a signed lease and the first
// peers of its zone. It dials those peers with its Transport, signaling
// through the relay, and later through the overlay; a first dial that
// fails or stalls is tried again within seconds (event dial-failed).
// Each link starts with a mutual proof of lease (PeerHello with the
// sender's features, PeerProof) on its control channel, which then
// carries keepalives, DHT requests and routed messages; large transfers
// (the throughput test, later chunks) go on the link's bulk channel, so a
// transfer that fills the link never delays a ping or a lookup. When the
// relay goes away the node keeps its peers and retries with backoff; a
// returning node keeps its address because the relay remembers its nonce.
//
// Every frame is dispatched by its type through one table: the node's
// own handlers (keepalive, throughput test, goodbye, the overlay's RPC
// and Routed envelopes, the DHT's requests, the relay's signaling and
// membership news) and those capabilities registered. A frame of a type
// this build does not know — a newer peer's — is counted (Stats,
// RoutingView's overlay.unknown) and skipped on every link; a malformed
// frame of a known type still closes the link. A request of a type the
// receiver has no handler for is answered with wire.CodeUnsupported.
// Handlers run on the link's read loop and never wait on a link: every
// control frame goes out through the peer's bounded send queue, drained
// by one writer per link (what a read loop sends — a forwarded routed
// message, an answer to a ping — is dropped and counted if the queue is
// full), requests are answered on a bounded number of goroutines, and a
// peer that stops answering keepalives is closed within PeerTimeout.
// Everything a user would see comes out as Events to subscribers; the
// shapes the page and the native node's HTTP API show are this package's
// views (PeerView, LookupView, RoutingView, ErrorView, Event.Payload).
//
// # Adding a capability
//
// A capability is a package of its own under shared/ that implements
// Capability — a Feature name and an Attach method — and uses only the
// *Host that Attach receives:
//
//   - its identity and lease: Host.Identity, Host.Lease, and Host.ZoneOf
//     for the relays the node trusts;
//   - the DHT: Host.Get, Host.Put (Host.Forget stops republishing),
//     Host.Lookup, Host.Closest (the live nodes closest to a key);
//   - its peers and the overlay: Host.Peers, Host.Connect, Host.Ping,
//     Host.Gone (closed when a peer's channel closes), Host.Send (control
//     channel), Host.SendBulk (bulk channel, waiting for room as long as
//     its ctx), Host.SendRouted, Host.Request (a request answered by the
//     other node's RequestHandler, over a data channel if one is open,
//     else routed);
//   - the relay: Host.RelayHas, Host.RelayRequest (a request answered by
//     a wire.Reply with the same ID);
//   - handlers, registered in Attach only: Host.HandlePeer, HandleRouted,
//     HandleRequest, HandleRelay, and Host.OnAdmitted for work at every
//     admission;
//   - events (Host.Emit), a namespace of the node's store (Host.Store,
//     and Host.Adopt for a record an earlier version kept outside it),
//     the clock every timer must use (Host.Clock), a logger, and Host.Life,
//     which ends when the node stops.
//
// The node announces every capability's feature in its hellos; the Host
// sends a capability's messages only to peers and relays that announced
// it (ErrUnsupported otherwise). Its messages are defined in package wire,
// in the type range reserved for it (wire's doc.go), with its feature
// name beside them. The edge wires capabilities in: wasm/ and relay's node
// command list them in Config.Capabilities and expose their methods.
//
// # Worked example: usernames
//
// Package username is the first capability. username.New returns a
// Client; the edge passes it in Config.Capabilities. Its Feature is
// wire.FeatureNames. In Attach it keeps the Host, adopts the record that
// versions before namespaces kept under "username" (now "names/record"),
// loads it, and registers an admission hook (Host.OnAdmitted) that
// publishes the record again, or claims the name again at the next
// version when the node came back at another address. Client.Register
// signs a claim for Host.Lease and sends it with Host.RelayRequest (a
// NameClaim, answered by a NameResult — only to a relay that announced
// FeatureNames), verifies the record against Host.ZoneOf, saves it in
// Host.Store, emits the "username" event with the record's View
// (Host.Emit), and publishes it sealed in the DHT (Host.Put), retrying on
// Host.Clock. Client.Resolve reads the DHT (Host.Get), verifies, and asks
// the relay (a NameLookup) only when the DHT has nothing. Its failures
// are *Error values with codes (invalid, taken, not-found, …) that
// window.ddt and the native node show as they are (Explain). None of its
// state lives on Node.
//
// Tests of a capability use package nodetest: swarms of real nodes,
// admitted without a relay (Node.AdmitLocal) and linked over in-memory
// pipes with the real handshake (Link).
package node
