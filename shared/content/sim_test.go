package content

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/sim"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// The simulated world: shared/sim's nodes run the real DHT on a virtual
// clock; each also runs a real Library over memory chunks and a replicator
// whose replicaHost is a simPeer. Closest and Providers go through the DHT
// (provider records are dht.Records under chunk.Hash.Key, signed by the
// node); Ask, Have and fetch are direct calls into the target's replicator
// and library, and a call to a departed node fails at once.

// simProviderTTL is how long a provider record's value says it is good
// for; the simulated DHT drops records not re-stored within two hours, so
// a departed provider's record is gone two hours after it left.
const simProviderTTL = 24 * time.Hour

type simWorld struct {
	t   testing.TB
	s   *sim.Sim
	ctx context.Context
	lc  LibraryConfig

	mu    sync.RWMutex
	peers map[id.Address]*simPeer
	keys  map[[32]byte]id.Address // provider keys to their nodes
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

type simPeer struct {
	w      *simWorld
	n      *sim.Node
	d      *dht.DHT // n's, kept: the sim forgets it when n leaves
	addr   id.Address
	key    ed25519.PrivateKey
	lib    *Library
	rep    *replicator
	cancel context.CancelFunc

	mu  sync.Mutex
	seq uint64
}

// newSimWorld joins n nodes, each running a replicator (repair loop on
// the sim's clock) with a library configured by lc (its Clock is the
// sim's).
//
// The DHT runs with buckets of 10 (K) rather than 20: provider lookups,
// each verifying every record it collects, are most of the simulation's
// cost, and replication does not depend on K.
func newSimWorld(t testing.TB, seed uint64, n int, lc LibraryConfig) *simWorld {
	s := sim.New(sim.Config{Seed: seed, DHT: dht.Config{K: 10, RecordTTL: 2 * time.Hour, Republish: time.Hour}})
	ctx, stop := context.WithCancel(context.Background())
	lc.Clock = s.Clock
	w := &simWorld{t: t, s: s, ctx: ctx, stop: stop, lc: lc, peers: map[id.Address]*simPeer{}, keys: map[[32]byte]id.Address{}}
	t.Cleanup(w.close)
	rng := rand.New(rand.NewPCG(seed, 0xc0de))
	for _, node := range s.Join(n) {
		var seed [ed25519.SeedSize]byte
		for i := range seed {
			seed[i] = byte(rng.Uint32())
		}
		w.add(node, ed25519.NewKeyFromSeed(seed[:]))
	}
	return w
}

func (w *simWorld) add(n *sim.Node, key ed25519.PrivateKey) *simPeer {
	lib, err := OpenLibrary(store.NewMemoryChunks(), store.NewMemory(), w.lc)
	if err != nil {
		w.t.Fatal(err)
	}
	p := &simPeer{w: w, n: n, d: n.DHT, addr: n.Addr, key: key, lib: lib}
	p.start()
	w.mu.Lock()
	w.peers[p.addr] = p
	var pub [32]byte
	copy(pub[:], key.Public().(ed25519.PublicKey))
	w.keys[pub] = p.addr
	w.mu.Unlock()
	return p
}

// start gives p a new replicator, as a node's start does, and runs its
// repair loop; the previous one, if any, stops.
func (p *simPeer) start() {
	if p.cancel != nil {
		p.cancel()
	}
	rep := newReplicator(p, replicaConfig{}, p.w.s.Clock, nil)
	ctx, cancel := context.WithCancel(p.w.ctx)
	p.mu.Lock()
	p.rep, p.cancel = rep, cancel
	p.mu.Unlock()
	p.w.wg.Go(func() { rep.run(ctx) })
}

func (w *simWorld) close() {
	w.stop()
	w.wg.Wait()
}

// peer is the live peer at a, or nil.
func (w *simWorld) peer(a id.Address) *simPeer {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.peers[a]
}

// live is every live peer, in address order.
func (w *simWorld) live() []*simPeer {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]*simPeer, 0, len(w.peers))
	for _, p := range w.peers {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *simPeer) int { return a.addr.Compare(b.addr) })
	return out
}

