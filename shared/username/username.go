package username

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/names"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Event is the kind of the event the client emits when the node
// registers its name, or claims it again at a new address; its value is
// the record's View.
const Event = "username"

// Error codes of Register and Resolve, beside the node's own
// (node.CodeUnavailable, node.CodeRateLimited, node.CodeNotAdmitted,
// node.CodeTimeout, node.CodeError).
const (
	CodeInvalid           = "invalid"            // not 1–16 letters and digits
	CodeTaken             = "taken"              // another key holds the name
	CodeNotFound          = "not-found"          // nobody holds it
	CodeAlreadyRegistered = "already-registered" // this node holds another name
	CodeForged            = "forged"             // a record that does not verify
)

// ErrAlreadyRegistered: this node holds another username.
var ErrAlreadyRegistered = errors.New("username: this node is already registered")

// Limits and timings.
const (
	// nameTimeout bounds Register and Resolve (on top of the caller's ctx).
	nameTimeout = 15 * time.Second
	// resolveTTL is how long a resolved record is answered from memory.
	resolveTTL = 5 * time.Minute
	// resolveCacheSize bounds the resolved records kept; the oldest goes.
	resolveCacheSize = 1024
	// publishTimeout bounds one DHT publication of the node's record.
	publishTimeout = 30 * time.Second
)

// Store keys, in the capability's namespace.
const (
	keyRecord    = "record"   // the node's username record, wire-encoded
	legacyRecord = "username" // where versions before namespaces kept it
)

// publishRetries are the pauses before publishing the node's record again
// when no node stored it (the DHT itself would wait an hour): a node just
// admitted has few channels open yet.
var publishRetries = []time.Duration{3 * time.Second, 10 * time.Second, 30 * time.Second}

// reclaimRetries are the pauses before claiming the name again at a new
// address after a retryable failure (the home relay unreachable, …).
var reclaimRetries = []time.Duration{5 * time.Second, 20 * time.Second, time.Minute}

// Client is a node's username capability: at most one name of its own,
// and the resolver of everyone's. Make one with New and list it in the
// node's Config.Capabilities.
type Client struct {
	h *node.Host

	regMu     sync.Mutex // one Register at a time
	mu        sync.Mutex
	rec       *wire.UserRecord // this node's verified record, nil if none
	published struct {         // the last publication of rec that some node stored
		addr    id.Address
		version uint64
	}
	resolved cache
}

var _ node.Capability = (*Client)(nil)

// New returns a username client, to be attached to a node.
func New() *Client { return &Client{} }

// Feature implements node.Capability.
func (c *Client) Feature() string { return wire.FeatureNames }

// Attach implements node.Capability: it loads the record Register saved,
// if any, and claims or publishes it at every admission.
func (c *Client) Attach(h *node.Host) error {
	c.h = h
	h.OnAdmitted(c.atAdmission)
	if h.Fresh() {
		return nil // a new identity has no name saved: two reads saved on a first visit
	}
	if err := h.Adopt(legacyRecord, keyRecord); err != nil {
		h.Logger().Warn("could not move the saved username into its namespace", "err", err)
	}
	c.load()
	return nil
}

// load reads the record Register saved, if any. A record that is not
// this identity's, or whose claim does not verify, is ignored.
func (c *Client) load() {
	log := c.h.Logger()
	b, err := c.h.Store().Get(keyRecord)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		log.Warn("could not read the saved username", "err", err)
		return
	}
	m, err := wire.Unmarshal(b)
	rec, ok := m.(*wire.UserRecord)
	if err != nil || !ok {
		log.Warn("the saved username record is corrupt; ignoring it", "err", err)
		return
	}
	if rec.Claim.SignKey != c.h.Identity().SignKey() {
		log.Warn("the saved username record is another key's; ignoring it", "name", rec.Claim.Name)
		return
	}
	if err := names.VerifyClaim(&rec.Claim); err != nil {
		log.Warn("the saved username record does not verify; ignoring it", "name", rec.Claim.Name, "err", err)
		return
	}
	c.rec = rec
}

// Name returns the node's username, "" if it has none.
func (c *Client) Name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec == nil {
		return ""
	}
	return c.rec.Claim.Name
}

// Record returns the node's own username record, nil if it has none.
func (c *Client) Record() *wire.UserRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// invalid is the error for a name Normalize refuses.
func invalid(err error) error {
	return node.Errorf(CodeInvalid, []error{err}, "%s", names.Problem(err))
}

func notAdmitted() error {
	return node.Errorf(node.CodeNotAdmitted, []error{node.ErrNotAdmitted}, "not admitted to a zone yet")
}

