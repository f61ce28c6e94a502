package node

import (
	"time"

	"ddt/shared/id"
)

// The shapes a node reports, defined once: window.ddt hands them to the
// page (converted by their JSON names), the native node's HTTP API
// serves them as JSON, and the tests read them back. README documents
// them under window.ddt; web/static/ddt.d.ts declares them.

// PeerView is a connected peer: ddt.peers(), the native node's /peers.
type PeerView struct {
	Address string  `json:"address"`
	RTTMs   float64 `json:"rttMs"` // the last keepalive round trip; 0 before the first
	Native  bool    `json:"native"`
	Via     string  `json:"via"` // "relay" or "overlay"
}

// View is p as the page shows it.
func (p PeerInfo) View() PeerView {
	return PeerView{Address: p.Address.String(), RTTMs: millis(p.RTT), Native: p.Native, Via: p.Via}
}

// PeerViews lists ps as the page shows them.
func PeerViews(ps []PeerInfo) []PeerView {
	out := make([]PeerView, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.View())
	}
	return out
}

// LookupView is a DHT lookup's outcome: ddt.lookup(), /lookup.
type LookupView struct {
	Found    bool     `json:"found"`
	Hops     int      `json:"hops"`
	Messages int      `json:"messages"`
	MS       float64  `json:"ms"`
	Closest  []string `json:"closest"`
}

// ViewLookup is r as the page shows it; took is how long the lookup took.
func ViewLookup(r LookupResult, took time.Duration) LookupView {
	v := LookupView{Found: r.Found, Hops: r.Hops, Messages: r.Messages, MS: millis(took), Closest: make([]string, len(r.Closest))}
	for i, c := range r.Closest {
		v.Closest[i] = c.String()
	}
	return v
}

// BucketView is one non-empty bucket of the routing table.
type BucketView struct {
	Index     int `json:"index"`     // bits its addresses share with this node's
	Contacts  int `json:"contacts"`  // in the table
	Connected int `json:"connected"` // with an open data channel
}

// RoutingView is the routing table and the overlay's counters:
// ddt.routing(), /routing.
type RoutingView struct {
	Buckets  []BucketView `json:"buckets"`
	Contacts int          `json:"contacts"`
	Overlay  OverlayStats `json:"overlay"`
}

// RoutingView describes the routing table, bucket by bucket, and the
// routed-traffic counters.
func (n *Node) RoutingView() RoutingView {
	v := RoutingView{Buckets: []BucketView{}, Overlay: n.OverlayStats()}
	for _, b := range n.Routing() {
		v.Buckets = append(v.Buckets, BucketView(b))
		v.Contacts += b.Contacts
	}
	return v
}

// StateView is the payload of the state event.
type StateView struct {
	State     State  `json:"state"`
	Detail    string `json:"detail"`
	RetryInMs int64  `json:"retryInMs"`
}

// PeerEventView is the payload of the peer event.
type PeerEventView struct {
	Address string `json:"address"`
	Native  bool   `json:"native"`
	Via     string `json:"via"`
}

// PeerGoneView is the payload of the peer-gone event.
type PeerGoneView struct {
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

// DialFailedView is the payload of the dial-failed event: the attempt to
// reach Address failed for Reason; RetryInMs is when it is tried again
// (0: not by itself).
type DialFailedView struct {
	Address   string `json:"address"`
	Reason    string `json:"reason"`
	RetryInMs int64  `json:"retryInMs"`
}

// Payload is e as window.ddt's listeners get it: the node's own events
// as the views above, a capability's as the value it emitted.
func (e Event) Payload() any {
	switch e.Kind {
	case EventPeer:
		return PeerEventView{Address: e.Peer.Address.String(), Native: e.Peer.Native, Via: e.Peer.Via}
	case EventPeerGone:
		return PeerGoneView{Address: e.Peer.Address.String(), Reason: e.Reason}
	case EventState:
		return StateView{State: e.State, Detail: e.Detail, RetryInMs: e.RetryIn.Milliseconds()}
	case EventDialFailed:
		return DialFailedView{Address: e.Peer.Address.String(), Reason: e.Reason, RetryInMs: e.RetryIn.Milliseconds()}
	}
	return e.Value
}

// AddressView is an address as the page shows it: 40 hex digits, "" for
// none.
func AddressView(a id.Address) string {
	if a.IsZero() {
		return ""
	}
	return a.String()
}

func millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
