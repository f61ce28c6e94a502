// Package federation is a relay's links to the relays it federates with.
//
// Each relay dials the relays named by -peer (Config.Peers, through
// Config.Dial) and accepts links from the relays it trusts (Serve): keys
// its operator named (Peers, Config.Trusted), keys pinned at first
// contact for a -peer named without one (kept in Config.Store), and keys
// added with Trust. In open federation (Config.Open) it also accepts any
// other relay that proves a key, as untrusted: such a relay has links and
// members of its own limits (MaxOpenLinks, MaxOpenMembers), is never
// redirected to and is not flagged trusted to nodes. Both sides send a
// RelayChallenge (a nonce and their key: a key this relay will not link
// to is refused before anything is signed) and answer the other's with a
// RelayHello signed over their role, both nonces, both keys and who they
// are, which also lists the link services the sender runs (its
// Features). Then each sends its zone's membership (ZoneMembers batches,
// from zone.Snapshot), the joins and leaves that follow (a zone.Watch, so
// the order holds), its counts every SummaryEvery, and the signals its
// nodes send to the other zone's nodes (RelaySignal). An address is
// reached through the first relay that claims it: a later claim by
// another relay is kept aside until then (see Link.addMembers). A lost
// link is redialed with backoff (ddt/shared/backoff) by the side that
// dialed it; while it is down the other zone's members are forgotten
// (they cannot be reached).
//
// When two links join the same pair of relays (both name each other with
// -peer, or a restart races a redial) both sides keep the same one: the
// link dialed by the relay with the smaller key, or the newer link if the
// same relay dialed both. The other is closed and its dialer waits for
// the kept link to end before dialing again.
//
// The Federation is the zone's Directory: newcomers get peers from every
// linked zone and the linked relays with their flags (trusted or not), a
// full zone redirects to the linked trusted relay with the most room, and signals for another zone's node
// go over its relay's link; signals coming back are handed to
// zone.Deliver.
//
// Link services (relay/zoneledger, relay/registrar) register handlers by
// frame type with the feature they belong to (Handle), hooks for links
// coming up and going down, and frames to add to the summaries
// (Periodic). A relay announces the features registered; a service sends
// its frames only over links whose other side announced its feature
// (Link.Has, Links), and a frame of a service the other side did not
// announce is refused (CodeUnsupported). A frame of a type this relay
// does not know is counted and skipped; a malformed one ends the link.
//
// Lock order: the zone's member lock before Federation.mu. Functions named
// …Locked run with Federation.mu held — except the zone.Directory methods
// (EachPeerLocked, RelaysLocked, RoomiestLocked), whose suffix is the zone's:
// they run with the zone's member lock held and take Federation.mu
// themselves. Nothing holding Federation.mu calls into the zone or into a
// service.
package federation
