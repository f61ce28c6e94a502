package dht

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"ddt/shared/id"
	"ddt/shared/wire"
)

// Network carries the DHT's requests. The node layer implements it over
// its data channels (or routed through other nodes); tests and the
// simulation implement it in memory.
type Network interface {
	// Call sends req to the node at `to` and returns its reply, or an error
	// if it does not answer before ctx ends (or cannot be reached). A
	// refusal may come back either as a *wire.Error reply or as an error
	// that wraps a *wire.RemoteError.
	Call(ctx context.Context, to id.Address, req wire.Message) (wire.Message, error)
}

// Config configures a DHT. Zero fields take the defaults in brackets.
type Config struct {
	Self    id.Address
	Network Network
	Now     func() time.Time // [time.Now]
	Logger  *slog.Logger     // [discard]

	K         int           // bucket size and replication factor [20; at most wire.MaxContacts]
	Alpha     int           // parallel queries per lookup round [3]
	Timeout   time.Duration // per call [2 s]
	Inactive  time.Duration // a contact silent this long is evicted [36 h]
	RecordTTL time.Duration // a record not re-stored this long is dropped [36 h]
	Republish time.Duration // own records are re-stored this often [12 h]
	Refresh   time.Duration // a bucket with no lookup this long is refreshed [1 h]
	MaxStored int           // records kept for others [4096]
}

// Defaults.
const (
	DefaultK         = 20
	DefaultAlpha     = 3
	DefaultTimeout   = 2 * time.Second
	DefaultInactive  = 36 * time.Hour
	DefaultRecordTTL = 36 * time.Hour
	DefaultRepublish = 12 * time.Hour
	DefaultRefresh   = time.Hour
	DefaultMaxStored = 4096
)

// DHT is one node's Kademlia state: its routing table, the records it
// keeps for others and the records it publishes. It is safe for
// concurrent use.
type DHT struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	table *table
	store *records
	own   map[ownKey]*owned
}

type ownKey struct {
	key    id.Address
	signer [32]byte
}

// owned is a record this node published and keeps alive.
type owned struct {
	rec  Record
	raw  []byte
	next time.Time // when to publish it again
}

// New returns a DHT with an empty routing table.
func New(cfg Config) *DHT {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&cfg.K, DefaultK)
	def(&cfg.Alpha, DefaultAlpha)
	def(&cfg.MaxStored, DefaultMaxStored)
	defDur(&cfg.Timeout, DefaultTimeout)
	defDur(&cfg.Inactive, DefaultInactive)
	defDur(&cfg.RecordTTL, DefaultRecordTTL)
	defDur(&cfg.Republish, DefaultRepublish)
	defDur(&cfg.Refresh, DefaultRefresh)
	// A reply carries at most K contacts, and must fit the wire's limit.
	cfg.K = min(cfg.K, wire.MaxContacts)
	return &DHT{
		cfg:   cfg,
		log:   cfg.Logger,
		table: newTable(cfg.Self, cfg.K, cfg.Inactive),
		store: newRecords(cfg.Self, cfg.MaxStored),
		own:   map[ownKey]*owned{},
	}
}

// Self returns this node's address.
func (d *DHT) Self() id.Address { return d.cfg.Self }

// Seen notes that a is alive (it answered, or sent us something): it is
// inserted into its bucket or refreshed there, or waits in the bucket's
// replacement cache when the bucket is full.
func (d *DHT) Seen(a id.Address) {
	now := d.cfg.Now()
	d.mu.Lock()
	d.table.seen(a, now)
	d.mu.Unlock()
}

// Failed notes that a call to a failed. After 3 failures in a row the
// contact is dropped and the most recently seen entry of its bucket's
// replacement cache takes its place.
func (d *DHT) Failed(a id.Address) {
	now := d.cfg.Now()
	d.mu.Lock()
	dropped := d.table.failed(a, now)
	d.mu.Unlock()
	if dropped {
		d.log.Debug("contact dropped after failures", "contact", a.Short())
	}
}

