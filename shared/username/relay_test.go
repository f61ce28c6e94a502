//go:build !js

package username

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ddt/shared/clock"
	"ddt/shared/node"
	"ddt/shared/wait"

	"github.com/coder/websocket"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Native only: these tests serve WebSockets, which node's js runtime cannot.

// fakeRelay speaks the relay's side of the node protocol over a real
// WebSocket: admission, signal forwarding between its members, and
// usernames, which it has a federated relay (home, of zone "b") sequence
// in a real ledger, as a name's home relay in another zone would.
type fakeRelay struct {
	t    *testing.T
	key  *identity.Identity
	zone string
	home *testLedger
	srv  *httptest.Server
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	nonces  map[[32]byte][16]byte
	members map[id.Address]*websocket.Conn
	leases  map[id.Address]wire.Lease
	held    map[string]*held // name → its latest record

	claims, lookups atomic.Int32
	dropClaims      atomic.Int32 // close the connection instead of answering this many claims
	admissions      atomic.Int32
	// Behaviour for tests, under mu.
	noNames   bool                     // announce no username service
	afterAdm  [][]byte                 // raw frames sent right after each admission
	newNonces bool                     // every admission gets a new address
	refuse    wire.Code                // answer claims with this code
	silent    bool                     // answer no claim
	tamper    func(r *wire.UserRecord) // edit records before sending them
	grown     *testLedger              // a relay that joined the federation since: admissions list it, trusted and running names
}

// set changes the relay's behaviour.
func (f *fakeRelay) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

type held struct {
	claim wire.UserClaim
	index int64
}

func newFakeRelay(t *testing.T) *fakeRelay {
	t.Helper()
	k, _ := identity.New()
	f := &fakeRelay{t: t, key: k, zone: "a", home: newTestLedger(t, "b"),
		nonces: map[[32]byte][16]byte{}, members: map[id.Address]*websocket.Conn{},
		leases: map[id.Address]wire.Lease{}, held: map[string]*held{}}
	f.ctx, f.stop = context.WithCancel(context.Background())
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.stop()
		f.wg.Wait()
		f.srv.Close()
	})
	return f
}

func (f *fakeRelay) serve(w http.ResponseWriter, r *http.Request) {
	f.wg.Add(1)
	defer f.wg.Done()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	write := func(m wire.Message) error {
		b, err := wire.Marshal(m)
		if err != nil {
			return err
		}
		return c.Write(ctx, websocket.MessageBinary, b)
	}
	read := func() (wire.Message, error) {
		_, b, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		return wire.Unmarshal(b)
	}
	ch := &wire.Challenge{Zone: f.zone, RelayKey: f.key.SignKey(), Features: wire.Features{wire.FeatureNames}}
	f.mu.Lock()
	if f.noNames {
		ch.Features = nil
	}
	after := f.afterAdm
	f.mu.Unlock()
	rand.Read(ch.Nonce[:])
	if write(ch) != nil {
		return
	}
	m, err := read()
	hello, ok := m.(*wire.Hello)
	if err != nil || !ok || !identity.Verify(hello.SignKey, wire.HelloSignedBytes(ch, hello.SignKey, hello.AgreeKey, hello.Native), hello.Sig) {
		return
	}
	f.mu.Lock()
	nonce, known := f.nonces[hello.SignKey]
	if !known || f.newNonces {
		rand.Read(nonce[:])
		f.nonces[hello.SignKey] = nonce
	}
	lease := f.key.IssueLease(hello.SignKey, hello.AgreeKey, nonce, f.zone, time.Now(), time.Hour)
	adm := &wire.Admitted{Lease: lease, Relays: []wire.RelayInfo{
		{Zone: f.zone, Key: f.key.SignKey()},
		{Zone: f.home.zone, Key: f.home.key.SignKey()},
	}, Flags: []wire.RelayFlags{wire.RelayTrusted, wire.RelayTrusted | wire.RelayNames}} // b sequences every name
	if f.grown != nil {
		adm.Relays = append(adm.Relays, f.grown.info())
		adm.Flags = append(adm.Flags, wire.RelayTrusted|wire.RelayNames)
	}
	for a, l := range f.leases {
		if a != lease.Address {
			adm.Peers = append(adm.Peers, l)
			adm.Natives = append(adm.Natives, false)
		}
	}
	f.members[lease.Address] = c
	f.leases[lease.Address] = lease
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.members[lease.Address] == c {
			delete(f.members, lease.Address)
			delete(f.leases, lease.Address)
		}
		f.mu.Unlock()
	}()
	if write(adm) != nil {
		return
	}
	f.admissions.Add(1)
	for _, b := range after {
		if c.Write(ctx, websocket.MessageBinary, b) != nil {
			return
		}
	}
	for {
		m, err := read()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *wire.Signal:
			f.mu.Lock()
			to := f.members[m.Peer]
			f.mu.Unlock()
			if to != nil {
				fwd := *m
				fwd.Peer = lease.Address
				b, _ := wire.Marshal(&fwd)
				to.Write(ctx, websocket.MessageBinary, b)
			}
		case *wire.NameClaim:
			f.claims.Add(1)
			if f.dropClaims.Load() > 0 {
				f.dropClaims.Add(-1)
				return // the connection goes; the claim was never seen
			}
			f.mu.Lock()
			silent := f.silent
			f.mu.Unlock()
			if silent {
				continue
			}
			if write(f.claim(m)) != nil {
				return
			}
		case *wire.NameLookup:
			f.lookups.Add(1)
			if write(f.lookup(m)) != nil {
				return
			}
		}
	}
}