// leave takes p away without a word: it answers nothing from now on and
// its repair loop stops.
func (w *simWorld) leave(p *simPeer) {
	w.mu.Lock()
	delete(w.peers, p.addr)
	w.mu.Unlock()
	p.cancel()
	w.s.LeaveNode(p.n)
}

// round advances the clock past one repair round (and DHT maintenance)
// and waits until every live peer finished a round and fetched what it
// accepted.
func (w *simWorld) round() {
	w.t.Helper()
	peers := w.live()
	before := make([]uint64, len(peers))
	for i, p := range peers {
		before[i] = p.rep.roundsDone()
	}
	w.s.Advance(RepairEvery + RepairJitter + time.Minute)
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; i < len(peers); {
		if peers[i].rep.roundsDone() > before[i] {
			i++
			continue
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("peer %s finished no repair round in 2 minutes", peers[i].addr.Short())
		}
		time.Sleep(time.Millisecond)
	}
	w.settle()
}

// settle waits until no live peer has a replica left to fetch.
func (w *simWorld) settle() {
	w.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, p := range w.live() {
		for !p.rep.idle() {
			if time.Now().After(deadline) {
				w.t.Fatalf("peer %s still fetching replicas after 2 minutes", p.addr.Short())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// simItem is one published payload.
type simItem struct {
	id        chunk.Hash
	m         chunk.Manifest
	data      []byte
	publisher *simPeer
}

// put does what the service's Put does on p: stores the payload's chunks
// and manifest as p's own, announces them and has them replicated.
func (p *simPeer) put(data []byte, chunkSize int, typ string, unicast bool) (simItem, int) {
	ctx := p.w.ctx
	m := chunk.Manifest{Name: "item", Type: typ, Size: int64(len(data)), ChunkSize: chunkSize}
	for off := 0; off < len(data); off += chunkSize {
		c := data[off:min(off+chunkSize, len(data))]
		h := chunk.SumGo(c)
		if err := p.lib.Put(h, c, Own, typ); err != nil {
			p.w.t.Fatal(err)
		}
		m.Chunks = append(m.Chunks, h)
	}
	raw, err := m.Marshal()
	if err != nil {
		p.w.t.Fatal(err)
	}
	cid := chunk.SumGo(raw)
	if err := p.lib.Put(cid, raw, Own, typ); err != nil {
		p.w.t.Fatal(err)
	}
	if err := p.lib.Pin(cid, m.Chunks); err != nil {
		p.w.t.Fatal(err)
	}
	if err := p.Announce(ctx, cid.Key(), true); err != nil {
		p.w.t.Fatal(err)
	}
	for _, h := range m.Chunks {
		if err := p.Announce(ctx, h.Key(), false); err != nil {
			p.w.t.Fatal(err)
		}
	}
	n := p.rep.publish(ctx, &m, cid, raw, unicast)
	return simItem{id: cid, m: m, data: data, publisher: p}, n
}

// copies counts the live peers that hold h as a replica or as their own
// and provide it (not withdrawn); a cached copy may be evicted any time,
// so it is none.
func (w *simWorld) copies(h chunk.Hash) int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	n := 0
	for _, p := range w.peers {
		p.rep.mu.Lock()
		dropped := p.rep.dropped[h]
		p.rep.mu.Unlock()
		if c, ok := p.lib.Class(h); ok && c != Cache && !dropped {
			n++
		}
	}
	return n
}

// get retrieves it from peer p the way a download does: the manifest's
// providers from the DHT, then each chunk's, each verified. It returns the
// payload.
func (p *simPeer) get(it simItem) ([]byte, error) {
	ctx := p.w.ctx
	raw, err := p.download(ctx, it.id, -1)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m chunk.Manifest
	if err := m.Unmarshal(raw); err != nil {
		return nil, err
	}
	var out []byte
	for i, h := range m.Chunks {
		b, err := p.download(ctx, h, m.ChunkLen(i))
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i, err)
		}
		out = append(out, b...)
	}
	return out, nil
}

// download reads chunk h from the first of its providers that serves it
// and verifies it.
func (p *simPeer) download(ctx context.Context, h chunk.Hash, size int) ([]byte, error) {
	if p.lib.Has(h) {
		return p.read(h)
	}
	provs, err := p.Providers(ctx, h.Key())
	if err != nil {
		return nil, err
	}
	for _, pr := range provs {
		src := p.w.peer(pr.Address)
		if src == nil {
			continue
		}
		b, err := src.read(h)
		if err != nil || chunk.Verify(h, b, size) != nil {
			continue
		}
		src.rep.served(h)
		return b, nil
	}
	return nil, fmt.Errorf("none of %d providers of %s served it", len(provs), h.Short())
}

func (p *simPeer) read(h chunk.Hash) ([]byte, error) {
	size, err := p.lib.Chunks().Size(h)
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if n, err := p.lib.ReadAt(h, b, 0); n != size {
		return nil, err
	}
	return b, nil
}

// The replicaHost of a simulated node.

var _ replicaHost = (*simPeer)(nil)

func (p *simPeer) Self() id.Address  { return p.addr }
func (p *simPeer) library() *Library { return p.lib }
func (p *simPeer) dht() (*dht.DHT, error) {
	if p.w.peer(p.addr) == p {
		return p.d, nil
	}
	return nil, sim.ErrGone
}

// Provider record values in the simulation: address | expiry (Unix
// seconds, big-endian) | flags (1: whole, 2: withdrawn).
const (
	simWhole     = 1
	simWithdrawn = 2
)

func (p *simPeer) record(key id.Address, flags byte, ttl time.Duration) dht.Record {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	v := append([]byte(nil), p.addr[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(p.w.s.Clock.Now().Add(ttl).Unix()))
	v = append(v, flags)
	r := dht.Record{Key: key, Seq: seq, Value: v}
	if err := r.Sign(p.key); err != nil {
		panic(err)
	}
	return r
}

func (p *simPeer) Announce(ctx context.Context, key id.Address, whole bool) error {
	d, err := p.dht()
	if err != nil {
		return err
	}
	var flags byte
	if whole {
		flags = simWhole
	}
	_, err = d.Put(ctx, p.record(key, flags, simProviderTTL))
	return err
}

func (p *simPeer) Withdraw(key id.Address) {
	d, err := p.dht()
	if err != nil {
		return
	}
	// A newer record saying "withdrawn" replaces the old one where it is
	// stored; it is not republished, so it lapses with the DHT's TTL.
	r := p.record(key, simWithdrawn, time.Hour)
	d.Put(p.w.ctx, r)
	d.Forget(key, r.Signer)
}

func (p *simPeer) Providers(ctx context.Context, key id.Address) ([]Provider, error) {
	d, err := p.dht()
	if err != nil {
		return nil, err
	}
	recs, _, err := d.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	now := p.w.s.Clock.Now()
	var out []Provider
	for _, r := range recs {
		if len(r.Value) != id.Len+9 {
			continue
		}
		var a id.Address
		copy(a[:], r.Value)
		exp := time.Unix(int64(binary.BigEndian.Uint64(r.Value[id.Len:])), 0)
		flags := r.Value[id.Len+8]
		p.w.mu.RLock()
		owner, known := p.w.keys[r.Signer]
		p.w.mu.RUnlock()
		if !known || owner != a || a == p.addr || flags&simWithdrawn != 0 || !now.Before(exp) {
			continue // a record for an address its signer does not own, or lapsed
		}
		out = append(out, Provider{Address: a, Whole: flags&simWhole != 0, Expires: exp})
	}
	return out, nil
}

func (p *simPeer) Closest(ctx context.Context, key id.Address, n int) ([]id.Address, error) {
	d, err := p.dht()
	if err != nil {
		return nil, err
	}
	res, err := d.Lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	out := append(slices.Clone(res.Closest), p.addr)
	slices.SortFunc(out, func(a, b id.Address) int { return a.Xor(key).Compare(b.Xor(key)) })
	return out[:min(n, len(out))], nil
}

func (p *simPeer) Ask(ctx context.Context, to id.Address, req *wire.ReplicaAsk) (*wire.ReplicaAnswer, error) {
	q := p.w.peer(to)
	if q == nil {
		return nil, sim.ErrGone
	}
	// Through the wire's encoding both ways, as a request travels.
	got, err := wireTrip(req)
	if err != nil {
		return nil, err
	}
	return wireTrip(q.rep.handleAsk(ctx, p.addr, got))
}

// wireTrip is m encoded and decoded again.
func wireTrip[M wire.Message](m M) (M, error) {
	var zero M
	b, err := wire.Marshal(m)
	if err != nil {
		return zero, err
	}
	back, err := wire.Unmarshal(b)
	if err != nil {
		return zero, err
	}
	out, ok := back.(M)
	if !ok {
		return zero, fmt.Errorf("%T came back as %T", m, back)
	}
	return out, nil
}

func (p *simPeer) Have(ctx context.Context, to id.Address, hashes []chunk.Hash) ([]bool, error) {
	q := p.w.peer(to)
	if q == nil {
		return nil, sim.ErrGone
	}
	out := make([]bool, len(hashes))
	for i, h := range hashes {
		out[i] = q.lib.Has(h)
	}
	return out, nil
}

func (p *simPeer) Fetch(ctx context.Context, from id.Address, h chunk.Hash, size int, buf []byte, onBytes func(n int)) error {
	q := p.w.peer(from)
	if q == nil {
		return sim.ErrGone
	}
	n, err := q.lib.ReadAt(h, buf[:size], 0)
	if n != size {
		return err
	}
	if onBytes != nil {
		onBytes(n)
	}
	return nil
}

func (p *simPeer) Latency(a id.Address) time.Duration { return 0 }

// fetch copies chunk h from the first live source (or provider) that
// serves bytes hashing to h, and stores it in p's library as class c.
func (p *simPeer) fetch(ctx context.Context, h chunk.Hash, size int, sources []id.Address, c Class, typ string) error {
	try := func(from id.Address) error {
		buf := make([]byte, size)
		if err := p.Fetch(ctx, from, h, size, buf, nil); err != nil {
			return err
		}
		if err := chunk.Verify(h, buf, size); err != nil {
			return err
		}
		return p.lib.Put(h, buf, c, typ)
	}
	var last error = errors.New("no source")
	for _, s := range sources {
		if last = try(s); last == nil {
			return nil
		}
	}
	provs, err := p.Providers(ctx, h.Key())
	if err != nil {
		return err
	}
	for _, pr := range provs {
		if last = try(pr.Address); last == nil {
			return nil
		}
	}
	return fmt.Errorf("chunk %s from none of %d sources and %d providers: %w", h.Short(), len(sources), len(provs), last)
}

// payload is n pseudo-random bytes from seed.
func payload(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0xda7a))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// simStats counts, over every chunk of items, the live copies: the least,
// the mean, and how many chunks have fewer than want.
func (w *simWorld) simStats(items []simItem, want int) (least int, mean float64, short int) {
	least, total, count := 1<<30, 0, 0
	for _, it := range items {
		for _, h := range append([]chunk.Hash{it.id}, it.m.Chunks...) {
			c := w.copies(h)
			least = min(least, c)
			total += c
			count++
			if c < want {
				short++
			}
		}
	}
	return least, float64(total) / float64(count), short
}

// retrievable counts the items a random live peer reads back whole.
func (w *simWorld) retrievable(items []simItem, rng *rand.Rand) (int, []error) {
	live := w.live()
	ok := 0
	var errs []error
	for _, it := range items {
		p := live[rng.IntN(len(live))]
		got, err := p.get(it)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("item %s from %s: %w", it.id.Short(), p.addr.Short(), err))
		case !bytes.Equal(got, it.data):
			errs = append(errs, fmt.Errorf("item %s from %s: different bytes", it.id.Short(), p.addr.Short()))
		default:
			ok++
		}
	}
	return ok, errs
}

