package unicast

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"ddt/shared/clock"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/unicast/ratchet"
	"ddt/shared/wire"
)

// Timings and bounds of messages.
const (
	// DirectTimeout bounds a direct send: with no receipt in it, the
	// message is held for the friend instead.
	DirectTimeout = 4 * time.Second
	// OutboxRetry is how often held messages are put again (and tried
	// directly) while the friend stays away.
	OutboxRetry = time.Minute
	// RequestRetry is how often pending friend requests and answers go
	// again.
	RequestRetry = 30 * time.Second
	// SessionMaxAge is how long a session seals messages; then a new one
	// is made.
	SessionMaxAge = 30 * 24 * time.Hour
	// MaxEarly bounds the messages held per friend that arrived before
	// their turn (a gap in the numbers).
	MaxEarly = 1024
	// MaxOutbox bounds the messages waiting for a friend's receipt.
	MaxOutbox = 4096
	// holdTimeout bounds handing one message to its holder.
	holdTimeout = 15 * time.Second
	// receiptEvery bounds the unrequested receipts sent to one friend.
	receiptEvery = ChainTimeout
)

// maxAhead is how far ahead of our clock a friend's message time may be
// (ms); past it, or before any date can show, it is kept as of our clock.
const maxAhead = 24 * 60 * 60 * 1000

// outItem is one of our messages waiting for the friend's receipt
// ("outbox/<name>/<hex id>").
type outItem struct {
	ID      [16]byte
	Number  uint64
	Text    string
	At      int64
	Session [16]byte
	Sealed  []byte
	Hist    string // its history entry's key
	PutAt   int64  // when it was last handed to a holder (0: never)

	// sending: a direct send of it is under way (Send's, or a flush's);
	// another waits for that one rather than send it twice. Not stored.
	sending bool
}

// heldText is a friend's message that came before its turn
// ("early/<name>/<20-digit number>").
type heldText struct {
	Number uint64
	ID     [16]byte
	Time   int64
	Text   string
}

func keyOutbox(name string, mid [16]byte) string {
	return "outbox/" + name + "/" + hex.EncodeToString(mid[:])
}
func keyHistory(name string, seq uint64) string { return fmt.Sprintf("history/%s/%020d", name, seq) }

// histSeq is the sequence number of a history key (0 if it is none).
func histSeq(key string) uint64 {
	n, _ := strconv.ParseUint(key[strings.LastIndexByte(key, '/')+1:], 10, 64)
	return n
}
func keyEarly(name string, n uint64) string { return fmt.Sprintf("early/%s/%020d", name, n) }

// event is one Emit to make once s.mu is released.
type event struct {
	kind  string
	value any
}

func (s *Service) emit(evs []event) {
	for _, e := range evs {
		s.h.Emit(e.kind, e.value)
	}
}

func (s *Service) loadChat() {
	s.loadRecords("outbox/", "outbox", func() record { return new(outItem) }, func(k string, r record) error {
		it := r.(*outItem)
		name, _, _ := strings.Cut(strings.TrimPrefix(k, "outbox/"), "/")
		if keyOutbox(name, it.ID) != k {
			return errMisplaced
		}
		s.outboxOf(name)[it.ID] = it
		// The outbox is written first (Send): a friend record whose
		// save failed after it still counts the message.
		if f := s.friends[name]; f != nil {
			f.Sent = max(f.Sent, it.Number)
			f.Seq = max(f.Seq, histSeq(it.Hist))
		}
		return nil
	})
	s.loadRecords("early/", "early messages", func() record { return new(heldText) }, func(k string, r record) error {
		e := r.(*heldText)
		name, _, _ := strings.Cut(strings.TrimPrefix(k, "early/"), "/")
		if keyEarly(name, e.Number) != k {
			return errMisplaced
		}
		if s.early[name] == nil {
			s.early[name] = map[uint64]*heldText{}
		}
		s.early[name][e.Number] = e
		return nil
	})
}

func (s *Service) outboxOf(name string) map[[16]byte]*outItem {
	o := s.outbox[name]
	if o == nil {
		o = map[[16]byte]*outItem{}
		s.outbox[name] = o
	}
	return o
}