// claim sequences a claim as a home relay does: the first key to claim a
// name holds it; its owner may claim it again at a higher version; the
// same claim again gets the same record.
func (f *fakeRelay) claim(m *wire.NameClaim) *wire.NameResult {
	res := &wire.NameResult{ID: m.ID}
	c := &m.Claim
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != wire.CodeNone {
		res.Code = f.refuse
		return res
	}
	if err := names.VerifyClaim(c); err != nil {
		res.Code, res.Message = wire.CodeBadName, err.Error()
		return res
	}
	h := f.held[c.Name]
	switch {
	case h != nil && names.Same(&h.claim, c):
	case h != nil && h.claim.SignKey != c.SignKey:
		res.Code, res.Message = wire.CodeNameTaken, fmt.Sprintf("%q is taken", c.Name)
		return res
	case h != nil && c.Version <= h.claim.Version:
		res.Code, res.Message = wire.CodeBadName, "a claim older than the one held"
		return res
	default:
		idx, err := f.home.append(c)
		if err != nil {
			res.Code, res.Message = wire.CodeInternal, err.Error()
			return res
		}
		h = &held{claim: *c, index: idx}
		f.held[c.Name] = h
	}
	res.Record = f.record(h)
	return res
}

func (f *fakeRelay) lookup(m *wire.NameLookup) *wire.NameResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, h := range f.held {
		if names.Hash(name) == m.Hash {
			return &wire.NameResult{ID: m.ID, Record: f.record(h)}
		}
	}
	return &wire.NameResult{ID: m.ID, Code: wire.CodeNotFound, Message: "no such name"}
}

// record proves h against the ledger's latest checkpoint; f.mu is held.
func (f *fakeRelay) record(h *held) *wire.UserRecord {
	rec, err := f.home.prove(&h.claim, h.index)
	if err != nil {
		f.t.Errorf("proving a record: %v", err)
		return nil
	}
	if f.tamper != nil {
		f.tamper(rec)
	}
	return rec
}