// forged is the error for a record from the relay that does not verify.
func forged(err error) error {
	return node.Errorf(CodeForged, []error{err}, "the relay's record does not verify: %s", names.Problem(err))
}

// refusal turns a relay's refusal into an error worded for people (the
// relay's sentence, or a default one) with its code.
func refusal(name string, re *wire.RemoteError) error {
	code, msg := node.CodeError, re.Message
	switch re.Code {
	case wire.CodeNameTaken:
		code = CodeTaken
		if msg == "" {
			msg = fmt.Sprintf("%q is taken", name)
		}
	case wire.CodeNotFound:
		code = CodeNotFound
		if msg == "" {
			msg = fmt.Sprintf("no user named %q", name)
		}
	case wire.CodeBadName:
		code = CodeInvalid
	case wire.CodeAlreadyRegistered:
		code = CodeAlreadyRegistered // the home knows this key by another name
	case wire.CodeUnavailable:
		code = node.CodeUnavailable
		if msg == "" {
			msg = "the relay that decides this name cannot be reached now; try again"
		}
	case wire.CodeRateLimited:
		code = node.CodeRateLimited
		if msg == "" {
			msg = "too many requests; try again later"
		}
	}
	if msg == "" {
		msg = re.Error()
	}
	return node.Errorf(code, []error{re}, "%s", msg)
}

// Register claims name for this node and returns its verified record. A
// node holds one name: claiming the one it holds again is answered from
// the store when its address is unchanged, and renews the claim (at the
// next version) when the node has moved; another name is refused with
// CodeAlreadyRegistered. The record is published in the DHT in the
// background. Failures are *node.Error values with the codes above.
func (c *Client) Register(ctx context.Context, name string) (*wire.UserRecord, error) {
	name, err := names.Normalize(name)
	if err != nil {
		return nil, invalid(err)
	}
	c.regMu.Lock()
	defer c.regMu.Unlock()
	return c.registerLocked(ctx, name)
}

// registerLocked does Register's work; c.regMu is held.
func (c *Client) registerLocked(ctx context.Context, name string) (*wire.UserRecord, error) {
	h := c.h
	lease := h.Lease()
	if lease.Address.IsZero() {
		return nil, notAdmitted()
	}
	c.mu.Lock()
	held := c.rec
	c.mu.Unlock()
	version := uint64(1)
	if held != nil {
		if held.Claim.Name != name {
			return nil, node.Errorf(CodeAlreadyRegistered, []error{ErrAlreadyRegistered}, "this node is already registered as %q", held.Claim.Name)
		}
		if held.Claim.Address == lease.Address && held.Claim.Zone == lease.Zone {
			return held, nil
		}
		version = held.Claim.Version + 1
	}
	claim, err := names.NewClaim(h.Identity(), &lease, name, version)
	if err != nil {
		return nil, invalid(err)
	}
	ctx, cancel := context.WithTimeout(ctx, nameTimeout)
	defer cancel()
	reply, err := h.RelayRequest(ctx, func(id uint32) wire.Message { return &wire.NameClaim{ID: id, Claim: *claim} })
	if err != nil {
		return nil, err
	}
	res, ok := reply.(*wire.NameResult)
	if !ok {
		return nil, node.Errorf(node.CodeError, []error{wire.ErrProtocol}, "protocol violation: the relay answered a claim with type %d", reply.Type())
	}
	if re, ok := res.Err().(*wire.RemoteError); ok {
		h.Logger().Info("username refused", "name", name, "code", re.Code, "message", re.Message)
		return nil, refusal(name, re)
	}
	rec := res.Record
	if rec == nil {
		return nil, node.Errorf(node.CodeError, []error{wire.ErrProtocol}, "protocol violation: the relay accepted the claim but sent no record")
	}
	if !names.Same(&rec.Claim, claim) {
		h.Logger().Warn("the relay answered a claim with a record of another claim", "name", name)
		return nil, forged(fmt.Errorf("%w: it is not the claim this node sent", names.ErrForged))
	}
	// The record may come from the ledger that holds the name rather than
	// its home (see Resolve); it must come from a relay trusted for names.
	if err := c.check(rec, name, c.namesRelays()); err != nil {
		h.Logger().Warn("the relay's record does not verify", "name", name, "err", err)
		return nil, forged(err)
	}
	b, err := wire.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if err := store.PutDurable(h.Store(), keyRecord, b); err != nil { // a lost record is a lost name
		return nil, node.Errorf(node.CodeError, []error{err}, "could not save the username: %v", err)
	}
	c.mu.Lock()
	c.rec = rec
	c.mu.Unlock()
	h.Logger().Info("registered", "name", name, "version", rec.Claim.Version, "zone", rec.Zone, "index", rec.Index)
	h.Emit(Event, ViewOf(rec))
	c.resolved.put(name, rec, h.Clock().Now())
	go c.publish(h.Life(), rec)
	return rec, nil
}

