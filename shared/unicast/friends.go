package unicast

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"ddt/shared/id"
	"ddt/shared/names"
	"ddt/shared/node"
	"ddt/shared/unicast/onion"
	"ddt/shared/unicast/ratchet"
	"ddt/shared/username"
	"ddt/shared/wire"
)

// Limits on friends and requests.
const (
	// MaxRequests bounds the friend requests waiting for an answer; past
	// it, new ones are refused (rate-limited) until the user answers some
	// or they pass RequestMaxAge.
	MaxRequests = 256
	// RequestMaxAge is how long a request waits for an answer before it is
	// dropped (the asker may ask again): requests nobody answers cannot
	// keep the list full for good.
	RequestMaxAge = 30 * 24 * time.Hour
	// MaxFriends bounds the friends (and our pending requests).
	MaxFriends = 4096
	// onlineFor is how long a friend counts as online after it last
	// answered or sent something.
	onlineFor = 5 * time.Minute
	// peerExchangeWait is how long the requester, once accepted, leaves
	// the key exchange to the acceptor before it starts one itself.
	peerExchangeWait = 40 * time.Second
)

// Friend states, as FriendView.State shows them.
const (
	stateFriend    = "friend"
	stateRequested = "requested"
	stateDeclined  = "declined"
)

// friend is a friend, or a name we asked, as the store keeps it
// ("friends/<name>"). A friend is its identity key: a record of
// its name with another key is refused.
type friend struct {
	Name     string
	SignKey  [32]byte
	AgreeKey [32]byte
	OnionKey []byte
	Address  id.Address
	Since    int64
	State    string
	// Answer: our acceptance has not reached the friend yet.
	Answer   bool
	Unread   int
	Sent     uint64 // the number of our last message to it
	Received uint64 // the highest number of its messages delivered in order
	Seq      uint64 // the last history entry's sequence number
	// Current is the session our messages are sealed with.
	Current [16]byte
	// AcceptedAt is when its acceptance of our request came (the
	// acceptor then starts the key exchange).
	AcceptedAt int64

	safety string // the safety number, computed once
}

// request is a friend request waiting for our answer ("requests/<name>").
type request struct {
	From     string
	Address  id.Address
	At       int64
	SignKey  [32]byte
	AgreeKey [32]byte
	OnionKey []byte
}

func keyFriend(name string) string  { return "friends/" + name }
func keyRequest(name string) string { return "requests/" + name }

// saveFriendLocked persists f; s.mu is held.
func (s *Service) saveFriendLocked(f *friend) error {
	if err := putRecord(s.h.Store(), keyFriend(f.Name), f); err != nil {
		s.h.Logger().Warn("could not save a friend", "name", f.Name, "err", err)
		return node.Errorf(node.CodeError, []error{err}, "could not save the friend %q: %v", f.Name, err)
	}
	return nil
}

// loadFriends reads friends and requests from the store.
func (s *Service) loadFriends() {
	s.loadRecords("friends/", "friends", func() record { return new(friend) }, func(k string, r record) error {
		f := r.(*friend)
		if keyFriend(f.Name) != k {
			return errMisplaced
		}
		s.friends[f.Name] = f
		return nil
	})
	s.loadRecords("requests/", "friend requests", func() record { return new(request) }, func(k string, r record) error {
		q := r.(*request)
		if keyRequest(q.From) != k {
			return errMisplaced
		}
		s.requests[q.From] = q
		return nil
	})
}

// normalize checks a name as Befriend and the others take it.
func normalize(name string) (string, error) {
	n, err := names.Normalize(name)
	if err != nil {
		return "", node.Errorf(CodeInvalid, []error{err}, "%s", names.Problem(err))
	}
	return n, nil
}

// namesRelays are the relays the node's last admission named as trusted
// and running the username service.
func (s *Service) namesRelays() names.Relays {
	var rs names.Relays
	for _, r := range s.h.Relays() {
		if r.Flags.Has(wire.RelayTrusted | wire.RelayNames) {
			rs.Add(r.Info.Key, r.Info.Zone)
		}
	}
	return rs
}

