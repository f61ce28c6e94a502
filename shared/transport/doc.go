// Package transport owns the links between nodes.
//
// A Conn is an ordered, reliable, message-oriented link to one peer. A
// Transport makes Sessions: one connection attempt each, driven by
// signaling that the caller carries to the other side (through the relay
// today). The WebRTC transport is one code path for native nodes (pion)
// and browser tabs (pion's js backend over the browser's
// RTCPeerConnection); the only platform files are the setting engine and
// the data channel's receive hook. The memory transport connects sessions
// in one process for unit tests and simulations.
//
// Flow of a connection: the initiator's Session sends an offer and ICE
// candidates through its send function; the responder's Session is fed
// them with Handle and answers; both sides' Conn returns once the control
// channel is open.
//
// # Channels
//
// Every session carries two channels, each a Conn, opened together:
//
//   - Control (Session.Conn, or Session.Channel(ctx, Control)): keepalives,
//     DHT lookups, routed messages. Small messages that must never wait
//     behind a transfer.
//   - Bulk (Session.Channel(ctx, Bulk)): large transfers. Send blocks
//     while the channel's buffer is full, so a transfer queues little in
//     the link and a control message sent meanwhile overtakes it.
//
// The channels of a session share one link: closing any of them, or the
// session, closes them all, and every channel's Done fires. Receiving
// never blocks the link (a stalled channel would stall the other through
// the shared SCTP receive window): a receiver that leaves 64 MiB unread on
// a channel is overrun and the link closes.
//
// On WebRTC the two are data channels negotiated out of band — SCTP
// streams 0 (control) and 1 (bulk), which both sides create as the
// session starts — so both open the moment the SCTP association is up,
// with no in-band open handshake and no channel the peer could name for
// us. In memory they are two queues; the bulk one holds at most 1 MiB and
// blocks its sender beyond that.
//
// # Candidates
//
// A native transport offers host candidates of every interface (and the
// relay's STUN/TURN servers). On a machine whose only interface up is
// loopback — an offline laptop, a test namespace — it offers loopback
// candidates by itself, so two nodes there still connect. Config's
// LoopbackOnly restricts ICE to loopback whatever else is up (tests).
package transport
