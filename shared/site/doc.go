// Package site is the node's sites capability: DDT websites, the paper's
// broadcast domain. A domain ("example.ddt") is claimed by a signed
// record sequenced in the ledger of its home relay (the username rule,
// among trusted relays: see ddt/shared/names), stored in the DHT, and
// resolved, verified and cached by every node. A site is a manifest of
// paths → content ids and media types, itself public content; its files
// are content (ddt/shared/content), hosted first by the publisher and by
// native nodes that follow the domain (Host), then by every node that
// reads them and by their replicas.
//
// Service is the capability; Claim and Resolve are its domains, Publish
// puts a folder's files and claims the domain for their manifest, Open
// answers one request of a site (index.html for folders, media types,
// byte ranges) and Host keeps a domain's current site pinned here.
package site
