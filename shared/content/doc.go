// Package content is the node's content capability (wire.FeatureContent):
// putting a payload into DDT and getting it back from whoever holds it.
//
// A payload is cut into chunks of at most 4 MiB, each named by its SHA-256
// (package chunk); a manifest lists them and its hash is the content id.
// Chunks live in a store.Chunks (IndexedDB in a tab, files for a native
// node); the Library accounts for them: a node's own content is pinned,
// what it holds for others (replicas and cache) fits in its pledge and is
// evicted least recently used first, and its Policy says what it is
// willing to hold at all.
//
// Holders announce themselves in the DHT with provider records (under
// chunk.Hash.Key, signed, expiring, refreshed). A download asks the DHT
// for providers, prefers those with the least latency, fetches chunks in
// parallel from several over their bulk channels, checks each against its
// hash, retries elsewhere on failure and penalises a peer that served bad
// bytes. It streams chunk by chunk into the store, so memory stays flat
// however large the payload.
//
// Public content gets Replicas (3) copies at publication on the nodes
// closest to each chunk's key, one more for every doubling of demand
// (decaying as demand falls); unicast content at most one. Holders check
// the count on the node's clock and repair it after churn.
package content