// runNode starts a node of this relay on st and net, with clk (the
// system clock if nil), and waits for its admission. The returned stop
// ends it (and runs at cleanup).
func (f *fakeRelay) runNode(t *testing.T, st store.Store, net *transport.Network, clk clock.Clock) (*node.Node, *Client, func()) {
	t.Helper()
	c := New()
	n, err := node.New(node.Config{Relay: f.srv.URL, Store: st, Transport: net.Transport(), Clock: clk, MaxBackoff: 500 * time.Millisecond,
		Capabilities: []node.Capability{c}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	wait.Until(t, wait.Default, "admission", func() bool { s, _ := n.State(); return s == node.StateAdmitted })
	return n, c, stop
}

func TestRegister(t *testing.T) {
	f := newFakeRelay(t)
	st := store.NewMemory()
	net := transport.NewNetwork()
	an, a, stop := f.runNode(t, st, net, nil)
	var events atomic.Int32
	an.Subscribe(func(e node.Event) {
		if v, ok := e.Value.(View); e.Kind == Event && ok && v.Name == "alice" {
			events.Add(1)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := a.Register(ctx, "Alice")
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if rec.Claim.Name != "alice" || rec.Claim.Address != an.Address() || rec.Claim.Version != 1 || rec.Zone != "b" {
		t.Fatalf("record %+v of zone %q", rec.Claim, rec.Zone)
	}
	if _, err := names.Verify(rec, "alice", a.h.ZoneOf); err != nil {
		t.Fatalf("the record does not verify: %v", err)
	}
	if a.Name() != "alice" || events.Load() != 1 {
		t.Errorf("username %q, %d events", a.Name(), events.Load())
	}
	if b, err := st.Get(keyRecordIn); err != nil {
		t.Errorf("the record is not in the store: %v", err)
	} else if m, err := wire.Unmarshal(b); err != nil || !names.Same(&m.(*wire.UserRecord).Claim, &rec.Claim) {
		t.Errorf("the stored record: %v", err)
	}
	// The same name again: answered at once, no claim sent.
	if again, err := a.Register(ctx, "alice"); err != nil || again != rec || f.claims.Load() != 1 {
		t.Errorf("registering the same name again: %v, %d claims", err, f.claims.Load())
	}
	if _, err := a.Register(ctx, "bob"); !errors.Is(err, ErrAlreadyRegistered) {
		t.Errorf("a second name: %v", err)
	}
	if got, err := a.Resolve(ctx, "alice", true); err != nil || !names.Same(&got.Claim, &rec.Claim) {
		t.Errorf("resolving its own name: %v", err)
	}

	// A restart on the same store: the name is there before admission,
	// and the node, back at the same address, does not claim it again.
	stop()
	b := New()
	if _, err := node.New(node.Config{Relay: f.srv.URL, Store: st, Transport: net.Transport(), Capabilities: []node.Capability{b}}); err != nil {
		t.Fatal(err)
	}
	if b.Name() != "alice" {
		t.Fatalf("after a restart the username is %q", b.Name())
	}
	b2n, b2, _ := f.runNode(t, st, net, nil)
	if b2.Name() != "alice" || b2n.Address() != rec.Claim.Address {
		t.Fatalf("after a restart: %q at %s", b2.Name(), b2n.Address().Short())
	}
	if got, err := b2.Register(ctx, "alice"); err != nil || !names.Same(&got.Claim, &rec.Claim) || f.claims.Load() != 1 {
		t.Errorf("after a restart, registering again: %v, %d claims", err, f.claims.Load())
	}
}

// A node that comes back at another address claims its name again at the
// next version, by itself.
func TestReclaimAtNewAddress(t *testing.T) {
	f := newFakeRelay(t)
	st := store.NewMemory()
	net := transport.NewNetwork()
	_, a, stop := f.runNode(t, st, net, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := a.Register(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	f.set(func() { f.newNonces = true })
	bn, b, _ := f.runNode(t, st, net, nil)
	if bn.Address() == rec.Claim.Address {
		t.Fatal("the relay gave the same address")
	}
	wait.Until(t, wait.Default, "a new claim", func() bool { r := b.Record(); return r != nil && r.Claim.Version == 2 })
	r := b.Record()
	if r.Claim.Address != bn.Address() || f.claims.Load() != 2 {
		t.Errorf("renewed record at %s, node at %s; %d claims", r.Claim.Address.Short(), bn.Address().Short(), f.claims.Load())
	}
	if _, err := names.Verify(r, "alice", b.h.ZoneOf); err != nil {
		t.Error(err)
	}
	// Re-registering at the new address is answered from the store.
	if got, err := b.Register(ctx, "alice"); err != nil || got.Claim.Version != 2 || f.claims.Load() != 2 {
		t.Errorf("register after the renewal: %v", err)
	}
}

func TestRegisterTaken(t *testing.T) {
	f := newFakeRelay(t)
	net := transport.NewNetwork()
	_, a, _ := f.runNode(t, store.NewMemory(), net, nil)
	_, b, _ := f.runNode(t, store.NewMemory(), net, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := b.Register(ctx, "ALICE")
	var re *wire.RemoteError
	if !errors.Is(err, wire.ErrNameTaken) || !errors.As(err, &re) {
		t.Fatalf("a taken name: %v", err)
	}
	if e := node.Explain(err); e.Code != CodeTaken || e.Error != `"alice" is taken` {
		t.Errorf("a taken name reads %s %q", e.Code, e.Error)
	}
	if b.Name() != "" {
		t.Errorf("the refused node holds %q", b.Name())
	}
	if _, err := b.Register(ctx, "bob"); err != nil {
		t.Errorf("a free name after a refusal: %v", err)
	}
}

// A record from the relay that does not verify, or is not for the claim
// sent, is refused and not kept.
func TestRegisterRefusesForgedRecords(t *testing.T) {
	for name, tamper := range map[string]func(r *wire.UserRecord){
		"proof":       func(r *wire.UserRecord) { r.Proof = append(r.Proof, [32]byte{1}) },
		"index":       func(r *wire.UserRecord) { r.Index++ },
		"zone":        func(r *wire.UserRecord) { r.Zone = "a" },
		"unknown key": func(r *wire.UserRecord) { r.RelayKey = [32]byte{7} },
		"checkpoint":  func(r *wire.UserRecord) { r.Checkpoint[len(r.Checkpoint)-5] ^= 1 },
		"other claim": func(r *wire.UserRecord) {
			r.Claim.Version++ // the relay "sequenced" something the node did not send
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeRelay(t)
			f.set(func() { f.tamper = tamper })
			st := store.NewMemory()
			_, a, _ := f.runNode(t, st, transport.NewNetwork(), nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := a.Register(ctx, "alice")
			if e := node.Explain(err); e.Code != CodeForged || !strings.Contains(e.Error, "the relay's record does not verify") {
				t.Errorf("a forged record: %v (%s %q)", err, e.Code, e.Error)
			}
			if _, err := st.Get(keyRecordIn); !errors.Is(err, store.ErrNotFound) || a.Name() != "" {
				t.Errorf("a forged record was kept: %v, %q", err, a.Name())
			}
		})
	}
}

func TestRegisterRefusals(t *testing.T) {
	for code, want := range map[wire.Code]string{
		wire.CodeUnavailable: node.CodeUnavailable,
		wire.CodeRateLimited: node.CodeRateLimited,
		wire.CodeBadName:     CodeInvalid,
	} {
		f := newFakeRelay(t)
		f.set(func() { f.refuse = code })
		_, a, stop := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := a.Register(ctx, "alice")
		cancel()
		if e := node.Explain(err); !errors.Is(err, code.Err()) || e.Code != want || e.Error == "" {
			t.Errorf("relay refuses with %d: %v (%s %q)", code, err, e.Code, e.Error)
		}
		stop()
	}
}

// A relay that never answers: the claim times out.
func TestRegisterTimeout(t *testing.T) {
	f := newFakeRelay(t)
	f.set(func() { f.silent = true })
	_, a, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := a.Register(ctx, "alice")
	if e := node.Explain(err); !errors.Is(err, node.ErrTimeout) || e.Code != node.CodeTimeout || e.Error != "the relay did not answer in time" {
		t.Errorf("a relay that does not answer: %v (%s %q)", err, e.Code, e.Error)
	}
	if a.Name() != "" {
		t.Error("a claim without an answer set the username")
	}
}

// A relay connection that drops while a claim waits for its answer: the
// node sends the claim again on the next connection.
func TestRegisterAcrossReconnect(t *testing.T) {
	f := newFakeRelay(t)
	_, a, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
	f.dropClaims.Store(1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := a.Register(ctx, "alice")
	if err != nil {
		t.Fatalf("register across a reconnect: %v", err)
	}
	if f.claims.Load() != 2 || rec.Claim.Name != "alice" {
		t.Errorf("%d claims reached the relay", f.claims.Load())
	}
	// Twice in a row is too much: unavailable.
	_, b, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
	f.dropClaims.Store(2)
	_, err = b.Register(ctx, "bob")
	if e := node.Explain(err); e.Code != node.CodeUnavailable {
		t.Errorf("two drops: %v (%s)", err, e.Code)
	}
}

// Resolve asks the relay when the DHT has nothing; it caches what it
// verified for five minutes, and refuses what does not verify.
func TestResolveThroughRelay(t *testing.T) {
	clk := newSkewed()
	f := newFakeRelay(t)
	_, a, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
	// b is alone on its network: no data channel, so nothing in its DHT.
	_, b, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), clk)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := a.Register(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Resolve(ctx, "alice", false)
	if err != nil {
		t.Fatalf("resolve through the relay: %v", err)
	}
	if !names.Same(&got.Claim, &rec.Claim) || f.lookups.Load() != 1 {
		t.Fatalf("resolved %+v with %d lookups", got.Claim, f.lookups.Load())
	}
	if _, err := b.Resolve(ctx, "ALICE", false); err != nil || f.lookups.Load() != 1 {
		t.Errorf("a second resolve asked the relay again (%d lookups): %v", f.lookups.Load(), err)
	}
	if _, err := b.Resolve(ctx, "alice", true); err != nil || f.lookups.Load() != 2 {
		t.Errorf("a fresh resolve did not ask the relay (%d lookups): %v", f.lookups.Load(), err)
	}
	clk.skew.Store(int64(resolveTTL + time.Second))
	if _, err := b.Resolve(ctx, "alice", false); err != nil || f.lookups.Load() != 3 {
		t.Errorf("after five minutes the cache answered (%d lookups): %v", f.lookups.Load(), err)
	}

	_, err = b.Resolve(ctx, "bob", false)
	if e := node.Explain(err); !errors.Is(err, wire.ErrNotFound) || e.Code != CodeNotFound || e.Error != `no user named "bob"` {
		t.Errorf("an unknown name: %v (%s %q)", err, e.Code, e.Error)
	}

	f.set(func() { f.tamper = func(r *wire.UserRecord) { r.Index += 3 } })
	_, err = b.Resolve(ctx, "alice", true)
	if e := node.Explain(err); !errors.Is(err, names.ErrForged) || e.Code != CodeForged {
		t.Errorf("a forged record from the relay: %v", err)
	}
}

// Two nodes with a data channel: one registers, and the other finds the
// record in the DHT without asking the relay.
func TestResolveRegisteredThroughDHT(t *testing.T) {
	f := newFakeRelay(t)
	net := transport.NewNetwork()
	an, a, _ := f.runNode(t, store.NewMemory(), net, nil)
	bn, b, _ := f.runNode(t, store.NewMemory(), net, nil) // admitted with a as a peer
	connected := func(n *node.Node, to *node.Node) bool {
		for _, p := range n.Peers() {
			if p.Address == to.Address() {
				return true
			}
		}
		return false
	}
	wait.Until(t, wait.Default, "a data channel", func() bool { return connected(bn, an) && connected(an, bn) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := a.Register(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, wait.Default, "publication", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.published.version == 1
	})
	got, err := b.Resolve(ctx, "alice", false)
	if err != nil || !names.Same(&got.Claim, &rec.Claim) {
		t.Fatalf("resolve: %v", err)
	}
	if f.lookups.Load() != 0 {
		t.Errorf("the relay was asked %d times; the DHT had the record", f.lookups.Load())
	}
}

// A relay that does not announce the username service is not asked: the
// node says so at once.
func TestRelayWithoutNames(t *testing.T) {
	f := newFakeRelay(t)
	f.set(func() { f.noNames = true })
	_, a, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := a.Register(ctx, "alice")
	if e := node.Explain(err); e.Code != node.CodeUnavailable || !strings.Contains(e.Error, "does not offer names") {
		t.Errorf("register at a relay without names: %v (%s %q)", err, e.Code, e.Error)
	}
	if _, err := a.Resolve(ctx, "alice", true); node.Explain(err).Code != node.CodeUnavailable {
		t.Errorf("resolve at a relay without names: %v", err)
	}
	if f.claims.Load() != 0 || f.lookups.Load() != 0 {
		t.Errorf("the relay got %d claims and %d lookups", f.claims.Load(), f.lookups.Load())
	}
}

// A relay that sends a frame of a type the node does not know (a newer
// relay's) keeps its node: the frame is counted and skipped, and the
// connection goes on serving.
func TestRelaySendsUnknownType(t *testing.T) {
	f := newFakeRelay(t)
	f.set(func() { f.afterAdm = [][]byte{{wire.Version, 250, 1, 2}, {wire.Version, 241}} })
	n, a, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
	wait.Until(t, wait.Default, "the unknown frames counted", func() bool { return n.Stats().UnknownRelay == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Register(ctx, "alice"); err != nil {
		t.Fatalf("register after unknown frames: %v", err)
	}
	if s, _ := n.State(); s != node.StateAdmitted || f.admissions.Load() != 1 {
		t.Errorf("state %s after %d admissions: the node left the relay over frames it skips", s, f.admissions.Load())
	}
}

// The federation grows: a new trusted relay becomes the home of a name
// the old home's ledger holds. The name stays valid: nodes admitted since
// do not take the old home's record from the DHT alone, but ask the
// relay, which vouches for the ledger that holds the name, and believe it.
func TestOldNameAfterTheFederationGrew(t *testing.T) {
	f := newFakeRelay(t)
	net := transport.NewNetwork()
	an, a, _ := f.runNode(t, store.NewMemory(), net, nil)
	hn, _, _ := f.runNode(t, store.NewMemory(), net, nil) // keeps a's record in the DHT
	wait.Until(t, wait.Default, "a data channel", func() bool {
		for _, p := range hn.Peers() {
			if p.Address == an.Address() {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rec, err := a.Register(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, wait.Default, "the record in the DHT", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.published.version == rec.Claim.Version
	})
	for {
		l := newTestLedger(t, "c")
		if h, _ := names.Home(names.Hash("alice"), [][32]byte{f.home.key.SignKey(), l.key.SignKey()}); h == l.key.SignKey() {
			f.set(func() { f.grown = l })
			break
		}
	}
	// A node admitted since, beside the owner (the DHT holds the old
	// home's record), and one alone on its network (the DHT holds none).
	_, b, _ := f.runNode(t, store.NewMemory(), net, nil)
	_, c, _ := f.runNode(t, store.NewMemory(), transport.NewNetwork(), nil)
	for i, n := range []*Client{b, c} {
		before := f.lookups.Load()
		got, err := n.Resolve(ctx, "alice", true)
		if err != nil {
			t.Fatalf("node %d resolving a name held since before the federation grew: %v", i, err)
		}
		if !names.Same(&got.Claim, &rec.Claim) || got.RelayKey != f.home.key.SignKey() {
			t.Fatalf("node %d resolved %+v", i, got.Claim)
		}
		if f.lookups.Load() != before+1 {
			t.Fatalf("node %d took the old home's record without asking the relay", i)
		}
	}
}

// A relay that joined the federation with a key ground to be alice's
// home sequenced alice for a thief, whose record sits in the DHT beside
// the original owner's: a node picks the original, because two ledgers'
// records of two keys settle nothing alone and its relay vouches for the
// ledger that held the name first.
func TestNodesPickTheOriginal(t *testing.T) {
	f := newFakeRelay(t)
	net := transport.NewNetwork()
	an, owner, _ := f.runNode(t, store.NewMemory(), net, nil)
	tn, thief, _ := f.runNode(t, store.NewMemory(), net, nil)
	wait.Until(t, wait.Default, "a data channel", func() bool {
		for _, p := range tn.Peers() {
			if p.Address == an.Address() {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	orig, err := owner.Register(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wait.Until(t, wait.Default, "the original in the DHT", func() bool {
		owner.mu.Lock()
		defer owner.mu.Unlock()
		return owner.published.version == orig.Claim.Version
	})
	var ground *testLedger
	for ground == nil {
		l := newTestLedger(t, "g")
		if h, _ := names.Home(names.Hash("alice"), [][32]byte{f.home.key.SignKey(), l.key.SignKey()}); h == l.key.SignKey() {
			ground = l
		}
	}
	f.set(func() { f.grown = ground })
	publishAs(t, thief, ground.sequence(t, claimAs(t, thief, "alice", 1)))

	_, asker, _ := f.runNode(t, store.NewMemory(), net, nil)
	before := f.lookups.Load()
	got, err := asker.Resolve(ctx, "alice", true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Claim.SignKey != orig.Claim.SignKey || got.RelayKey != f.home.key.SignKey() {
		t.Fatalf("resolved the claim of key %x sequenced by zone %s, not the original", got.Claim.SignKey[:4], got.Zone)
	}
	if f.lookups.Load() != before+1 {
		t.Fatal("the node settled the conflict without its relay")
	}
}
