package site

import (
	"container/list"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/id"
	"ddt/shared/names"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// EventDomain is the kind of the event the service emits when this node
// claims or updates a domain; its value is the record's View.
const EventDomain = "domain"

// Domain limits and timings.
const (
	// ResolveTTL is how long a resolved record is answered from memory
	// (ResolveOptions.MaxAge 0).
	ResolveTTL = time.Minute
	// MaxCachedDomains bounds the resolved records kept in memory; the
	// least recently used goes first.
	MaxCachedDomains = 1024
	// DomainTimeout bounds one Claim or Resolve on top of the caller's ctx.
	DomainTimeout = 15 * time.Second
	// PublishTimeout bounds one DHT publication of an owned record.
	PublishTimeout = 30 * time.Second
)

// keyDomainPrefix (+ label) keeps this node's own domain records, in the
// service's store namespace, wire-encoded.
const keyDomainPrefix = "domain/"

// publishRetries are the pauses before publishing an owned record again
// when no node stored it (the DHT itself would wait an hour): a node just
// admitted has few channels open yet.
var publishRetries = []time.Duration{3 * time.Second, 10 * time.Second, 30 * time.Second}

// domains is the service's domain state.
type domains struct {
	claimMu sync.Mutex // one Claim at a time: versions are numbered in order

	mu        sync.Mutex
	own       map[string]*wire.DomainRecord // label → this node's latest verified record
	published map[string]published          // label → the last publication some node stored
	cache     recordCache
	calls     map[string]*lookupCall // label → its lookup under way
	unknown   map[string]time.Time   // label → when nobody held it
}

// published is where and at which version a record was last stored.
type published struct {
	addr    id.Address
	version uint64
}

func (s *Service) attachDomains(h *node.Host) error {
	s.dom.own = make(map[string]*wire.DomainRecord)
	s.dom.published = make(map[string]published)
	s.dom.cache.init(MaxCachedDomains)
	h.OnAdmitted(s.republish)
	if !h.Fresh() {
		s.loadOwn()
	}
	return nil
}

// loadOwn reads the records Claim saved. One that is not this identity's,
// or whose claim does not verify, is ignored.
func (s *Service) loadOwn() {
	log := s.h.Logger()
	keys, err := s.h.Store().Keys(keyDomainPrefix)
	if err != nil {
		log.Warn("could not list the saved domains", "err", err)
		return
	}
	for _, k := range keys {
		b, err := s.h.Store().Get(k)
		if err != nil {
			log.Warn("could not read a saved domain", "key", k, "err", err)
			continue
		}
		m, err := wire.Unmarshal(b)
		rec, ok := m.(*wire.DomainRecord)
		switch {
		case err != nil || !ok:
			log.Warn("a saved domain record is corrupt; ignoring it", "key", k, "err", err)
		case rec.Claim.SignKey != s.h.Identity().SignKey():
			log.Warn("a saved domain record is another key's; ignoring it", "domain", rec.Claim.Domain)
		case names.VerifyDomainClaim(&rec.Claim) != nil || keyDomainPrefix+rec.Claim.Domain != k:
			log.Warn("a saved domain record does not verify; ignoring it", "key", k)
		default:
			s.dom.own[rec.Claim.Domain] = rec
		}
	}
}

// ownRecord is this node's record of label, or nil.
func (s *Service) ownRecord(label string) *wire.DomainRecord {
	s.dom.mu.Lock()
	defer s.dom.mu.Unlock()
	return s.dom.own[label]
}

// ResolveOptions shape a Resolve.
type ResolveOptions struct {
	// MaxAge is how old a cached record may be; 0 means the cache's
	// default, a negative value asks the network whatever the cache holds.
	MaxAge time.Duration
}

func notAdmitted() error {
	return node.Errorf(node.CodeNotAdmitted, []error{node.ErrNotAdmitted}, "not admitted to a zone yet")
}

// forged is the error for a record that does not verify.
func forged(err error) error {
	return node.Errorf(CodeForged, []error{err}, "the domain's record does not verify: %s", names.Problem(err))
}

func protocol(format string, args ...any) error {
	return node.Errorf(node.CodeError, []error{wire.ErrProtocol}, "protocol violation: "+format, args...)
}

// refusal turns a relay's refusal into an error worded for people, with
// its code.
func refusal(domain string, re *wire.RemoteError) error {
	code, msg := node.CodeError, re.Message
	switch re.Code {
	case wire.CodeNameTaken:
		code, msg = CodeTaken, fmt.Sprintf("%s belongs to someone else", domain)
	case wire.CodeNotFound:
		code, msg = CodeUnknownDomain, fmt.Sprintf("nobody holds %s", domain)
	case wire.CodeStale:
		code = CodeStale
		msg = fmt.Sprintf("a newer version of %s is already published (%s)", domain, re.Message)
	case wire.CodeBadName:
		code = CodeInvalid
		if strings.Contains(msg, "does not verify") {
			code = CodeForged
		}
	case wire.CodeUnavailable:
		code = node.CodeUnavailable
		if msg == "" {
			msg = "the relay that decides this domain cannot be reached now; try again"
		}
	case wire.CodeRateLimited:
		code = node.CodeRateLimited
		if msg == "" {
			msg = "too many requests; try again later"
		}
	case wire.CodeUnsupported:
		code = node.CodeUnavailable
	}
	if msg == "" {
		msg = re.Error()
	}
	return node.Errorf(code, []error{re}, "%s", msg)
}

// Claim claims domain ("example.ddt" or "example") for this node's key,
// pointing at the site manifest site, at the version after the current
// one (1 for a new domain), and publishes the verified record in the
// DHT. CodeTaken if another key holds it.
func (s *Service) Claim(ctx context.Context, domain string, site chunk.Hash) (*wire.DomainRecord, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	label := Label(domain)
	h := s.h
	if h.Lease().Address.IsZero() {
		return nil, notAdmitted()
	}
	ctx, cancel := context.WithTimeout(ctx, DomainTimeout)
	defer cancel()
	s.dom.claimMu.Lock()
	defer s.dom.claimMu.Unlock()
	// The saved record, or the network's if it is newer: the same key may
	// have updated the domain elsewhere (a native node, another profile),
	// or this node may have none saved.
	cur := s.ownRecord(label)
	latest, err := s.Resolve(ctx, domain, ResolveOptions{MaxAge: -1})
	switch {
	case err == nil:
		if cur == nil || latest.Claim.SignKey != cur.Claim.SignKey || latest.Claim.Version > cur.Claim.Version {
			cur = latest
		}
	case node.Explain(err).Code == CodeUnknownDomain:
	case cur == nil:
		return nil, err
	}
	if cur != nil && cur.Claim.SignKey != h.Identity().SignKey() {
		return nil, node.Errorf(CodeTaken, nil, "%s belongs to someone else", domain)
	}
	if cur != nil && cur.Claim.Site == site {
		s.savePublish(cur, false)
		return cur, nil // already pointing there: nothing new to sequence
	}
	version := uint64(1)
	if cur != nil {
		version = cur.Claim.Version + 1
	}
	rec, err := s.claimAt(ctx, domain, site, version)
	if err != nil && node.Explain(err).Code == CodeStale {
		// The ledger holds a later version than this node knew of (made
		// elsewhere with this key): go on from it.
		latest, rerr := s.askRelay(ctx, domain)
		if rerr != nil {
			return nil, err
		}
		if latest.Claim.SignKey != h.Identity().SignKey() {
			return nil, node.Errorf(CodeTaken, nil, "%s belongs to someone else", domain)
		}
		next := latest.Claim.Version
		if cur != nil && cur.Claim.SignKey == latest.Claim.SignKey {
			next = max(next, cur.Claim.Version)
		}
		rec, err = s.claimAt(ctx, domain, site, next+1)
	}
	if err != nil {
		return nil, err
	}
	if err := s.savePublish(rec, true); err != nil {
		return nil, err
	}
	h.Logger().Info("domain claimed", "domain", domain, "version", rec.Claim.Version, "zone", rec.Zone, "index", rec.Index)
	h.Emit(EventDomain, ViewOf(rec))
	return rec, nil
}

// claimAt asks the relay to sequence this node's claim of domain for
// site at version, and verifies its answer.
func (s *Service) claimAt(ctx context.Context, domain string, site chunk.Hash, version uint64) (*wire.DomainRecord, error) {
	h := s.h
	claim, err := names.NewDomainClaim(h.Identity(), Label(domain), site, version)
	if err != nil {
		return nil, node.Errorf(CodeInvalid, []error{err}, "%s", names.Problem(err))
	}
	reply, err := h.RelayRequest(ctx, func(id uint32) wire.Message { return &wire.ClaimDomain{ID: id, Claim: *claim} })
	if err != nil {
		return nil, err
	}
	res, ok := reply.(*wire.DomainResult)
	if !ok {
		return nil, protocol("the relay answered a domain claim with type %d", reply.Type())
	}
	if re, ok := res.Err().(*wire.RemoteError); ok {
		h.Logger().Info("domain claim refused", "domain", domain, "version", version, "code", re.Code, "message", re.Message)
		return nil, refusal(domain, re)
	}
	rec := res.Record
	if rec == nil {
		return nil, protocol("the relay accepted the domain claim but sent no record")
	}
	if !names.SameDomainClaim(&rec.Claim, claim) {
		h.Logger().Warn("the relay answered a domain claim with a record of another claim", "domain", domain)
		return nil, forged(fmt.Errorf("%w: it is not the claim this node sent", names.ErrForged))
	}
	if err := s.check(rec, Label(domain), s.sitesRelays()); err != nil {
		h.Logger().Warn("the relay's domain record does not verify", "domain", domain, "err", err)
		return nil, forged(err)
	}
	return rec, nil
}

// savePublish keeps rec, this node's verified record, as its own (on
// disk if save) and in the cache, and publishes it in the DHT in the
// background.
func (s *Service) savePublish(rec *wire.DomainRecord, save bool) error {
	h := s.h
	label := rec.Claim.Domain
	if save {
		b, err := wire.Marshal(rec)
		if err != nil {
			return err
		}
		if err := store.PutDurable(h.Store(), keyDomainPrefix+label, b); err != nil { // a lost record is a lost next version
			return node.Errorf(node.CodeError, []error{err}, "could not save the record of %s.ddt: %v", label, err)
		}
	}
	s.dom.mu.Lock()
	s.dom.own[label] = rec
	delete(s.dom.unknown, label)
	s.dom.mu.Unlock()
	s.dom.cache.put(label, rec, h.Clock().Now())
	go s.publish(h.Life(), rec)
	return nil
}

// republish runs at every admission: this node's records go into the
// (possibly new) DHT.
func (s *Service) republish(ctx context.Context, _ wire.Lease) {
	s.dom.mu.Lock()
	recs := make([]*wire.DomainRecord, 0, len(s.dom.own))
	for _, rec := range s.dom.own {
		recs = append(recs, rec)
	}
	s.dom.mu.Unlock()
	for _, rec := range recs {
		go s.publish(ctx, rec)
	}
}

// publish stores rec, this node's, in the DHT under its domain's key,
// signed by this node's key; the DHT republishes it from then on. A
// publication nobody stored is tried again a few times. It logs failures
// and returns.
func (s *Service) publish(ctx context.Context, rec *wire.DomainRecord) {
	h, log := s.h, s.h.Logger()
	label := rec.Claim.Domain
	r, err := names.SealDomain(h.Identity(), rec)
	if err != nil {
		log.Warn("could not encode the domain record for the DHT", "domain", label, "err", err)
		return
	}
	h.PutPatiently(ctx, r, "record of "+label+Suffix, publishRetries, PublishTimeout, func(addr id.Address) bool {
		s.dom.mu.Lock()
		defer s.dom.mu.Unlock()
		p := s.dom.published[label]
		return p.addr == addr && p.version >= rec.Claim.Version
	}, func(addr id.Address, _ int) {
		s.dom.mu.Lock()
		defer s.dom.mu.Unlock()
		if p := s.dom.published[label]; p.addr != addr || p.version < rec.Claim.Version {
			s.dom.published[label] = published{addr, rec.Claim.Version}
		}
	})
}

// Resolve returns the verified current record of domain: from the cache,
// the DHT, or the relay. CodeUnknownDomain if nobody holds it. Records
// that do not verify are logged and dropped.
func (s *Service) Resolve(ctx context.Context, domain string, o ResolveOptions) (*wire.DomainRecord, error) {
	domain, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	label := Label(domain)
	h := s.h
	if o.MaxAge >= 0 {
		ttl := o.MaxAge
		if ttl == 0 {
			ttl = ResolveTTL
		}
		now := h.Clock().Now()
		if rec := s.dom.cache.get(label, now, ttl); rec != nil {
			return rec, nil
		}
		if s.dom.knownUnknown(label, now, min(ttl, UnknownTTL)) {
			return nil, node.Errorf(CodeUnknownDomain, nil, "nobody holds %s", domain)
		}
	}
	if h.Lease().Address.IsZero() {
		return nil, notAdmitted()
	}
	// One lookup of a domain at a time, in the node's life: whoever asks
	// meanwhile (a page's many requests, a site linking to many unknown
	// domains) shares its answer instead of asking the DHT and the relay
	// again, and a caller that gives up does not end it for the others.
	call, lead := s.dom.join(label)
	if lead {
		go func() {
			lctx, cancel := context.WithTimeout(h.Life(), DomainTimeout)
			defer cancel()
			rec, err := s.lookup(lctx, domain, label)
			if err != nil && node.Explain(err).Code == CodeUnknownDomain {
				s.dom.noteUnknown(label, h.Clock().Now())
			}
			s.dom.finish(label, call, rec, err)
		}()
	}
	select {
	case <-call.done:
		return call.rec, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// UnknownTTL is how long "nobody holds it" is answered from memory (never
// longer than the caller's MaxAge).
const UnknownTTL = 10 * time.Second

// lookupCall is one lookup of a domain, shared by everyone who asks
// while it runs.
type lookupCall struct {
	done chan struct{}
	rec  *wire.DomainRecord
	err  error
}

// join returns the lookup of label under way, or starts one (lead).
func (d *domains) join(label string) (*lookupCall, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.calls[label]; ok {
		return c, false
	}
	if d.calls == nil {
		d.calls = make(map[string]*lookupCall)
	}
	c := &lookupCall{done: make(chan struct{})}
	d.calls[label] = c
	return c, true
}

func (d *domains) finish(label string, c *lookupCall, rec *wire.DomainRecord, err error) {
	d.mu.Lock()
	delete(d.calls, label)
	d.mu.Unlock()
	c.rec, c.err = rec, err
	close(c.done)
}

// noteUnknown remembers that nobody held label at now; knownUnknown
// reports whether that was less than ttl ago. At most MaxCachedDomains
// are remembered: beyond, the memory starts afresh.
func (d *domains) noteUnknown(label string, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unknown == nil || len(d.unknown) >= MaxCachedDomains {
		d.unknown = make(map[string]time.Time)
	}
	d.unknown[label] = now
}

func (d *domains) knownUnknown(label string, now time.Time, ttl time.Duration) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.unknown[label]
	return ok && now.Sub(at) < ttl && now.Sub(at) >= 0
}

// lookup resolves label (of domain) afresh: the DHT's records, else the
// relay's answer.
func (s *Service) lookup(ctx context.Context, domain, label string) (*wire.DomainRecord, error) {
	h := s.h
	relays := s.sitesRelays()
	home, _ := names.Home(names.DomainHash(label), relays.Keys)
	// The DHT's records are candidates; only an unambiguous answer is
	// taken from it alone: the best record the domain's home sequenced,
	// with no other ledger's record of another owner beside it. Anything
	// else is the relay's to settle.
	var cands []*wire.DomainRecord
	var doubt error // why a record was not taken from the DHT
	if own := s.ownRecord(label); own != nil && s.check(own, label, relays) == nil {
		cands = append(cands, own)
	}
	recs, err := h.Get(ctx, names.DomainKey(label))
	if err != nil && ctx.Err() == nil {
		h.Logger().Debug("DHT lookup of a domain failed", "domain", domain, "err", err)
	}
	for _, r := range recs {
		rec, err := names.OpenDomain(label, &r)
		if err != nil {
			// Anyone may store junk under a public key; it says nothing
			// of the domain.
			h.Logger().Debug("dropped a value under a domain's key that is no domain record", "domain", domain, "signer", hex.EncodeToString(r.Signer[:4]), "err", err)
			continue
		}
		if err := s.check(rec, label, relays); err != nil {
			h.Logger().Warn("dropped a domain record from the DHT that does not verify", "domain", domain, "signer", hex.EncodeToString(r.Signer[:4]), "err", err)
			doubt = err
			continue
		}
		cands = append(cands, rec)
	}
	best := settled(cands, home)
	if best == nil {
		if err := ctx.Err(); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, err
			}
			return nil, node.Errorf(node.CodeTimeout, []error{node.ErrTimeout, err}, "no answer about %s in time", domain)
		}
		rec, err := s.askRelay(ctx, domain)
		if err != nil {
			if doubt != nil && node.Explain(err).Code != CodeUnknownDomain && !errors.Is(err, context.Canceled) {
				return nil, forged(doubt)
			}
			return nil, err
		}
		best = rec
	}
	// Once the owner is settled, its newest version counts, whichever
	// trusted ledger sequenced it (its updates may have been decided at
	// the relay that held it before the home changed): only the owner
	// signs versions.
	for _, rec := range cands {
		if rec.Claim.SignKey == best.Claim.SignKey && rec.Claim.Version > best.Claim.Version {
			best = rec
		}
	}
	// A stale DHT node's older version never replaces a newer one seen.
	return s.dom.cache.put(label, best, h.Clock().Now()), nil
}

