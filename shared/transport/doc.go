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
// them with Handle and answers; both sides' Conn returns once the data
// channel is open.
package transport
