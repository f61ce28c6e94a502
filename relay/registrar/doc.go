// Package registrar is the relay's username and domain service (the
// node-facing and link services wire.FeatureNames and wire.FeatureSites).
//
// Domains are decided by the same engine as usernames (kinds.go: a kind
// table says what differs — frames, ledger entry kind, store keys, the
// checks of a claim): a domain's home is names.Home over the trusted
// relays that announced FeatureSites, the first claim wins, the holder's
// key updates it at a higher version (an equal or lower one is refused
// with wire.CodeStale; the same claim again is answered with its record),
// and one key may hold any number of domains. What follows says "name"
// for either.
//
// A node claims a name with a NameClaim (a zone.Handler registered here);
// its relay finds the name's home — names.Home over its own key and the
// keys of the trusted federated relays it knows (federation.Relay.Trusted),
// linked or not, that announced FeatureNames (a relay without the service
// cannot decide names, a relay that merely proved a key decides none, and
// every relay of one federation sees the same announcements) — and either
// decides the claim itself or forwards it to the home as a RelayNameClaim
// carrying the node's lease (a federation.Handler at the home), and hands
// the home's NameResult back to the node once it verifies. The home
// decides under one mutex — check, zoneledger.Sequence, store — so every
// claim of a name, from any zone, is decided in its ledger's order.
//
// Who holds a name is known from two places, both keyed by the name's
// hash only:
//   - names this relay sequenced: the latest claim, its ledger index and
//     the first claimant's owner commitment, in the store under
//     relay/names/<hash hex>; and the first entry of each name in this
//     relay's own ledger, read back at start, so ownership survives even a
//     crash between Sequence and the store write;
//   - names in the mirrored ledgers of other relays: the first entry of
//     each name in each mirror, from names.ParseEntry, scanned at start and
//     after every mirror update (zoneledger.OnMirrored), kept in memory.
//
// The holder of a name is the first ledger this relay learnt holds it:
// its own ledger is indexed first, mirrors as they arrive, and once two
// ledgers hold the name for different keys the first holder is pinned in
// the store (relay/names-first/<hash hex>), so no ledger learnt later —
// of a relay that became the name's home, or chose its key to be —
// displaces it; the later entry is logged and counted (Stats.Conflicts).
// A claim by any other key is refused as taken; the holder's own claims
// are decided where the name is held. Holdings in the ledgers of relays
// known to be untrusted count for nothing. Lookups go by hash: answered
// from this relay's own names, or forwarded once to the relay whose
// ledger holds the name, or to its home, which in turn asks the holder
// once. Requests and answers go only over links whose other side
// announced FeatureNames; requests from untrusted relays are refused and
// their answers dropped. Nothing here is keyed by address, and nothing
// lists names; the one map keyed by a sign key (to the hash of the name
// it holds here, built from the stored claims) refuses a key a second
// name and answers nothing.
//
// Forwarded requests wait on the relay's clock (Config.Wait), at most
// MaxPendingPerNode of one node's at once; a link that goes down answers
// its waiting requests at once (federation.OnLinkDown), and a node that
// leaves is forgotten (zone.OnGone). Rate limits run on the same clock.
package registrar
