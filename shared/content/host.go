package content

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/wire"
)

// Provider records and transfers.
const (
	// ProviderTTL is how long a provider record is valid after it is
	// signed: a node that leaves stops being named an hour later at most.
	ProviderTTL = time.Hour
	// ProviderRefresh is how often a node signs its provider records
	// again (with a higher Seq), well inside ProviderTTL.
	ProviderRefresh = 20 * time.Minute
	// FetchStall is how long a transfer may go without a byte before it
	// fails (and the chunk is asked of another provider).
	FetchStall = 10 * time.Second
	// providerHeaderLen is the length of a provider record's value
	// before the lease.
	providerHeaderLen = 8 + 1
	// MinTransferRate is the slowest a chunk may come (or go, when this
	// node serves it): a transfer of n bytes has FetchStall plus n at this
	// rate, so a peer that trickles bytes cannot hold a download's chunk,
	// or a serving slot, for ever.
	MinTransferRate = 64 << 10 // bytes per second
	// connectTimeout bounds opening a data channel to a provider (one
	// that left keeps its provider records until they expire).
	connectTimeout = 10 * time.Second
	// announceTimeout bounds one DHT publication of a provider record.
	announceTimeout = 30 * time.Second
)

// Provider record flags.
const flagWhole = 1 // the signer holds every chunk of the manifest

// providerValue is what a provider record says: until when, whether the
// signer holds the whole content, and the signer's lease — issued by a
// relay this node trusts, for the record's signing key — so that only an
// admitted node can announce itself, under its own address: a stranger
// with throwaway keys can neither name addresses nobody holds nor crowd
// the providers of a key (the DHT keeps dht.MaxSigners) with them.
type providerValue struct {
	Expires int64 // Unix seconds
	Whole   bool
	Lease   wire.Lease
}

// marshal encodes v: u64 expiry (big-endian) | u8 flags | the lease as a
// wire frame.
func (v providerValue) marshal() ([]byte, error) {
	l, err := wire.Marshal(&v.Lease)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, providerHeaderLen+len(l))
	b = binary.BigEndian.AppendUint64(b, uint64(v.Expires))
	var f byte
	if v.Whole {
		f |= flagWhole
	}
	return append(append(b, f), l...), nil
}

// parseProvider decodes a provider record's value. Unknown flags are an
// error: a newer record format is not read as this one.
func parseProvider(b []byte) (providerValue, error) {
	var v providerValue
	if len(b) < providerHeaderLen {
		return v, fmt.Errorf("content: a provider record of %d bytes", len(b))
	}
	e := binary.BigEndian.Uint64(b)
	if e > 1<<62 {
		return v, fmt.Errorf("content: a provider record expiring at %d", e)
	}
	v.Expires = int64(e)
	f := b[8]
	if f&^flagWhole != 0 {
		return v, fmt.Errorf("content: provider record flags %#x", f)
	}
	v.Whole = f&flagWhole != 0
	m, err := wire.Unmarshal(b[providerHeaderLen:])
	if err != nil {
		return v, fmt.Errorf("content: a provider record's lease: %w", err)
	}
	l, ok := m.(*wire.Lease)
	if !ok {
		return v, fmt.Errorf("content: a provider record holds a %T, not a lease", m)
	}
	v.Lease = *l
	return v, nil
}

// checkProvider reads record r as a provider record under key, valid at
// now: its value parses, its lease is for the record's signer and
// verifyLease vouches for it (a trusted relay signed it, for its zone,
// and it is current), and it has not expired nor claims to last too long.
func checkProvider(r dht.Record, key id.Address, now time.Time, verifyLease func(*wire.Lease) error) (Provider, error) {
	if r.Key != key {
		return Provider{}, errors.New("content: a provider record under another key")
	}
	if err := r.Verify(); err != nil {
		return Provider{}, err
	}
	v, err := parseProvider(r.Value)
	if err != nil {
		return Provider{}, err
	}
	if v.Lease.SignKey != r.Signer {
		return Provider{}, errors.New("content: a provider record signed by a key its lease is not for")
	}
	if err := verifyLease(&v.Lease); err != nil {
		return Provider{}, fmt.Errorf("content: a provider record's lease: %w", err)
	}
	exp := time.Unix(v.Expires, 0)
	if !exp.After(now) {
		return Provider{}, errors.New("content: an expired provider record")
	}
	if exp.After(now.Add(2 * ProviderTTL)) {
		// An honest node signs for ProviderTTL; one that signs for longer
		// wants to be asked after it left (clocks may differ a little).
		return Provider{}, errors.New("content: a provider record that claims to last too long")
	}
	return Provider{Address: v.Lease.Address, Whole: v.Whole, Expires: exp}, nil
}

