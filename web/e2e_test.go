package web_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"ddt/shared/wait"
)

// TestMesh is the join story end to end: three browser tabs and a native
// node admitted by one relay form a full mesh of data channels; pings cross
// browser↔browser and browser↔native; a reloaded tab keeps its address; a
// closed tab leaves everyone's list; a restarted relay is rejoined without
// a reload.
func TestMesh(t *testing.T) {
	r := startRelay(t, "-zone", "e2e")
	pages := []*page{newPage(t, ""), newPage(t, ""), newPage(t, "")}
	addrs := make([]string, len(pages))
	for i, p := range pages {
		p.open(r.url())
		addrs[i] = p.ready()
	}
	native := startNative(t, r)
	st, _ := native.state()
	all := append(append([]string{}, addrs...), st.Address)

	// Every node lists the three others.
	for i, p := range pages {
		others := without(all, all[i])
		wait.For(t, 30*time.Second, fmt.Sprintf("page %d peers", i), func() error {
			ps, err := p.peers()
			if err != nil {
				return err
			}
			return samePeers(ps, others...)
		})
	}
	wait.For(t, 30*time.Second, "native peers", func() error {
		ps, err := native.peers()
		if err != nil {
			return err
		}
		return samePeers(ps, addrs...)
	})
	ps, _ := pages[0].peers()
	for _, p := range ps {
		if p.Native != (p.Address == st.Address) {
			t.Errorf("peer %s native=%v", p.Address[:8], p.Native)
		}
	}

	// The page shows what the API says.
	shown := mustEval[struct {
		Address, State string
		Peers          int
	}](pages[0], `({address: document.querySelector('#address').textContent,
		state: document.querySelector('#state').dataset.state,
		peers: document.querySelectorAll('#peers [data-address]').length})`)
	if shown.Address != addrs[0] || shown.State != "admitted" || shown.Peers != 3 {
		t.Errorf("page shows %+v, want address %s, admitted, 3 peers", shown, addrs[0])
	}

	// Pings: browser↔browser, browser→native, native→browser.
	for _, target := range []string{addrs[1], st.Address} {
		ms := mustEval[float64](pages[0], `ddt.ping("`+target+`")`)
		if ms <= 0 {
			t.Errorf("ping %s = %v ms", target[:8], ms)
		}
	}
	if ms, err := native.ping(addrs[2]); err != nil || ms <= 0 {
		t.Errorf("native ping to browser: %v ms, %v", ms, err)
	}
	if _, err := eval[float64](pages[0], `ddt.ping("`+strings.Repeat("0", 40)+`")`); err == nil {
		t.Error("ping to an unconnected address succeeded")
	}

	// Every rejection carries a code a program can switch on, bad
	// arguments included.
	codes := mustEval[map[string]string](pages[0], `(async () => {
		const code = p => p.then(() => "resolved", e => e.code + ": " + e.message);
		return {
			ping: await code(ddt.ping("`+strings.Repeat("0", 40)+`")),
			connect: await code(ddt.connect("zz")),
			lookup: await code(ddt.lookup(42)),
			throughput: await code(ddt.throughput("`+addrs[1]+`", -5)),
		};
	})()`)
	for call, want := range map[string]string{"ping": "not-connected: ", "connect": "invalid: ", "lookup": "invalid: ", "throughput": "invalid: "} {
		if !strings.HasPrefix(codes[call], want) {
			t.Errorf("ddt.%s rejected with %q, want code %q", call, codes[call], strings.TrimSuffix(want, ": "))
		}
	}

	// A reloaded tab keeps its address and rejoins everyone.
	reload(t, pages[2])
	if again := pages[2].ready(); again != addrs[2] {
		t.Fatalf("address after reload %s, before %s", again, addrs[2])
	}
	wait.For(t, 30*time.Second, "reloaded page peers", func() error {
		ps, err := pages[2].peers()
		if err != nil {
			return err
		}
		return samePeers(ps, without(all, addrs[2])...)
	})
	wait.For(t, 30*time.Second, "others see the reloaded page", func() error {
		ps, err := pages[0].peers()
		if err != nil {
			return err
		}
		return samePeers(ps, without(all, addrs[0])...)
	})

	// A closed tab leaves the others' lists within 10 s, and subscribers
	// hear of it; an unsubscribed listener does not.
	mustEval[bool](pages[0], `(() => {
		window.__gone = []; window.__heardAfterOff = 0;
		ddt.on('peer-gone', e => __gone.push(e));
		const off = ddt.on('peer-gone', () => { __heardAfterOff++; });
		off();
		return true;
	})()`)
	pages[1].close()
	left := without(all, addrs[1])
	for i, p := range []*page{pages[0], pages[2]} {
		wait.For(t, 10*time.Second, fmt.Sprintf("closed tab gone from page %d", i), func() error {
			ps, err := p.peers()
			if err != nil {
				return err
			}
			return samePeers(ps, without(left, addrs[2*i])...)
		})
	}
	gone := mustEval[struct {
		Gone          []struct{ Address, Reason string }
		HeardAfterOff int
	}](pages[0], `({gone: __gone, heardAfterOff: __heardAfterOff})`)
	if len(gone.Gone) != 1 || gone.Gone[0].Address != addrs[1] || gone.Gone[0].Reason == "" || gone.HeardAfterOff != 0 {
		t.Errorf("peer-gone events: %+v", gone)
	}
	wait.For(t, 10*time.Second, "closed tab gone from native node", func() error {
		ps, err := native.peers()
		if err != nil {
			return err
		}
		return samePeers(ps, addrs[0], addrs[2])
	})

	// The relay restarts: pages notice, retry, and rejoin by themselves
	// with the same address; their data channels survive.
	r.stop()
	wait.For(t, 15*time.Second, "page shows the relay is gone", func() error {
		s, err := eval[string](pages[0], `ddt.state + ' ' + document.querySelector('#state').dataset.state`)
		if err == nil && s != "retrying retrying" {
			err = fmt.Errorf("state and badge: %s", s)
		}
		return err
	})
	r.start()
	wait.For(t, 30*time.Second, "page rejoins the restarted relay", func() error {
		s, err := eval[string](pages[0], `ddt.state`)
		if err == nil && s != "admitted" {
			err = fmt.Errorf("state %s", s)
		}
		return err
	})
	if a := mustEval[string](pages[0], `ddt.address`); a != addrs[0] {
		t.Errorf("address after relay restart %s, before %s", a, addrs[0])
	}
	wait.For(t, 30*time.Second, "relay sees everyone again", func() error {
		s, err := r.stats()
		if err == nil && s.Nodes != 3 {
			err = fmt.Errorf("%d nodes", s.Nodes)
		}
		return err
	})
	ps, err := pages[0].peers()
	if err != nil {
		t.Fatal(err)
	}
	if err := samePeers(ps, addrs[2], st.Address); err != nil {
		t.Errorf("peers after relay restart: %v", err)
	}
}