// verifyRecord checks a username record that came with a request from
// the node at from: its ledger proof verifies against a relay trusted for
// names, and it is the record of that node's address.
func (s *Service) verifyRecord(rec *wire.UserRecord, from id.Address) error {
	relays := s.namesRelays()
	if err := relays.Sequenced(rec.RelayKey, rec.Zone, "usernames"); err != nil {
		return refuse(CodeForged, "the username record does not verify: %s", names.Problem(err))
	}
	if _, err := names.Verify(rec, rec.Claim.Name, relays.ZoneOf); err != nil {
		return refuse(CodeForged, "the username record does not verify: %s", names.Problem(err))
	}
	if rec.Claim.Address != from {
		return refuse(CodeForged, "the username record of %q is for the node at %s, not the one that sent it (%s)", rec.Claim.Name, rec.Claim.Address.Short(), from.Short())
	}
	return nil
}

// ownRecord is our username record, or the error of a node with none.
func (s *Service) ownRecord() (*wire.UserRecord, error) {
	rec := s.users.Record()
	if rec == nil {
		return nil, node.Errorf(CodeNoName, nil, "this node has no username: register one first")
	}
	return rec, nil
}

// Befriend resolves name (a verified record), sends it a friend request
// (our name and address, checked by the receiver) and waits, as long as
// ctx lasts, for its answer: "accepted" or "declined". A request to a
// name whose record does not verify fails with CodeForged; the request
// stays pending (and is sent again while the receiver is away) after ctx
// ends, and its answer then comes as event friend.
func (s *Service) Befriend(ctx context.Context, name string) (string, error) {
	name, err := normalize(name)
	if err != nil {
		return "", err
	}
	own, err := s.ownRecord()
	if err != nil {
		return "", err
	}
	if own.Claim.Name == name {
		return "", node.Errorf(CodeSelf, nil, "you cannot befriend yourself")
	}
	s.mu.Lock()
	_, asked := s.requests[name]
	s.mu.Unlock()
	if asked { // they asked us first: befriending them is accepting
		if err := s.Accept(ctx, name); err != nil {
			return "", err
		}
		return "accepted", nil
	}
	rec, err := s.users.Resolve(ctx, name, true)
	if err != nil {
		return "", err
	}
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[name]
	switch {
	case f != nil && f.SignKey != rec.Claim.SignKey:
		s.mu.Unlock()
		return "", node.Errorf(CodeForged, nil, "%q now has another key than the friend of that name: refused", name)
	case f != nil && f.State == stateFriend:
		s.mu.Unlock()
		return "accepted", nil
	case f == nil && len(s.friends) >= MaxFriends:
		s.mu.Unlock()
		return "", node.Errorf(node.CodeRateLimited, nil, "too many friends and requests (%d)", MaxFriends)
	case f == nil:
		f = &friend{Name: name, SignKey: rec.Claim.SignKey, AgreeKey: rec.Claim.AgreeKey}
		s.friends[name] = f
	}
	f.State, f.Address = stateRequested, rec.Claim.Address
	if err := s.saveFriendLocked(f); err != nil {
		s.mu.Unlock()
		return "", err
	}
	answer := make(chan string, 1)
	s.waiters[name] = append(s.waiters[name], answer)
	view := s.viewLocked(f, now)
	s.mu.Unlock()
	s.h.Emit(EventFriend, view)
	defer s.dropWaiter(name, answer)
	if err := s.sendRequest(ctx, own, f.Name, rec.Claim.Address); err != nil && answered(err) {
		return "", remote(err, fmt.Sprintf("%s refused the request", name), "")
	}
	// Not answered: it stays pending and goes again (RequestRetry).
	select {
	case a := <-answer:
		return a, nil
	case <-ctx.Done():
		return "", node.Errorf(node.CodeTimeout, []error{ctx.Err()}, "no answer from %s yet; the request stays pending", name)
	}
}

func (s *Service) dropWaiter(name string, c chan string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waiters[name] = slices.DeleteFunc(s.waiters[name], func(x chan string) bool { return x == c })
	if len(s.waiters[name]) == 0 {
		delete(s.waiters, name)
	}
}