// hostOverlay is the overlay of a node: the DHT for provider records and
// lookups, requests for Ask and Have, ChunkGet and the bulk channel for
// Fetch.
type hostOverlay struct {
	h *node.Host

	mu        sync.Mutex
	announced map[id.Address]*announcement
	seq       uint64
	nextID    uint32
	transfers map[transferKey]*transfer
}

// announcement is a provider record this node keeps published.
type announcement struct {
	whole bool
	gen   uint64 // bumped by every Announce and Withdraw, so a stale refresh does nothing
}

type transferKey struct {
	peer id.Address
	id   uint32
}

// transfer is one Fetch in progress: the read loop of the provider's
// bulk channel writes its frames into buf; the fetching goroutine waits.
type transfer struct {
	mu    sync.Mutex
	buf   []byte // len: the most bytes accepted
	exact bool   // the size is known: fewer bytes at ChunkDone is wrong
	got   int
	done  bool
	code  uint8
	note  string
	err   error         // what the provider did wrong
	wake  chan struct{} // one slot: something arrived
}

func newHostOverlay(h *node.Host) *hostOverlay {
	return &hostOverlay{h: h, announced: map[id.Address]*announcement{}, transfers: map[transferKey]*transfer{}}
}

// Self implements overlay.
func (o *hostOverlay) Self() id.Address { return o.h.Lease().Address }

// Providers implements overlay.
func (o *hostOverlay) Providers(ctx context.Context, key id.Address) ([]Provider, error) {
	recs, err := o.h.Get(ctx, key)
	if err != nil && len(recs) == 0 {
		return nil, err
	}
	now := o.h.Clock().Now()
	self := o.Self()
	byAddr := map[id.Address]int{}
	var out []Provider
	for _, r := range recs {
		p, err := checkProvider(r, key, now, o.h.VerifyLease)
		if err != nil || p.Address == self {
			continue
		}
		if i, ok := byAddr[p.Address]; ok {
			out[i].Whole = out[i].Whole || p.Whole
			if p.Expires.After(out[i].Expires) {
				out[i].Expires = p.Expires
			}
			continue
		}
		byAddr[p.Address] = len(out)
		out = append(out, p)
	}
	return out, nil
}

// Announce implements overlay: the record is signed now, valid for
// ProviderTTL, and signed again every ProviderRefresh until Withdraw (see
// refresh).
func (o *hostOverlay) Announce(ctx context.Context, key id.Address, whole bool) error {
	o.mu.Lock()
	a := o.announced[key]
	if a == nil {
		a = &announcement{}
		o.announced[key] = a
	}
	a.whole = a.whole || whole
	a.gen++
	o.mu.Unlock()
	return o.publish(ctx, key)
}

// publish signs and puts the record under key, if it is still announced.
func (o *hostOverlay) publish(ctx context.Context, key id.Address) error {
	lease := o.h.Lease()
	if lease.Address.IsZero() {
		return node.ErrNotAdmitted
	}
	now := o.h.Clock().Now()
	o.mu.Lock()
	a := o.announced[key]
	if a == nil {
		o.mu.Unlock()
		return nil
	}
	// Seq grows with time and with every record signed, so a refresh
	// always replaces the record before it.
	o.seq = max(o.seq+1, uint64(now.UnixMilli()))
	v, err := providerValue{Expires: now.Add(ProviderTTL).Unix(), Whole: a.whole, Lease: lease}.marshal()
	r := dht.Record{Key: key, Seq: o.seq, Value: v}
	o.mu.Unlock()
	if err != nil {
		return err
	}
	if err := r.Sign(o.h.Identity().SigningKey()); err != nil {
		return err
	}
	ctx, cancel := withClock(ctx, o.h.Clock(), announceTimeout)
	defer cancel()
	_, err = o.h.Put(ctx, r)
	return err
}

// refresh signs every announced record again; the service calls it every
// ProviderRefresh and at every admission (a new lease, a new address).
func (o *hostOverlay) refresh(ctx context.Context) {
	o.mu.Lock()
	keys := make([]id.Address, 0, len(o.announced))
	for k := range o.announced {
		keys = append(keys, k)
	}
	o.mu.Unlock()
	inParallel(ctx, len(keys), announceParallel, func(i int) {
		k := keys[i]
		if err := o.publish(ctx, k); err != nil && ctx.Err() == nil {
			o.h.Logger().Debug("could not refresh a provider record", "key", k.Short(), "err", err)
		}
	})
}

// announceParallel is how many provider records a node puts in the DHT at
// once.
const announceParallel = 4

