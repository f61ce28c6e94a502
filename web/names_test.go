package web_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"ddt/shared/username"
	"ddt/shared/wait"
)

// userRecord is a verified username record as ddt.register and
// ddt.resolve give it.
type userRecord = username.View

// outcome is a settled ddt.register or ddt.resolve: the record, or the
// error's code and message.
type outcome struct {
	Record  *userRecord
	Code    string
	Message string
}

// settle wraps a promise expression so it always resolves to an outcome.
func settle(expr string) string {
	return `(async () => { try { return {record: await ` + expr + `}; } catch (e) { return {code: e.code || '', message: e.message}; } })()`
}

// waitLinked waits until r's federation link to another relay is up.
func waitLinked(t *testing.T, r *relay) {
	t.Helper()
	wait.For(t, 30*time.Second, "federation link of zone "+r.zone(), func() error {
		var rs []struct {
			Zone string
			Up   bool
		}
		if err := getJSON(r.url()+"/relays", &rs); err != nil {
			return err
		}
		for _, x := range rs {
			if x.Zone != "" && x.Zone != r.zone() && x.Up {
				return nil
			}
		}
		return fmt.Errorf("no federated relay up: %+v", rs)
	})
}

// TestNames: usernames across two federated zones, in Chromium. Pages in
// the two zones claim one name at the same moment and exactly one gets
// it; a third page resolves it and shows it; the name survives both
// relays restarting; and holding only an address, nothing yields the
// name.
func TestNames(t *testing.T) {
	a, b := federatedPair(t, nil, nil)
	pa, pb, pc := newPage(t, ""), newPage(t, ""), newPage(t, "")
	pa.open(a.url())
	pb.open(b.url())
	pc.open(a.url())
	addrA, addrB, _ := pa.ready(), pb.ready(), pc.ready()
	nat := startNative(t, b)

	// First visit: the page asks for a username, and no name is set.
	wait.For(t, 10*time.Second, "username prompt", func() error {
		shown, err := eval[bool](pa, `(() => { const i = document.querySelector('#username-input'); return !!i && i.offsetParent !== null; })()`)
		if err == nil && !shown {
			err = fmt.Errorf("the username input is not visible")
		}
		return err
	})
	if u := mustEval[string](pa, `ddt.username`); u != "" {
		t.Fatalf("a fresh node has username %q", u)
	}

	// Bad names get an error that says which rule they break.
	for _, tc := range []struct{ name, says string }{
		{"", "empty"},
		{strings.Repeat("a", 17), "17 characters, at most 16"},
		{"bob_1", "letters and digits"},
		{"al ice", "letters and digits"},
	} {
		o := mustEval[outcome](pa, settle(`ddt.register(`+quote(tc.name)+`)`))
		if o.Record != nil || o.Code != "invalid" || !strings.Contains(o.Message, tc.says) {
			t.Errorf("register(%q) = %+v; want code invalid saying %q", tc.name, o, tc.says)
		}
	}
	// The page shows the error inline.
	fillAndClick(t, pa, "#username-input", "#username-register", "no_way")
	wait.For(t, 10*time.Second, "inline error", func() error {
		msg, err := eval[string](pa, `document.querySelector('#username-error').textContent`)
		if err == nil && !strings.Contains(msg, "letters and digits") {
			err = fmt.Errorf("error shown: %q", msg)
		}
		return err
	})

	// The race: both pages claim "Alice" at the same instant, from zones A
	// and B. Exactly one wins; the other is told it is taken.
	at := time.Now().Add(1500 * time.Millisecond).UnixMilli()
	var wg sync.WaitGroup
	outs := make([]outcome, 2)
	for i, p := range []*page{pa, pb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i] = mustEval[outcome](p, settle(fmt.Sprintf(
				`new Promise(r => setTimeout(r, %d - Date.now())).then(() => ddt.register("Alice"))`, at)))
		}()
	}
	wg.Wait()
	won, lost := -1, -1
	for i, o := range outs {
		switch {
		case o.Record != nil:
			won = i
		case o.Code == "taken":
			lost = i
		}
	}
	if won < 0 || lost < 0 {
		t.Fatalf("race for \"Alice\": %+v; want one record and one \"taken\"", outs)
	}
	if !strings.Contains(outs[lost].Message, `"alice" is taken`) {
		t.Errorf("the loser is told %q", outs[lost].Message)
	}
	winner, loser := []*page{pa, pb}[won], []*page{pa, pb}[lost]
	winAddr := []string{addrA, addrB}[won]
	rec := outs[won].Record
	if rec.Name != "alice" || rec.Address != winAddr || rec.Version != 1 || rec.Seq != fmt.Sprintf("%s:%d", rec.Ledger.Zone, rec.Ledger.Index) {
		t.Errorf("winner's record %+v (winner %s)", rec, winAddr)
	}
	t.Logf("zone %s won \"alice\"; sequenced as %s", []string{"a", "b"}[won], rec.Seq)
	if u := mustEval[string](winner, `ddt.username`); u != "alice" {
		t.Errorf("winner's ddt.username = %q", u)
	}
	if u := mustEval[string](loser, `ddt.username`); u != "" {
		t.Errorf("loser's ddt.username = %q", u)
	}
	wait.For(t, 10*time.Second, "winner's page shows the name", func() error {
		s, err := eval[string](winner, `document.querySelector('#me-name').textContent`)
		if err == nil && !strings.Contains(s, "@alice") {
			err = fmt.Errorf("#me-name is %q", s)
		}
		return err
	})
	// The loser takes another name, through the page.
	fillAndClick(t, loser, "#username-input", "#username-register", "Bob")
	wait.For(t, 15*time.Second, "loser registers bob", func() error {
		u, err := eval[string](loser, `ddt.username`)
		if err == nil && u != "bob" {
			err = fmt.Errorf("ddt.username = %q", u)
		}
		return err
	})

	// A third page resolves the name, in any case, and shows it.
	got := mustEval[outcome](pc, settle(`ddt.resolve("ALICE")`))
	if got.Record == nil || got.Record.Address != winAddr || got.Record.SignKey != rec.SignKey || got.Record.Seq != rec.Seq {
		t.Fatalf("resolve from a third page: %+v; want %+v", got, rec)
	}
	if o := mustEval[outcome](pc, settle(`ddt.resolve("nobody")`)); o.Code != "not-found" || !strings.Contains(o.Message, `no user named "nobody"`) {
		t.Errorf("resolve of an unknown name: %+v", o)
	}
	if o := mustEval[outcome](pc, settle(`ddt.resolve("no body")`)); o.Code != "invalid" {
		t.Errorf("resolve of an invalid name: %+v", o)
	}
	fillAndClick(t, pc, "#find-user-input", "#find-user-go", "alice")
	wait.For(t, 15*time.Second, "found user shown", func() error {
		s, err := eval[string](pc, `document.querySelector('#find-user-result').textContent`)
		if err == nil && (!strings.Contains(s, winAddr[:8]) || !strings.Contains(s, "verified") || !strings.Contains(s, rec.Seq)) {
			err = fmt.Errorf("#find-user-result shows %q", s)
		}
		return err
	})

	// Holding only an address, nothing yields the name.
	noReverseLookup(t, pc, nat, winAddr, "alice", a, b)

	// Both relays restart: the name still resolves, and is still taken.
	a.stop()
	b.stop()
	a.start()
	b.start()
	waitLinked(t, a)
	waitLinked(t, b)
	for _, p := range []*page{pa, pb, pc} {
		wait.For(t, 30*time.Second, "page back in its zone", func() error {
			s, err := eval[string](p, `ddt.state`)
			if err == nil && s != "admitted" {
				err = fmt.Errorf("state %s", s)
			}
			return err
		})
	}
	// A tab may have come back through the other zone's relay, with a new
	// address; its node then claims its name again at that address.
	nowAddr := mustEval[string](winner, `ddt.address`)
	if nowAddr != winAddr {
		t.Logf("the winner came back at another address (%s, zone %s); its name follows it", nowAddr[:8], mustEval[string](winner, `ddt.zone`))
	}
	wait.For(t, 30*time.Second, "fresh resolve after both relays restarted", func() error {
		got, err := eval[outcome](pc, settle(`ddt.resolve("alice", {fresh: true})`))
		if err == nil && (got.Record == nil || got.Record.SignKey != rec.SignKey || got.Record.Address != nowAddr) {
			err = fmt.Errorf("%+v (record %+v); want the winner's key at %s", got, got.Record, nowAddr[:8])
		}
		return err
	})
	pd := newPage(t, "")
	pd.open(b.url())
	pd.ready()
	got = mustEval[outcome](pd, settle(`ddt.resolve("alice")`))
	if got.Record == nil || got.Record.SignKey != rec.SignKey || got.Record.Address != nowAddr {
		t.Errorf("a new page resolves after the restart: %+v (record %+v)", got, got.Record)
	}
	if o := mustEval[outcome](pd, settle(`ddt.register("alice")`)); o.Code != "taken" {
		t.Errorf("claiming alice after the restart: %+v; want taken", o)
	}
	// The winner's tab, reloaded, is still alice and is not asked again.
	reload(t, winner)
	winner.ready()
	wait.For(t, 15*time.Second, "username after reload", func() error {
		u, err := eval[string](winner, `ddt.username`)
		if err == nil && u != "alice" {
			err = fmt.Errorf("ddt.username = %q", u)
		}
		return err
	})
}

