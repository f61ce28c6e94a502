package federation

import (
	"fmt"
	"sort"
	"strings"

	"ddt/relay/link"
	"ddt/relay/zone"
	"ddt/shared/id"
	"ddt/shared/wire"
)

// knownRelaysLocked lists this relay first, then trusted relays (linked
// ones, then those whose link is down), then untrusted ones, each by
// zone: an admission, which names at most wire.MaxRelays, keeps the
// trusted ones, so its nodes see the same candidates for a name's home
// as this relay's registrar (which counts trusted relays that are down).
func (f *Federation) knownRelaysLocked() []*relayState {
	var up, down, open []*relayState
	for _, rs := range f.relays {
		switch {
		case !rs.trusted:
			open = append(open, rs)
		case rs.link == nil:
			down = append(down, rs)
		default:
			up = append(up, rs)
		}
	}
	byZone := func(s []*relayState) {
		sort.Slice(s, func(i, j int) bool {
			if (s[i].link == nil) != (s[j].link == nil) {
				return s[i].link != nil
			}
			if s[i].info.Zone != s[j].info.Zone {
				return s[i].info.Zone < s[j].info.Zone
			}
			return s[i].info.URL < s[j].info.URL
		})
	}
	byZone(up)
	byZone(down)
	byZone(open)
	self := &relayState{info: f.zone.Info(), trusted: true}
	return append(append(append([]*relayState{self}, up...), down...), open...)
}

// flags is what this relay vouches for about rs in an admission.
func (rs *relayState) flags() wire.RelayFlags {
	var fl wire.RelayFlags
	if rs.trusted {
		fl |= wire.RelayTrusted
	}
	if rs.features.Has(wire.FeatureNames) {
		fl |= wire.RelayNames
	}
	if rs.features.Has(wire.FeatureSites) {
		fl |= wire.RelaySites
	}
	return fl
}

// toLinksLocked queues m on every link, so deltas reach each link in the
// order they happened, after its snapshot.
func (f *Federation) toLinksLocked(m wire.Message) {
	var b []byte
	for _, rs := range f.relays {
		if rs.link == nil {
			continue
		}
		if b == nil {
			var err error
			if b, err = wire.Marshal(m); err != nil {
				return
			}
		}
		rs.link.Send(b)
	}
}

// The zone's Directory.
var _ zone.Directory = (*Federation)(nil)

// EachPeerLocked calls fn with every member of a linked zone, each
// address once, as its holder claims it (zone.Directory).
func (f *Federation) EachPeerLocked(fn func(zone.Peer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.remote {
		fn(zone.Peer{Lease: &m.lease, Native: m.native})
	}
}

// RelaysLocked lists this relay and every relay it knows, with their
// flags (zone.Directory).
func (f *Federation) RelaysLocked() ([]wire.RelayInfo, []wire.RelayFlags) {
	f.mu.Lock()
	defer f.mu.Unlock()
	known := f.knownRelaysLocked()
	infos, flags := make([]wire.RelayInfo, len(known)), make([]wire.RelayFlags, len(known))
	for i, rs := range known {
		infos[i], flags[i] = rs.info, rs.flags()
	}
	flags[0] = f.zone.SelfFlags()
	return infos, flags
}

// RoomiestLocked names the linked trusted relay with the most room, or
// "" (zone.Directory): newcomers are never sent to a relay nobody named.
func (f *Federation) RoomiestLocked() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	best, room := "", int64(0)
	for _, rs := range f.relays {
		if rs.link == nil || !rs.trusted || rs.info.URL == "" {
			continue
		}
		if r := int64(rs.info.MaxNodes) - int64(rs.info.Nodes); r > room {
			best, room = rs.info.URL, r
		}
	}
	return best
}

// Signal passes a signal from a member of this zone to its target's
// relay (zone.Directory).
func (f *Federation) Signal(from *zone.Member, sig *wire.Signal) error {
	f.mu.Lock()
	var l *Link
	if m := f.remote[sig.Peer]; m != nil {
		l = m.relay.link
	}
	f.mu.Unlock()
	if l == nil {
		return wire.ErrUnknownPeer
	}
	rs := &wire.RelaySignal{From: from.Address(), To: sig.Peer, Session: sig.Session, Kind: sig.Kind, Data: sig.Data}
	// Counted before it is queued, so no answer can overtake the count.
	f.signalsOut.Add(1)
	if b, err := wire.Marshal(rs); err != nil || !l.TrySend(b) {
		f.signalsOut.Add(-1)
		return link.Refuse(wire.CodeRateLimited, "the link to zone %s is congested", l.peer.Zone)
	}
	return nil
}

// Relay is a federated relay as this relay knows it.
type Relay struct {
	Info     wire.RelayInfo
	Features wire.Features
	Link     *Link // nil while down
	// Trusted: this relay's operator named it by key (or it was pinned at
	// first contact). Only trusted relays sequence names, are homes, are
	// redirected to and have their members' leases trusted for names.
	Trusted bool
}

// Known lists the relays this one knows, linked or not (itself not).
func (f *Federation) Known() []Relay {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Relay, 0, len(f.relays))
	for _, rs := range f.relays {
		out = append(out, Relay{Info: rs.info, Features: rs.features, Link: rs.link, Trusted: rs.trusted})
	}
	return out
}

// Lookup returns the relay with key, if known.
func (f *Federation) Lookup(key [32]byte) (Relay, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[key]
	if rs == nil {
		return Relay{}, false
	}
	return Relay{Info: rs.info, Features: rs.features, Link: rs.link, Trusted: rs.trusted}, true
}

