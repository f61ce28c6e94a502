// Package wire owns DDT's binary wire format: every message a node and a
// relay exchange over the relay's WebSocket, and every message two nodes
// exchange over a WebRTC data channel.
//
// A frame is one WebSocket or data-channel message:
//
//	version (1 byte, = Version) | type (1 byte) | body
//
// Bodies are a fixed sequence of fields per type, documented on each
// message struct: fixed-size byte arrays, unsigned varints, and
// varint-length-prefixed byte strings and lists with per-field limits.
// A frame is at most MaxFrame bytes. Decoding checks every length against
// its limit before allocating, rejects trailing bytes, and reports errors
// that wrap ErrMalformed, ErrTooLarge or ErrVersion.
//
// Errors cross the wire as a Code (see errors.go), which maps both ways to
// the exported sentinel errors.
//
// # Newer peers
//
// Browser tabs run cached wasm, so nodes and relays of several versions
// meet. Two rules let them: a frame of a type this build does not know
// (Unmarshal's error wraps ErrUnknownType) is counted and skipped by every
// link — a peer's data channel, a node's relay connection, a relay
// federation link — while a known type that does not decode still closes
// the link; and every hello (Challenge and Hello, PeerHello, RelayHello)
// carries the sender's Features, so a capability's messages go only to a
// side that announced the capability. A peer's request (in an RPC) of a
// type the receiver has no handler for is answered with CodeUnsupported;
// a frame a relay does not take from nodes, or a service's frame from a
// relay that did not announce the service, is refused.
//
// # Type ranges
//
// Types are one byte; values are part of the protocol and never renumbered.
// Each range belongs to one part of the protocol, whichever link its
// messages travel (a capability may talk to peers, to relays or both):
//
//	  0        never a type
//	  1–31     node ↔ relay: admission, signaling, membership, errors (1–9);
//	           usernames (10–14)
//	 32–47     peer link: hello, proof, keepalive, throughput test, bye (32–39);
//	           overlay envelopes RPC and Routed (40–41)
//	 48–63     DHT requests and replies, carried in RPC (48–53)
//	 64–79     relay ↔ relay: federation (64–70), ledger mirroring (71–75),
//	           usernames (76); 77–79 free
//	 80–95     relay ↔ relay, continued (domains, credits, edge relays)
//	 96–111    content: chunks, manifests, providers (shared/chunk, shared/content)
//	112–127    sites: domain claims and lookups, site manifests (shared/site)
//	128–143    unicast: friend requests, the chained key exchange, chat,
//	           offline delivery (shared/unicast)
//	144–159    channels: join, approval, posts, gossip (shared/channel)
//	160–175    streams and conferences: SFU signaling, stream chunks,
//	           forwarder selection (shared/stream)
//	176–191    credits: receipts, spending, balances (shared/credit)
//	192–239    unassigned
//	240–254    experiments and tests: never sent by a release build
//	255        never a type
//
// A capability registers its messages in a file of its own here (as
// names.go does) and its feature name beside them (FeatureNames).
//
// Relay protocol, in order:
//
//	relay → node  Challenge      zone, relay key, fresh nonce, the relay's features
//	node  → relay Hello          node keys, signature over the challenge, the node's features
//	relay → node  Admitted       signed lease, first peers (of every federated
//	                             zone), ICE servers, the relays it knows
//	         or   Refused        code, reason, redirect, retry delay
//	both ways     Signal         WebRTC offer/answer/candidate for a peer
//	relay → node  PeerJoined / PeerLeft
//	relay → node  Error          a request was refused; the link stays up
//
// Relay↔relay protocol (federation, see federation.go): RelayChallenge and
// RelayHello (with the sender's features) both ways, then ZoneMembers
// batches, MemberJoined/MemberLeft, ZoneSummary and RelaySignal, and the
// frames of the link services both sides list (FeatureLedger, FeatureNames).
//
// Peer protocol over a data channel: each side sends PeerHello (its lease,
// a fresh nonce and its features) and then PeerProof (a signature over the
// other side's nonce); afterwards Ping/Pong, BenchData/BenchEnd/BenchAck
// and Bye, and the DHT's requests and replies (dht.go): FindNode/Nodes,
// FindValue/Value, Store/Stored. A peer link has a control channel for all
// of these and, if both sides list FeatureBulk, a bulk channel for large
// transfers (the throughput test's BenchData among them).
package wire