// Send sends text to the friend name: directly if it answers, else held
// for it (see SendResult). It waits for a session while the key exchange
// runs, as long as ctx lasts; the message stays in the outbox until the
// friend acknowledges it, whatever ctx does.
func (s *Service) Send(ctx context.Context, name, text string) (SendResult, error) {
	name, err := normalize(name)
	if err != nil {
		return SendResult{}, err
	}
	switch {
	case text == "" || !utf8.ValidString(text):
		return SendResult{}, node.Errorf(CodeInvalid, nil, "a message is a non-empty UTF-8 text")
	case len(text) > MaxText:
		return SendResult{}, node.Errorf(CodeTooLarge, nil, "a message of %d bytes; at most %d", len(text), MaxText)
	}
	s.mu.Lock()
	f := s.friends[name]
	if f == nil || f.State != stateFriend {
		s.mu.Unlock()
		return SendResult{}, node.Errorf(CodeNotFriend, nil, "%q is not a friend", name)
	}
	if len(s.outbox[name]) >= MaxOutbox {
		s.mu.Unlock()
		return SendResult{}, node.Errorf(CodeMailFull, nil, "%d messages to %q wait for its receipt already", MaxOutbox, name)
	}
	s.mu.Unlock()
	// Without a session (the friend is away since its acceptance, or
	// the last one expired) the message waits in the outbox unsealed,
	// and goes once an exchange makes one.
	wctx, cancel := context.WithTimeout(ctx, SessionWait)
	x, err := s.readySession(wctx, name)
	cancel()
	if err != nil && serviceCode(err) != CodeNoSession {
		return SendResult{}, err
	}
	now := s.h.Clock().Now()
	it := &outItem{Text: text, At: now.UnixMilli()}
	if _, err := io.ReadFull(s.rand(), it.ID[:]); err != nil {
		return SendResult{}, err
	}
	s.mu.Lock()
	f = s.friends[name]
	if f == nil || f.State != stateFriend {
		s.mu.Unlock()
		return SendResult{}, node.Errorf(CodeNotFriend, nil, "%q is not a friend", name)
	}
	it.Number = f.Sent + 1
	if x != nil {
		if err := s.sealItemLocked(f, x, it); err != nil {
			s.mu.Unlock()
			return SendResult{}, err
		}
	}
	it.Hist = keyHistory(name, f.Seq+1)
	view := MessageView{ID: hex.EncodeToString(it.ID[:]), To: name, Text: text, At: it.At, State: "sending"}
	// The outbox item first, and the numbers raised only once it is
	// kept: a message that is not kept must not leave a gap in the
	// numbering, which the friend would wait on for ever. What follows
	// it failing leaves the message to go (loadChat counts it).
	if err := putRecord(s.h.Store(), keyOutbox(name, it.ID), it); err != nil {
		s.mu.Unlock()
		return SendResult{}, node.Errorf(node.CodeError, []error{err}, "could not keep the message: %v", err)
	}
	f.Sent = it.Number
	f.Seq++
	if err := errors.Join(putRecord(s.h.Store(), it.Hist, (*historyEntry)(&view)), s.saveFriendLocked(f)); err != nil {
		s.h.Logger().Warn("could not save a sent message's history entry", "name", name, "err", err)
	}
	s.outboxOf(name)[it.ID] = it
	s.mu.Unlock()
	res := SendResult{ID: view.ID}
	if x == nil {
		go s.flush(s.h.Life(), name, false) // starts an exchange
		res.Delivered = "queued"
		return res, nil
	}
	// From here the message is kept and goes whatever happens now: a
	// failure leaves it queued in the outbox, not an error (a caller
	// that took it for one would send it twice).
	reached, err := s.direct(ctx, name, it, true)
	if err != nil {
		s.h.Logger().Info("a message waits in the outbox: the friend refused it for now", "name", name, "err", err)
		res.Delivered = "queued"
		return res, nil
	}
	if reached && s.delivered(name, it) {
		res.Delivered = "direct"
		return res, nil
	}
	if err := s.hold(ctx, name, it); err != nil {
		s.h.Logger().Info("a message waits in the outbox: the friend is away and no node took it to hold", "name", name, "err", err)
		res.Delivered = "queued"
		return res, nil
	}
	res.Delivered = "stored"
	return res, nil
}