// fillAndClick types text into the input and clicks the button, as a user.
func fillAndClick(t *testing.T, p *page, input, button, text string) {
	t.Helper()
	mustEval[bool](p, `(() => { const i = document.querySelector(`+quote(input)+`);
		i.value = `+quote(text)+`; i.dispatchEvent(new Event('input', {bubbles: true}));
		document.querySelector(`+quote(button)+`).click(); return true; })()`)
}

// noReverseLookup shows that holding only addr, no API call or DHT query
// gives name: every window.ddt function called with the address, DHT
// values under every key one could derive from the address, and both
// relays' public ledgers hold neither the name nor the address; and the
// record the DHT does hold for the name is sealed, so even the nodes that
// store it cannot read who it names.
func noReverseLookup(t *testing.T, p *page, nat *nativeNode, addr, name string, relays ...*relay) {
	t.Helper()
	// Every function of the public API, called with the address.
	out := mustEval[string](p, `(async () => {
		const addr = `+quote(addr)+`, seen = [];
		const within = (v) => Promise.race([Promise.resolve(v), new Promise(r => setTimeout(() => r('(timeout)'), 8000))]);
		for (const k of Object.keys(ddt)) {
			if (typeof ddt[k] !== 'function' || k === 'on' || k === 'throughput' || k === 'disconnect') continue;
			for (const args of [[addr], [{address: addr}], [addr, {fresh: true}]]) {
				try { seen.push(k + ' → ' + JSON.stringify(await within(ddt[k](...args)))); }
				catch (e) { seen.push(k + ' → error ' + e.message); }
			}
		}
		return seen.join('\n');
	})()`)
	if strings.Contains(strings.ToLower(out), name) {
		t.Errorf("an API call with only the address yields the name:\n%s", out)
	}
	if !strings.Contains(out, "resolve →") {
		t.Errorf("the API sweep did not reach ddt.resolve:\n%s", out)
	}

	// DHT values under every key derivable from the address.
	raw, _ := hex.DecodeString(addr)
	h := func(s []byte) string { x := sha256.Sum256(s); return hex.EncodeToString(x[:20]) }
	for _, key := range []string{addr, h(raw), h([]byte(addr)), h([]byte("user/" + addr)), h(append([]byte("user/"), raw...)),
		h([]byte("addr/" + addr)), h([]byte("name/" + addr))} {
		vals, err := nat.dhtGet(key)
		if err != nil {
			t.Fatalf("dht get %s: %v", key, err)
		}
		if len(vals) > 0 {
			t.Errorf("the DHT holds %d values under %s, a key derived from the address", len(vals), key)
		}
	}
	// The name's own record is there, but sealed: it shows neither the
	// name nor the address to whoever stores it.
	vals, err := nat.dhtGet(h([]byte("user/" + name)))
	if err != nil || len(vals) == 0 {
		t.Fatalf("no DHT record under the name's key: %v %v", vals, err)
	}
	for _, v := range vals {
		if bytes.Contains(bytes.ToLower(v), []byte(name)) || bytes.Contains(v, raw) || bytes.Contains(v, []byte(addr)) {
			t.Errorf("the stored DHT value shows the name or address: %q", v)
		}
	}
	// Nor does its signer: it is not the owner's key, nor anything taken
	// from the address; only the name's key ties it to anything.
	owner := mustEval[outcome](p, settle(`ddt.resolve(`+quote(name)+`)`))
	if owner.Record == nil {
		t.Fatalf("resolve %q: %+v", name, owner)
	}
	recs, err := dhtRecords(nat, h([]byte("user/"+name)))
	if err != nil || len(recs) == 0 {
		t.Fatalf("no DHT record under the name's key: %v %v", recs, err)
	}
	full := func(s []byte) string { x := sha256.Sum256(s); return hex.EncodeToString(x[:]) }
	signKey, _ := hex.DecodeString(owner.Record.SignKey)
	derived := map[string]bool{full(raw): true, full([]byte(addr)): true, full([]byte("user/" + addr)): true,
		full(append([]byte("user/"), raw...)): true, full(signKey): true}
	for _, r := range recs {
		switch {
		case r.Signer == owner.Record.SignKey:
			t.Errorf("the DHT value under %q's key is signed by the owner's key %s", name, r.Signer)
		case strings.Contains(r.Signer, addr) || derived[r.Signer]:
			t.Errorf("the DHT value under %q's key is signed by %s, derived from the owner's address or key", name, r.Signer)
		}
	}

	// The relays' public ledgers: entries hold hashes, not names or addresses.
	total := 0
	for _, r := range relays {
		var es struct {
			Size    int
			Entries [][]byte
		}
		if err := getJSON(r.url()+"/ledger/entries?from=0", &es); err != nil || len(es.Entries) != es.Size {
			t.Fatalf("zone %s entries: %d of %d, %v", r.zone(), len(es.Entries), es.Size, err)
		}
		total += es.Size
		for _, b := range es.Entries {
			if bytes.Contains(bytes.ToLower(b), []byte(name)) || bytes.Contains(b, raw) || bytes.Contains(b, []byte(addr)) {
				t.Errorf("zone %s's ledger entry shows the name or address: %x", r.zone(), b)
			}
		}
		j, _ := json.Marshal(es)
		if strings.Contains(string(j), name) {
			t.Errorf("zone %s's ledger shows the name", r.zone())
		}
	}
	if total == 0 {
		t.Error("neither relay's ledger holds an entry: the names were not sequenced")
	}
}

// dhtRecord is a value the DHT holds, with its signer (hex), as the
// native node's /dht gives it.
type dhtRecord struct {
	Signer string
	Seq    uint64
	Value  []byte
}

// dhtRecords asks the native node for the records the DHT holds under key,
// with their signers, as any node that asks or stores them sees them.
func dhtRecords(n *nativeNode, key string) ([]dhtRecord, error) {
	var r struct{ Records []dhtRecord }
	return r.Records, getJSON("http://"+n.status+"/dht?key="+key, &r)
}
