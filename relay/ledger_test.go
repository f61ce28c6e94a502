package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/relay/internal/relaytest"
	"ddt/relay/zoneledger"
	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// getText fetches url and returns its status and body.
func getText(t testing.TB, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func relayPub(h *Relay) ed25519.PublicKey {
	k := h.Key()
	return ed25519.PublicKey(k[:])
}

// fetchCheckpoint reads and verifies a ledger checkpoint over HTTP.
func fetchCheckpoint(t testing.TB, url, zone string, h *Relay) ledger.Checkpoint {
	t.Helper()
	code, body, hdr := getText(t, url)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") || hdr.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%s: %d %q %v", url, code, body, hdr)
	}
	cp, err := ledger.OpenCheckpoint([]byte(body), ledger.ZoneOrigin(zone, h.Key()), relayPub(h))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return cp
}

// fetchEntries reads entries [0, n) over HTTP, page by page.
func fetchEntries(t testing.TB, prefix string, n int64) [][]byte {
	t.Helper()
	var all [][]byte
	for int64(len(all)) < n {
		var page zoneledger.EntriesJSON
		getJSON(t, fmt.Sprintf("%s/entries?from=%d&to=%d", prefix, len(all), n), &page)
		if len(page.Entries) == 0 {
			t.Fatalf("no entries from %d", len(all))
		}
		all = append(all, page.Entries...)
	}
	return all
}

func entry(i int) []byte { return []byte(fmt.Sprintf("event %d", i)) }

func TestLedgerHTTP(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-l"})
	var old []byte
	const n = 300 // more than one page
	for i := 0; i < n; i++ {
		idx, cp, err := z.relay.Sequence(entry(i))
		if err != nil || idx != int64(i) {
			t.Fatalf("sequence %d: %d %v", i, idx, err)
		}
		if i == 2 {
			old = cp
		}
	}
	cp := fetchCheckpoint(t, z.url+"/ledger/checkpoint", "zone-l", z.relay)
	if cp.Size != n {
		t.Fatalf("size %d", cp.Size)
	}
	if same := fetchCheckpoint(t, z.url+"/ledger/zone/zone-l/checkpoint", "zone-l", z.relay); same != cp {
		t.Fatal("the own zone under /ledger/zone/ differs")
	}
	var page zoneledger.EntriesJSON
	hdr := getJSON(t, z.url+"/ledger/entries?from=0", &page)
	if hdr.Get("Access-Control-Allow-Origin") != "*" || len(page.Entries) != ledger.MaxBatch || page.Size != n {
		t.Fatalf("first page: %d entries, size %d", len(page.Entries), page.Size)
	}
	all := fetchEntries(t, z.url+"/ledger", n)
	if err := ledger.Audit(all, cp); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int64{0, 7, n - 1} {
		var p zoneledger.InclusionJSON
		getJSON(t, fmt.Sprintf("%s/ledger/proof/inclusion?index=%d&size=%d", z.url, i, n), &p)
		if err := ledger.VerifyInclusion(cp, i, entry(int(i)), toHashes(p.Hashes)); err != nil {
			t.Fatalf("inclusion of %d: %v", i, err)
		}
	}
	oldCP, err := ledger.OpenCheckpoint(old, ledger.ZoneOrigin("zone-l", z.relay.Key()), relayPub(z.relay))
	if err != nil {
		t.Fatal(err)
	}
	var c zoneledger.ConsistencyJSON
	getJSON(t, fmt.Sprintf("%s/ledger/proof/consistency?old=3&new=%d", z.url, n), &c)
	if err := ledger.VerifyConsistency(oldCP, cp, toHashes(c.Hashes)); err != nil {
		t.Fatalf("consistency: %v", err)
	}
	var stats Stats
	getJSON(t, z.url+"/healthz", &stats)
	if stats.Ledger.Size != n || stats.Ledger.Forks != 0 {
		t.Fatalf("healthz ledger %+v", stats.Ledger)
	}

	for path, want := range map[string]int{
		"/ledger/entries?from=x":                             400,
		"/ledger/entries?from=-1":                            400,
		"/ledger/entries?from=5&to=4":                        400,
		"/ledger/entries?from=0&to=301":                      404,
		"/ledger/entries?from=301":                           400, // to defaults to the size
		"/ledger/entries?from=99999999999999999999":          400,
		"/ledger/proof/inclusion?index=1":                    400,
		"/ledger/proof/inclusion?index=300&size=300":         404,
		"/ledger/proof/inclusion?index=1&size=301":           404,
		"/ledger/proof/consistency?old=5&new=4":              400,
		"/ledger/proof/consistency?old=5&new=9999":           404,
		"/ledger/proof/consistency?new=5":                    400,
		"/ledger/zone/nowhere/checkpoint":                    404,
		"/ledger/zone/nowhere/entries?from=0":                404,
		"/ledger/zone/zone-l/proof/inclusion?index=0&size=1": 200,
	} {
		if code, body, _ := getText(t, z.url+path); code != want {
			t.Errorf("%s: %d %q, want %d", path, code, body, want)
		}
	}
}

