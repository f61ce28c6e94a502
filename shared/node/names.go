package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"ddt/shared/dht"
	"ddt/shared/ledger"
	"ddt/shared/names"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Usernames. A node holds at most one: Register claims it through the
// relay (which has the name's home relay sequence it in a zone ledger),
// verifies the record that comes back, keeps it in the store, and
// publishes it, sealed, in the DHT. Resolve finds a name's record in the
// DHT, or asks the relay, and verifies it before anything uses it. Nothing
// here maps an address or a key back to a name.

// Errors of Register and Resolve. Refusals from the relay come back as
// errors that wrap the wire sentinels (wire.ErrNameTaken, ErrNotFound,
// ErrBadName, ErrUnavailable, ErrRateLimited); a name that is not valid
// fails with names.Normalize's error; a record that does not verify wraps
// names.ErrForged (or names.ErrUnknownRelay).
var (
	// ErrAlreadyRegistered: this node holds another username.
	ErrAlreadyRegistered = errors.New("node: this node is already registered")
)

// Username limits.
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

// publishRetries are the pauses before publishing the node's record again
// when no node stored it (the DHT itself would wait an hour): a node just
// admitted has few channels open yet.
var publishRetries = []time.Duration{3 * time.Second, 10 * time.Second, 30 * time.Second}

// reclaimRetries are the pauses before claiming the name again at a new
// address after a retryable failure (the home relay unreachable, …).
var reclaimRetries = []time.Duration{5 * time.Second, 20 * time.Second, time.Minute}

// userError is a username failure worded for people; it wraps the errors
// that classify it (a wire sentinel, ErrTimeout, …).
type userError struct {
	msg  string
	errs []error
}

func (e *userError) Error() string   { return e.msg }
func (e *userError) Unwrap() []error { return e.errs }

// notFound is Resolve's answer for a name nobody holds.
func notFound(name string) error {
	return &userError{msg: fmt.Sprintf("no user named %q", name), errs: []error{wire.ErrNotFound}}
}

// refusal turns a relay's NameResult refusal into an error whose message
// is the relay's sentence (or a default one) and that still matches the
// code's sentinel and *wire.RemoteError.
func refusal(name string, re *wire.RemoteError) error {
	msg := re.Message
	if msg == "" {
		switch re.Code {
		case wire.CodeNameTaken:
			msg = fmt.Sprintf("%q is taken", name)
		case wire.CodeNotFound:
			msg = fmt.Sprintf("no user named %q", name)
		case wire.CodeUnavailable:
			msg = "the relay that decides this name cannot be reached now; try again"
		case wire.CodeRateLimited:
			msg = "too many requests; try again later"
		default:
			msg = re.Error()
		}
	}
	return &userError{msg: msg, errs: []error{re}}
}

// Username returns the node's username, "" if it has none.
func (n *Node) Username() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.userRec == nil {
		return ""
	}
	return n.userRec.Claim.Name
}

// UserRecord returns the node's own username record, nil if it has none.
func (n *Node) UserRecord() *wire.UserRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.userRec
}

// loadUsername reads the record Register saved, if any. A record that is
// not this identity's, or whose claim does not verify, is ignored.
func (n *Node) loadUsername() {
	b, err := n.cfg.Store.Get(keyUsername)
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		n.log.Warn("could not read the saved username", "err", err)
		return
	}
	m, err := wire.Unmarshal(b)
	rec, ok := m.(*wire.UserRecord)
	if err != nil || !ok {
		n.log.Warn("the saved username record is corrupt; ignoring it", "err", err)
		return
	}
	if rec.Claim.SignKey != n.id.SignKey() {
		n.log.Warn("the saved username record is another key's; ignoring it", "name", rec.Claim.Name)
		return
	}
	if err := names.VerifyClaim(&rec.Claim); err != nil {
		n.log.Warn("the saved username record does not verify; ignoring it", "name", rec.Claim.Name, "err", err)
		return
	}
	n.userRec = rec
}