// Links lists the links up whose other side announced feature (every
// link up for "").
func (f *Federation) Links(feature string) []*Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Link
	for _, rs := range f.relays {
		if rs.link != nil && (feature == "" || rs.link.Has(feature)) {
			out = append(out, rs.link)
		}
	}
	return out
}

// Linked reports whether the relay with key is linked now.
func (f *Federation) Linked(key [32]byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.relays[key]
	return rs != nil && rs.link != nil
}

// Knows reports whether addr is a member of a linked zone.
func (f *Federation) Knows(addr id.Address) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remote[addr] != nil
}

// Joining reports whether this relay is still joining the federation: a
// -peer it has never reached, that is not linked (it may have dialed us
// first) and that no linked relay names as its URL (it may have linked to us before our dial
// got through; as in Relays, the URL is its claim).
func (f *Federation) Joining() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.dialed {
		if !d.reached && !f.linkedAtLocked(d.url) && !(d.known && f.relays[d.key] != nil && f.relays[d.key].link != nil) {
			return true
		}
	}
	return false
}

// linkedAtLocked reports whether a relay that names url as its own is
// linked.
func (f *Federation) linkedAtLocked(url string) bool {
	url = strings.TrimSuffix(url, "/")
	for _, rs := range f.relays {
		if rs.link != nil && strings.TrimSuffix(rs.info.URL, "/") == url {
			return true
		}
	}
	return false
}

// Stats counts the federation.
type Stats struct {
	Links       int   `json:"links"`       // relay links up
	OpenLinks   int   `json:"openLinks"`   // ...of them, to untrusted relays (open federation)
	Relays      int   `json:"relays"`      // relays known, linked or not (this one excluded)
	Members     int   `json:"members"`     // members of federated zones known (addresses reached)
	SignalsOut  int64 `json:"signalsOut"`  // signals sent to other zones
	SignalsIn   int64 `json:"signalsIn"`   // signals from other zones delivered here
	Dropped     int64 `json:"dropped"`     // relay-link frames refused or dropped, links refused
	Unknown     int64 `json:"unknown"`     // relay-link frames of unknown types, skipped
	Untrusted   int64 `json:"untrusted"`   // links refused: the relay's key is not trusted
	KeyMismatch int64 `json:"keyMismatch"` // dialed relays refused: they proved another key than the one named or pinned
	LinksFull   int64 `json:"linksFull"`   // links refused: MaxLinks (or MaxOpenLinks) linked already
	JoiningFull int64 `json:"joiningFull"` // relay connections refused: MaxJoining authenticating already
	Contested   int64 `json:"contested"`   // member claims of an address another zone holds, kept aside
	MembersFull int64 `json:"membersFull"` // member claims dropped: MaxFederatedMembers (or MaxOpenMembers) held already
}

// Stats returns the federation's counters.
func (f *Federation) Stats() Stats {
	f.mu.Lock()
	s := Stats{Relays: len(f.relays), Members: len(f.remote)}
	for _, rs := range f.relays {
		if rs.link != nil {
			s.Links++
			if !rs.trusted {
				s.OpenLinks++
			}
		}
	}
	f.mu.Unlock()
	s.SignalsOut, s.SignalsIn, s.Dropped, s.Unknown = f.signalsOut.Load(), f.signalsIn.Load(), f.dropped.Load(), f.unknown.Load()
	s.Untrusted, s.KeyMismatch, s.LinksFull, s.JoiningFull = f.untrusted.Load(), f.mismatched.Load(), f.linksFull.Load(), f.joiningFull.Load()
	s.Contested, s.MembersFull = f.contested.Load(), f.membersFull.Load()
	return s
}

// RelayJSON is one entry of /relays.
type RelayJSON struct {
	Zone     string `json:"zone"`
	URL      string `json:"url"`
	Key      string `json:"key"` // hex; empty for a -peer never reached and named without a key
	Nodes    uint32 `json:"nodes"`
	MaxNodes uint32 `json:"maxNodes"`
	Up       bool   `json:"up"`      // linked now (always true for this relay)
	Self     bool   `json:"self"`    // this relay
	Trusted  bool   `json:"trusted"` // named by this relay's operator or pinned (always true for this relay)
}

// Relays lists this relay, the relays it knows and the -peer relays it
// has not reached yet.
func (f *Federation) Relays() []RelayJSON {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []RelayJSON
	listed, keys := map[string]bool{}, map[[32]byte]bool{}
	for i, rs := range f.knownRelaysLocked() {
		r := rs.info
		up := i == 0
		if rs := f.relays[r.Key]; rs != nil {
			up = rs.link != nil
		}
		out = append(out, RelayJSON{Zone: r.Zone, URL: r.URL, Key: fmt.Sprintf("%x", r.Key), Nodes: r.Nodes, MaxNodes: r.MaxNodes, Up: up, Self: i == 0, Trusted: rs.trusted})
		listed[strings.TrimSuffix(r.URL, "/")] = true
		keys[r.Key] = true
	}
	for _, d := range f.dialed {
		// A -peer not reached yet, unless a relay at that URL linked to
		// us first (the URL is its claim: for this listing only).
		if d.reached || listed[strings.TrimSuffix(d.url, "/")] || d.known && keys[d.key] {
			continue
		}
		r := RelayJSON{URL: d.url, Trusted: d.known}
		if d.known {
			r.Key = fmt.Sprintf("%x", d.key)
		}
		out = append(out, r)
	}
	return out
}
