package site

import (
	"errors"
	"testing"

	"ddt/shared/node"
)

// A site's origin under a DDT page or a relay: *.ddt.localhost at the
// base's port on loopback (whatever the relay says of a sites domain),
// the relay's sites domain elsewhere, and no origin (unavailable) for a
// relay that serves no sites or a base that is not http(s).
func TestOrigin(t *testing.T) {
	for _, c := range []struct {
		base, sitesDomain, want, code string
	}{
		{"http://127.0.0.1:8080", "", "http://example.ddt.localhost:8080", ""},
		{"http://127.0.0.1:8080/", "sites.example.org", "http://example.ddt.localhost:8080", ""},
		{"http://127.8.9.10:9000/relay", "", "http://example.ddt.localhost:9000", ""},
		{"http://localhost:8080", "", "http://example.ddt.localhost:8080", ""},
		{"http://LOCALHOST", "", "http://example.ddt.localhost", ""},
		{"http://other.ddt.localhost:8080", "", "http://example.ddt.localhost:8080", ""},
		{"http://[::1]:8080", "", "http://example.ddt.localhost:8080", ""},
		{"https://relay.example.org", "sites.example.org", "https://example.ddt.sites.example.org", ""},
		{"https://relay.example.org:8443", ".Sites.Example.Org.", "https://example.ddt.sites.example.org:8443", ""},
		{"https://relay.example.org", "", "", node.CodeUnavailable},
		{"https://127.evil.example", "", "", node.CodeUnavailable},
		{"https://localhost.evil.example", "", "", node.CodeUnavailable},
		{"chrome-extension://iolmimilmgpabedjlaegbkfdhmpgjfaf", "sites.example.org", "", CodeInvalid},
		{"", "", "", CodeInvalid},
		{"http://", "", "", CodeInvalid},
	} {
		got, err := Origin(c.base, c.sitesDomain, "example.ddt")
		var coded interface{ ErrorCode() string }
		switch {
		case c.code == "" && (err != nil || got != c.want):
			t.Errorf("Origin(%q, %q) = %q, %v; want %q", c.base, c.sitesDomain, got, err, c.want)
		case c.code != "" && (err == nil || !errors.As(err, &coded) || coded.ErrorCode() != c.code || got != ""):
			t.Errorf("Origin(%q, %q) = %q, %v; want a %s error", c.base, c.sitesDomain, got, err, c.code)
		}
	}
}
