// Package link is the plumbing a relay's connections share, a node's and
// another relay's alike: a Link over a transport.Conn.
//
// Frames going out wait in a bounded queue (in frames, and in bytes if
// Config.QueueBytes says) that one writer goroutine drains; a link whose
// queue overflows is too slow and is stopped. Stop
// records why and lets the writer send what is still queued (typically an
// Error saying why) for a moment before it closes the conn, with a
// WebSocket status and the reason where the conn can carry them
// (ReasonCloser).
//
// Frames coming in are read by Next, one at a time, with the rules every
// relay link keeps:
//   - a frame of a type this build does not know (wire.ErrUnknownType) is
//     counted in Config.Unknown and skipped: newer nodes and relays send
//     them;
//   - a frame over wire.MaxFrame is counted and ends the link;
//   - a frame of a known type that does not decode is first offered to
//     Config.Salvage, then counted, answered with an Error and ends the
//     link;
//   - a conn that closed or failed ends the link.
//
// Serve runs Next in a loop and hands each frame to a handler, whose
// error decides what happens: nil, taken; a Refusal, the other side hears
// why and the frame counts against the link; ErrViolation, it counts
// (the handler has answered); any other error ends the link. A link with
// MaxViolations refused frames is cut at the last of them.
//
// The engines (relay/zone, relay/federation) build on Link and never see
// a socket: their tests run over transport.Pipe.
package link
