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
// Relay protocol, in order:
//
//	relay → node  Challenge      zone, relay key, fresh nonce
//	node  → relay Hello          node keys, signature over the challenge
//	relay → node  Admitted       signed lease, first peers (of every federated
//	                             zone), ICE servers, the relays it knows
//	         or   Refused        code, reason, redirect, retry delay
//	both ways     Signal         WebRTC offer/answer/candidate for a peer
//	relay → node  PeerJoined / PeerLeft
//	relay → node  Error          a request was refused; the link stays up
//
// Relay↔relay protocol (federation, see federation.go): RelayChallenge and
// RelayHello both ways, then ZoneMembers batches, MemberJoined/MemberLeft,
// ZoneSummary and RelaySignal.
//
// Peer protocol over a data channel: each side sends PeerHello (its lease
// and a fresh nonce) and then PeerProof (a signature over the other side's
// nonce); afterwards Ping/Pong, BenchData/BenchEnd/BenchAck and Bye.
package wire