// Withdraw implements overlay.
func (o *hostOverlay) Withdraw(key id.Address) {
	o.mu.Lock()
	delete(o.announced, key)
	o.mu.Unlock()
	o.h.Forget(key)
}

// Closest implements overlay: the DHT's closest live nodes, less those
// connected peers whose hello did not announce the content feature (of
// the others this node cannot know until it asks).
func (o *hostOverlay) Closest(ctx context.Context, key id.Address, n int) ([]id.Address, error) {
	all, err := o.h.Closest(ctx, key, 2*n)
	if err != nil {
		return nil, err
	}
	without := map[id.Address]bool{}
	for _, p := range o.h.Peers() {
		if !p.Features.Has(wire.FeatureContent) {
			without[p.Address] = true
		}
	}
	out := all[:0]
	for _, a := range all {
		if !without[a] && len(out) < n {
			out = append(out, a)
		}
	}
	return out, nil
}

// Ask implements overlay.
func (o *hostOverlay) Ask(ctx context.Context, to id.Address, req *wire.ReplicaAsk) (*wire.ReplicaAnswer, error) {
	m, err := o.h.Request(ctx, to, req)
	if err != nil {
		return nil, err
	}
	a, ok := m.(*wire.ReplicaAnswer)
	if !ok {
		return nil, fmt.Errorf("content: %s answered a replica request with a %T", to.Short(), m)
	}
	return a, nil
}

// Have implements overlay.
func (o *hostOverlay) Have(ctx context.Context, to id.Address, hashes []chunk.Hash) ([]bool, error) {
	out := make([]bool, 0, len(hashes))
	for len(hashes) > 0 {
		k := min(len(hashes), wire.MaxHaveHashes)
		req := &wire.ChunkHave{Hashes: make([][32]byte, k)}
		for i := range k {
			req.Hashes[i] = hashes[i]
		}
		m, err := o.h.Request(ctx, to, req)
		if err != nil {
			return nil, err
		}
		has, ok := m.(*wire.ChunkHas)
		if !ok || len(has.Held) != k {
			return nil, fmt.Errorf("content: %s answered %d hashes with a %T", to.Short(), k, m)
		}
		out = append(out, has.Held...)
		hashes = hashes[k:]
	}
	return out, nil
}

// connected reports whether a data channel to a is open.
func (o *hostOverlay) connected(a id.Address) bool {
	select {
	case <-o.h.Gone(a):
		return false
	default:
		return true
	}
}

// Latency implements overlay: the keepalive round trip of a connected
// peer.
func (o *hostOverlay) Latency(a id.Address) time.Duration {
	for _, p := range o.h.Peers() {
		if p.Address == a {
			return p.RTT
		}
	}
	return 0
}