// Remove drops a from the routing table (for example when its lease is
// found invalid), refilling its bucket from the replacement cache.
func (d *DHT) Remove(a id.Address) {
	now := d.cfg.Now()
	d.mu.Lock()
	d.table.remove(a, now)
	d.mu.Unlock()
}

// Closest returns up to n contacts of the routing table closest to target
// by XOR distance, closest first.
func (d *DHT) Closest(target id.Address, n int) []id.Address {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.table.closest(target, n, d.cfg.Self)
}

// Buckets describes the non-empty buckets, shallowest first.
func (d *DHT) Buckets() []Bucket {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.table.summary()
}

// Contacts returns every routing-table entry (not the replacement caches),
// shallowest bucket first, each bucket least recently seen first.
func (d *DHT) Contacts() []Contact {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.table.contacts()
}

// Stored returns how many records this node keeps for others.
func (d *DHT) Stored() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.store.n
}

// Handle answers one request from an authenticated sender and notes the
// sender as a live contact. It serves Ping, FindNode, FindValue and
// Store. A refused Store or an unknown request gives an error that wraps a
// wire sentinel: the caller answers with
// &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}.
func (d *DHT) Handle(from id.Address, req wire.Message) (wire.Message, error) {
	now := d.cfg.Now()
	if m, ok := req.(*wire.Store); ok {
		err := d.keep(m.Record, now) // verifies outside the lock
		d.mu.Lock()
		d.table.seen(from, now)
		d.mu.Unlock()
		if err != nil {
			d.log.Debug("record refused", "from", from.Short(), "err", err)
			return nil, err
		}
		return &wire.Stored{}, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.table.seen(from, now)
	switch m := req.(type) {
	case *wire.Ping:
		return &wire.Pong{ID: m.ID}, nil
	case *wire.FindNode:
		return &wire.Nodes{Contacts: d.table.closest(m.Target, d.cfg.K, from)}, nil
	case *wire.FindValue:
		return &wire.Value{Records: d.recordsForLocked(m.Key), Contacts: d.table.closest(m.Key, d.cfg.K, from)}, nil
	default:
		err := fmt.Errorf("%w: %T", ErrUnexpected, req)
		d.log.Debug("request refused", "from", from.Short(), "err", err)
		return nil, err
	}
}

// keep decodes, verifies and stores a record for another node.
func (d *DHT) keep(raw []byte, now time.Time) error {
	var r Record
	if err := r.Unmarshal(raw); err != nil {
		return err
	}
	d.mu.Lock()
	renewed := d.store.renew(&r, now) // the very record held, verified when it came
	d.mu.Unlock()
	if renewed {
		return nil
	}
	if err := r.Verify(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.store.put(r, raw, now)
}

// recordsForLocked returns the encoded records under key: those kept for others
// and this node's own, the newest per signer. d.mu is held.
func (d *DHT) recordsForLocked(key id.Address) [][]byte {
	best := map[[32]byte]*Record{}
	raws := map[[32]byte][]byte{}
	for _, h := range d.store.get(key) {
		best[h.rec.Signer], raws[h.rec.Signer] = &h.rec, h.raw
	}
	for k, o := range d.own {
		if k.key != key {
			continue
		}
		if b := best[k.signer]; b == nil || o.rec.Seq > b.Seq {
			best[k.signer], raws[k.signer] = &o.rec, o.raw
		}
	}
	if len(raws) == 0 {
		return nil
	}
	signers := make([][32]byte, 0, len(raws))
	for s := range raws {
		signers = append(signers, s)
	}
	slices.SortFunc(signers, func(a, b [32]byte) int { return slices.Compare(a[:], b[:]) })
	out := make([][]byte, 0, min(len(signers), wire.MaxRecords))
	for _, s := range signers[:min(len(signers), wire.MaxRecords)] {
		out = append(out, raws[s])
	}
	return out
}

// Maintain does the periodic work: it drops records not re-stored within
// RecordTTL, pings contacts silent for half of Inactive (so live ones are
// kept), evicts contacts silent for Inactive, looks up a random address in
// every bucket that had no lookup for Refresh, and republishes own records
// every Republish. It returns when done (or when ctx ends); calling it
// often is cheap when there is nothing to do.
func (d *DHT) Maintain(ctx context.Context) {
	now := d.cfg.Now()
	d.mu.Lock()
	if n := d.store.expire(now.Add(-d.cfg.RecordTTL)); n > 0 {
		d.log.Debug("records expired", "count", n)
	}
	silent := d.table.silent(now.Add(-d.cfg.Inactive / 2))
	var due []*owned
	for _, o := range d.own {
		if !now.Before(o.next) {
			due = append(due, o)
		}
	}
	d.mu.Unlock()

	// Ping before evicting: after a long sleep, contacts that are still
	// there answer and stay.
	d.ping(ctx, silent)
	d.mu.Lock()
	if gone := d.table.evict(now); len(gone) > 0 {
		d.log.Debug("inactive contacts evicted", "count", len(gone))
	}
	d.mu.Unlock()
	d.refresh(ctx, d.cfg.Refresh)
	for _, o := range due {
		if ctx.Err() != nil {
			return
		}
		d.republish(ctx, o)
	}
}

// ping asks each address for a Pong, K at a time (after a long sleep most
// of the table may be silent); the answers and failures update the
// routing table.
func (d *DHT) ping(ctx context.Context, as []id.Address) {
	for len(as) > 0 && ctx.Err() == nil {
		n := min(len(as), d.cfg.K)
		d.parallel(n, func(i int) {
			d.call(ctx, as[i], &wire.Ping{}, func(m wire.Message) bool {
				_, ok := m.(*wire.Pong)
				return ok
			})
		})
		as = as[n:]
	}
}

// refresh looks up a random address in each bucket that had no lookup for
// the given time.
func (d *DHT) refresh(ctx context.Context, age time.Duration) {
	d.mu.Lock()
	stale := d.table.stale(d.cfg.Now().Add(-age))
	targets := make([]id.Address, len(stale))
	for i, b := range stale {
		targets[i] = d.table.randomIn(b)
	}
	d.mu.Unlock()
	for _, t := range targets {
		if ctx.Err() != nil {
			return
		}
		d.iterate(ctx, t, modeClosest)
	}
}

// Bootstrap joins the network once a few contacts are known (given with
// Seen): a lookup of Self, which fills the buckets near Self and tells
// those nodes about this one, then a refresh of every other bucket.
func (d *DHT) Bootstrap(ctx context.Context) (Result, error) {
	res, err := d.Lookup(ctx, d.cfg.Self)
	if err != nil {
		return res, err
	}
	d.refresh(ctx, 0)
	return res, ctx.Err()
}

// parallel runs f(0..n-1) concurrently (f(0) on this goroutine) and waits
// for all.
func (d *DHT) parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { f(i) })
	}
	if n > 0 {
		f(0)
	}
	wg.Wait()
}

// call sends req to `to` with the per-call timeout and updates the routing
// table: a contact that answers as expected is Seen, one that fails or
// answers garbage is Failed. A refusal (wire.Error) is an answer: it comes
// back as an error, and the contact is Seen.
func (d *DHT) call(ctx context.Context, to id.Address, req wire.Message, ok func(wire.Message) bool) (wire.Message, error) {
	cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	m, err := d.cfg.Network.Call(cctx, to, req)
	cancel()
	var remote *wire.RemoteError
	switch {
	case err != nil && errors.As(err, &remote):
		d.Seen(to)
		return nil, err
	case err != nil:
		// Neither our own cancellation nor our own lack of a way to send
		// is the contact's fault.
		if ctx.Err() == nil && !errors.Is(err, ErrNoPath) {
			d.Failed(to)
		}
		return nil, err
	}
	if e, isErr := m.(*wire.Error); isErr {
		d.Seen(to)
		return nil, e.Err()
	}
	if m == nil || !ok(m) {
		d.Failed(to)
		return nil, fmt.Errorf("%w: %T to %T", ErrBadReply, m, req)
	}
	d.Seen(to)
	return m, nil
}