func toHashes(b [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(b))
	for i := range b {
		copy(out[i][:], b[i])
	}
	return out
}

func TestLedgerSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	st := relaytest.OpenBolt(t, path)
	z := newZone(t, st, Config{Zone: "zone-p"})
	var last []byte
	var err error
	for i := 0; i < 40; i++ {
		if _, last, err = z.relay.Sequence(entry(i)); err != nil {
			t.Fatal(err)
		}
	}
	z.stop()
	st.Close()

	st = relaytest.OpenBolt(t, path)
	z = newZone(t, st, Config{Zone: "zone-p"})
	if note, _ := z.relay.Ledger.Log().Checkpoint(); string(note) != string(last) {
		t.Fatalf("checkpoint after restart:\n%s\nwas\n%s", note, last)
	}
	cp := fetchCheckpoint(t, z.url+"/ledger/checkpoint", "zone-p", z.relay)
	all := fetchEntries(t, z.url+"/ledger", cp.Size)
	if cp.Size != 40 || string(all[39]) != string(entry(39)) {
		t.Fatalf("size %d after restart", cp.Size)
	}
	if idx, _, err := z.relay.Sequence(entry(40)); err != nil || idx != 40 {
		t.Fatalf("sequence after restart: %d %v", idx, err)
	}
}

func TestLedgerMirrored(t *testing.T) {
	dir := t.TempDir()
	bStore := relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
	zs := federate(t, Config{}, Config{Store: bStore})
	a, b := zs[0], zs[1]
	big := strings.Repeat("x", ledger.MaxEntry-10)
	for i := 0; i < 40; i++ { // 160 KB: several LedgerEntries frames
		if _, _, err := a.relay.Sequence([]byte(fmt.Sprintf("%08d%s", i, big))); err != nil {
			t.Fatal(err)
		}
	}
	b.relay.Sequence([]byte("b's own"))
	mirrored := func(h *Relay, zone string, n int64) func() bool {
		return func() bool { return h.Stats().Ledger.Mirrors[zone] == n }
	}
	wait.Until(t, wait.Default, "b mirrors a's 40 entries", mirrored(b.relay, "zone-a", 40))
	wait.Until(t, wait.Default, "a mirrors b's entry", mirrored(a.relay, "zone-b", 1))
	cp := fetchCheckpoint(t, b.url+"/ledger/zone/zone-a/checkpoint", "zone-a", a.relay)
	all := fetchEntries(t, b.url+"/ledger/zone/zone-a", cp.Size)
	if err := ledger.Audit(all, cp); err != nil {
		t.Fatal(err)
	}
	var p zoneledger.InclusionJSON
	getJSON(t, fmt.Sprintf("%s/ledger/zone/zone-a/proof/inclusion?index=5&size=%d", b.url, cp.Size), &p)
	if err := ledger.VerifyInclusion(cp, 5, all[5], toHashes(p.Hashes)); err != nil {
		t.Fatal(err)
	}
	res, err := auditLedger(context.Background(), http.DefaultClient, b.url, "zone-a", "")
	if err != nil || !strings.HasPrefix(res, "ok: zone zone-a, 40 entries, root ") {
		t.Fatalf("audit of b's mirror: %q %v", res, err)
	}

	// b goes away; a grows; b comes back with its store and catches up.
	b.stop()
	bStore.Close()
	linked(t, a, 0)
	for i := 40; i < 45; i++ {
		a.relay.Sequence(entry(i))
	}
	bStore = relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
	b2 := startZone(t, bStore, b.cfg, listen(t, b.addr))
	if n := b2.relay.Stats().Ledger.Mirrors["zone-a"]; n != 40 && n != 45 {
		t.Fatalf("b's mirror after restart has %d entries", n)
	}
	linked(t, b2, 1)
	wait.Until(t, wait.Default, "b catches up", mirrored(b2.relay, "zone-a", 45))
	if res, err := auditLedger(context.Background(), http.DefaultClient, b2.url, "zone-a", ""); err != nil || !strings.Contains(res, "45 entries") {
		t.Fatalf("audit after catch-up: %q %v", res, err)
	}
	if b2.relay.Stats().Ledger.Forks != 0 || a.relay.Stats().Ledger.Forks != 0 {
		t.Fatal("a fork was counted")
	}
}