// settled is the record the DHT settles alone among verified records, or
// nil: the best of those the domain's home sequenced (one ledger orders
// its entries), unless another relay's ledger holds the domain for
// another key (which ledger held it first, only relays know).
func settled(cands []*wire.DomainRecord, home [32]byte) *wire.DomainRecord {
	var best *wire.DomainRecord
	for _, rec := range cands {
		if rec.RelayKey == home && (best == nil || names.BetterDomain(rec, best)) {
			best = rec
		}
	}
	for _, rec := range cands {
		if best != nil && rec.RelayKey != home && rec.Claim.SignKey != best.Claim.SignKey {
			return nil
		}
	}
	return best
}

// askRelay asks the node's relay for the record of domain.
func (s *Service) askRelay(ctx context.Context, domain string) (*wire.DomainRecord, error) {
	h, label := s.h, Label(domain)
	reply, err := h.RelayRequest(ctx, func(id uint32) wire.Message {
		return &wire.DomainLookup{ID: id, Hash: names.DomainHash(label)}
	})
	if err != nil {
		return nil, err
	}
	res, ok := reply.(*wire.DomainResult)
	if !ok {
		return nil, protocol("the relay answered a domain lookup with type %d", reply.Type())
	}
	if re, ok := res.Err().(*wire.RemoteError); ok {
		return nil, refusal(domain, re)
	}
	if res.Record == nil {
		return nil, protocol("the relay found the domain but sent no record")
	}
	if err := s.check(res.Record, label, s.sitesRelays()); err != nil {
		h.Logger().Warn("dropped a domain record from the relay that does not verify", "domain", domain, "err", err)
		return nil, forged(err)
	}
	return res.Record, nil
}