// delivered reports whether the friend's receipt covered it (it left the
// outbox): an answer alone may be for a message the friend holds until
// an earlier one comes.
func (s *Service) delivered(name string, it *outItem) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, waiting := s.outbox[name][it.ID]
	return !waiting
}

// sealItemLocked seals it with the session x and saves x's state (before
// anything sends what it sealed).
func (s *Service) sealItemLocked(f *friend, x *session, it *outItem) error {
	p := plain{Kind: kindText, Number: it.Number, ID: it.ID, Time: it.At, Body: []byte(it.Text)}
	sealed, err := x.st.Seal(p.marshal(), ad(x.ID, s.h.Identity().SignKey(), f.SignKey), s.rand())
	if err != nil {
		return node.Errorf(node.CodeError, []error{err}, "could not seal the message: %v", err)
	}
	if err := s.saveSessionLocked(x); err != nil {
		return err
	}
	it.Session, it.Sealed = x.ID, sealed
	return nil
}

// direct sends it to the friend and takes its receipt. reached: the
// friend answered (its receipt, or it has the message already); false
// with a nil error: no answer. A friend that lost the session gets a
// new one and the message sealed again (if wait, waiting for the session
// as ctx allows).
func (s *Service) direct(ctx context.Context, name string, it *outItem, wait bool) (reached bool, err error) {
	s.mu.Lock()
	if it.sending {
		s.mu.Unlock()
		return s.awaitSend(ctx, name, it), nil
	}
	it.sending = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		it.sending = false
		s.mu.Unlock()
	}()
	for try := 0; try < 2; try++ {
		s.mu.Lock()
		f := s.friends[name]
		if f == nil {
			s.mu.Unlock()
			return false, node.Errorf(CodeNotFriend, nil, "%q is not a friend", name)
		}
		addr := f.Address
		cm := &wire.ChatMessage{Session: it.Session, Sealed: it.Sealed}
		s.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, DirectTimeout)
		ans, err := s.h.Request(rctx, addr, cm)
		cancel()
		switch {
		case err == nil:
			s.seen(name)
			if err := s.takeAnswer(name, ans); err != nil {
				s.h.Logger().Warn("a friend's receipt does not open", "name", name, "err", err)
			}
			return true, nil
		case !answered(err):
			s.away(name)
			return false, nil
		case serviceCode(err) == CodeReplay:
			return true, nil // it has the message: its receipt follows
		case serviceCode(err) == CodeNotFriend && try == 0:
			// It knows us at another address (we moved while it was
			// away): our Presence tells it where, then once more.
			s.sendPresence(ctx, name)
			continue
		case serviceCode(err) != CodeNoSession:
			return false, remote(err, name+" refused the message", "")
		}
		// The friend lost the session: make a new one and seal again.
		s.seen(name)
		s.mu.Lock()
		if x := s.sessions[it.Session]; x != nil {
			s.dropSessionLocked(x)
		}
		s.mu.Unlock()
		if !wait {
			s.startExchange(name)
			return true, nil
		}
		x, err := s.readySession(ctx, name)
		if err != nil {
			return false, err
		}
		if err := s.reseal(name, x, it); err != nil {
			return false, err
		}
	}
	return false, node.Errorf(CodeNoSession, nil, "%s keeps refusing the session", name)
}

// awaitSend waits, as long as a direct send may take, for the other
// direct send of it under way to end, and reports whether the friend's
// receipt has covered it by then (as if this send had been answered).
func (s *Service) awaitSend(ctx context.Context, name string, it *outItem) bool {
	ctx, cancel := context.WithTimeout(ctx, DirectTimeout)
	defer cancel()
	for {
		s.mu.Lock()
		busy := it.sending
		s.mu.Unlock()
		if !busy || !clock.Sleep(s.h.Clock(), 20*time.Millisecond, ctx.Done()) {
			return s.delivered(name, it)
		}
	}
}

