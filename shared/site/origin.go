package site

import (
	"net/netip"
	"net/url"
	"strings"

	"ddt/shared/node"
)

// Origin is the origin domain's site is served at for a host whose base
// is base, an http or https URL: the DDT page's own origin, or, where the
// host is no such page (an extension's offscreen document), the relay's
// URL. Under a loopback base (localhost, *.localhost, 127.x, [::1]) it is
// <label>.ddt.localhost at base's port: browsers resolve *.localhost to
// loopback and count it as a secure context. Under any other base it is
// <label>.ddt.<sitesDomain> at base's port, sitesDomain being the relay's
// -sites-domain (named in its page and its /healthz); without one the
// relay serves no sites there, and the error says so (code
// node.CodeUnavailable). domain is a normalized domain.
func Origin(base, sitesDomain, domain string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", node.Errorf(CodeInvalid, nil, "%q is not an http or https URL to serve sites under", base)
	}
	parent := "localhost"
	h := strings.ToLower(u.Hostname())
	if ip, err := netip.ParseAddr(h); h != "localhost" && !strings.HasSuffix(h, ".localhost") && (err != nil || !ip.IsLoopback()) {
		parent = strings.ToLower(strings.Trim(sitesDomain, "."))
	}
	if parent == "" {
		return "", node.Errorf(node.CodeUnavailable, nil, "the relay of %s serves no DDT sites (it runs without -sites-domain)", u.Scheme+"://"+u.Host)
	}
	host := Label(domain) + Suffix + "." + parent
	if p := u.Port(); p != "" {
		host += ":" + p
	}
	return u.Scheme + "://" + host, nil
}
