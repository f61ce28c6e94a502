package unicast

import (
	"context"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"slices"
	"sort"
	"sync"
	"time"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/node"
	"ddt/shared/unicast/onion"
	"ddt/shared/unicast/ratchet"
	"ddt/shared/wire"
)

// Timings and bounds of the key exchange.
const (
	// ChainTimeout is how long a share waits for its ShareAck before it
	// goes again on a new chain.
	ChainTimeout = 4 * time.Second
	// ChainAttempts bounds the chains one share is sent on.
	ChainAttempts = 6
	// SessionWait is how long Send waits for a session (the key
	// exchange running, or the acceptor's about to) before it queues
	// the message unsealed.
	SessionWait = 45 * time.Second
	// ExchangeTimeout bounds a key exchange, from its first chain to the
	// confirmation, on either side.
	ExchangeTimeout = 2 * time.Minute
	// MaxIncoming bounds the exchanges received in part (only friends'
	// signed shares start one).
	MaxIncoming = 64
	// MaxSeenShares bounds the shares remembered against replays.
	MaxSeenShares = 4096
	// MaxReplays is the capacity of the onion layers' replay filter.
	MaxReplays = 1 << 14
	// MaxOnionWork bounds the onions being peeled at once; past it they
	// are dropped.
	MaxOnionWork = 16
	// OnionBurst and OnionRate bound the onions one origin (the node that
	// routed them to us) gets peeled: a burst, then one per OnionRate.
	OnionBurst = 64
	OnionRate  = time.Second
	// MaxOnionOrigins bounds the origins whose rates are tracked.
	MaxOnionOrigins = 1024
	// confirmAttempts bounds the sends of the receiver's confirmation.
	confirmAttempts = 6
)

// exchange is a key exchange this node started (the initiator's side).
type exchange struct {
	id      [16]byte
	name    string
	shares  [4][32]byte
	priv    [32]byte // the ratchet key pair announced in the shares
	pub     [32]byte
	started time.Time
	acked   [4]chan struct{}
	failed  []id.Address // hops of chains that got no ShareAck
}

// incoming is a key exchange received in part (the receiver's side).
type incoming struct {
	name    string
	ratchet [32]byte
	shares  [4][32]byte
	have    [4]bool
	at      time.Time
}

type shareKey struct {
	session [16]byte
	seq     uint8
}

func (s *Service) rand() io.Reader {
	if s.cfg.Rand != nil {
		return s.cfg.Rand
	}
	return rand.Reader
}

func sleep(h *node.Host, d time.Duration) bool {
	return clock.Sleep(h.Clock(), d, h.Life().Done())
}

// startExchange starts a key exchange with the friend name, unless one
// runs: a session id, four shares and a ratchet key pair, each share on
// a chain of its own.
func (s *Service) startExchange(name string) {
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[name]
	if f == nil || f.State != stateFriend || len(f.OnionKey) == 0 {
		s.mu.Unlock()
		return
	}
	for sid, x := range s.exchanges {
		if x.name == name {
			if now.Sub(x.started) < ExchangeTimeout {
				s.mu.Unlock()
				return
			}
			delete(s.exchanges, sid)
		}
	}
	x := &exchange{name: name, started: now}
	r := s.rand()
	var err error
	if _, err = io.ReadFull(r, x.id[:]); err == nil {
		for i := range x.shares {
			if _, err = io.ReadFull(r, x.shares[i][:]); err != nil {
				break
			}
			x.acked[i] = make(chan struct{})
		}
	}
	var k *ecdh.PrivateKey
	if err == nil {
		k, err = ecdh.X25519().GenerateKey(r)
	}
	if err != nil {
		s.mu.Unlock()
		s.h.Logger().Warn("could not make the key exchange's keys", "err", err)
		return
	}
	copy(x.priv[:], k.Bytes())
	copy(x.pub[:], k.PublicKey().Bytes())
	s.exchanges[x.id] = x
	to := onion.Hop{Address: f.Address, Key: f.OnionKey}
	theirs := f.SignKey
	s.mu.Unlock()
	s.h.Logger().Info("key exchange started", "name", name)
	s.h.Emit(EventSession, SessionView{Name: name, State: "connecting"})
	ctx, cancel := context.WithTimeout(s.h.Life(), ExchangeTimeout)
	go func() {
		<-ctx.Done()
		cancel()
		s.mu.Lock()
		_, open := s.exchanges[x.id]
		delete(s.exchanges, x.id)
		s.mu.Unlock()
		if open && s.h.Life().Err() == nil {
			s.h.Logger().Warn("a key exchange did not complete", "name", name)
			s.h.Emit(EventSession, SessionView{Name: name, State: "none"})
		}
	}()
	for seq := range x.shares {
		go s.sendShare(ctx, x, uint8(seq), to, theirs)
	}
}