// reseal seals it again with the session x (the one it was sealed with
// is gone); its number and id stay.
func (s *Service) reseal(name string, x *session, it *outItem) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.friends[name]
	if f == nil {
		return node.Errorf(CodeNotFriend, nil, "%q is not a friend", name)
	}
	if err := s.sealItemLocked(f, x, it); err != nil {
		return err
	}
	it.PutAt = 0
	if _, ok := s.outbox[name][it.ID]; !ok {
		return nil // its receipt came meanwhile
	}
	return putRecord(s.h.Store(), keyOutbox(name, it.ID), it)
}

// hold hands it to the node closest to the friend's address.
func (s *Service) hold(ctx context.Context, name string, it *outItem) error {
	s.mu.Lock()
	f := s.friends[name]
	if f == nil {
		s.mu.Unlock()
		return errNoFriend
	}
	addr := f.Address
	frame, err := wire.Marshal(&wire.ChatMessage{Session: it.Session, Sealed: it.Sealed})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	if _, err := s.holdAt(ctx, addr, it.ID, frame); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.outbox[name][it.ID]; !ok {
		return nil // delivered meanwhile
	}
	it.PutAt = s.h.Clock().Now().UnixMilli()
	s.setStateLocked(it.Hist, "stored")
	return putRecord(s.h.Store(), keyOutbox(name, it.ID), it)
}

// setStateLocked sets the state of our history entry at key.
func (s *Service) setStateLocked(key, state string) {
	b, err := s.h.Store().Get(key)
	if err != nil {
		return
	}
	var v MessageView
	if decodeRecord(b, (*historyEntry)(&v)) != nil || v.State == state || v.State == "delivered" {
		return
	}
	v.State = state
	if err := putRecord(s.h.Store(), key, (*historyEntry)(&v)); err != nil {
		s.h.Logger().Warn("could not update a message's state", "err", err)
	}
}

