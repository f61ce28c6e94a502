// Package registrar is the relay's username service (the node-facing
// and link service wire.FeatureNames).
//
// A node claims a name with a NameClaim (a zone.Handler registered here);
// its relay finds the name's home — names.Home over its own key and the
// keys of the federated relays it knows, linked or not, that announced
// FeatureNames (a relay without the service cannot decide names, and
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
// Across ledgers the holder is the first entry by names.Before; a claim by
// any other key is refused as taken. Lookups go by hash: answered from
// this relay's own names, or forwarded once to the relay whose ledger
// holds the name, or to its home. Requests and answers go only over links
// whose other side announced FeatureNames. Nothing here is keyed by
// address or key, and nothing lists names.
//
// Forwarded requests wait on the relay's clock (Config.Wait); a link that
// goes down answers its waiting requests at once (federation.OnLinkDown),
// and a node that leaves is forgotten (zone.OnGone).
package registrar