// TestZoneFull: a relay at capacity refuses a newcomer clearly, naming the
// other relay it knows.
func TestZoneFull(t *testing.T) {
	r := startRelay(t, "-zone", "tiny", "-max-nodes", "1", "-peer", "http://127.0.0.1:1/")
	first := newPage(t, "")
	first.open(r.url())
	first.ready()
	second := newPage(t, "")
	second.open(r.url())
	wait.For(t, 30*time.Second, "window.ddt", func() error {
		_, err := eval[string](second, `ddt.state`)
		return err
	})
	msg := mustEval[string](second, `ddt.ready.then(() => "admitted", e => e.message)`)
	if !strings.Contains(msg, "full") || !strings.Contains(msg, "http://127.0.0.1:1") {
		t.Errorf("refusal reads %q; want it to say the zone is full and name the other relay", msg)
	}
	// The page says so; then it follows the redirect, which here leads
	// nowhere, so it keeps trying and never reaches admitted.
	wait.For(t, 10*time.Second, "page shows the refusal", func() error {
		s, err := eval[string](second, `document.querySelector('#log').textContent`)
		if err == nil && !strings.Contains(s, "Refused: zone tiny is full") {
			err = fmt.Errorf("log reads %q", s)
		}
		return err
	})
	if s := mustEval[string](second, `ddt.state`); s == "admitted" {
		t.Errorf("admitted to a full zone")
	}
	if s, _ := r.stats(); s.Refused == 0 || s.Nodes != 1 {
		t.Errorf("relay stats %+v", s)
	}
}

// reload reloads the tab and returns once the old document is gone, so
// that what the caller reads next comes from the new one.
func reload(t testing.TB, p *page) {
	t.Helper()
	if _, err := eval[bool](p, `window.__beforeReload = true; location.reload(); true`); err != nil {
		t.Fatalf("reload: %v", err)
	}
	wait.For(t, 30*time.Second, "the page to reload", func() error {
		old, err := eval[bool](p, `window.__beforeReload === true`)
		if err == nil && old {
			err = errors.New("the old document is still there")
		}
		return err
	})
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// TestTabsOfOneProfile: tabs of one browser profile share IndexedDB, yet
// each runs its own node with its own lasting address, and they meet.
func TestTabsOfOneProfile(t *testing.T) {
	r := startRelay(t, "-zone", "tabs")
	first := newPage(t, "")
	first.open(r.url())
	a := first.ready()
	second := first.newTab()
	second.open(r.url())
	b := second.ready()
	if a == b {
		t.Fatalf("two tabs of one profile share address %s", a)
	}
	for _, pair := range []struct {
		p    *page
		want string
	}{{first, b}, {second, a}} {
		wait.For(t, 30*time.Second, "tabs meet", func() error {
			ps, err := pair.p.peers()
			if err != nil {
				return err
			}
			return samePeers(ps, pair.want)
		})
	}
	// Each tab keeps its own address across reloads, in either order.
	for _, tc := range []struct {
		p    *page
		want string
	}{{second, b}, {first, a}} {
		reload(t, tc.p)
		if got := tc.p.ready(); got != tc.want {
			t.Fatalf("after reload a tab has %s, had %s", got, tc.want)
		}
	}
	if s, _ := r.stats(); s.Nodes != 2 {
		t.Errorf("relay sees %d nodes, want 2", s.Nodes)
	}
}