// atAdmission runs when a relay admits the node: the saved record is
// published in the (possibly new) DHT, or, if the node now has another
// address, claimed again at the next version, which publishes it.
func (c *Client) atAdmission(ctx context.Context, lease wire.Lease) {
	rec := c.Record()
	if rec == nil {
		return
	}
	if rec.Claim.Address == lease.Address && rec.Claim.Zone == lease.Zone {
		c.publish(ctx, rec)
		return
	}
	log := c.h.Logger()
	name := rec.Claim.Name
	log.Info("claiming the username again at the new address", "name", name, "address", lease.Address.Short(), "version", rec.Claim.Version+1)
	for i := 0; ; i++ {
		c.regMu.Lock()
		_, err := c.registerLocked(ctx, name)
		c.regMu.Unlock()
		if err == nil || ctx.Err() != nil {
			return
		}
		code := node.Explain(err).Code
		retry := code == node.CodeUnavailable || code == node.CodeRateLimited || code == node.CodeTimeout
		if !retry || i >= len(reclaimRetries) {
			log.Warn("could not claim the username at the new address", "name", name, "err", err)
			return
		}
		log.Info("claiming the username again failed; retrying", "name", name, "err", err, "in", reclaimRetries[i])
		if !clock.Sleep(c.h.Clock(), reclaimRetries[i], ctx.Done()) {
			return
		}
	}
}

// publish stores the node's record, sealed, in the DHT under the name's
// key, signed by the key derived for the name (names.Seal), never by the
// node's own: the nodes that keep it cannot tell whose it is. The DHT
// republishes it from then on. A publication nobody stored
// is tried again a few times. It logs failures and returns.
func (c *Client) publish(ctx context.Context, rec *wire.UserRecord) {
	h, log := c.h, c.h.Logger()
	name := rec.Claim.Name
	r, err := names.Seal(h.Identity(), rec)
	if err != nil {
		log.Warn("could not seal the username record", "name", name, "err", err)
		return
	}
	h.PutPatiently(ctx, r, "username "+name, publishRetries, publishTimeout, func(addr id.Address) bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.published.addr == addr && c.published.version >= rec.Claim.Version
	}, func(addr id.Address, _ int) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.published.addr, c.published.version = addr, rec.Claim.Version
	})
}

// Resolve returns the verified record of name: from memory if it was
// resolved in the last five minutes (unless fresh), else from the DHT,
// else from the relay. A name nobody holds fails with CodeNotFound.
// Records that do not verify are logged and dropped.
func (c *Client) Resolve(ctx context.Context, name string, fresh bool) (*wire.UserRecord, error) {
	name, err := names.Normalize(name)
	if err != nil {
		return nil, invalid(err)
	}
	h := c.h
	if !fresh {
		if rec := c.resolved.get(name, h.Clock().Now()); rec != nil {
			return rec, nil
		}
	}
	if h.Lease().Address.IsZero() {
		return nil, notAdmitted()
	}
	ctx, cancel := context.WithTimeout(ctx, nameTimeout)
	defer cancel()
	relays := c.namesRelays()
	home, _ := names.Home(names.Hash(name), relays.Keys)
	// The DHT's records are candidates; only an unambiguous answer is
	// taken from it alone: the best record the name's home sequenced,
	// with no other ledger's record of another owner beside it. Anything
	// else — only another trusted relay's records (a name held since
	// before the federation grew, or a relay overstepping), a conflict
	// between ledgers, nothing — is the relay's to settle.
	var cands []*wire.UserRecord
	var doubt error // why a record was not taken from the DHT
	if own := c.Record(); own != nil && own.Claim.Name == name && c.check(own, name, relays) == nil {
		cands = append(cands, own) // verified when it was registered
	}
	recs, err := h.Get(ctx, names.Key(name))
	if err != nil && ctx.Err() == nil {
		h.Logger().Debug("DHT lookup of a username failed", "err", err)
	}
	for _, r := range recs {
		rec, err := names.Open(name, &r)
		if err == nil {
			err = c.check(rec, name, relays)
		}
		if err != nil {
			h.Logger().Warn("dropped a username record from the DHT that does not verify", "signer", hex.EncodeToString(r.Signer[:4]), "err", err)
			doubt = err
			continue
		}
		cands = append(cands, rec)
	}
	best := fromDHT(cands, home)
	if best == nil {
		for _, rec := range cands {
			if rec.RelayKey != home && doubt == nil {
				doubt = fmt.Errorf("%w: sequenced by the relay of zone %q, which is not this name's home, and the relay did not vouch for it", names.ErrForged, rec.Zone)
			}
		}
		if len(cands) > 0 {
			h.Logger().Info("asking the relay which record of a username holds", "name", name, "records", len(cands))
		}
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
			if doubt != nil {
				return nil, forged(doubt)
			}
			return nil, node.Errorf(node.CodeTimeout, []error{node.ErrTimeout, err}, "no answer in time")
		}
		rec, err := c.askRelay(ctx, name, relays)
		if err != nil {
			if doubt != nil && !errors.Is(err, context.Canceled) {
				h.Logger().Warn("the relay did not vouch for a username record the DHT holds", "name", name, "err", err)
				return nil, forged(doubt)
			}
			return nil, err
		}
		best = rec
	}
	c.resolved.put(name, best, h.Clock().Now())
	return best, nil
}