// sitesRelays are the relays the node's last admission named as trusted
// and running the domain service.
func (s *Service) sitesRelays() names.Relays {
	var rs names.Relays
	for _, r := range s.h.Relays() {
		if r.Flags.Has(wire.RelayTrusted | wire.RelaySites) {
			rs.Add(r.Info.Key, r.Info.Zone)
		}
	}
	return rs
}

// check verifies rec as the record of label, sequenced by one of relays.
func (s *Service) check(rec *wire.DomainRecord, label string, relays names.Relays) error {
	if rec.Claim.Domain != label {
		return fmt.Errorf("%w: a record of %s.ddt, not %s.ddt", names.ErrForged, rec.Claim.Domain, label)
	}
	if err := relays.Sequenced(rec.RelayKey, rec.Zone, "domains"); err != nil {
		return err
	}
	_, err := names.VerifyDomain(rec, relays.ZoneOf)
	return err
}

// recordCache keeps verified records by label, at most max of them, the
// least recently used going first.
type recordCache struct {
	mu    sync.Mutex
	max   int
	order *list.List               // of *cachedRecord, most recently used first
	byKey map[string]*list.Element // label → its element
}

type cachedRecord struct {
	label string
	rec   *wire.DomainRecord
	at    time.Time
}

func (c *recordCache) init(max int) {
	c.max, c.order, c.byKey = max, list.New(), make(map[string]*list.Element)
}

