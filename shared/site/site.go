package site

import (
	"strings"

	"ddt/shared/content"
	"ddt/shared/names"
	"ddt/shared/node"
	"ddt/shared/wire"
)

// Error codes of the service, beside the node's own (node.CodeUnavailable,
// node.CodeTimeout, node.CodeRateLimited, node.CodeNotAdmitted, …) and
// content's.
const (
	CodeInvalid       = "invalid"        // not a domain name, a path or a manifest this package accepts
	CodeTaken         = "taken"          // another key holds the domain
	CodeUnknownDomain = "unknown-domain" // nobody holds the domain
	CodeForged        = "forged"         // a record or update that does not verify
	CodeStale         = "stale"          // an update whose version is not above the current one
	CodeNoFile        = "not-found"      // the site has no file at that path
	CodeBadRange      = "bad-range"      // a Range the file cannot satisfy (416)
)

// ReservedPrefix is the path prefix a site may not use: a site's origin
// serves the DDT frames that connect it to the node under it.
const ReservedPrefix = ".ddt/"

// Config configures the service.
type Config struct {
	// Files is the node's content service: a site's manifest and files
	// are its content.
	Files *content.Service
}

// Service is the sites capability. Make one with New and list it in the
// node's Config.Capabilities after the content service.
type Service struct {
	cfg   Config
	h     *node.Host
	files *content.Service

	dom       domains       // Claim, Resolve: domains.go
	manifests manifestCache // decoded site manifests: serve.go
}

var _ node.Capability = (*Service)(nil)

// New returns a sites service, to be attached to a node.
func New(cfg Config) *Service { return &Service{cfg: cfg, files: cfg.Files} }

// Feature implements node.Capability.
func (s *Service) Feature() string { return wire.FeatureSites }

// Attach implements node.Capability.
func (s *Service) Attach(h *node.Host) error {
	s.h = h
	return s.attachDomains(h)
}

// Suffix ends every DDT domain.
const Suffix = ".ddt"

// NormalizeDomain returns domain in its canonical form, "example.ddt":
// lower case, with the suffix, its label 1–63 of a–z, 0–9 and inner
// hyphens (a DNS label). "Example", "example.ddt" and "EXAMPLE.DDT" are
// one domain. The error says what is wrong (code CodeInvalid).
func NormalizeDomain(domain string) (string, error) {
	label := strings.ToLower(strings.TrimSpace(domain))
	label = strings.TrimSuffix(label, Suffix)
	if err := names.CheckLabel(label); err != nil {
		return "", node.Errorf(CodeInvalid, nil, "%q is not a DDT domain: %v", domain, err)
	}
	return label + Suffix, nil
}

// Label is the label of a normalized domain: "example" for "example.ddt".
func Label(domain string) string { return strings.TrimSuffix(domain, Suffix) }
