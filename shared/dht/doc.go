// Package dht owns DDT's Kademlia: the routing table of one node, the
// iterative lookups that find nodes and records, and the signed,
// versioned records (BEP 44 style) that nodes keep for each other.
//
// The DHT never touches a connection. Requests go out through the Network
// interface (Call: a request, a reply or an error) and come in through
// Handle; the node layer carries both over its data channels, wrapped in
// its own envelopes, and tests and package sim carry them in memory. The
// messages are the wire package's FindNode/Nodes, FindValue/Value,
// Store/Stored and Ping/Pong.
//
// Data flow:
//
//   - Routing table: 160 buckets by common prefix length with Self, K
//     contacts each, least recently seen first, each with a replacement
//     cache of K more. Seen (an answer, or any message from an
//     authenticated sender) inserts or refreshes a contact; a full bucket
//     puts newcomers in its cache. Failed counts failed calls: after 3 in a
//     row the contact is dropped and the cache's freshest entry takes its
//     place. Only nodes that answered enter the table, never addresses
//     merely reported by others.
//   - Lookups (Lookup, Get, and the one inside Put) run in rounds of Alpha
//     parallel calls to the closest candidates not yet asked, each bounded
//     by Timeout; when a round brings nothing closer, the next asks all of
//     the K closest not yet asked; the lookup ends when those have all
//     answered. Rounds, messages and candidates are bounded, so nodes that
//     answer with garbage or made-up contacts cannot stall a lookup. A
//     round's calls run on their own goroutines, all ended before the
//     lookup returns.
//   - Records are kept per (key, signer), at most MaxSigners signers per
//     key and MaxStored records in all; a higher sequence number replaces a
//     lower one. A record not re-stored within RecordTTL is dropped. The
//     publisher re-stores its own records every Republish.
//   - Maintain does all periodic work on the caller's goroutine (plus the
//     lookups' short-lived ones): expiry, eviction of contacts silent for
//     Inactive, pings of contacts silent for half of that, refresh of
//     buckets with no lookup for Refresh, and republishing.
//
// All time comes from Config.Now, so tests and simulations run days of
// virtual time in milliseconds.
package dht