// get returns the record of label if it was put less than ttl ago.
func (c *recordCache) get(label string, now time.Time, ttl time.Duration) *wire.DomainRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[label]
	if !ok {
		return nil
	}
	cr := e.Value.(*cachedRecord)
	if age := now.Sub(cr.at); age >= ttl || age < 0 {
		return nil
	}
	c.order.MoveToFront(e)
	return cr.rec
}

// put keeps rec as label's record, resolved at now, unless the cache
// holds a higher version of the same owner; it returns the record kept.
func (c *recordCache) put(label string, rec *wire.DomainRecord, now time.Time) *wire.DomainRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[label]; ok {
		cr := e.Value.(*cachedRecord)
		if cr.rec.Claim.SignKey != rec.Claim.SignKey || cr.rec.Claim.Version <= rec.Claim.Version {
			cr.rec = rec
		}
		cr.at = now
		c.order.MoveToFront(e)
		return cr.rec
	}
	for c.order.Len() >= c.max {
		last := c.order.Back()
		delete(c.byKey, last.Value.(*cachedRecord).label)
		c.order.Remove(last)
	}
	c.byKey[label] = c.order.PushFront(&cachedRecord{label: label, rec: rec, at: now})
	return rec
}

// View is a domain record as window.ddt and the native node show it.
type View struct {
	Domain  string `json:"domain"`  // "example.ddt"
	Owner   string `json:"owner"`   // the owner's sign key, hex
	Site    string `json:"site"`    // the site manifest's content id
	Version uint64 `json:"version"` // grows with each update
	Zone    string `json:"zone"`    // the zone whose ledger sequenced it
	Relay   string `json:"relay"`   // that relay's key, hex
	Index   uint64 `json:"index"`   // the entry's index in that ledger
}

// ViewOf is rec's View.
func ViewOf(rec *wire.DomainRecord) View {
	return View{Domain: rec.Claim.Domain + Suffix, Owner: hex.EncodeToString(rec.Claim.SignKey[:]), Site: chunk.Hash(rec.Claim.Site).String(),
		Version: rec.Claim.Version, Zone: rec.Zone, Relay: hex.EncodeToString(rec.RelayKey[:]), Index: rec.Index}
}
