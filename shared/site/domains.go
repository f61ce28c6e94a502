package site

// CONTRACT SKELETON: h21-domains replaces this file.

import (
	"context"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/node"
	"ddt/shared/wire"
)

type domains struct{}

func (s *Service) attachDomains(h *node.Host) error { return nil }

// ResolveOptions shape a Resolve.
type ResolveOptions struct {
	// MaxAge is how old a cached record may be; 0 means the cache's
	// default, a negative value asks the network whatever the cache holds.
	MaxAge time.Duration
}

// Claim claims domain ("example.ddt" or "example") for this node's key,
// pointing at the site manifest site, at the version after the current
// one (1 for a new domain), and publishes the verified record in the
// DHT. CodeTaken if another key holds it.
func (s *Service) Claim(ctx context.Context, domain string, site chunk.Hash) (*wire.DomainRecord, error) {
	panic("contract: built by h21-domains")
}

// Resolve returns the verified current record of domain: from the cache,
// the DHT, or the relay. CodeUnknownDomain if nobody holds it.
func (s *Service) Resolve(ctx context.Context, domain string, o ResolveOptions) (*wire.DomainRecord, error) {
	panic("contract: built by h21-domains")
}

// View is a domain record as window.ddt and the native node show it.
type View struct {
	Domain  string `json:"domain"`  // "example.ddt"
	Owner   string `json:"owner"`   // the owner's sign key, hex
	Site    string `json:"site"`    // the site manifest's content id
	Version uint64 `json:"version"` // grows with each update
	Zone    string `json:"zone"`    // the zone whose ledger sequenced it
	Relay   string `json:"relay"`   // that relay's key, hex
	Index   uint64 `json:"index"`   // the entry's index in that ledger
}

// ViewOf is rec's View.
func ViewOf(rec *wire.DomainRecord) View { panic("contract: built by h21-domains") }
