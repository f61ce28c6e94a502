package relaytest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/identity"
	"ddt/shared/ledger"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// ReadLimit is how long a read waits before the test gives up on it.
const ReadLimit = 5 * time.Second

// End is the test's side of a pipe.
type End struct {
	T    testing.TB
	Conn transport.Conn
}

// Serve runs serve on one side of a new pipe and returns the other; at
// the end of the test it closes its side and waits for serve to return.
func Serve(t testing.TB, serve func(transport.Conn)) *End {
	t.Helper()
	a, b := transport.Pipe()
	done := make(chan struct{})
	go func() { defer close(done); serve(a) }()
	t.Cleanup(func() { b.Close(); <-done })
	return &End{T: t, Conn: b}
}

// ErrTimeout is TryRead's error when nothing came within ReadLimit (the
// conn is closed then).
var ErrTimeout = errors.New("relaytest: nothing to read")

// TryRead reads and decodes one frame.
func (e *End) TryRead() (wire.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ReadLimit)
	defer cancel()
	defer context.AfterFunc(ctx, func() { e.Conn.Close() })()
	b, err := e.Conn.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ErrTimeout
		}
		return nil, err
	}
	return wire.Unmarshal(b)
}

// Read reads one frame or fails the test.
func (e *End) Read() wire.Message {
	e.T.Helper()
	m, err := e.TryRead()
	if err != nil {
		e.T.Fatal(err)
	}
	return m
}

// Send encodes and sends m.
func (e *End) Send(m wire.Message) {
	e.T.Helper()
	b, err := wire.Marshal(m)
	if err != nil {
		e.T.Fatal(err)
	}
	e.SendRaw(b)
}

// SendRaw sends one frame as it is.
func (e *End) SendRaw(b []byte) {
	e.T.Helper()
	if err := e.Conn.Send(b); err != nil {
		e.T.Fatal(err)
	}
}

// Until reads until f accepts a message, and returns it.
func (e *End) Until(what string, f func(wire.Message) bool) wire.Message {
	e.T.Helper()
	for {
		m, err := e.TryRead()
		if err != nil {
			e.T.Fatalf("waiting for %s: %v", what, err)
		}
		if f(m) {
			return m
		}
	}
}

// Next reads until a message of type T arrives, and returns it.
func Next[T wire.Message](e *End, what string) T {
	e.T.Helper()
	return e.Until(what, func(m wire.Message) bool { _, ok := m.(T); return ok }).(T)
}

// ExpectError reads until an Error arrives and checks its code.
func (e *End) ExpectError(code wire.Code) *wire.Error {
	e.T.Helper()
	err := Next[*wire.Error](e, "an error")
	if err.Code != code {
		e.T.Fatalf("error %v, want code %d", err.Err(), code)
	}
	return err
}

// ExpectClosed reads until the other side closes.
func (e *End) ExpectClosed() {
	e.T.Helper()
	for {
		if _, err := e.TryRead(); err != nil {
			if errors.Is(err, ErrTimeout) {
				e.T.Fatal("connection still open")
			}
			return
		}
	}
}

// Join answers the zone's challenge as node id (signed unless sign is
// false) and returns the challenge and the answer (Admitted, Refused or
// an Error).
func (e *End) Join(id *identity.Identity, sign bool) (*wire.Challenge, wire.Message) {
	e.T.Helper()
	ch, ok := e.Read().(*wire.Challenge)
	if !ok {
		e.T.Fatal("no challenge")
	}
	h := &wire.Hello{SignKey: id.SignKey(), AgreeKey: id.AgreeKey()}
	if sign {
		h.Sig = id.Sign(wire.HelloSignedBytes(ch, h.SignKey, h.AgreeKey, false))
	}
	e.Send(h)
	return ch, e.Read()
}

// Admit is Join that must be admitted.
func (e *End) Admit(id *identity.Identity) (*wire.Challenge, *wire.Admitted) {
	e.T.Helper()
	ch, m := e.Join(id, true)
	adm, ok := m.(*wire.Admitted)
	if !ok {
		e.T.Fatalf("not admitted: %T %+v", m, m)
	}
	return ch, adm
}

// Federate authenticates as the relay info with key id, as the dialer,
// announcing features; it returns the other relay's hello once that
// relay's snapshot has arrived. The other relay must trust id (see
// FakeRelay).
func (e *End) Federate(id *identity.Identity, info wire.RelayInfo, features wire.Features) *wire.RelayHello {
	e.T.Helper()
	hello, err := e.TryFederate(id, info, features)
	if err != nil {
		e.T.Fatal(err)
	}
	return hello
}

