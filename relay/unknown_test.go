package main

import (
	"testing"

	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// Over the real WebSocket endpoints: a node and a relay that send frame
// types they invented keep their connections, and /healthz counts the
// frames under "unknown" and "federated.unknown".
func TestUnknownTypesCounted(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{})
	good := z.join(store.NewMemory())
	r := dialRaw(t, z)
	r.hello(true)
	if _, ok := r.read().(*wire.Admitted); !ok {
		t.Fatal("not admitted")
	}
	for _, f := range [][]byte{{wire.Version, 250, 1}, {wire.Version, 200}} {
		if err := r.write(f); err != nil {
			t.Fatal(err)
		}
	}
	// Still served: a name claim is answered, a signal reaches its target.
	n := &nameNode{rawClient: r}
	n.send(&wire.NameLookup{ID: 1, Hash: [32]byte{1}})
	if res := n.result(1); res.Code != wire.CodeNotFound {
		t.Fatalf("lookup after unknown frames: %+v", res)
	}
	before := z.relay.Stats().Signals
	r.send(&wire.Signal{Peer: good.Address(), Session: 1, Kind: wire.SignalBye})
	wait.Until(t, wait.Default, "the signal is forwarded", func() bool { return z.relay.Stats().Signals > before })

	ident, _ := identity.New()
	x := fedLink(t, z, ident, "zone-x")
	if err := x.write([]byte{wire.Version, 79, 1, 2}); err != nil {
		t.Fatal(err)
	}
	x.send(&wire.ZoneSummary{Nodes: 3, MaxNodes: 8})
	wait.Until(t, wait.Default, "the fake relay's summary applied", func() bool {
		for _, rj := range z.relay.Federation.Relays() {
			if rj.Zone == "zone-x" && rj.Nodes == 3 {
				return true
			}
		}
		return false
	})
	var stats Stats
	getJSON(t, z.url+"/healthz", &stats)
	if stats.Unknown != 2 || stats.Federated.Unknown != 1 || stats.Dropped != 0 || stats.Federated.Dropped != 0 || stats.Federated.Links != 1 || stats.Nodes != 2 {
		t.Fatalf("/healthz %+v", stats)
	}
}