// sendShare sends share seq of x on chains of three random hops until a
// ShareAck comes, at most ChainAttempts times.
func (s *Service) sendShare(ctx context.Context, x *exchange, seq uint8, to onion.Hop, theirs [32]byte) {
	h := s.h
	var mine []id.Address // hops of this share's failed chains
	for attempt := 0; attempt < ChainAttempts; attempt++ {
		if attempt > 0 {
			s.stats.chainsRetried.Add(1)
		}
		s.mu.Lock()
		all := slices.Clone(x.failed)
		s.mu.Unlock()
		hops, err := s.pickHops(ctx, to.Address, all, mine, attempt == 0)
		if err != nil {
			h.Logger().Info("no hops for a chain of the key exchange", "err", err)
			if !clock.Sleep(h.Clock(), ChainTimeout, ctx.Done()) {
				return
			}
			continue
		}
		cs := &wire.ConnectShare{Session: x.id, Seq: seq, Share: x.shares[seq], Ratchet: x.pub,
			From: h.Identity().SignKey(), To: theirs, Time: h.Clock().Now().UnixMilli()}
		cs.Sig = h.Identity().Sign(cs.SignedBytes())
		payload, err := wire.Marshal(cs)
		if err != nil {
			h.Logger().Warn("could not encode a share", "err", err)
			return
		}
		o, err := onion.Build(hops, to, payload, h.Clock().Now(), s.rand())
		if err != nil {
			h.Logger().Warn("could not build an onion", "err", err)
			return
		}
		s.stats.chainsSent.Add(1)
		if err := h.SendRouted(hops[0].Address, o); err != nil {
			h.Logger().Info("could not send a chain's onion", "err", err)
		}
		t := h.Clock().NewTimer(ChainTimeout)
		select {
		case <-x.acked[seq]:
			t.Stop()
			return
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		for _, hp := range hops {
			mine = append(mine, hp.Address)
		}
		s.mu.Lock()
		for _, hp := range hops {
			x.failed = append(x.failed, hp.Address)
		}
		s.mu.Unlock()
	}
	h.Logger().Warn("a share of the key exchange got no acknowledgement on any chain", "name", x.name, "seq", seq)
}

// pickHops picks onion.Hops intermediaries at random among the routing
// table's contacts, neither friend, each with a KeyRecord that verifies:
// those that were in the fewest of the exchange's failed chains (all;
// this share's, mine, count twice) first.
func (s *Service) pickHops(ctx context.Context, friend id.Address, all, mine []id.Address, first bool) ([]onion.Hop, error) {
	self := s.h.Lease().Address
	// Each candidate's score is how often it was in a failed chain of
	// this exchange (twice for a chain of this share): the least
	// suspect come first, in random order among equals. A hop that
	// failed is tried again only when too few others are left, so a
	// small zone never runs out of chains, and a hop that drops
	// everything sinks below those that merely shared a chain with it.
	score := map[id.Address]int{}
	for _, a := range all {
		score[a]++
	}
	for _, a := range mine {
		score[a] += 2
	}
	var cands []id.Address
	for _, a := range s.h.Contacts() {
		if a != self && a != friend {
			cands = append(cands, a)
		}
	}
	if err := shuffle(cands, s.rand()); err != nil {
		return nil, err
	}
	sort.SliceStable(cands, func(i, j int) bool { return score[cands[i]] < score[cands[j]] })
	if first && !s.preferHop.IsZero() {
		if i := slices.Index(cands, s.preferHop); i > 0 {
			cands[0], cands[i] = cands[i], cands[0]
		}
	}
	var hops []onion.Hop
	for _, a := range cands {
		if len(hops) == onion.Hops {
			break
		}
		k, err := s.hopKey(ctx, a)
		if err != nil {
			s.h.Logger().Debug("a candidate hop has no key record that verifies", "hop", a.Short(), "err", err)
			continue
		}
		hops = append(hops, onion.Hop{Address: a, Key: k})
	}
	if len(hops) < onion.Hops {
		return nil, fmt.Errorf("only %d of the %d contacts have a verified onion key; %d needed", len(hops), len(cands), onion.Hops)
	}
	return hops, nil
}

// shuffle permutes a with randomness from r (Fisher–Yates).
func shuffle(a []id.Address, r io.Reader) error {
	for i := len(a) - 1; i > 0; i-- {
		j, err := rand.Int(r, big.NewInt(int64(i+1)))
		if err != nil {
			return err
		}
		a[i], a[j.Int64()] = a[j.Int64()], a[i]
	}
	return nil
}

// onOnion takes an onion layer routed to us, within the origin's rate and
// the node's bound on work in flight; it runs on a read loop, so the
// peeling goes on a goroutine.
func (s *Service) onOnion(origin wire.Lease, m wire.Message) {
	o := m.(*wire.Onion)
	if !s.flood.allow(origin.Address, s.h.Clock().Now()) {
		s.stats.onionsDropped.Add(1)
		return
	}
	select {
	case s.work <- struct{}{}:
	default:
		s.stats.onionsDropped.Add(1)
		return
	}
	go func() {
		defer func() { <-s.work }()
		if err := s.peel(o); err != nil {
			s.stats.onionsDropped.Add(1)
			s.h.Logger().Debug("dropped an onion", "from", origin.Address.Short(), "err", err)
		}
	}()
}

// peel opens our layer of o: forwards the rest to the next hop, or, if
// we are the receiver, takes the share it carries.
func (s *Service) peel(o *wire.Onion) error {
	now := s.h.Clock().Now()
	p, err := onion.Peel(s.okey, o, now)
	if err != nil {
		return err
	}
	s.omu.Lock()
	fresh := s.replays.Admit(p.Tag, p.Time, now)
	s.omu.Unlock()
	if !fresh {
		return onion.ErrReplay
	}
	if p.Final {
		m, err := wire.Unmarshal(p.Payload)
		if err != nil {
			return err
		}
		cs, ok := m.(*wire.ConnectShare)
		if !ok {
			return fmt.Errorf("an onion carrying type %d", m.Type())
		}
		return s.takeShare(cs)
	}
	if s.cfg.DropOnions {
		return fmt.Errorf("this node drops onions (DropOnions)")
	}
	if err := s.h.SendRouted(p.Next, p.Forward); err != nil {
		return err
	}
	s.stats.onionsForwarded.Add(1)
	return nil
}

// takeShare checks a share that reached us (signed by a friend, for us,
// fresh, not seen before), acknowledges it, and with all four of its
// session derives the keyring and sends the confirmation.
func (s *Service) takeShare(cs *wire.ConnectShare) error {
	h := s.h
	now := h.Clock().Now()
	me := h.Identity().SignKey()
	if cs.To != me {
		return refuse(CodeForged, "a share for another node")
	}
	if !identity.Verify(cs.From, cs.SignedBytes(), cs.Sig) {
		return refuse(CodeForged, "a share whose signature does not verify")
	}
	at := time.UnixMilli(cs.Time)
	if d := now.Sub(at); d > onion.Window || d < -onion.Window {
		return refuse(CodeReplay, "a share made %v from now, outside the window", d.Round(time.Second))
	}
	s.mu.Lock()
	f := s.friendByKeyLocked(cs.From)
	if f == nil {
		s.mu.Unlock()
		return refuse(CodeNotFriend, "a share from a key that is not a friend's")
	}
	addr, name := f.Address, f.Name
	k := shareKey{cs.Session, cs.Seq}
	if _, dup := s.seenShare[k]; dup || s.sessions[cs.Session] != nil {
		s.mu.Unlock()
		s.ackShare(addr, cs) // its ShareAck may have been lost
		return refuse(CodeReplay, "share %d of this session arrived before", cs.Seq)
	}
	in := s.incoming[cs.Session]
	if in == nil {
		s.pruneIncomingLocked(now)
		if len(s.incoming) >= MaxIncoming {
			s.mu.Unlock()
			return refuse(node.CodeRateLimited, "too many key exchanges at once")
		}
		in = &incoming{name: name, ratchet: cs.Ratchet, at: now}
		s.incoming[cs.Session] = in
	}
	if in.name != name || in.ratchet != cs.Ratchet {
		s.mu.Unlock()
		return refuse(CodeForged, "a share that does not match its session's others")
	}
	s.pruneSeenLocked(now)
	s.seenShare[k] = now
	in.shares[cs.Seq], in.have[cs.Seq] = cs.Share, true
	complete := in.have == [4]bool{true, true, true, true}
	var x *session
	var sealed []byte
	var err error
	if complete {
		delete(s.incoming, cs.Session)
		x, sealed, err = s.receiveSessionLocked(f, cs.Session, in)
	}
	s.mu.Unlock()
	s.ackShare(addr, cs)
	if err != nil {
		h.Logger().Warn("could not make the session of a key exchange", "name", name, "err", err)
		return err
	}
	if x != nil {
		h.Emit(EventSession, SessionView{Name: name, State: "connecting"})
		go s.sendConfirm(x, sealed)
	}
	return nil
}

func (s *Service) ackShare(addr id.Address, cs *wire.ConnectShare) {
	if err := s.h.SendRouted(addr, &wire.ShareAck{Session: cs.Session, Seq: cs.Seq}); err != nil {
		s.h.Logger().Info("could not send a ShareAck", "err", err)
	}
}

func (s *Service) friendByKeyLocked(key [32]byte) *friend {
	for _, f := range s.friends {
		if f.SignKey == key && f.State == stateFriend {
			return f
		}
	}
	return nil
}

func (s *Service) friendAtLocked(addr id.Address) *friend {
	for _, f := range s.friends {
		if f.Address == addr && f.State == stateFriend {
			return f
		}
	}
	return nil
}

func (s *Service) pruneIncomingLocked(now time.Time) {
	for sid, in := range s.incoming {
		if now.Sub(in.at) > ExchangeTimeout {
			delete(s.incoming, sid)
		}
	}
}

func (s *Service) pruneSeenLocked(now time.Time) {
	if len(s.seenShare) < MaxSeenShares {
		return
	}
	for k, at := range s.seenShare {
		if now.Sub(at) > 2*onion.Window {
			delete(s.seenShare, k)
		}
	}
	for k := range s.seenShare { // still full: forget any (their sessions are made)
		if len(s.seenShare) < MaxSeenShares {
			break
		}
		delete(s.seenShare, k)
	}
}

// keyring derives the keyring of the session sid between the initiator
// (identity key from) and the receiver (to), f being the other side.
func (s *Service) keyring(f *friend, sid [16]byte, shares [4][32]byte, from, to [32]byte) (ratchet.Keyring, error) {
	static, err := s.h.Identity().Agree(f.AgreeKey)
	if err != nil {
		return ratchet.Keyring{}, err
	}
	return ratchet.Derive(sid, shares, static, from, to), nil
}

// receiveSessionLocked makes the receiver's session of a complete
// exchange and seals its confirmation.
func (s *Service) receiveSessionLocked(f *friend, sid [16]byte, in *incoming) (*session, []byte, error) {
	me := s.h.Identity().SignKey()
	kr, err := s.keyring(f, sid, in.shares, f.SignKey, me)
	if err != nil {
		return nil, nil, err
	}
	st, err := ratchet.NewReceiver(kr, in.ratchet, s.rand())
	if err != nil {
		return nil, nil, err
	}
	tag := kr.Confirm(sid)
	p := plain{Kind: kindConfirm, Time: s.h.Clock().Now().UnixMilli(), Body: tag[:]}
	sealed, err := st.Seal(p.marshal(), ad(sid, me, f.SignKey), s.rand())
	if err != nil {
		return nil, nil, err
	}
	x := &session{ID: sid, Name: f.Name, Created: s.h.Clock().Now().UnixMilli(), st: st}
	if err := s.addSessionLocked(x); err != nil {
		return nil, nil, err
	}
	return x, sealed, nil
}

// sendConfirm sends the receiver's confirmation until the initiator's
// sealed receipt answers it.
func (s *Service) sendConfirm(x *session, sealed []byte) {
	h := s.h
	for range confirmAttempts {
		s.mu.Lock()
		f := s.friends[x.Name]
		ready := x.Ready
		s.mu.Unlock()
		if f == nil || ready {
			return
		}
		ctx, cancel := context.WithTimeout(h.Life(), DirectTimeout)
		ans, err := h.Request(ctx, f.Address, &wire.ChatMessage{Session: x.ID, Sealed: sealed})
		cancel()
		if err == nil {
			if err := s.takeAnswer(x.Name, ans); err != nil {
				h.Logger().Warn("the answer to a session's confirmation does not open", "name", x.Name, "err", err)
			}
			return
		}
		if answered(err) {
			h.Logger().Warn("the friend refused the session's confirmation", "name", x.Name, "err", err)
			return
		}
		if !sleep(h, ChainTimeout) {
			return
		}
	}
}

// confirmLocked opens the receiver's confirmation of an exchange we
// started: the session is ready. It returns the session.
func (s *Service) confirmLocked(f *friend, x *exchange, sealed []byte) (*session, error) {
	me := s.h.Identity().SignKey()
	kr, err := s.keyring(f, x.id, x.shares, me, f.SignKey)
	if err != nil {
		return nil, err
	}
	st, err := ratchet.NewInitiator(kr, x.priv)
	if err != nil {
		return nil, err
	}
	pt, err := st.Open(sealed, ad(x.id, f.SignKey, me))
	if err != nil {
		return nil, refuse(CodeForged, "the confirmation does not open with the exchange's keys")
	}
	p, err := parsePlain(pt)
	tag := kr.Confirm(x.id)
	if err != nil || p.Kind != kindConfirm || !hmac.Equal(p.Body, tag[:]) {
		return nil, refuse(CodeForged, "the confirmation does not confirm the exchange")
	}
	sess := &session{ID: x.id, Name: f.Name, Initiator: true, Created: s.h.Clock().Now().UnixMilli(), st: st}
	if err := s.addSessionLocked(sess); err != nil {
		return nil, err
	}
	delete(s.exchanges, x.id)
	s.sessionReadyLocked(sess)
	return sess, nil
}

// onShareAck takes the receiver's acknowledgement of a share.
func (s *Service) onShareAck(origin wire.Lease, m wire.Message) {
	a := m.(*wire.ShareAck)
	if a.Seq > 3 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.exchanges[a.Session]
	if x == nil {
		return
	}
	if f := s.friends[x.name]; f == nil || f.SignKey != origin.SignKey {
		return
	}
	select {
	case <-x.acked[a.Seq]:
	default:
		close(x.acked[a.Seq])
	}
}

// rates limits the onions each origin gets peeled (a token bucket per
// origin, at most MaxOnionOrigins tracked).
type rates struct {
	mu sync.Mutex
	m  map[id.Address]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func (r *rates) allow(a id.Address, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[id.Address]*bucket{}
	}
	b := r.m[a]
	if b == nil {
		if len(r.m) >= MaxOnionOrigins {
			for k, v := range r.m {
				if now.Sub(v.at) > OnionBurst*OnionRate {
					delete(r.m, k)
				}
			}
			if len(r.m) >= MaxOnionOrigins {
				return false
			}
		}
		b = &bucket{tokens: OnionBurst, at: now}
		r.m[a] = b
	}
	b.tokens = min(OnionBurst, b.tokens+float64(now.Sub(b.at))/float64(OnionRate))
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