// Register claims name for this node and returns its verified record. A
// node holds one name: claiming the one it holds again is answered from
// the store when its address is unchanged, and renews the claim (at the
// next version) when the node has moved; another name is refused with
// ErrAlreadyRegistered. The record is published in the DHT in the
// background.
func (n *Node) Register(ctx context.Context, name string) (*wire.UserRecord, error) {
	name, err := names.Normalize(name)
	if err != nil {
		return nil, err
	}
	n.regMu.Lock()
	defer n.regMu.Unlock()
	return n.register(ctx, name)
}

// register does Register's work; n.regMu is held.
func (n *Node) register(ctx context.Context, name string) (*wire.UserRecord, error) {
	n.mu.Lock()
	lease, held := n.lease, n.userRec
	n.mu.Unlock()
	if lease.Address.IsZero() {
		return nil, ErrNotAdmitted
	}
	version := uint64(1)
	if held != nil {
		if held.Claim.Name != name {
			return nil, fmt.Errorf("%w as %q", ErrAlreadyRegistered, held.Claim.Name)
		}
		if held.Claim.Address == lease.Address && held.Claim.Zone == lease.Zone {
			return held, nil
		}
		version = held.Claim.Version + 1
	}
	c, err := names.NewClaim(n.id, &lease, name, version)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, nameTimeout)
	defer cancel()
	res, err := n.nameRequest(ctx, func(id uint32) wire.Message { return &wire.NameClaim{ID: id, Claim: *c} })
	if err != nil {
		return nil, err
	}
	if re, ok := res.Err().(*wire.RemoteError); ok {
		n.log.Info("username refused", "name", name, "code", re.Code, "message", re.Message)
		return nil, refusal(name, re)
	}
	rec := res.Record
	if rec == nil {
		return nil, fmt.Errorf("%w: the relay accepted the claim but sent no record", wire.ErrProtocol)
	}
	if !names.Same(&rec.Claim, c) {
		n.log.Warn("the relay answered a claim with a record of another claim", "name", name)
		return nil, fmt.Errorf("node: the relay's record does not verify: %w: it is not the claim this node sent", names.ErrForged)
	}
	if _, err := names.Verify(rec, name, n.zoneOf); err != nil {
		n.log.Warn("the relay's record does not verify", "name", name, "err", err)
		return nil, fmt.Errorf("node: the relay's record does not verify: %w", err)
	}
	b, err := wire.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if err := n.cfg.Store.Put(keyUsername, b); err != nil {
		return nil, fmt.Errorf("node: could not save the username: %w", err)
	}
	n.mu.Lock()
	n.userRec = rec
	n.mu.Unlock()
	n.log.Info("registered", "name", name, "version", rec.Claim.Version, "zone", rec.Zone, "index", rec.Index)
	n.emit(Event{Kind: EventUsername, Name: name})
	n.remember(name, rec)
	go n.publishName(n.life, rec)
	return rec, nil
}

// nameRequest sends the message msg(id) to the relay and waits for the
// NameResult with that id. It waits for the relay while it is away; if
// the relay connection drops before the answer, it asks once more on the
// next connection (a claim sent twice gets the same answer).
func (n *Node) nameRequest(ctx context.Context, msg func(id uint32) wire.Message) (*wire.NameResult, error) {
	for attempt := 0; ; attempt++ {
		out, done, err := n.awaitRelay(ctx)
		if err != nil {
			return nil, err
		}
		reply := make(chan *wire.NameResult, 1)
		n.mu.Lock()
		n.nextNameID++
		id := n.nextNameID
		n.nameWaits[id] = reply
		n.mu.Unlock()
		forget := func() {
			n.mu.Lock()
			delete(n.nameWaits, id)
			n.mu.Unlock()
		}
		select {
		case out <- msg(id):
		default:
			forget()
			return nil, &userError{msg: "the relay connection is congested; try again", errs: []error{wire.ErrUnavailable}}
		}
		select {
		case r := <-reply:
			return r, nil
		case <-done:
			forget()
			if attempt > 0 {
				return nil, &userError{msg: "lost the connection to the relay twice while waiting for its answer", errs: []error{wire.ErrUnavailable}}
			}
			n.log.Info("the relay connection dropped during a name request; asking again on the next one")
		case <-ctx.Done():
			forget()
			return nil, ctxError(ctx, "the relay did not answer in time")
		}
	}
}

