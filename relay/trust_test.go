package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"ddt/relay/federation"
	"ddt/relay/internal/relaytest"
	"ddt/shared/store"
	"ddt/shared/wait"
)

// `ddt-relay key` prints the relay's key, making it if need be; the relay
// started on that folder has that key; a running relay's store is locked
// and the command says where to find the key instead.
func TestKeyCommand(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := runKey([]string{"-data", dir}, &out); err != nil {
		t.Fatal(err)
	}
	printed := strings.TrimSpace(out.String())
	if k, err := federation.ParseKey(printed); err != nil || len(out.String()) != 65 {
		t.Fatalf("printed %q: %v %x", out.String(), err, k)
	}
	out.Reset()
	if err := runKey([]string{"-data", dir}, &out); err != nil || strings.TrimSpace(out.String()) != printed {
		t.Fatalf("second run printed %q (%v), first %q", out.String(), err, printed)
	}
	st := relaytest.OpenBolt(t, filepath.Join(dir, "relay.db"))
	z := newZone(t, st, Config{})
	k := z.relay.Key()
	if hex.EncodeToString(k[:]) != printed {
		t.Fatalf("the relay's key is %x, the command printed %s", k, printed)
	}
	if err := runKey([]string{"-data", dir}, &out); err == nil || !strings.Contains(err.Error(), "relayKey") {
		t.Fatalf("with the relay running: %v", err)
	}
}

// -peer URL#KEY, -trust FILE and -federation become the federation's
// settings; bad ones are refused with the flag named.
func TestFederationFlags(t *testing.T) {
	ka, kb, kc := strings.Repeat("0a", 32), strings.Repeat("0b", 32), strings.Repeat("0c", 32)
	file := filepath.Join(t.TempDir(), "trust")
	os.WriteFile(file, []byte("# our federation\n"+kb+" https://b.example\n"+kc+"  # c dials us\n"), 0o600)
	var cfg Config
	if err := federationConfig(&cfg, []string{"https://a.example/#" + ka, "http://127.0.0.1:9"}, file, "open"); err != nil {
		t.Fatal(err)
	}
	if !cfg.Open || len(cfg.Peers) != 3 || cfg.Peers[0].URL != "https://a.example" || hex.EncodeToString(cfg.Peers[0].Key[:]) != ka ||
		cfg.Peers[1].Key != ([32]byte{}) || cfg.Peers[2].URL != "https://b.example" || hex.EncodeToString(cfg.Peers[2].Key[:]) != kb ||
		len(cfg.Trusted) != 1 || hex.EncodeToString(cfg.Trusted[0][:]) != kc {
		t.Fatalf("config %+v", cfg)
	}
	for _, c := range []struct {
		peers      []string
		trust, mod string
		want       string
	}{
		{[]string{"https://a.example#12"}, "", "trusted", "-peer"},
		{nil, "", "closed", "-federation"},
		{nil, filepath.Join(t.TempDir(), "missing"), "trusted", "-trust"},
	} {
		var cfg Config
		if err := federationConfig(&cfg, c.peers, c.trust, c.mod); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// A relay links only to relays whose keys its operator named: a names b,
// b names nobody, so b refuses a (counted in /healthz) and a keeps
// dialing; once b's operator names a's key the link comes up by itself,
// /relays marks it trusted on both sides.
func TestFederationNeedsBothSidesToName(t *testing.T) {
	bStore := store.NewMemory()
	bKey, _ := LoadKey(bStore)
	bLn := listen(t, "127.0.0.1:0")
	b := startZone(t, bStore, Config{Zone: "zone-b"}, bLn)
	a := newZone(t, store.NewMemory(), Config{Zone: "zone-a", Peers: []federation.Peer{{URL: b.url, Key: bKey}}})
	var stats Stats
	wait.Until(t, wait.Default, "b refuses a twice", func() bool {
		getJSON(t, b.url+"/healthz", &stats)
		return stats.Federated.Untrusted >= 2
	})
	if stats.Federated.Links != 0 || a.relay.Stats().Federated.Links != 0 {
		t.Fatalf("linked without being named: %+v", stats.Federated)
	}
	b.relay.Federation.Trust(a.relay.Key())
	linked(t, a, 1)
	linked(t, b, 1)
	for _, z := range []*testZone{a, b} {
		var relays []federation.RelayJSON
		getJSON(t, z.url+"/relays", &relays)
		if len(relays) != 2 || !relays[0].Trusted || !relays[1].Trusted || !relays[1].Up {
			t.Fatalf("%s /relays %+v", z.cfg.Zone, relays)
		}
	}
}

// At most federation.MaxJoining relay connections authenticate at once:
// the next gets HTTP 503, counted in /healthz, until one is done.
func TestFederationJoiningLimit(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	ws := strings.Replace(z.url, "http", "ws", 1) + "/federate"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var held []*websocket.Conn
	for range federation.MaxJoining {
		c, _, err := websocket.Dial(ctx, ws, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		held = append(held, c)
	}
	_, resp, err := websocket.Dial(ctx, ws, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("connection %d: %v %v", federation.MaxJoining+1, resp, err)
	}
	var stats Stats
	getJSON(t, z.url+"/healthz", &stats)
	if stats.Federated.JoiningFull != 1 {
		t.Fatalf("/healthz federated %+v", stats.Federated)
	}
	held[0].CloseNow()
	wait.For(t, wait.Default, "a slot free again", func() error {
		c, _, err := websocket.Dial(ctx, ws, nil)
		if err == nil {
			c.CloseNow()
		}
		return err
	})
}
