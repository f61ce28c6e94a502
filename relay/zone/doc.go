// Package zone is one relay's zone: the nodes it admits, their address
// leases, and the signaling between them.
//
// Serve takes a node's connection as a transport.Conn (the relay's HTTP
// layer adapts a WebSocket; tests use transport.Pipe) and runs it:
//
//	relay → node  Challenge (zone, relay key, nonce, the services offered)
//	node  → relay Hello, signed over the challenge
//	relay → node  Admitted (a lease, first peers, the relays to trust)
//	         or   Refused (the zone is full: a relay to try instead)
//
// then serves the node's frames until it leaves. Admission checks the
// signature and issues a lease at the node's old address unless it has
// been away LeaseLapse or longer (lease.go keeps, per key, the last lease
// and when its node was last seen, and an hourly sweep frees lapsed
// addresses). The zone tells its members of every newcomer (PeerJoined)
// and every departure (PeerLeft).
//
// Frames from admitted nodes go to the Handler registered for their type
// (Handle): the zone registers Signal itself, forwarded to its target
// here or, through the Directory, to a federated zone; services register
// theirs (relay/registrar: NameClaim, NameLookup) and the features they
// offer nodes, which the Challenge lists. A frame of a type the relay
// does not know is counted and skipped; a known type nobody handles is
// refused and counts against the node; a malformed frame ends its link
// (relay/link keeps these rules).
//
// Other packages learn of members through hooks: a Watch sees joins and
// leaves in order under the member lock, which Snapshot also holds, so a
// federation link gets a snapshot and then every change exactly once;
// OnGone runs after a member's link ended. The Directory (relay/federation)
// supplies the members and relays of linked zones and routes signals to
// them; Deliver takes signals coming back.
//
// Everything a node can make the zone hold has a bound, and Stats.Limits
// counts what each refused: connections joining (MaxJoining, HelloTimeout),
// members (Config.MaxNodes; a newcomer to a full zone is refused before
// its lease record is written), each member's send queue (OutQueue frames,
// OutQueueBytes; signals from others are dropped rather than queued past
// half of it, so they never get a slow node cut), signals and offers per
// node (SignalRate/SignalBurst, OfferRate/OfferBurst, on the zone's clock)
// and lease records (Config.MaxLeases, evicting those seen longest ago).
// The zone keeps no state per signaling session.
//
// Lock order: Zone.leaseMu before Zone.mu before anything a Watch or the
// Directory locks. Functions named …Locked run with Zone.mu held.
package zone