// flush sends the friend's outbox, oldest first, directly while it
// answers; the rest is handed to a holder if it never was, or if
// rehold and its last hand-over is older than OutboxRetry.
func (s *Service) flush(ctx context.Context, name string, rehold bool) {
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[name]
	if f == nil || f.State != stateFriend {
		s.mu.Unlock()
		return
	}
	var items []*outItem
	for _, it := range s.outbox[name] {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b *outItem) int { return cmpU64(a.Number, b.Number) })
	cur := s.currentLocked(f, now)
	s.mu.Unlock()
	if len(items) == 0 {
		return
	}
	away := false
	for _, it := range items {
		s.mu.Lock()
		_, waiting := s.outbox[name][it.ID]
		_, sealedOK := s.sessions[it.Session]
		putAt := it.PutAt
		s.mu.Unlock()
		if !waiting {
			continue
		}
		if !sealedOK {
			if cur == nil {
				s.startExchange(name)
				return
			}
			if err := s.reseal(name, cur, it); err != nil {
				return
			}
		}
		if !away {
			reached, err := s.direct(ctx, name, it, false)
			if err != nil {
				s.h.Logger().Info("an outbox message was refused", "name", name, "err", err)
				return
			}
			if reached {
				continue
			}
			away = true
		}
		if putAt == 0 || (rehold && now.Sub(time.UnixMilli(putAt)) >= OutboxRetry) {
			if err := s.hold(ctx, name, it); err != nil {
				s.h.Logger().Info("could not hand a message to a holder", "name", name, "err", err)
			}
		}
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// takeAnswer opens the answer to one of our ChatMessages: a sealed
// receipt, or a FriendAck (to a receipt of ours).
func (s *Service) takeAnswer(name string, ans wire.Message) error {
	cm, ok := ans.(*wire.ChatMessage)
	if !ok {
		if _, ack := ans.(*wire.FriendAck); ack {
			return nil
		}
		return fmt.Errorf("an answer of type %d", ans.Type())
	}
	var evs []event
	s.mu.Lock()
	x := s.sessions[cm.Session]
	f := s.friends[name]
	if x == nil || f == nil || x.Name != name {
		s.mu.Unlock()
		return fmt.Errorf("a receipt of a session this node does not have with %s", name)
	}
	p, err := s.openLocked(f, x, cm.Sealed, &evs)
	if err == nil && p.Kind != kindReceipt {
		err = fmt.Errorf("an answer of kind %d, not a receipt", p.Kind)
	}
	if err == nil {
		s.saveSessionLocked(x)
		s.receiptLocked(f, p.Number, &evs)
	}
	s.mu.Unlock()
	s.emit(evs)
	return err
}

// openLocked opens a message of the session x from f; a receiver's
// session becomes ready with it.
func (s *Service) openLocked(f *friend, x *session, sealed []byte, evs *[]event) (*plain, error) {
	pt, err := x.st.Open(sealed, ad(x.ID, f.SignKey, s.h.Identity().SignKey()))
	switch {
	case errors.Is(err, ratchet.ErrOld):
		return nil, refuse(CodeReplay, "this message was opened before")
	case err != nil:
		return nil, refuse(CodeForged, "the message does not open with the session: %v", err)
	}
	p, err := parsePlain(pt)
	if err != nil {
		s.saveSessionLocked(x) // it opened: its key is spent
		return nil, refuse(CodeForged, "%v", err)
	}
	if !x.Ready {
		s.sessionReadyLocked(x)
		*evs = append(*evs, event{EventSession, SessionView{Name: f.Name, State: "ready"}})
		go s.flush(s.h.Life(), f.Name, false)
	}
	return p, nil
}

// rollbackLocked restores x's state to snap, taken before an Open, and
// its readiness to ready, and saves that (what the Open changed is
// forgotten: the message is refused, and opens when it comes again).
func (s *Service) rollbackLocked(x *session, snap []byte, ready bool) {
	if st, err := ratchet.Unmarshal(snap); err == nil {
		x.st = st
		x.Ready = ready
		s.saveSessionLocked(x)
	}
}

// receiptLocked takes the friend's receipt: our messages up to number n
// are delivered.
func (s *Service) receiptLocked(f *friend, n uint64, evs *[]event) {
	var done []*outItem
	for _, it := range s.outbox[f.Name] {
		if it.Number <= n {
			done = append(done, it)
		}
	}
	slices.SortFunc(done, func(a, b *outItem) int { return cmpU64(a.Number, b.Number) })
	for _, it := range done {
		mid := it.ID
		delete(s.outbox[f.Name], mid)
		if err := s.h.Store().Delete(keyOutbox(f.Name, mid)); err != nil {
			s.h.Logger().Warn("could not delete a delivered message from the outbox", "err", err)
		}
		s.setStateLocked(it.Hist, "delivered")
		*evs = append(*evs, event{EventDelivered, DeliveredView{To: f.Name, ID: hex.EncodeToString(mid[:])}})
	}
}

// onChat answers a ChatMessage request.
func (s *Service) onChat(_ context.Context, from id.Address, m wire.Message) (wire.Message, error) {
	return s.receive(from, m.(*wire.ChatMessage), false)
}

// receive takes a ChatMessage from the node at from (directly, or
// collected from a holder if mail): only from a friend, only if it
// opens; a text is delivered once and in order, and answered with a
// sealed receipt.
func (s *Service) receive(from id.Address, cm *wire.ChatMessage, mail bool) (wire.Message, error) {
	var evs []event
	defer func() { s.emit(evs) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.sessions[cm.Session]
	if x == nil {
		f := s.friendAtLocked(from)
		if f == nil {
			return nil, refuse(CodeNotFriend, "the node at %s is not a friend of this node", from.Short())
		}
		ex := s.exchanges[cm.Session]
		if ex == nil || ex.name != f.Name {
			return nil, refuse(CodeNoSession, "this node has no session of that id with %q", f.Name)
		}
		x, err := s.confirmLocked(f, ex, cm.Sealed)
		if err != nil {
			return nil, err
		}
		s.lastSeen[f.Name] = s.h.Clock().Now()
		evs = append(evs, event{EventSession, SessionView{Name: f.Name, State: "ready"}})
		go s.flush(s.h.Life(), f.Name, false)
		return s.receiptAnswerLocked(f, x)
	}
	f := s.friends[x.Name]
	if f == nil || f.State != stateFriend || (!mail && f.Address != from) {
		return nil, refuse(CodeNotFriend, "the node at %s is not the friend of this session", from.Short())
	}
	snap, ready := x.st.Marshal(), x.Ready
	p, err := s.openLocked(f, x, cm.Sealed, &evs)
	if err != nil {
		if serviceCode(err) == CodeReplay {
			go s.sendReceipt(f.Name) // its answer may have been lost
		}
		return nil, err
	}
	if !mail {
		s.lastSeen[f.Name] = s.h.Clock().Now()
	}
	switch p.Kind {
	case kindText:
		if err := s.textLocked(f, p, &evs); err != nil {
			s.rollbackLocked(x, snap, ready)
			return nil, err
		}
		if err := s.saveSessionLocked(x); err != nil {
			return nil, refuse(node.CodeUnavailable, "this node could not keep the message")
		}
		return s.receiptAnswerLocked(f, x)
	case kindReceipt:
		s.saveSessionLocked(x)
		s.receiptLocked(f, p.Number, &evs)
		return &wire.FriendAck{}, nil
	default:
		s.saveSessionLocked(x)
		return nil, refuse(CodeForged, "a confirmation on a session that is made")
	}
}

// receiptAnswerLocked seals our receipt for f with x.
func (s *Service) receiptAnswerLocked(f *friend, x *session) (wire.Message, error) {
	p := plain{Kind: kindReceipt, Number: f.Received, Time: s.h.Clock().Now().UnixMilli()}
	sealed, err := x.st.Seal(p.marshal(), ad(x.ID, s.h.Identity().SignKey(), f.SignKey), s.rand())
	if err != nil {
		return nil, refuse(node.CodeUnavailable, "could not seal the receipt")
	}
	if err := s.saveSessionLocked(x); err != nil {
		return nil, refuse(node.CodeUnavailable, "could not keep the session")
	}
	return &wire.ChatMessage{Session: x.ID, Sealed: sealed}, nil
}

// textLocked delivers the friend's text p in order: now if it is the
// next, after its predecessors if early, never again if seen.
func (s *Service) textLocked(f *friend, p *plain, evs *[]event) error {
	switch {
	case p.Number <= f.Received:
		return nil // delivered before (sent again, sealed anew)
	case p.Number > f.Received+1:
		early := s.early[f.Name]
		if early == nil {
			early = map[uint64]*heldText{}
			s.early[f.Name] = early
		}
		if _, ok := early[p.Number]; ok {
			return nil
		}
		if len(early) >= MaxEarly {
			return refuse(node.CodeRateLimited, "too many messages wait for an earlier one")
		}
		e := &heldText{Number: p.Number, ID: p.ID, Time: p.Time, Text: string(p.Body)}
		if err := putRecord(s.h.Store(), keyEarly(f.Name, p.Number), e); err != nil {
			return refuse(node.CodeUnavailable, "this node could not keep the message")
		}
		early[p.Number] = e
		return nil
	}
	if err := s.deliverLocked(f, &heldText{Number: p.Number, ID: p.ID, Time: p.Time, Text: string(p.Body)}, evs); err != nil {
		return err
	}
	for {
		e := s.early[f.Name][f.Received+1]
		if e == nil {
			return nil
		}
		if err := s.deliverLocked(f, e, evs); err != nil {
			return nil // it stays early; the next message tries again
		}
		delete(s.early[f.Name], e.Number)
		if err := s.h.Store().Delete(keyEarly(f.Name, e.Number)); err != nil {
			s.h.Logger().Warn("could not delete a delivered early message", "err", err)
		}
	}
}

// deliverLocked stores e in the history and tells the user.
func (s *Service) deliverLocked(f *friend, e *heldText, evs *[]event) error {
	// The sender's clock is the sender's word: a time no date can show
	// (or from more than a day ahead) is kept as of our own.
	if now := s.h.Clock().Now().UnixMilli(); e.Time > now+maxAhead || e.Time < -maxAhead*365*10000 {
		e.Time = now
	}
	v := MessageView{ID: hex.EncodeToString(e.ID[:]), From: f.Name, Text: e.Text, At: e.Time, State: "received"}
	if err := putRecord(s.h.Store(), keyHistory(f.Name, f.Seq+1), (*historyEntry)(&v)); err != nil {
		return refuse(node.CodeUnavailable, "this node could not keep the message")
	}
	f.Seq++
	f.Received = e.Number
	f.Unread++
	if err := s.saveFriendLocked(f); err != nil {
		f.Seq--
		f.Received--
		f.Unread--
		return refuse(node.CodeUnavailable, "this node could not keep the message")
	}
	*evs = append(*evs, event{EventMessage, v})
	return nil
}

// sendReceipt sends the friend name a receipt of its own (after a
// replay, or for collected mail): directly, else held for it.
func (s *Service) sendReceipt(name string) {
	now := s.h.Clock().Now()
	s.mu.Lock()
	f := s.friends[name]
	if f == nil || now.Sub(s.lastReceipt[name]) < receiptEvery {
		s.mu.Unlock()
		return
	}
	s.lastReceipt[name] = now
	x := s.currentLocked(f, now)
	if x == nil {
		s.mu.Unlock()
		return
	}
	ans, err := s.receiptAnswerLocked(f, x)
	addr := f.Address
	s.mu.Unlock()
	if err == nil {
		s.sendReceiptTo(name, addr, ans.(*wire.ChatMessage))
	}
}

// sendReceiptTo sends the sealed receipt cm to the friend at addr, or
// holds it for it.
func (s *Service) sendReceiptTo(name string, addr id.Address, cm *wire.ChatMessage) {
	ctx, cancel := context.WithTimeout(s.h.Life(), DirectTimeout)
	_, err := s.h.Request(ctx, addr, cm)
	cancel()
	if err == nil || answered(err) {
		return
	}
	frame, err := wire.Marshal(cm)
	if err != nil {
		return
	}
	var item [16]byte
	if _, err := io.ReadFull(s.rand(), item[:]); err != nil {
		return
	}
	ctx, cancel = context.WithTimeout(s.h.Life(), holdTimeout)
	defer cancel()
	if _, err := s.holdAt(ctx, addr, item, frame); err != nil {
		s.h.Logger().Info("could not hold a receipt for a friend", "name", name, "err", err)
	}
}

// takeMail handles an item collected from a holder as if its sender had
// sent it; a text's receipt goes to the sender. Only a failure to keep
// it is an error (the item stays at the holder); a refusal is final.
func (s *Service) takeMail(from id.Address, frame []byte) error {
	m, err := wire.Unmarshal(frame)
	cm, ok := m.(*wire.ChatMessage)
	if err != nil || !ok {
		s.h.Logger().Info("dropped a held item that is not a chat message", "from", from.Short())
		return nil
	}
	ans, err := s.receive(from, cm, true)
	if err != nil {
		if serviceCode(err) == node.CodeUnavailable {
			return err
		}
		s.h.Logger().Info("refused a held message", "from", from.Short(), "err", err)
		return nil
	}
	if r, ok := ans.(*wire.ChatMessage); ok {
		s.mu.Lock()
		var name string
		if x := s.sessions[cm.Session]; x != nil {
			name = x.Name
		}
		addr := from
		if f := s.friends[name]; f != nil {
			addr = f.Address
		}
		s.mu.Unlock()
		go s.sendReceiptTo(name, addr, r)
	}
	return nil
}

// History is the conversation with name, oldest first.
func (s *Service) History(name string) ([]MessageView, error) {
	name, err := normalize(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	_, ok := s.friends[name]
	s.mu.Unlock()
	if !ok {
		return nil, node.Errorf(CodeNotFriend, nil, "%q is not a friend", name)
	}
	m, err := store.Scan(s.h.Store(), "history/"+name+"/")
	if err != nil {
		return nil, node.Errorf(node.CodeError, []error{err}, "could not read the history: %v", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]MessageView, 0, len(keys))
	for _, k := range keys {
		var v MessageView
		if decodeRecord(m[k], (*historyEntry)(&v)) == nil {
			out = append(out, v)
		}
	}
	return out, nil
}