// ctxError is the error for a name request whose ctx ended: a timeout
// (wrapping ErrTimeout) unless the caller cancelled.
func ctxError(ctx context.Context, msg string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return &userError{msg: msg, errs: []error{ErrTimeout, ctx.Err()}}
}

// awaitRelay returns the current relay session's queue and the channel
// closed when it ends, waiting for the relay to come back if it is away.
func (n *Node) awaitRelay(ctx context.Context) (chan<- wire.Message, <-chan struct{}, error) {
	for {
		n.mu.Lock()
		if n.relayOut != nil {
			out, done := n.relayOut, n.relayDone
			n.mu.Unlock()
			return out, done, nil
		}
		if n.relayBack == nil {
			n.relayBack = make(chan struct{})
		}
		back := n.relayBack
		n.mu.Unlock()
		select {
		case <-back:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, nil, ctx.Err()
			}
			return nil, nil, &userError{msg: "the relay is away; try again when the node is connected", errs: []error{wire.ErrUnavailable, ctx.Err()}}
		}
	}
}

// onNameResult hands a relay's answer to the request waiting for it.
func (n *Node) onNameResult(m *wire.NameResult) {
	n.mu.Lock()
	reply, ok := n.nameWaits[m.ID]
	delete(n.nameWaits, m.ID)
	n.mu.Unlock()
	if !ok {
		n.log.Debug("a name result nobody waits for", "id", m.ID)
		return
	}
	reply <- m // buffered, and only this answer is sent to it
}

// nameAtAdmission runs when the relay admits the node: the saved record
// is published in the (possibly new) DHT, or, if the node now has another
// address, claimed again at the next version, which publishes it.
func (n *Node) nameAtAdmission(ctx context.Context) {
	n.mu.Lock()
	rec, lease := n.userRec, n.lease
	n.mu.Unlock()
	if rec == nil {
		return
	}
	if rec.Claim.Address == lease.Address && rec.Claim.Zone == lease.Zone {
		n.publishName(ctx, rec)
		return
	}
	name := rec.Claim.Name
	n.log.Info("claiming the username again at the new address", "name", name, "address", lease.Address.Short(), "version", rec.Claim.Version+1)
	for i := 0; ; i++ {
		n.regMu.Lock()
		_, err := n.register(ctx, name)
		n.regMu.Unlock()
		if err == nil || ctx.Err() != nil {
			return
		}
		retry := errors.Is(err, wire.ErrUnavailable) || errors.Is(err, wire.ErrRateLimited) || errors.Is(err, ErrTimeout)
		if !retry || i >= len(reclaimRetries) {
			n.log.Warn("could not claim the username at the new address", "name", name, "err", err)
			return
		}
		n.log.Info("claiming the username again failed; retrying", "name", name, "err", err, "in", reclaimRetries[i])
		select {
		case <-time.After(reclaimRetries[i]):
		case <-ctx.Done():
			return
		}
	}
}