// sendRequest sends our friend request to name at addr.
func (s *Service) sendRequest(ctx context.Context, own *wire.UserRecord, name string, addr id.Address) error {
	ctx, cancel := context.WithTimeout(ctx, DirectTimeout)
	defer cancel()
	_, err := s.h.Request(ctx, addr, &wire.FriendRequest{From: *own, To: name, OnionKey: s.okey.Public(), Time: s.h.Clock().Now().UnixMilli()})
	if err == nil {
		s.seen(name)
	}
	return err
}

// sendAnswer sends our answer to name at addr.
func (s *Service) sendAnswer(ctx context.Context, addr id.Address, accepted bool) error {
	own, err := s.ownRecord()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, DirectTimeout)
	defer cancel()
	_, err = s.h.Request(ctx, addr, &wire.FriendAnswer{From: *own, Accepted: accepted, OnionKey: s.okey.Public(), Time: s.h.Clock().Now().UnixMilli()})
	return err
}

// Accept accepts name's pending request: the friendship begins, and the
// key exchange runs (its session is ready when event session says so).
func (s *Service) Accept(ctx context.Context, name string) error {
	name, err := normalize(name)
	if err != nil {
		return err
	}
	if _, err := s.ownRecord(); err != nil {
		return err
	}
	now := s.h.Clock().Now()
	s.mu.Lock()
	r := s.requests[name]
	if r == nil {
		s.mu.Unlock()
		return node.Errorf(CodeNoRequest, nil, "no friend request from %q", name)
	}
	f := s.friends[name]
	if f == nil {
		f = &friend{Name: name}
		s.friends[name] = f
	}
	f.SignKey, f.AgreeKey, f.OnionKey, f.Address = r.SignKey, r.AgreeKey, r.OnionKey, r.Address
	f.State, f.Since, f.Answer = stateFriend, now.UnixMilli(), true
	if err := s.saveFriendLocked(f); err != nil {
		s.mu.Unlock()
		return err
	}
	delete(s.requests, name)
	if err := s.h.Store().Delete(keyRequest(name)); err != nil {
		s.h.Logger().Warn("could not delete an answered friend request", "name", name, "err", err)
	}
	view := s.viewLocked(f, now)
	s.mu.Unlock()
	s.h.Emit(EventFriend, view)
	s.deliverAnswer(ctx, name)
	return nil
}

// deliverAnswer sends our acceptance to the friend name if it has not
// arrived yet, and once it has, starts the key exchange.
func (s *Service) deliverAnswer(ctx context.Context, name string) {
	s.mu.Lock()
	f := s.friends[name]
	if f == nil || !f.Answer {
		s.mu.Unlock()
		return
	}
	addr := f.Address
	s.mu.Unlock()
	err := s.sendAnswer(ctx, addr, true)
	if err != nil && !answered(err) {
		s.h.Logger().Info("the friend did not get our acceptance yet; it goes again", "name", name, "err", err)
		return
	}
	if err != nil {
		s.h.Logger().Warn("the friend refused our acceptance", "name", name, "err", err)
	}
	s.mu.Lock()
	if f := s.friends[name]; f != nil && f.Answer {
		f.Answer = false
		s.saveFriendLocked(f)
	}
	s.mu.Unlock()
	if err == nil {
		s.seen(name)
		s.startExchange(name)
	}
}