// Fetch implements overlay. size < 0 means unknown (a manifest): then
// the provider's whole chunk is read, at most len(buf) bytes. The
// connection opens if it is not; the transfer fails after FetchStall
// without a byte, on the node's clock.
func (o *hostOverlay) Fetch(ctx context.Context, from id.Address, h chunk.Hash, size int, buf []byte, onBytes func(n int)) error {
	cctx, cancel := withClock(ctx, o.h.Clock(), connectTimeout)
	_, err := o.h.Connect(cctx, from)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s: %v", errUnreachable, from.Short(), err)
	}
	want := size
	if size < 0 {
		want = min(len(buf), wire.MaxChunkBytes)
	}
	if want > len(buf) || want > wire.MaxChunkBytes {
		return fmt.Errorf("content: a chunk of %d bytes, more than a chunk may be", want)
	}
	t := &transfer{buf: buf[:want], exact: size >= 0, wake: make(chan struct{}, 1)}
	o.mu.Lock()
	o.nextID++
	k := transferKey{peer: from, id: o.nextID}
	o.transfers[k] = t
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.transfers, k)
		o.mu.Unlock()
	}()
	gone := o.h.Gone(from)
	if err := o.h.Send(from, &wire.ChunkGet{ID: k.id, Hash: h, Length: uint32(want)}); err != nil {
		return err
	}
	stall := o.h.Clock().NewTimer(FetchStall)
	defer stall.Stop()
	// A provider that trickles a byte now and then never stalls; the whole
	// transfer has a deadline too, at MinTransferRate.
	limit := transferTime(want)
	whole := o.h.Clock().NewTimer(limit)
	defer whole.Stop()
	reported := 0
	for {
		t.mu.Lock()
		got, done, code, note, terr := t.got, t.done, t.code, t.note, t.err
		t.mu.Unlock()
		if got > reported {
			if onBytes != nil {
				onBytes(got - reported)
			}
			reported = got
			stall.Reset(FetchStall)
		}
		switch {
		case terr != nil:
			return terr
		case done && code == wire.ChunkOK:
			if t.exact && got != want {
				return fmt.Errorf("%w: %s sent %d of %d bytes of chunk %s and called it done", errMisbehaved, from.Short(), got, want, h.Short())
			}
			if !t.exact {
				return shortRead(got)
			}
			return nil
		case done && code == wire.ChunkNotFound:
			return fmt.Errorf("content: %s does not hold chunk %s", from.Short(), h.Short())
		case done && code == wire.ChunkBusy:
			return fmt.Errorf("%w: %s: %s", errBusy, from.Short(), note)
		case done:
			return fmt.Errorf("content: %s refused chunk %s: %s", from.Short(), h.Short(), note)
		}
		select {
		case <-t.wake:
		case <-stall.C():
			return fmt.Errorf("%w: nothing from %s for %v", errStalled, from.Short(), FetchStall)
		case <-whole.C():
			return fmt.Errorf("%w: %s sent %d bytes of chunk %s in %v", errStalled, from.Short(), got, h.Short(), limit)
		case <-gone:
			// What it sent before it closed is in t already.
			t.mu.Lock()
			complete := t.done && t.code == wire.ChunkOK
			t.mu.Unlock()
			if !complete {
				return fmt.Errorf("content: %s closed the connection in the middle of chunk %s", from.Short(), h.Short())
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// transferTime is how long a transfer of n bytes may take.
func transferTime(n int) time.Duration {
	return FetchStall + time.Duration(n)*time.Second/MinTransferRate
}

// shortRead carries the length of a chunk of unknown size read whole.
type shortRead int

func (n shortRead) Error() string { return fmt.Sprintf("content: read %d bytes", int(n)) }

// fetchWhole reads chunk h of unknown size (at most wire.MaxChunkBytes)
// into buf and returns its length.
func (o *hostOverlay) fetchWhole(ctx context.Context, from id.Address, h chunk.Hash, buf []byte) (int, error) {
	err := o.Fetch(ctx, from, h, -1, buf, nil)
	var n shortRead
	if errors.As(err, &n) {
		return int(n), nil
	}
	return 0, err
}

// handleData takes a ChunkData frame off the bulk channel's read loop:
// it lands in its transfer's buffer at its offset, if that is where the
// transfer is and there is room; otherwise the transfer fails, the
// provider to blame. Frames of no transfer (one that ended) are dropped.
func (o *hostOverlay) handleData(from node.PeerInfo, m *wire.ChunkData) {
	t := o.transfer(from.Address, m.ID)
	if t == nil {
		return
	}
	t.mu.Lock()
	switch {
	case t.err != nil || t.done:
	case int(m.Offset) != t.got:
		t.err = fmt.Errorf("%w: %s sent bytes at %d, expected %d", errMisbehaved, from.Address.Short(), m.Offset, t.got)
	case len(m.Data) > len(t.buf)-t.got:
		t.err = fmt.Errorf("%w: %s sent more than the %d bytes asked for", errMisbehaved, from.Address.Short(), len(t.buf))
	default:
		t.got += copy(t.buf[t.got:], m.Data)
	}
	t.mu.Unlock()
	signalOne(t.wake)
}

// handleDone ends a transfer.
func (o *hostOverlay) handleDone(from node.PeerInfo, m *wire.ChunkDone) {
	t := o.transfer(from.Address, m.ID)
	if t == nil {
		return
	}
	t.mu.Lock()
	if !t.done {
		t.done, t.code, t.note = true, m.Code, m.Detail
	}
	t.mu.Unlock()
	signalOne(t.wake)
}

// transfer is the running transfer that ChunkGet tid to peer started, or
// nil.
func (o *hostOverlay) transfer(peer id.Address, tid uint32) *transfer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.transfers[transferKey{peer: peer, id: tid}]
}

func signalOne(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// compile-time check.
var _ overlay = (*hostOverlay)(nil)

// sortByLatency orders addrs by lat, the unknown (0) last; and the
// connected before the others, whatever their latency: opening a channel
// costs more than any round trip, and a provider that left is among the
// unconnected.
func sortByLatency(addrs []id.Address, lat func(id.Address) time.Duration, connected func(id.Address) bool) {
	const unknown = time.Duration(1<<61 - 1)
	ls := make(map[id.Address]time.Duration, len(addrs))
	for _, a := range addrs {
		l := lat(a)
		if l <= 0 {
			l = unknown
		}
		if !connected(a) {
			l += unknown
		}
		ls[a] = l
	}
	slices.SortStableFunc(addrs, func(a, b id.Address) int { return cmp.Compare(ls[a], ls[b]) })
}