// publishName stores the node's record, sealed, in the DHT under the
// name's key; the DHT republishes it from then on. A publication nobody
// stored is tried again a few times. It logs failures and returns.
func (n *Node) publishName(ctx context.Context, rec *wire.UserRecord) {
	name := rec.Claim.Name
	sealed, err := names.Seal(name, rec)
	if err != nil {
		n.log.Warn("could not seal the username record", "name", name, "err", err)
		return
	}
	r := dht.Record{Key: names.Key(name), Seq: rec.Claim.Version, Value: sealed}
	if err := r.Sign(n.id.SigningKey()); err != nil {
		n.log.Warn("could not sign the username record", "err", err)
		return
	}
	for i := 0; ; i++ {
		d := n.table()
		if d == nil {
			return // published at admission
		}
		n.mu.Lock()
		done := n.published.d == d && n.published.version >= rec.Claim.Version
		n.mu.Unlock()
		if done {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		stored, err := d.Put(pctx, r)
		cancel()
		if err == nil && stored > 0 {
			n.mu.Lock()
			n.published.d, n.published.version = d, rec.Claim.Version
			n.mu.Unlock()
			n.log.Info("username published", "name", name, "version", rec.Claim.Version, "stored", stored)
			return
		}
		if errors.Is(err, dht.ErrStale) || ctx.Err() != nil {
			return // a newer version went out meanwhile, or the node stops
		}
		if i >= len(publishRetries) {
			n.log.Warn("could not publish the username in the DHT; the DHT will try again later", "name", name, "err", err)
			return
		}
		n.log.Info("username not published yet; trying again", "name", name, "err", err, "in", publishRetries[i])
		select {
		case <-time.After(publishRetries[i]):
		case <-ctx.Done():
			return
		}
	}
}

// Resolve returns the verified record of name: from memory if it was
// resolved in the last five minutes (unless fresh), else from the DHT,
// else from the relay. A name nobody holds gives an error wrapping
// wire.ErrNotFound. Records that do not verify are logged and dropped.
func (n *Node) Resolve(ctx context.Context, name string, fresh bool) (*wire.UserRecord, error) {
	name, err := names.Normalize(name)
	if err != nil {
		return nil, err
	}
	if !fresh {
		if rec := n.resolved.get(name, n.cfg.Now()); rec != nil {
			return rec, nil
		}
	}
	n.mu.Lock()
	d, own, admitted := n.dht, n.userRec, !n.lease.Address.IsZero()
	n.mu.Unlock()
	if !admitted {
		return nil, ErrNotAdmitted
	}
	ctx, cancel := context.WithTimeout(ctx, nameTimeout)
	defer cancel()
	var best *wire.UserRecord
	if own != nil && own.Claim.Name == name {
		best = own // verified when it was registered
	}
	if d != nil {
		recs, _, err := d.Get(ctx, names.Key(name))
		if err != nil && ctx.Err() == nil {
			n.log.Debug("DHT lookup of a username failed", "err", err)
		}
		for _, r := range recs {
			rec, err := names.Open(name, r.Value)
			if err == nil && rec.Claim.SignKey != r.Signer {
				err = fmt.Errorf("%w: stored by %x, claimed by %x", names.ErrForged, r.Signer[:4], rec.Claim.SignKey[:4])
			}
			if err == nil {
				_, err = names.Verify(rec, name, n.zoneOf)
			}
			if err != nil {
				n.log.Warn("dropped a username record from the DHT that does not verify", "signer", hex.EncodeToString(r.Signer[:4]), "err", err)
				continue
			}
			if best == nil || names.Better(rec, best) {
				best = rec
			}
		}
	}
	if best == nil {
		if err := ctx.Err(); err != nil {
			return nil, ctxError(ctx, "no answer in time")
		}
		res, err := n.nameRequest(ctx, func(id uint32) wire.Message { return &wire.NameLookup{ID: id, Hash: names.Hash(name)} })
		if err != nil {
			return nil, err
		}
		if re, ok := res.Err().(*wire.RemoteError); ok {
			if re.Code == wire.CodeNotFound {
				return nil, notFound(name)
			}
			return nil, refusal(name, re)
		}
		if res.Record == nil {
			return nil, fmt.Errorf("%w: the relay found the name but sent no record", wire.ErrProtocol)
		}
		if _, err := names.Verify(res.Record, name, n.zoneOf); err != nil {
			n.log.Warn("dropped a username record from the relay that does not verify", "err", err)
			return nil, fmt.Errorf("node: the relay's record does not verify: %w", err)
		}
		best = res.Record
	}
	n.remember(name, best)
	return best, nil
}

// remember puts a verified record in the resolve cache.
func (n *Node) remember(name string, rec *wire.UserRecord) {
	n.resolved.put(name, rec, n.cfg.Now())
}

// resolveCache keeps verified records by name for resolveTTL, at most
// resolveCacheSize of them (the oldest goes first).
type resolveCache struct {
	mu sync.Mutex
	m  map[string]cached
}

type cached struct {
	rec *wire.UserRecord
	at  time.Time
}

func (c *resolveCache) get(name string, now time.Time) *wire.UserRecord {
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

func (c *resolveCache) put(name string, rec *wire.UserRecord, now time.Time) {
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

// UserView is a verified username record as window.ddt and the native
// node's HTTP endpoints show it (JSON field names are the page's).
type UserView struct {
	Name     string     `json:"name"`
	Address  string     `json:"address"`  // 40 hex digits, as ddt.address
	Zone     string     `json:"zone"`     // the claimant's zone
	SignKey  string     `json:"signKey"`  // hex
	AgreeKey string     `json:"agreeKey"` // hex
	Version  uint64     `json:"version"`
	Ledger   LedgerView `json:"ledger"`
	Seq      string     `json:"seq"` // "<ledger zone>:<index>"
}

// LedgerView says where a record was sequenced: entry Index of the zone
// ledger of Zone, kept by the relay with RelayKey, proven against a
// checkpoint of Size entries.
type LedgerView struct {
	Zone     string `json:"zone"`
	Index    uint64 `json:"index"`
	RelayKey string `json:"relayKey"` // hex
	Size     int64  `json:"size"`
}

// ViewRecord describes rec, which Register or Resolve verified.
func ViewRecord(rec *wire.UserRecord) UserView {
	c := &rec.Claim
	v := UserView{
		Name:     c.Name,
		Address:  c.Address.String(),
		Zone:     c.Zone,
		SignKey:  hex.EncodeToString(c.SignKey[:]),
		AgreeKey: hex.EncodeToString(c.AgreeKey[:]),
		Version:  c.Version,
		Ledger:   LedgerView{Zone: rec.Zone, Index: rec.Index, RelayKey: hex.EncodeToString(rec.RelayKey[:])},
		Seq:      rec.Zone + ":" + strconv.FormatUint(rec.Index, 10),
	}
	if cp, err := ledger.OpenCheckpoint(rec.Checkpoint, ledger.ZoneOrigin(rec.Zone, rec.RelayKey), rec.RelayKey[:]); err == nil {
		v.Ledger.Size = cp.Size
	}
	return v
}

// Name error codes, as window.ddt's rejections and the native node's JSON
// errors carry them.
const (
	CodeInvalid           = "invalid"
	CodeTaken             = "taken"
	CodeNotFound          = "not-found"
	CodeUnavailable       = "unavailable"
	CodeRateLimited       = "rate-limited"
	CodeNotAdmitted       = "not-admitted"
	CodeAlreadyRegistered = "already-registered"
	CodeForged            = "forged"
	CodeTimeout           = "timeout"
	CodeError             = "error" // anything else
)

// packagePrefixes are the Go package names errors start with. (A loop
// over them, not a regexp: regexp would add 0.3 MB to the wasm.)
var packagePrefixes = []string{"names: ", "node: ", "wire: ", "dht: ", "ledger: ", "identity: ", "store: ", "transport: "}

// stripPrefixes drops the package prefixes that begin msg or any of its
// words.
func stripPrefixes(msg string) string {
	for _, p := range packagePrefixes {
		for from := 0; ; {
			i := strings.Index(msg[from:], p)
			if i < 0 {
				break
			}
			i += from
			if i > 0 && isWordByte(msg[i-1]) {
				from = i + len(p)
				continue
			}
			msg = msg[:i] + msg[i+len(p):]
			from = i
		}
	}
	return msg
}

func isWordByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_'
}

// ExplainNameError classifies an error of Register or Resolve for people:
// one of the Code constants and a sentence without Go package prefixes.
func ExplainNameError(err error) (code, message string) {
	switch {
	case errors.Is(err, names.ErrForged), errors.Is(err, names.ErrUnknownRelay):
		code = CodeForged
	case errors.Is(err, wire.ErrBadName):
		code = CodeInvalid
	case errors.Is(err, wire.ErrNameTaken):
		code = CodeTaken
	case errors.Is(err, wire.ErrNotFound):
		code = CodeNotFound
	case errors.Is(err, wire.ErrUnavailable):
		code = CodeUnavailable
	case errors.Is(err, wire.ErrRateLimited):
		code = CodeRateLimited
	case errors.Is(err, ErrNotAdmitted):
		code = CodeNotAdmitted
	case errors.Is(err, ErrAlreadyRegistered):
		code = CodeAlreadyRegistered
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		code = CodeTimeout
	default:
		code = CodeError
	}
	return code, stripPrefixes(err.Error())
}