// Decline declines name's pending request.
func (s *Service) Decline(ctx context.Context, name string) error {
	name, err := normalize(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	r := s.requests[name]
	if r == nil {
		s.mu.Unlock()
		return node.Errorf(CodeNoRequest, nil, "no friend request from %q", name)
	}
	delete(s.requests, name)
	if err := s.h.Store().Delete(keyRequest(name)); err != nil {
		s.h.Logger().Warn("could not delete a declined friend request", "name", name, "err", err)
	}
	s.mu.Unlock()
	// One try, then a few more in the background: a decline is not kept.
	if err := s.sendAnswer(ctx, r.Address, false); err != nil && !answered(err) {
		go func() {
			for range 3 {
				if !sleep(s.h, RequestRetry) {
					return
				}
				if err := s.sendAnswer(s.h.Life(), r.Address, false); err == nil || answered(err) {
					return
				}
			}
		}()
	}
	return nil
}

// Friends lists friends and our pending requests, by name.
func (s *Service) Friends() []FriendView {
	now := s.h.Clock().Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FriendView, 0, len(s.friends))
	for _, f := range s.friends {
		out = append(out, s.viewLocked(f, now))
	}
	// sort.Slice, not slices.SortFunc: a generic sort of a struct type
	// is ~25 KB of wasm of its own.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// viewLocked is f as Friends shows it; s.mu is held.
func (s *Service) viewLocked(f *friend, now time.Time) FriendView {
	if f.safety == "" {
		f.safety = ratchet.SafetyNumber(s.h.Identity().SignKey(), f.SignKey)
	}
	v := FriendView{Name: f.Name, Address: f.Address.String(), Since: f.Since, State: f.State, Unread: f.Unread, Safety: f.safety, Session: "none"}
	if t, ok := s.lastSeen[f.Name]; ok && now.Sub(t) < onlineFor {
		v.Online = true
	}
	if f.State == stateFriend {
		v.Session = s.sessionStateLocked(f, now)
	}
	return v
}

// expireRequestsLocked drops the requests older than RequestMaxAge.
func (s *Service) expireRequestsLocked(now time.Time) {
	for name, r := range s.requests {
		if now.Sub(time.UnixMilli(r.At)) > RequestMaxAge {
			delete(s.requests, name)
			if err := s.h.Store().Delete(keyRequest(name)); err != nil {
				s.h.Logger().Warn("could not delete an expired friend request", "from", name, "err", err)
			}
		}
	}
}

// Requests lists the requests waiting for our answer.
func (s *Service) Requests() []RequestView {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireRequestsLocked(s.h.Clock().Now())
	out := make([]RequestView, 0, len(s.requests))
	for _, r := range s.requests {
		out = append(out, RequestView{From: r.From, Address: r.Address.String(), At: r.At})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out
}

// MarkRead sets name's unread count to zero.
func (s *Service) MarkRead(name string) error {
	name, err := normalize(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.friends[name]
	if f == nil {
		return node.Errorf(CodeNotFriend, nil, "%q is not a friend", name)
	}
	if f.Unread == 0 {
		return nil
	}
	f.Unread = 0
	return s.saveFriendLocked(f)
}

// seen notes that the friend name answered or sent something now.
func (s *Service) seen(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.friends[name]; ok {
		s.lastSeen[name] = s.h.Clock().Now()
	}
}

// away notes that the friend name did not answer.
func (s *Service) away(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.lastSeen, name)
}

// onFriendRequest takes a friend request: the sender's record verifies
// and is the sender's, it is for our name, and a friend of that name has
// that key. It waits for the user (event friend-request).
func (s *Service) onFriendRequest(ctx context.Context, from id.Address, m wire.Message) (wire.Message, error) {
	req := m.(*wire.FriendRequest)
	own := s.users.Record()
	if own == nil || req.To != own.Claim.Name {
		return nil, refuse(CodeNotFound, "this node is not %q", req.To)
	}
	if err := s.verifyRecord(&req.From, from); err != nil {
		return nil, err
	}
	// A record that verifies is in a trusted ledger, which is not yet
	// to hold the name: a relay that overstepped may have sequenced the
	// name for another key. The name's holder is what Resolve decides.
	held, err := s.users.Resolve(ctx, req.From.Claim.Name, true)
	if err != nil {
		e := node.Explain(err)
		if e.Code == username.CodeNotFound || e.Code == username.CodeForged {
			return nil, refuse(CodeForged, "%q does not resolve to the request's key: %s", req.From.Claim.Name, e.Error)
		}
		return nil, refuse(node.CodeUnavailable, "could not check who holds %q: %s", req.From.Claim.Name, e.Error)
	}
	if held.Claim.SignKey != req.From.Claim.SignKey {
		return nil, refuse(CodeForged, "%q belongs to another key than the request's", req.From.Claim.Name)
	}
	if _, err := onion.Hybrid(req.OnionKey); err != nil {
		return nil, refuse(CodeInvalid, "the request's onion key is malformed")
	}
	c := &req.From.Claim
	name := c.Name
	if name == own.Claim.Name {
		return nil, refuse(CodeInvalid, "a request from this node's own name")
	}
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[name]
	if f != nil && f.SignKey != c.SignKey {
		s.mu.Unlock()
		return nil, refuse(CodeForged, "%q is a friend with another key", name)
	}
	if f != nil && (f.State == stateFriend || f.State == stateRequested) {
		// Already friends (it lost its list), or we asked it too: the
		// request is answered at once.
		f.OnionKey, f.Address, f.AgreeKey = req.OnionKey, from, c.AgreeKey
		if f.State == stateRequested {
			f.State, f.Since = stateFriend, now.UnixMilli()
		}
		f.Answer = true
		s.saveFriendLocked(f)
		s.lastSeen[name] = now
		view := s.viewLocked(f, now)
		s.answerWaitersLocked(name, "accepted")
		s.mu.Unlock()
		s.h.Emit(EventFriend, view)
		go s.deliverAnswer(s.h.Life(), name)
		return &wire.FriendAck{}, nil
	}
	s.expireRequestsLocked(now)
	if _, ok := s.requests[name]; !ok && len(s.requests) >= MaxRequests {
		s.mu.Unlock()
		return nil, refuse(node.CodeRateLimited, "too many friend requests are waiting for an answer")
	}
	r := &request{From: name, Address: from, At: now.UnixMilli(), SignKey: c.SignKey, AgreeKey: c.AgreeKey, OnionKey: req.OnionKey}
	if old := s.requests[name]; old != nil && old.SignKey != r.SignKey {
		s.mu.Unlock()
		return nil, refuse(CodeForged, "a request from %q with another key is waiting", name)
	}
	if err := putRecord(s.h.Store(), keyRequest(name), r); err != nil {
		s.mu.Unlock()
		return nil, refuse(node.CodeUnavailable, "this node could not keep the request")
	}
	s.requests[name] = r
	s.mu.Unlock()
	s.h.Emit(EventFriendRequest, RequestView{From: name, Address: from.String(), At: r.At})
	return &wire.FriendAck{}, nil
}

// answerWaitersLocked hands answer to the Befriend calls waiting on name.
func (s *Service) answerWaitersLocked(name, answer string) {
	for _, c := range s.waiters[name] {
		select {
		case c <- answer:
		default:
		}
	}
}

// onFriendAnswer takes the answer to our request.
func (s *Service) onFriendAnswer(_ context.Context, from id.Address, m wire.Message) (wire.Message, error) {
	a := m.(*wire.FriendAnswer)
	if err := s.verifyRecord(&a.From, from); err != nil {
		return nil, err
	}
	if a.Accepted {
		if _, err := onion.Hybrid(a.OnionKey); err != nil {
			return nil, refuse(CodeInvalid, "the answer's onion key is malformed")
		}
	}
	c := &a.From.Claim
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[c.Name]
	switch {
	case f == nil || f.State == stateDeclined:
		s.mu.Unlock()
		return nil, refuse(CodeNoRequest, "this node did not ask %q to be a friend", c.Name)
	case f.SignKey != c.SignKey:
		s.mu.Unlock()
		return nil, refuse(CodeForged, "%q was asked under another key", c.Name)
	case f.State == stateFriend && a.Accepted:
		f.OnionKey, f.Address = a.OnionKey, from
		s.saveFriendLocked(f)
		s.lastSeen[c.Name] = now
		s.mu.Unlock()
		return &wire.FriendAck{}, nil // a second delivery of the answer
	}
	answer := "declined"
	if a.Accepted {
		answer = "accepted"
		f.State, f.Since, f.OnionKey, f.AcceptedAt = stateFriend, now.UnixMilli(), a.OnionKey, now.UnixMilli()
	} else {
		f.State = stateDeclined
	}
	f.Address, f.AgreeKey = from, c.AgreeKey
	if err := s.saveFriendLocked(f); err != nil {
		s.mu.Unlock()
		return nil, refuse(node.CodeUnavailable, "this node could not keep the answer")
	}
	s.lastSeen[c.Name] = now
	s.answerWaitersLocked(c.Name, answer)
	view := s.viewLocked(f, now)
	s.mu.Unlock()
	s.h.Emit(EventFriend, view)
	return &wire.FriendAck{}, nil
}

// onPresence takes a friend's news that it is online at from: its
// messages go to it now.
func (s *Service) onPresence(_ context.Context, from id.Address, m wire.Message) (wire.Message, error) {
	p := m.(*wire.Presence)
	if err := s.verifyRecord(&p.From, from); err != nil {
		return nil, err
	}
	c := &p.From.Claim
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[c.Name]
	if f == nil || f.SignKey != c.SignKey || f.State != stateFriend {
		s.mu.Unlock()
		return nil, refuse(CodeNotFriend, "%q is not a friend of this node", c.Name)
	}
	if f.Address != from {
		f.Address = from
		s.saveFriendLocked(f)
	}
	s.lastSeen[c.Name] = now
	view := s.viewLocked(f, now)
	s.mu.Unlock()
	s.h.Emit(EventFriend, view)
	go func() {
		s.deliverAnswer(s.h.Life(), c.Name)
		s.flush(s.h.Life(), c.Name, false)
	}()
	return &wire.FriendAck{}, nil
}

// sendPresence tells the friend name that we are online; false if it
// did not answer.
func (s *Service) sendPresence(ctx context.Context, name string) bool {
	own := s.users.Record()
	s.mu.Lock()
	f := s.friends[name]
	if own == nil || f == nil || f.State != stateFriend {
		s.mu.Unlock()
		return true
	}
	addr := f.Address
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, DirectTimeout)
	defer cancel()
	if _, err := s.h.Request(ctx, addr, &wire.Presence{From: *own}); err != nil {
		if !answered(err) {
			s.away(name)
			return false
		}
		return true
	}
	s.seen(name)
	return true
}

// refreshAddress resolves the name of a friend we have messages for and
// have not heard from lately: one that moved while we were away is found
// at its new address (its record, with the key we know it by).
func (s *Service) refreshAddress(ctx context.Context, name string) {
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[name]
	stale := f != nil && f.State == stateFriend && len(s.outbox[name]) > 0 && now.Sub(s.lastSeen[name]) > OutboxRetry
	s.mu.Unlock()
	if !stale {
		return
	}
	rec, err := s.users.Resolve(ctx, name, true)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.friends[name]; f != nil && f.SignKey == rec.Claim.SignKey && f.Address != rec.Claim.Address {
		s.h.Logger().Info("a friend moved", "name", name, "address", rec.Claim.Address.Short())
		f.Address = rec.Claim.Address
		s.saveFriendLocked(f)
	}
}

// retryRequests sends our pending requests again, resolving the names
// anew (the node may have moved).
func (s *Service) retryRequests(ctx context.Context) {
	own := s.users.Record()
	if own == nil {
		return
	}
	s.mu.Lock()
	var pending []string
	var answers []string
	for _, f := range s.friends {
		switch {
		case f.State == stateRequested:
			pending = append(pending, f.Name)
		case f.Answer:
			answers = append(answers, f.Name)
		}
	}
	s.mu.Unlock()
	for _, name := range answers {
		s.deliverAnswer(ctx, name)
	}
	for _, name := range pending {
		rec, err := s.users.Resolve(ctx, name, true)
		if err != nil {
			continue
		}
		s.mu.Lock()
		f := s.friends[name]
		ok := f != nil && f.State == stateRequested && f.SignKey == rec.Claim.SignKey
		if ok && f.Address != rec.Claim.Address {
			f.Address = rec.Claim.Address
			s.saveFriendLocked(f)
		}
		s.mu.Unlock()
		if ok {
			if err := s.sendRequest(ctx, own, name, rec.Claim.Address); err != nil && answered(err) {
				s.h.Logger().Info("a pending friend request was refused", "name", name, "err", err)
			}
		}
	}
}

var errNoFriend = errors.New("unicast: not a friend")