func TestAuditCommand(t *testing.T) {
	st := store.NewMemory()
	z := newZone(t, st, Config{Zone: "zone-q"})
	for i := 0; i < 20; i++ {
		z.relay.Sequence(entry(i))
	}
	var out strings.Builder
	if err := runAudit([]string{"-relay", z.url}, &out); err != nil || !strings.HasPrefix(out.String(), "ok: zone zone-q, 20 entries, root ") {
		t.Fatalf("audit: %q %v", out.String(), err)
	}
	if err := runAudit([]string{"-relay", z.url, "-zone", "elsewhere"}, io.Discard); err == nil {
		t.Fatal("audit of a zone the relay does not know passed")
	}
	if err := runAudit([]string{"-relay", z.url, "-key", strings.Repeat("ab", 32)}, io.Discard); err == nil {
		t.Fatal("audit with the wrong key passed")
	}

	// An entry changed in the store: the checkpoint still verifies, the
	// tree does not.
	keys, err := st.Keys("ledger/log/")
	if err != nil {
		t.Fatal(err)
	}
	var bundle string
	for _, k := range keys {
		if strings.Contains(k, "/entries/") {
			bundle = k
			break
		}
	}
	b, err := st.Get(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := st.Put(bundle, b); err != nil {
		t.Fatal(err)
	}
	_, err = auditLedger(context.Background(), http.DefaultClient, z.url, "", "")
	if err == nil || !strings.Contains(err.Error(), "bad proof") {
		t.Fatalf("audit of a tampered ledger: %v", err)
	}
}

// serveLedger answers the relay's ledger requests on a raw relay link from
// log until it has sent the proof and every entry up to log's size.
func (r *rawRelay) serveLedger(log *ledger.Log) {
	r.t.Helper()
	size := uint64(log.Size())
	for proved, sent := false, false; !proved || !sent; {
		switch m := r.read().(type) {
		case *wire.LedgerGetEntries:
			es, err := log.Entries(int64(m.From), int64(m.To))
			if err != nil {
				r.t.Fatal(err)
			}
			r.send(&wire.LedgerEntries{From: m.From, Entries: es})
			sent = m.From+uint64(len(es)) == size
		case *wire.LedgerGetProof:
			p, err := log.ConsistencyProof(int64(m.Old), int64(m.New))
			if err != nil {
				r.t.Fatal(err)
			}
			out := &wire.LedgerProof{Old: m.Old, New: m.New}
			for _, h := range p {
				out.Hashes = append(out.Hashes, h)
			}
			r.send(out)
			proved = m.New == size
		}
	}
}

func (r *rawRelay) announce(log *ledger.Log) {
	note, _ := log.Checkpoint()
	r.send(&wire.LedgerCheckpoint{Note: note})
}

func TestLedgerForkRefused(t *testing.T) {
	zs := federate(t, Config{}, Config{})
	a := zs[0]
	r, ident, honest := mirroredZoneX(t, a)
	origin := ledger.ZoneOrigin("zone-x", ident.SignKey())

	// Misbehaviour short of a fork is refused and the link stays.
	before := a.relay.Stats().Federated.Dropped
	r.send(&wire.LedgerEntries{From: 2, Entries: [][]byte{[]byte("unasked")}})
	r.expectError(wire.CodeProtocol)
	r.send(&wire.LedgerProof{Old: 0, New: 2})
	r.expectError(wire.CodeProtocol)
	r.send(&wire.LedgerGetEntries{From: 0, To: 1000})
	r.expectError(wire.CodeProtocol)
	r.send(&wire.LedgerGetProof{Old: 1, New: 1000})
	r.expectError(wire.CodeProtocol)
	forged, _ := honest.Checkpoint()
	forged[bytes.LastIndexByte(forged, ' ')+10] ^= 1 // within the signature, not its padding bits
	r.send(&wire.LedgerCheckpoint{Note: forged})
	r.expectError(wire.CodeProtocol)
	r.send(&wire.LedgerCheckpoint{Note: []byte("garbage")})
	r.expectError(wire.CodeProtocol)
	if d := a.relay.Stats().Federated.Dropped - before; d != 6 {
		t.Fatalf("%d ledger frames refused, want 6", d)
	}
	// a serves a's own entries to an honest asker.
	a.relay.Sequence([]byte("a0"))
	r.send(&wire.LedgerGetEntries{From: 0, To: 1})
	got := r.until("entries", func(m wire.Message) bool { _, ok := m.(*wire.LedgerEntries); return ok }).(*wire.LedgerEntries)
	if len(got.Entries) != 1 || string(got.Entries[0]) != "a0" {
		t.Fatalf("entries %+v", got)
	}

	// The same key signs another tree of the same size: a fork.
	split, err := ledger.Open(store.NewMemory(), origin, ident.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	split.Append([]byte("alice"), []byte("mallory"))
	r.announce(split)
	wait.Until(t, wait.Default, "the fork is counted", func() bool { return a.relay.Stats().Ledger.Forks == 1 })
	if note, _ := a.relay.Ledger.Mirror("zone-x").Checkpoint(); string(note) == func() string { n, _ := split.Checkpoint(); return string(n) }() {
		t.Fatal("the forked checkpoint was accepted")
	}
	var evidence struct{ Held, Offered string }
	ev, err := a.relay.cfg.Store.Get(zoneledger.StoreForks + origin)
	if err != nil || json.Unmarshal(ev, &evidence) != nil || evidence.Held == "" || evidence.Offered == "" || evidence.Held == evidence.Offered {
		t.Fatalf("fork evidence %q %v", ev, err)
	}
	// Sync on that link has stopped: an honest newer checkpoint is ignored.
	honest.Append([]byte("carol"))
	r.announce(honest)
	time.Sleep(200 * time.Millisecond)
	if n := a.relay.Stats().Ledger.Mirrors["zone-x"]; n != 2 {
		t.Fatalf("mirror moved to %d after the fork", n)
	}
	linked(t, a, 2)
}

// /healthz counts the ledger's bounds: a relay announcing a ledger more
// than zoneledger.MaxCatchUp entries ahead is not mirrored, and its round
// is counted as abandoned; capped and pruned mirrors are counted beside.
func TestLedgerHealthzBounds(t *testing.T) {
	zs := federate(t, Config{})
	a := zs[0]
	r, ident, _ := mirroredZoneX(t, a)

	r.send(&wire.LedgerCheckpoint{Note: relaytest.FakeCheckpoint(t, ident, "zone-x", 2+zoneledger.MaxCatchUp+1)})
	var health struct {
		Ledger map[string]json.RawMessage `json:"ledger"`
	}
	wait.Until(t, wait.Default, "/healthz counts the abandoned round", func() bool {
		getJSON(t, a.url+"/healthz", &health)
		return string(health.Ledger["abandoned"]) == "1"
	})
	for _, k := range []string{"capped", "pruned"} {
		if string(health.Ledger[k]) != "0" {
			t.Fatalf("/healthz ledger.%s = %s", k, health.Ledger[k])
		}
	}
	if a.relay.Stats().Ledger.Mirrors["zone-x"] != 2 {
		t.Fatal("the mirror moved")
	}
	linked(t, a, 1)
}

// mirroredZoneX links a relay of zone x, with a key of its own, to a and
// waits until a mirrors its two-entry ledger; it returns the link, the
// key and that ledger.
func mirroredZoneX(t testing.TB, a *testZone) (*rawRelay, *identity.Identity, *ledger.Log) {
	t.Helper()
	ident, _ := identity.New()
	honest, err := ledger.Open(store.NewMemory(), ledger.ZoneOrigin("zone-x", ident.SignKey()), ident.SigningKey())
	if err != nil {
		t.Fatal(err)
	}
	honest.Append([]byte("alice"), []byte("bob"))
	r := fedLink(t, a, ident, "zone-x")
	r.announce(honest)
	r.serveLedger(honest)
	wait.Until(t, wait.Default, "a mirrors zone x", func() bool { return a.relay.Stats().Ledger.Mirrors["zone-x"] == 2 })
	return r, ident, honest
}