// TryFederate is Federate that returns the error the other relay refused
// the link with, in its handshake or right after it (too many links).
func (e *End) TryFederate(id *identity.Identity, info wire.RelayInfo, features wire.Features) (*wire.RelayHello, error) {
	e.T.Helper()
	theirs, ok := e.Read().(*wire.RelayChallenge)
	if !ok {
		e.T.Fatal("no relay challenge")
	}
	ours := &wire.RelayChallenge{Nonce: [32]byte{4, 5, 6}, Key: id.SignKey()}
	e.Send(ours)
	b, err := wire.Marshal(&wire.RelayHello{Relay: info, Sig: id.Sign(wire.RelayHelloSignedBytes(true, ours.Nonce, theirs.Nonce, &info, theirs.Key)), Features: features})
	if err != nil {
		e.T.Fatal(err)
	}
	e.Conn.Send(b) // a relay that refuses us may have closed already: its Error is still there to read
	switch m := e.Read().(type) {
	case *wire.RelayHello:
		if m.Relay.Key != theirs.Key || !identity.Verify(m.Relay.Key, wire.RelayHelloSignedBytes(false, theirs.Nonce, ours.Nonce, &m.Relay, id.SignKey()), m.Sig) {
			e.T.Fatal("relay hello does not verify")
		}
		var refused error
		e.Until("the snapshot", func(x wire.Message) bool {
			switch x := x.(type) {
			case *wire.Error:
				refused = x.Err()
				return true
			case *wire.ZoneMembers:
				return x.Last
			}
			return false
		})
		return m, refused
	case *wire.Error:
		return nil, m.Err()
	default:
		e.T.Fatalf("expected a relay hello, got %T", m)
		return nil, nil
	}
}

// Federation is what FakeRelay links to: relay/federation's engine.
type Federation interface {
	Slot() bool
	Serve(ctx context.Context, conn transport.Conn, remote string)
	Trust(key [32]byte)
}

// FakeRelay links a relay of zone name, with a new key that fed trusts,
// to fed, announcing features; it returns the fake relay's end of the
// link and its key.
func FakeRelay(t testing.TB, fed Federation, name string, features wire.Features) (*End, *identity.Identity) {
	t.Helper()
	id, err := identity.New()
	if err != nil {
		t.Fatal(err)
	}
	fed.Trust(id.SignKey())
	return LinkAs(t, fed, id, name, features), id
}

// LinkAs links a relay of zone name with key id to fed, announcing
// features, as FakeRelay does but without making fed trust id: fed links
// it only if it trusts id already, or as untrusted in open federation.
func LinkAs(t testing.TB, fed Federation, id *identity.Identity, name string, features wire.Features) *End {
	t.Helper()
	if !fed.Slot() {
		t.Fatal("the federation has no slot for another link")
	}
	e := Serve(t, func(c transport.Conn) { fed.Serve(context.Background(), c, "pipe") })
	e.Federate(id, wire.RelayInfo{Zone: name, URL: "http://" + name + ".example", Key: id.SignKey(), MaxNodes: 8}, features)
	return e
}

// OpenBolt opens the bbolt store at path and closes it when the test
// ends, after the engines that use it (cleanups run last-registered
// first). Closing it earlier, to reopen it as a restarted relay would, is
// fine.
func OpenBolt(t testing.TB, path string) *store.Bolt {
	t.Helper()
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// noteSigner signs checkpoint notes with a relay's key.
type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s *noteSigner) Name() string                    { return s.name }
func (s *noteSigner) KeyHash() uint32                 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// FakeCheckpoint is a checkpoint of zone's log at size, signed by id, over
// a root no entries make: what a hostile relay can announce without
// holding a log of that size.
func FakeCheckpoint(t testing.TB, id *identity.Identity, zone string, size int64) []byte {
	t.Helper()
	key := id.SignKey()
	origin := ledger.ZoneOrigin(zone, key)
	vkey, err := ledger.VerifierKey(origin, ed25519.PublicKey(key[:]))
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp := ledger.Checkpoint{Origin: origin, Size: size, Hash: tlog.Hash{0xba, 0xd}}
	b, err := note.Sign(&note.Note{Text: cp.String()}, &noteSigner{name: origin, hash: v.KeyHash(), key: id.SigningKey()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
