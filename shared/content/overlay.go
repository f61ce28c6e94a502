package content

import (
	"context"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/id"
	"ddt/shared/wire"
)

// Provider is a node that announced it holds a chunk (or, Whole, every
// chunk of a manifest's content).
type Provider struct {
	Address id.Address
	Whole   bool
	Expires time.Time
}

// overlay is what the service needs of the network. In a node it is the
// Host (hostOverlay); the simulation gives it a world in memory. Every
// method may block on the network and honours ctx.
type overlay interface {
	// Self is this node's address.
	Self() id.Address
	// Providers lists the unexpired provider records under key whose
	// signature and address check out, without this node.
	Providers(ctx context.Context, key id.Address) ([]Provider, error)
	// Announce publishes this node as a provider under key (whole: of a
	// manifest's every chunk), until Withdraw; the overlay refreshes the
	// record before it expires.
	Announce(ctx context.Context, key id.Address, whole bool) error
	// Withdraw stops announcing this node under key.
	Withdraw(key id.Address)
	// Closest is the n live nodes closest to key that run the content
	// capability, this node among them if it is.
	Closest(ctx context.Context, key id.Address, n int) ([]id.Address, error)
	// Ask asks node to to hold a replica (the answer says whether it will;
	// it fetches the chunk afterwards).
	Ask(ctx context.Context, to id.Address, req *wire.ReplicaAsk) (*wire.ReplicaAnswer, error)
	// Have asks node to which of hashes it holds.
	Have(ctx context.Context, to id.Address, hashes []chunk.Hash) ([]bool, error)
	// Fetch reads chunk h, size bytes, from node from into buf (len(buf)
	// ≥ size), unverified: the caller checks the hash. onBytes, if not
	// nil, is told of each piece as it lands (for progress); more bytes
	// than size, or bytes out of order, are an error.
	Fetch(ctx context.Context, from id.Address, h chunk.Hash, size int, buf []byte, onBytes func(n int)) error
	// Latency is the last measured round trip to node a, or 0 if unknown.
	Latency(a id.Address) time.Duration
}