// TestSimChurn is the 1,000-node simulation: 100 items of several chunks
// are published, 30 % of the nodes leave without a word (in waves of 3 %,
// a repair round after each, as churn comes), and after the repair rounds
// every item is still retrievable from live nodes and every chunk has its
// replicas back.
func TestSimChurn(t *testing.T) {
	nodes, items := 1000, 100
	if os.Getenv("DDT_BENCH") == "1" {
		nodes, items = 3000, 300
	}
	simChurn(t, nodes, items, 10, true)
}

// TestSimChurnAtOnce (DDT_BENCH=1) has 30 % of 1,000 nodes leave at once:
// a chunk whose four copies were all among them is lost (about 0.3⁴ of
// them), so it checks that every item with no chunk lost is retrievable
// and every surviving chunk is back to its copies, and reports the rest.
func TestSimChurnAtOnce(t *testing.T) {
	if os.Getenv("DDT_BENCH") != "1" {
		t.Skip("DDT_BENCH=1 runs it")
	}
	simChurn(t, 1000, 100, 1, false)
}

// simChurn publishes count items on nodes nodes, has 30 % of the nodes
// leave in waves (a repair round after each) and checks the outcome. With
// strict, no chunk may be lost on the way.
func simChurn(t *testing.T, nodes, count, waves int, strict bool) {
	start := time.Now()
	w := newSimWorld(t, 20, nodes, LibraryConfig{})
	rng := rand.New(rand.NewPCG(20, 1))
	joined := time.Since(start)

	live := w.live()
	var items []simItem
	least := DefaultReplicas
	for i := range count {
		p := live[rng.IntN(len(live))]
		// 3 KiB and a bit in 1 KiB chunks: 4 content chunks and a manifest.
		it, n := p.put(payload(uint64(i), 3<<10+100+i), 1<<10, "application/octet-stream", false)
		least = min(least, n)
		items = append(items, it)
	}
	published := time.Since(start)
	want := DefaultReplicas + 1
	minBefore, meanBefore, _ := w.simStats(items, want)
	t.Logf("%d nodes joined in %v; %d items published in %v, at least %d replicas placed per chunk; live copies per chunk: least %d, mean %.2f",
		nodes, joined.Round(time.Millisecond), count, (published - joined).Round(time.Millisecond), least, minBefore, meanBefore)
	if least < DefaultReplicas {
		t.Errorf("publication placed only %d replicas of some chunk, want %d", least, DefaultReplicas)
	}

	gone := nodes * 30 / 100
	lost := map[chunk.Hash]bool{}
	for wave := range waves {
		live := w.live()
		rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		for _, p := range live[:gone/waves] {
			w.leave(p)
		}
		for _, it := range items {
			for _, h := range append([]chunk.Hash{it.id}, it.m.Chunks...) {
				if w.copies(h) == 0 {
					lost[h] = true
				}
			}
		}
		lo, mean, short := w.simStats(items, want)
		w.round()
		lo2, mean2, short2 := w.simStats(items, want)
		t.Logf("wave %d: %d live; copies least %d, mean %.2f, %d chunks short; after a repair round: least %d, mean %.2f, %d short",
			wave+1, len(w.live()), lo, mean, short, lo2, mean2, short2)
	}
	w.round()
	w.round()
	repaired := time.Since(start)

	// What survived: items none of whose chunks lost every copy.
	var kept []simItem
	for _, it := range items {
		if !lost[it.id] && !slices.ContainsFunc(it.m.Chunks, func(h chunk.Hash) bool { return lost[h] }) {
			kept = append(kept, it)
		}
	}
	minAfter, meanAfter, short := w.simStats(kept, want)
	ok, errs := w.retrievable(kept, rng)
	t.Logf("after %d waves and repair: %d live nodes, %d chunks lost with every copy; copies per surviving chunk least %d, mean %.2f, %d under %d; %d of %d items retrievable; %v in all (%v of repair)",
		waves, len(w.live()), len(lost), minAfter, meanAfter, short, want, ok, count, time.Since(start).Round(time.Millisecond), (repaired - published).Round(time.Millisecond))
	if strict && len(lost) > 0 {
		t.Errorf("%d chunks lost every copy between repair rounds", len(lost))
	}
	for _, err := range errs[:min(len(errs), 5)] {
		t.Error(err)
	}
	if ok != len(kept) {
		t.Errorf("%d of %d items with no chunk lost are retrievable after churn", ok, len(kept))
	}
	if minAfter < DefaultReplicas {
		t.Errorf("after repair some chunk has %d live copies, want at least %d", minAfter, DefaultReplicas)
	}
	if short > 0 {
		t.Errorf("after repair %d chunks have fewer than %d live copies", short, want)
	}
}
