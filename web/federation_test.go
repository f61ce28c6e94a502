package web_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"ddt/shared/node"
	"ddt/shared/wait"
)

// lookupResult is what ddt.lookup resolves to.
type lookupResult = node.LookupView

// federatedPair starts two relays that name each other, by URL and key
// (each key made first with `ddt-relay key`, as the README's example
// does), and waits until their link is up.
func federatedPair(t *testing.T, argsA, argsB []string) (a, b *relay) {
	t.Helper()
	a = newRelay(t, append([]string{"-zone", "a"}, argsA...)...)
	b = newRelay(t, append([]string{"-zone", "b"}, argsB...)...)
	a.args = append(a.args, "-peer", b.url()+"#"+b.key(), "-url", a.url())
	b.args = append(b.args, "-peer", a.url()+"#"+a.key(), "-url", b.url())
	a.start()
	b.start()
	waitLinked(t, a)
	waitLinked(t, b)
	return a, b
}

// key runs `ddt-relay key` on r's data folder: r's key in hex.
func (r *relay) key() string {
	r.t.Helper()
	out, err := exec.Command(r.bin, "key", "-data", r.data).Output()
	if err != nil {
		r.t.Fatalf("ddt-relay key: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func (r *relay) zone() string {
	for i, a := range r.args {
		if a == "-zone" && i+1 < len(r.args) {
			return r.args[i+1]
		}
	}
	return ""
}

// settled waits until the relays forward no more signaling: every node has
// opened what it meant to open. It returns the relays' signal counts.
func settled(t *testing.T, relays ...*relay) []int64 {
	t.Helper()
	var last []int64
	stable := time.Time{}
	wait.For(t, 60*time.Second, "signaling to settle", func() error {
		now := make([]int64, len(relays))
		for i, r := range relays {
			s, err := r.stats()
			if err != nil {
				return err
			}
			now[i] = s.Signals
		}
		if fmt.Sprint(now) != fmt.Sprint(last) {
			last, stable = now, time.Now()
			return fmt.Errorf("signals still moving: %v", now)
		}
		if time.Since(stable) < 3*time.Second {
			return fmt.Errorf("signals unchanged for %s only", time.Since(stable).Round(time.Second))
		}
		return nil
	})
	return last
}

// TestFederation: two relays name each other; three tabs and a native
// node join each. A tab in zone A finds a tab in zone B through the DHT
// and opens a data channel to it with offers and answers routed through
// peers, and a native node does the same across zones, while the relays'
// signaling counters stay flat. A full zone sends a newcomer to the
// relay with room.
func TestFederation(t *testing.T) {
	a, b := federatedPair(t, []string{"-max-nodes", "4"}, nil)
	var inA, inB []*page
	var addrA, addrB []string
	for i := 0; i < 3; i++ {
		for _, side := range []struct {
			r     *relay
			pages *[]*page
			addrs *[]string
		}{{a, &inA, &addrA}, {b, &inB, &addrB}} {
			p := newPage(t, "")
			if os.Getenv("DDT_DEBUG") != "" {
				onNewDocument(t, p, `localStorage.setItem('ddt-log', 'debug')`)
			}
			p.open(side.r.url())
			*side.pages = append(*side.pages, p)
			*side.addrs = append(*side.addrs, p.ready())
		}
	}
	natA, natB := startNative(t, a), startNative(t, b)
	for i, p := range inA {
		if z := mustEval[string](p, `ddt.zone`); z != "a" {
			t.Fatalf("page %d on relay A is in zone %q", i, z)
		}
	}
	stA, _ := natA.state()
	stB, _ := natB.state()

	// The overlay spans both zones: every tab has channels and a routing
	// table, and finds a node of the other zone by lookup.
	for i, p := range append(append([]*page{}, inA...), inB...) {
		wait.For(t, 30*time.Second, fmt.Sprintf("page %d routing table", i), func() error {
			n, err := eval[int](p, `ddt.routing().then(r => r.contacts)`)
			if err == nil && n < 3 {
				err = fmt.Errorf("%d contacts", n)
			}
			return err
		})
	}
	before := settled(t, a, b)

	a0, b0 := inA[0], inB[0]
	if mustEval[bool](a0, `ddt.disconnect("`+addrB[0]+`")`) {
		wait.For(t, 15*time.Second, "channel closed on the far side", func() error {
			ps, err := b0.peers()
			for _, p := range ps {
				if p.Address == addrA[0] {
					return fmt.Errorf("still connected")
				}
			}
			return err
		})
	}
	found := mustEval[lookupResult](a0, `ddt.lookup("`+addrB[0]+`")`)
	if !found.Found || found.Messages < 1 || len(found.Closest) == 0 || found.Closest[0] != addrB[0] {
		t.Errorf("lookup of a zone-B tab from zone A: %+v", found)
	}
	missing := mustEval[lookupResult](a0, `ddt.lookup("`+strings.Repeat("0", 40)+`")`)
	if missing.Found {
		t.Errorf("lookup of an address nobody holds: %+v", missing)
	}

	p := mustEval[peerInfo](a0, `ddt.connect("`+addrB[0]+`")`)
	if p.Address != addrB[0] || p.Via != "overlay" {
		t.Errorf("connect from zone A to zone B gave %+v, want a channel signaled via the overlay", p)
	}
	wait.For(t, 15*time.Second, "zone-B tab lists the new channel", func() error {
		ps, err := b0.peers()
		for _, p := range ps {
			if p.Address == addrA[0] {
				if p.Via != "overlay" {
					return fmt.Errorf("via %q", p.Via)
				}
				return nil
			}
		}
		if err == nil {
			err = fmt.Errorf("not listed in %v", ps)
		}
		return err
	})
	if ms := mustEval[float64](a0, `ddt.ping("`+addrB[0]+`")`); ms <= 0 {
		t.Errorf("ping across zones: %v", ms)
	}
	// A native node in zone A reaches the native node in zone B the same way.
	if _, err := natA.disconnect(stB.Address); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 15*time.Second, "native channel closed on the far side", func() error {
		ps, err := natB.peers()
		for _, p := range ps {
			if p.Address == stA.Address {
				return fmt.Errorf("still connected")
			}
		}
		return err
	})
	if np, err := natA.connect(stB.Address); err != nil || np.Via != "overlay" {
		t.Errorf("native connect across zones: %+v, %v", np, err)
	}

	// The page shows it.
	shown := mustEval[struct {
		Via     string
		Buckets int
	}](a0, `({via: document.querySelector('#peers [data-address="`+addrB[0]+`"]')?.dataset.via || '',
		buckets: document.querySelectorAll('#buckets li').length})`)
	if shown.Via != "overlay" || shown.Buckets == 0 {
		t.Errorf("page shows %+v, want the peer marked overlay and a filled routing table", shown)
	}

	// None of it went through a relay.
	after := settled(t, a, b)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("relay signal counters moved from %v to %v: the connections were not signaled through the overlay", before, after)
	}

	// Zone A is full (three tabs and a native node): a newcomer is sent to B.
	late := newPage(t, "")
	late.open(a.url())
	wait.For(t, 30*time.Second, "window.ddt", func() error {
		_, err := eval[string](late, `ddt.state`)
		return err
	})
	wait.For(t, 30*time.Second, "newcomer redirected", func() error {
		st, err := eval[struct{ State, Zone, Relay string }](late, `({state: ddt.state, zone: ddt.zone, relay: ddt.relay})`)
		if err == nil && (st.State != "admitted" || st.Zone != "b" || st.Relay != b.url()) {
			err = fmt.Errorf("%+v", st)
		}
		return err
	})
}
