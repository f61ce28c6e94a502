package federation

import (
	"context"
	"testing"
	"time"

	"ddt/relay/internal/relaytest"
	"ddt/relay/zone"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// relay is a zone and its federation, on a memory store.
type relay struct {
	t    testing.TB
	key  *identity.Identity
	zone *zone.Zone
	fed  *Federation
}

// newRelay makes a relay of zone name; setup, if set, registers services
// before the federation starts.
func newRelay(t testing.TB, name string, cfg Config, setup func(*Federation)) *relay {
	t.Helper()
	key, _ := identity.New()
	z, err := zone.New(zone.Config{Name: name, URL: "http://" + name + ".example", MaxNodes: 16, Key: key, Store: store.NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Zone, cfg.Key = z, key
	if cfg.SummaryEvery == 0 {
		cfg.SummaryEvery = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 50 * time.Millisecond
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(f)
	}
	f.Start()
	t.Cleanup(func() { z.Close(); f.Close() })
	return &relay{t: t, key: key, zone: z, fed: f}
}

func newIdentity(t testing.TB) *identity.Identity {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// node admits a raw node to r's zone.
func (r *relay) node() (*relaytest.End, wire.Lease) {
	r.t.Helper()
	if !r.zone.JoinSlot() {
		r.t.Fatal("no join slot")
	}
	e := relaytest.Serve(r.t, func(c transport.Conn) { r.zone.Serve(context.Background(), c, "pipe") })
	id, _ := identity.New()
	_, adm := e.Admit(id)
	return e, adm.Lease
}

// fake is a relay played by hand over a pipe.
type fake struct {
	*relaytest.End
	id    *identity.Identity
	info  wire.RelayInfo
	hello *wire.RelayHello // r's
}

// link authenticates a fake relay of zone name, with a key r trusts, to
// r, as the dialer, announcing features, and reads r's snapshot.
func (r *relay) link(name string, features wire.Features) *fake {
	r.t.Helper()
	f := r.dial(name)
	r.fed.Trust(f.id.SignKey())
	f.hello = f.Federate(f.id, f.info, features)
	return f
}

// dial opens a connection to r's federation for a fake relay of zone
// name, with a fresh key, and leaves the handshake to the test.
func (r *relay) dial(name string) *fake {
	r.t.Helper()
	if !r.fed.Slot() {
		r.t.Fatal("no slot")
	}
	id, _ := identity.New()
	return &fake{End: relaytest.Serve(r.t, func(c transport.Conn) { r.fed.Serve(context.Background(), c, "pipe") }), id: id,
		info: wire.RelayInfo{Zone: name, URL: "http://" + name + ".example", Key: id.SignKey(), MaxNodes: 8}}
}

// pipeTo is a Config.Dial that links to whichever relay to() names at
// the time of the dial, through a pipe.
func pipeTo(to func() *relay) func(ctx context.Context, peer string) (transport.Conn, error) {
	return func(ctx context.Context, peer string) (transport.Conn, error) {
		r := to()
		if !r.fed.Slot() {
			return nil, ErrTooMany
		}
		x, y := transport.Pipe()
		go r.fed.Serve(context.Background(), y, "pipe")
		return x, nil
	}
}

// member signs a lease for a fresh node of the fake relay's zone.
func (f *fake) member() wire.Lease {
	n, _ := identity.New()
	return f.id.IssueLease(n.SignKey(), n.AgreeKey(), [16]byte{9}, f.info.Zone, time.Now(), zone.LeaseTTL)
}
