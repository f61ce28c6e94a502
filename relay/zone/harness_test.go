package zone

import (
	"context"
	"errors"
	"testing"
	"time"

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

// openBolt opens the bbolt store at path and closes it when the test
// ends, after the zones that use it.
func openBolt(t testing.TB, path string) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// rawNode speaks the relay protocol by hand over a pipe, to misbehave.
type rawNode struct {
	t     testing.TB
	c     transport.Conn
	id    *identity.Identity
	ch    *wire.Challenge
	lease wire.Lease // once admitted
}

// dial serves one end of a pipe on z and returns the node at the other,
// its challenge read.
func dial(t testing.TB, z *Zone) *rawNode {
	t.Helper()
	a, b := transport.Pipe()
	if !z.JoinSlot() {
		t.Fatal("no join slot")
	}
	done := make(chan struct{})
	go func() { defer close(done); z.Serve(context.Background(), a, "pipe") }()
	t.Cleanup(func() { b.Close(); <-done })
	r := &rawNode{t: t, c: b}
	r.id, _ = identity.New()
	var ok bool
	if r.ch, ok = r.read().(*wire.Challenge); !ok {
		t.Fatal("no challenge")
	}
	return r
}

// tryRead reads one frame, giving up after 5 s (which closes the conn).
func (r *rawNode) tryRead() (wire.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { r.c.Close() })
	defer stop()
	b, err := r.c.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return nil, context.DeadlineExceeded
		}
		return nil, err
	}
	return wire.Unmarshal(b)
}

func (r *rawNode) read() wire.Message {
	r.t.Helper()
	m, err := r.tryRead()
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *rawNode) send(m wire.Message) {
	r.t.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.c.Send(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawNode) hello(sign bool) {
	h := &wire.Hello{SignKey: r.id.SignKey(), AgreeKey: r.id.AgreeKey()}
	if sign {
		h.Sig = r.id.Sign(wire.HelloSignedBytes(r.ch, h.SignKey, h.AgreeKey, false))
	}
	r.send(h)
}

// until reads until f accepts a message.
func (r *rawNode) until(what string, f func(wire.Message) bool) wire.Message {
	r.t.Helper()
	for {
		m, err := r.tryRead()
		if err != nil {
			r.t.Fatalf("waiting for %s: %v", what, err)
		}
		if f(m) {
			return m
		}
	}
}

// expectError reads until an Error arrives and checks its code.
func (r *rawNode) expectError(code wire.Code) *wire.Error {
	r.t.Helper()
	e := r.until("an error", func(m wire.Message) bool { _, ok := m.(*wire.Error); return ok }).(*wire.Error)
	if e.Code != code {
		r.t.Fatalf("error %v, want code %d", e.Err(), code)
	}
	return e
}

// expectClosed reads until the zone closes the connection.
func (r *rawNode) expectClosed() {
	r.t.Helper()
	for {
		if _, err := r.tryRead(); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				r.t.Fatal("connection still open")
			}
			return
		}
	}
}

// admit joins a raw node (a fresh identity unless one is given) and
// returns it with its admission.
func admit(t testing.TB, z *Zone, ident *identity.Identity) (*rawNode, *wire.Admitted) {
	t.Helper()
	r := dial(t, z)
	if ident != nil {
		r.id = ident
	}
	r.hello(true)
	m := r.read()
	adm, ok := m.(*wire.Admitted)
	if !ok {
		t.Fatalf("not admitted: %T %+v", m, m)
	}
	r.lease = adm.Lease
	return r, adm
}

// leave closes the node's end and waits until the zone has let it go.
func (r *rawNode) leave(z *Zone) {
	r.t.Helper()
	r.c.Close()
	wait.Until(r.t, wait.Default, "the node left", func() bool { return z.Member(r.lease.Address) == nil })
}
