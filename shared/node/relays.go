package node

import (
	"context"
	"slices"
	"strings"
	"time"

	"ddt/shared/clock"
	"ddt/shared/wire"
)

const (
	// switchAfter is how many failed attempts on one relay make a node
	// try another it knows.
	switchAfter = 2
	// maxKnownRelays bounds the saved relay list.
	maxKnownRelays = 32
	// probeTimeout bounds one round-trip measurement.
	probeTimeout = 3 * time.Second
	// stickiness: a relay must be this much faster than the preferred
	// one to win, so equal relays do not flip a node between zones (and
	// addresses) from one start to the next.
	stickiness = 5 * time.Millisecond
)

func (n *Node) setRelay(url string) {
	n.mu.Lock()
	n.relay = url
	n.mu.Unlock()
}

// knownRelays returns the configured relay and those saved from earlier
// admissions.
func (n *Node) knownRelays() []string {
	out := []string{n.cfg.Relay}
	if b, err := n.cfg.Store.Get(keyRelays); err == nil {
		for _, u := range strings.Split(string(b), "\n") {
			if u != "" && !slices.Contains(out, u) && len(out) < maxKnownRelays {
				out = append(out, u)
			}
		}
	}
	return out
}

// addRelays saves more relay URLs for later starts.
func (n *Node) addRelays(urls ...string) {
	known := n.knownRelays()
	changed := false
	for _, u := range urls {
		if u != "" && !slices.Contains(known, u) && len(known) < maxKnownRelays {
			known = append(known, u)
			changed = true
		}
	}
	if !changed {
		return
	}
	// One URL a line: URLs never hold a newline.
	if err := n.cfg.Store.Put(keyRelays, []byte(strings.Join(known[1:], "\n"))); err != nil {
		n.log.Warn("could not save the relay list", "err", err)
	}
}

// KnownRelay is a relay as the node's last admission listed it: what it
// is, and what the admitting relay vouches for about it.
type KnownRelay struct {
	Info  wire.RelayInfo
	Flags wire.RelayFlags
}

// federate records the relays an admission names, with their flags
// (parallel; missing flags count as none): their keys vouch for leases
// from their zones, and their URLs are where to go if this relay is lost.
func (n *Node) federate(relays []wire.RelayInfo, flags []wire.RelayFlags) {
	keys := make(map[[32]byte]string, len(relays))
	known := make([]KnownRelay, len(relays))
	var urls []string
	for i, r := range relays {
		keys[r.Key] = r.Zone
		known[i].Info = r
		if i < len(flags) {
			known[i].Flags = flags[i]
		}
		if r.URL != "" {
			urls = append(urls, r.URL)
		}
	}
	n.mu.Lock()
	for k, z := range keys {
		n.zoneKeys[k] = z // kept: channels to other zones stay valid after a move
	}
	n.relays = known
	n.mu.Unlock()
	n.addRelays(urls...)
}

// fastest measures the round trip to each relay (WebSocket open to first
// frame) and returns the quickest; prefer wins unless another is faster
// by more than stickiness. With a single candidate nothing is measured.
// It returns "" when none answers and prefer is empty.
func (n *Node) fastest(ctx context.Context, relays []string, prefer string) string {
	if len(relays) == 0 {
		return prefer
	}
	if len(relays) == 1 && (prefer == "" || relays[0] == prefer) {
		return relays[0]
	}
	type result struct {
		url string
		rtt time.Duration
		err error
	}
	results := make(chan result, len(relays))
	for _, u := range relays {
		go func() {
			rtt, err := n.probe(ctx, u)
			results <- result{u, rtt, err}
		}()
	}
	best, bestRTT := "", time.Duration(0)
	rtts := map[string]time.Duration{}
	for range relays {
		r := <-results
		if r.err != nil {
			n.log.Info("relay unreachable", "url", r.url, "err", r.err)
			continue
		}
		rtts[r.url] = r.rtt
		if best == "" || r.rtt < bestRTT {
			best, bestRTT = r.url, r.rtt
		}
	}
	if rtt, ok := rtts[prefer]; ok && rtt <= bestRTT+stickiness {
		best = prefer
	}
	if best == "" {
		return prefer
	}
	n.log.Info("picked relay", "url", best, "rttMs", rtts[best].Milliseconds(), "measured", len(rtts))
	return best
}

// probe times a relay: dial its WebSocket and wait for its challenge.
func (n *Node) probe(ctx context.Context, relay string) (time.Duration, error) {
	wsURL, err := WebSocketURL(relay)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	t0 := n.clock.Now()
	c, err := n.cfg.Probe(ctx, wsURL)
	if err != nil {
		return 0, err
	}
	defer c.CloseNow()
	if _, _, err := c.Read(ctx); err != nil {
		return 0, err
	}
	return clock.Since(n.clock, t0), nil
}

func without(list []string, drop string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}
