package zone

import (
	"context"
	"testing"

	"ddt/relay/internal/relaytest"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// newTestZone runs a zone on st, with the relay key kept in st (as the
// relay keeps it), until the test ends.
func newTestZone(t testing.TB, st store.Store, cfg Config) *Zone {
	t.Helper()
	key, err := identity.LoadOrCreate(st, "relay/key")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.MaxNodes == 0 {
		cfg.MaxNodes = 16
	}
	cfg.Key, cfg.Store = key, st
	z, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(z.Close)
	return z
}

// rawNode is a node played by hand over a pipe, to misbehave.
type rawNode struct {
	*relaytest.End
	id    *identity.Identity
	ch    *wire.Challenge
	lease wire.Lease // once admitted
}

// dial serves one end of a pipe on z and returns the node at the other,
// its challenge not read yet.
func dial(t testing.TB, z *Zone) *rawNode {
	t.Helper()
	if !z.JoinSlot() {
		t.Fatal("no join slot")
	}
	r := &rawNode{End: relaytest.Serve(t, func(c transport.Conn) { z.Serve(context.Background(), c, "pipe") })}
	r.id, _ = identity.New()
	return r
}

// admit joins a raw node (a fresh identity unless one is given) and
// returns it with its admission.
func admit(t testing.TB, z *Zone, ident *identity.Identity) (*rawNode, *wire.Admitted) {
	t.Helper()
	r := dial(t, z)
	if ident != nil {
		r.id = ident
	}
	var adm *wire.Admitted
	r.ch, adm = r.Admit(r.id)
	r.lease = adm.Lease
	return r, adm
}

// leave closes the node's end and waits until the zone has let it go.
func (r *rawNode) leave(z *Zone) {
	r.T.Helper()
	r.Conn.Close()
	wait.Until(r.T, wait.Default, "the node left", func() bool { return z.Member(r.lease.Address) == nil })
}