// fromDHT is the record the DHT settles alone among verified records, or
// nil: the best of those the name's home sequenced (one ledger orders its
// entries), unless another relay's ledger holds the name for another key
// (which ledger held it first, only relays know).
func fromDHT(cands []*wire.UserRecord, home [32]byte) *wire.UserRecord {
	var best *wire.UserRecord
	for _, rec := range cands {
		if rec.RelayKey == home && (best == nil || names.Better(rec, best)) {
			best = rec
		}
	}
	if best == nil {
		return nil
	}
	for _, rec := range cands {
		if rec.RelayKey != home && rec.Claim.SignKey != best.Claim.SignKey {
			return nil
		}
	}
	return best
}

// askRelay asks the node's relay for the record of name: the relay
// answers from the ledger that holds the name first, which need not be
// the name's home (one sequenced before the federation grew), but must be
// a relay trusted for names.
func (c *Client) askRelay(ctx context.Context, name string, relays names.Relays) (*wire.UserRecord, error) {
	h := c.h
	reply, err := h.RelayRequest(ctx, func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: names.Hash(name)} })
	if err != nil {
		return nil, err
	}
	res, ok := reply.(*wire.NameResult)
	if !ok {
		return nil, node.Errorf(node.CodeError, []error{wire.ErrProtocol}, "protocol violation: the relay answered a lookup with type %d", reply.Type())
	}
	if re, ok := res.Err().(*wire.RemoteError); ok {
		if re.Code == wire.CodeNotFound {
			return nil, node.Errorf(CodeNotFound, []error{re}, "no user named %q", name)
		}
		return nil, refusal(name, re)
	}
	if res.Record == nil {
		return nil, node.Errorf(node.CodeError, []error{wire.ErrProtocol}, "protocol violation: the relay found the name but sent no record")
	}
	if err := c.check(res.Record, name, relays); err != nil {
		h.Logger().Warn("dropped a username record from the relay that does not verify", "err", err)
		return nil, forged(err)
	}
	return res.Record, nil
}

// namesRelays are the relays the node's last admission named as trusted
// and running the username service.
func (c *Client) namesRelays() names.Relays {
	var rs names.Relays
	for _, r := range c.h.Relays() {
		if r.Flags.Has(wire.RelayTrusted | wire.RelayNames) {
			rs.Add(r.Info.Key, r.Info.Zone)
		}
	}
	return rs
}

// check verifies rec as the record of name, sequenced by one of relays.
func (c *Client) check(rec *wire.UserRecord, name string, relays names.Relays) error {
	if err := relays.Sequenced(rec.RelayKey, rec.Zone, "usernames"); err != nil {
		return err
	}
	_, err := names.Verify(rec, name, relays.ZoneOf)
	return err
}

// cache keeps verified records by name for resolveTTL, at most
// resolveCacheSize of them (the oldest goes first).
type cache struct {
	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	rec *wire.UserRecord
	at  time.Time
}

func (c *cache) get(name string, now time.Time) *wire.UserRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[name]
	if !ok {
		return nil
	}
	if age := now.Sub(e.at); age >= resolveTTL || age < 0 {
		delete(c.m, name)
		return nil
	}
	return e.rec
}

func (c *cache) put(name string, rec *wire.UserRecord, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]cached)
	}
	if _, ok := c.m[name]; !ok && len(c.m) >= resolveCacheSize {
		oldest, first := "", true
		for k, e := range c.m {
			if first || e.at.Before(c.m[oldest].at) {
				oldest, first = k, false
			}
		}
		delete(c.m, oldest)
	}
	c.m[name] = cached{rec: rec, at: now}
}
