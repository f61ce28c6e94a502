package unicast

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Mailbox bounds beside Config's (and the wire's).
const (
	// MailItemOverhead is what a held item costs beside its frame, in
	// the holder's limits: so that even empty frames fill a mailbox.
	MailItemOverhead = 64
	// MailHolders is how many of the nodes closest to a receiver's
	// address holdAt tries, and collect asks.
	MailHolders = 3
	// MailCollectPages bounds the pages collect takes from one holder
	// in one go (a holder that sends pages without end is left there).
	MailCollectPages = 1024
	// mailPageBytes is what one MailboxItems' items may add up to, so
	// the frame (and the envelope a routed answer has) stays under
	// wire.MaxFrame. A page holds one item whatever its size.
	mailPageBytes = wire.MaxFrame - 8<<10
	// MailSenderShare: by default one sender may fill a quarter of a
	// receiver's room (Config.MaxPerSender) and of the holder's
	// (Config.MaxHeldPerSender).
	MailSenderShare = 4
	// MailNearSlack: a holder takes a message only if fewer than this
	// many nodes of its routing table are closer to the receiver than it
	// is (senders look the closest up; their views differ a little).
	MailNearSlack = 2 * MailHolders
)

// errMailDrop marks an error of collect's handle that refuses an item
// for good (it can never be taken): collect acknowledges it, so the
// holder drops it. Errors of the codes in dropCodes count as such too;
// any other error leaves the item held, to be collected again.
var errMailDrop = errors.New("unicast: a held message that can never be taken")

// dropCodes are the codes of handle's errors that refuse an item for good.
var dropCodes = []string{CodeForged, CodeNotFriend, CodeInvalid, CodeReplay, CodeNoSession, CodeTooLarge}

// mailLimits are the holder's limits (Config's, or the defaults).
type mailLimits struct {
	maxMessage     int
	perReceiver    int64
	held           int64
	maxAge         time.Duration
	perSender      int64 // for one receiver
	heldFromSender int64 // for all its receivers
}

// mailboxLimits is the Config's mailbox limits, defaults for zero fields.
func (c Config) mailboxLimits() mailLimits {
	l := mailLimits{maxMessage: c.MaxMessage, perReceiver: c.MaxPerReceiver, held: c.MaxHeld, maxAge: c.MaxAge}
	if l.maxMessage <= 0 {
		l.maxMessage = DefaultMaxMessage
	}
	if l.perReceiver <= 0 {
		l.perReceiver = DefaultMaxPerReceiver
	}
	if l.held <= 0 {
		l.held = DefaultMaxHeld
	}
	if l.maxAge <= 0 {
		l.maxAge = DefaultMaxAge
	}
	if l.perSender = c.MaxPerSender; l.perSender <= 0 {
		l.perSender = l.perReceiver / MailSenderShare
	}
	if l.heldFromSender = c.MaxHeldPerSender; l.heldFromSender <= 0 {
		l.heldFromSender = l.held / MailSenderShare
	}
	return l
}

// mailbox is what this node holds for others as a holder of offline
// messages (see the package doc, "Offline delivery"). Items are kept in
// the store under "mail/<to hex>/<id hex>" (mailRecord) and in memory:
// per receiver in the order they came, and all together in that order
// for expiry.
type mailbox struct {
	mu     sync.Mutex
	limits mailLimits
	st     store.Store
	boxes  map[id.Address]*receiverBox
	sent   map[id.Address]int64 // what each sender has held here, in all (cost)
	queue  []*heldItem          // every item, oldest first; removed ones linger until popped
	seq    uint64               // the last item's sequence number
	count  int
	frames int64 // bytes of the frames held
}

// receiverBox is what the mailbox holds for one receiver.
type receiverBox struct {
	items []*heldItem // in sequence order; removed ones linger until compacted
	byID  map[[16]byte]*heldItem
	cost  int64                // frames plus MailItemOverhead each
	from  map[id.Address]int64 // cost by sender
}

type heldItem struct {
	to   id.Address
	seq  uint64
	item wire.MailboxItem
	gone bool
}

func (it *heldItem) cost() int64 { return int64(len(it.item.Frame)) + MailItemOverhead }

// attachMailbox registers the holder's request handlers (MailboxPut,
// MailboxCollect, MailboxAck) on h and loads the items held in the store.
func (s *Service) attachMailbox(h *node.Host) {
	m := &s.mail
	m.limits = s.cfg.mailboxLimits()
	m.st = h.Store()
	m.boxes = make(map[id.Address]*receiverBox)
	m.sent = make(map[id.Address]int64)
	m.load(h)
	h.HandleRequest(wire.TypeMailboxPut, func(_ context.Context, from id.Address, req wire.Message) (wire.Message, error) {
		put := req.(*wire.MailboxPut)
		self := h.Lease().Address
		if !near(self, put.To, h.Contacts()) {
			return nil, node.Errorf(CodeInvalid, []error{wire.ErrProtocol},
				"this node is not among the nodes closest to %s, which hold its messages", put.To.Short())
		}
		return m.put(from, self, put, h.Clock().Now())
	})
	h.HandleRequest(wire.TypeMailboxCollect, func(_ context.Context, from id.Address, req wire.Message) (wire.Message, error) {
		return m.collect(from, req.(*wire.MailboxCollect).After, h.Clock().Now()), nil
	})
	h.HandleRequest(wire.TypeMailboxAck, func(_ context.Context, from id.Address, req wire.Message) (wire.Message, error) {
		return m.ack(from, req.(*wire.MailboxAck).IDs, h.Clock().Now()), nil
	})
}

// load reads the items the store holds: malformed and expired ones are
// deleted.
func (m *mailbox) load(h *node.Host) {
	keys, err := m.st.Keys(mailPrefix)
	if err != nil {
		h.Logger().Warn("could not list the held messages", "err", err)
		return
	}
	now := h.Clock().Now()
	var items []*heldItem
	for _, k := range keys {
		it, err := m.read(k)
		if err == nil && now.Sub(time.UnixMilli(it.item.At)) >= m.limits.maxAge {
			err = errors.New("expired")
		}
		if err == nil && it.item.At > now.UnixMilli() {
			// Kept under a clock that has since gone back: expiry runs
			// oldest first, so an item from the future would hold back
			// every item after it.
			it.item.At = now.UnixMilli()
		}
		if err != nil {
			h.Logger().Info("dropped a held message", "key", k, "why", err)
			m.st.Delete(k)
			continue
		}
		items = append(items, it)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].seq < items[j].seq })
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range items {
		m.addLocked(it)
		m.seq = max(m.seq, it.seq)
	}
	if len(items) > 0 {
		h.Logger().Info("holding messages for others", "items", m.count, "bytes", m.frames)
	}
}

func (m *mailbox) read(key string) (*heldItem, error) {
	to, item, ok := parseMailKey(key)
	if !ok {
		return nil, errors.New("not a mailbox key")
	}
	b, err := m.st.Get(key)
	if err != nil {
		return nil, err
	}
	seq, it, err := decodeMailRecord(b)
	if err != nil {
		return nil, err
	}
	it.ID = item
	return &heldItem{to: to, seq: seq, item: it}, nil
}

// near reports whether self is among the nodes of contacts closest to
// to, give or take MailNearSlack: a holder for to's messages.
func near(self, to id.Address, contacts []id.Address) bool {
	closer := 0
	for _, c := range contacts {
		if c != to && c != self && id.Closer(to, c, self) {
			closer++
		}
	}
	return closer < MailNearSlack
}

// put holds req's frame for req.To, from from; self is this node.
func (m *mailbox) put(from, self id.Address, req *wire.MailboxPut, now time.Time) (wire.Message, error) {
	if req.To.IsZero() || req.To == self {
		return nil, node.Errorf(CodeInvalid, []error{wire.ErrProtocol}, "this node holds messages for others, not for itself or the zero address")
	}
	if len(req.Frame) > m.limits.maxMessage {
		return nil, node.Errorf(CodeTooLarge, []error{wire.ErrTooLarge},
			"this node holds messages of at most %d bytes; this one has %d", m.limits.maxMessage, len(req.Frame))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	box := m.boxes[req.To]
	if held := box.get(req.ID); held != nil {
		if held.item.From == from {
			return &wire.MailboxStored{Count: 1}, nil // a second put of what it holds
		}
		// Another sender's item has that ID: never let it stand for
		// this one (a node that saw the ID could squat it).
		return nil, node.Errorf(CodeInvalid, []error{wire.ErrStale},
			"this node holds another sender's message of that id for %s", req.To.Short())
	}
	cost := int64(len(req.Frame)) + MailItemOverhead
	if box != nil && box.cost+cost > m.limits.perReceiver {
		return nil, node.Errorf(CodeMailFull, []error{wire.ErrFull},
			"this node holds all it can for %s (%d bytes)", req.To.Short(), m.limits.perReceiver)
	}
	if box != nil && box.from[from]+cost > m.limits.perSender {
		return nil, node.Errorf(CodeMailFull, []error{wire.ErrFull},
			"this node holds all it takes from one sender for %s (%d bytes)", req.To.Short(), m.limits.perSender)
	}
	if m.sent[from]+cost > m.limits.heldFromSender {
		return nil, node.Errorf(CodeMailFull, []error{wire.ErrFull},
			"this node holds all it takes from one sender (%d bytes)", m.limits.heldFromSender)
	}
	if m.totalCostLocked()+cost > m.limits.held {
		return nil, node.Errorf(CodeMailFull, []error{wire.ErrFull},
			"this node holds all the messages it can for others (%d bytes)", m.limits.held)
	}
	it := &heldItem{to: req.To, seq: m.seq + 1, item: wire.MailboxItem{
		ID: req.ID, From: from, At: now.UnixMilli(), Frame: append([]byte(nil), req.Frame...),
	}}
	// Kept before it is acknowledged, so a holder that restarts loses
	// nothing it said it holds.
	if err := store.PutDurable(m.st, mailKey(it.to, it.item.ID), encodeMailRecord(it.seq, it.item)); err != nil {
		return nil, node.Errorf(node.CodeUnavailable, []error{wire.ErrUnavailable, err}, "this node could not keep the message: %v", err)
	}
	m.seq++
	m.addLocked(it)
	return &wire.MailboxStored{Count: 1}, nil
}

func (m *mailbox) totalCostLocked() int64 { return m.frames + int64(m.count)*MailItemOverhead }

// get is the item of ID x the box holds, nil if none (or no box).
func (b *receiverBox) get(x [16]byte) *heldItem {
	if b == nil {
		return nil
	}
	return b.byID[x]
}

func (m *mailbox) addLocked(it *heldItem) {
	box := m.boxes[it.to]
	if box == nil {
		box = &receiverBox{byID: make(map[[16]byte]*heldItem), from: make(map[id.Address]int64)}
		m.boxes[it.to] = box
	}
	box.items = append(box.items, it)
	box.byID[it.item.ID] = it
	box.cost += it.cost()
	box.from[it.item.From] += it.cost()
	m.sent[it.item.From] += it.cost()
	m.queue = append(m.queue, it)
	m.count++
	m.frames += int64(len(it.item.Frame))
}

// removeLocked drops it from memory and the store.
func (m *mailbox) removeLocked(it *heldItem) {
	if it.gone {
		return
	}
	it.gone = true
	box := m.boxes[it.to]
	delete(box.byID, it.item.ID)
	box.cost -= it.cost()
	if box.from[it.item.From] -= it.cost(); box.from[it.item.From] <= 0 {
		delete(box.from, it.item.From)
	}
	if m.sent[it.item.From] -= it.cost(); m.sent[it.item.From] <= 0 {
		delete(m.sent, it.item.From)
	}
	m.count--
	m.frames -= int64(len(it.item.Frame))
	if len(box.byID) == 0 {
		delete(m.boxes, it.to)
	} else if len(box.items) > 2*len(box.byID)+16 {
		live := box.items[:0]
		for _, x := range box.items {
			if !x.gone {
				live = append(live, x)
			}
		}
		clear(box.items[len(live):])
		box.items = live
	}
	// A failed delete leaves the record until the next load, which
	// drops it as expired at the latest.
	_ = m.st.Delete(mailKey(it.to, it.item.ID))
}

// expireLocked drops the items older than MaxAge at now, and the queue's
// removed items in front.
func (m *mailbox) expireLocked(now time.Time) {
	n := 0
	for _, it := range m.queue {
		if !it.gone && now.Sub(time.UnixMilli(it.item.At)) < m.limits.maxAge {
			break
		}
		m.removeLocked(it)
		n++
	}
	if n > 0 {
		clear(m.queue[:n])
		m.queue = m.queue[n:]
	}
	if len(m.queue) > 2*m.count+64 {
		live := make([]*heldItem, 0, m.count)
		for _, it := range m.queue {
			if !it.gone {
				live = append(live, it)
			}
		}
		m.queue = live
	}
}

// collect is the page after the item after (from the start if it is
// zero or no longer held) of what the mailbox holds for to.
func (m *mailbox) collect(to id.Address, after [16]byte, now time.Time) *wire.MailboxItems {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	page := &wire.MailboxItems{}
	box := m.boxes[to]
	if box == nil {
		return page
	}
	var from uint64
	if it := box.byID[after]; it != nil && after != ([16]byte{}) {
		from = it.seq
	}
	i := sort.Search(len(box.items), func(i int) bool { return box.items[i].seq > from })
	size := 0
	for ; i < len(box.items); i++ {
		it := box.items[i]
		if it.gone {
			continue
		}
		n := 16 + id.Len + 10 + 3 + len(it.item.Frame)
		if len(page.Items) == wire.MaxMailboxItems || (len(page.Items) > 0 && size+n > mailPageBytes) {
			page.More = true
			break
		}
		page.Items = append(page.Items, it.item)
		size += n
	}
	return page
}

// ack drops the items ids that the mailbox holds for to.
func (m *mailbox) ack(to id.Address, ids [][16]byte, now time.Time) *wire.MailboxStored {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expireLocked(now)
	var n uint32
	for _, x := range ids {
		box := m.boxes[to]
		if box == nil {
			break
		}
		if it := box.byID[x]; it != nil {
			m.removeLocked(it)
			n++
		}
	}
	return &wire.MailboxStored{Count: n}
}

// holdAt puts frame, named item, at the node closest to the address to
// (not to itself; this node if it is the closest) and returns that node.
// A holder that cannot be reached, or has no room, leaves it to the next
// closest (at most MailHolders tried); a message too large is refused
// at once.
func (s *Service) holdAt(ctx context.Context, to id.Address, item [16]byte, frame []byte) (id.Address, error) {
	self := s.h.Lease().Address
	// A lookup of the receiver's own address stops at the receiver if it
	// answers (online after all, or not yet gone from the tables); one
	// of the address next to it runs to the nodes closest to both, in
	// the same order (distances to the two differ in their last bit).
	near := to
	near[id.Len-1] ^= 1
	cands, err := s.h.Closest(ctx, near, MailHolders+2)
	if err != nil {
		return id.Address{}, node.Errorf(node.Explain(err).Code, []error{err}, "no node can hold the message for %s: %v", to.Short(), err)
	}
	put := &wire.MailboxPut{To: to, ID: item, Frame: frame}
	var last error
	tried := 0
	for _, c := range cands {
		if c == to || tried == MailHolders {
			continue
		}
		tried++
		if c == self {
			_, err = s.mail.put(self, self, put, s.h.Clock().Now())
		} else {
			var resp wire.Message
			resp, err = s.h.Request(ctx, c, put)
			if _, ok := resp.(*wire.MailboxStored); err == nil && !ok {
				err = node.Errorf(node.CodeError, []error{wire.ErrProtocol}, "node %s answered a held message with a %T", c.Short(), resp)
			}
			err = mailRefusal(c, err)
		}
		if err == nil {
			return c, nil
		}
		last = err
		var e *node.Error
		if errors.As(err, &e) && e.Code == CodeTooLarge {
			break
		}
	}
	if last == nil {
		last = node.Errorf(node.CodeUnavailable, []error{node.ErrNoRoute}, "no node but %s itself is near its address to hold the message", to.Short())
	}
	return id.Address{}, last
}

// mailRefusal words a holder's refusal for people, with the unicast
// codes for a message too large and a full mailbox.
func mailRefusal(holder id.Address, err error) error {
	if err == nil {
		return nil
	}
	why := err.Error()
	var re *wire.RemoteError
	if errors.As(err, &re) && re.Message != "" {
		why = re.Message
	}
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return node.Errorf(CodeTooLarge, []error{err}, "the node that would hold the message refuses it: %s", why)
	case errors.Is(err, wire.ErrFull):
		return node.Errorf(CodeMailFull, []error{err}, "the node that would hold the message has no room: %s", why)
	}
	var e *node.Error
	if errors.As(err, &e) {
		return err
	}
	return node.Errorf(node.Explain(err).Code, []error{err}, "node %s could not hold the message: %s", holder.Short(), why)
}

// collect takes what the nodes closest to this node's address hold for
// it: handle is called for each item, and the items it took (nil) or
// refused for good (an error wrapping errMailDrop, or a *node.Error of
// one of dropCodes) are acknowledged; other errors leave an item held.
// An item held by two nodes (the sender put it again) is handled once.
// It returns how many were taken, and an error only if no holder could
// be asked.
func (s *Service) collect(ctx context.Context, handle func(from id.Address, frame []byte) error) (int, error) {
	self := s.h.Lease().Address
	cands, err := s.h.Closest(ctx, self, MailHolders+1)
	if err != nil {
		return 0, node.Errorf(node.Explain(err).Code, []error{err}, "could not find the nodes holding messages for this node: %v", err)
	}
	seen := make(map[mailSeen]bool) // an item: acknowledge it (true) or leave it (false)
	taken, asked := 0, 0
	var errs []error
	for _, c := range cands {
		if c == self || asked == MailHolders {
			continue
		}
		asked++
		n, err := s.collectFrom(ctx, c, handle, seen)
		taken += n
		if err != nil {
			s.h.Logger().Info("could not collect held messages", "holder", c.Short(), "err", err)
			errs = append(errs, err)
		}
	}
	if asked > 0 && len(errs) == asked {
		return taken, node.Errorf(node.Explain(errs[0]).Code, errs, "no node holding messages for this node answered: %v", errs[0])
	}
	return taken, nil
}

// collectFrom pages through what holder holds for this node, then
// acknowledges what was taken or refused for good.
// mailSeen names an item collect has handled: by its sender and ID, as
// one sender's ID is another's only if someone copied it.
type mailSeen struct {
	from id.Address
	id   [16]byte
}

func (s *Service) collectFrom(ctx context.Context, holder id.Address, handle func(id.Address, []byte) error, seen map[mailSeen]bool) (int, error) {
	var after [16]byte
	var acks [][16]byte
	taken := 0
	var failed error
	for range MailCollectPages {
		resp, err := s.h.Request(ctx, holder, &wire.MailboxCollect{After: after})
		if err != nil {
			failed = err
			break
		}
		page, ok := resp.(*wire.MailboxItems)
		if !ok {
			failed = fmt.Errorf("node %s answered a collect with a %T", holder.Short(), resp)
			break
		}
		fresh := 0
		for _, it := range page.Items {
			key := mailSeen{it.From, it.ID}
			if drop, ok := seen[key]; ok {
				if drop && !containsID(acks, it.ID) {
					acks = append(acks, it.ID)
				}
				continue
			}
			fresh++
			err := handle(it.From, it.Frame)
			drop := err == nil || refusedForGood(err)
			if err == nil {
				taken++
			}
			seen[key] = drop
			if drop {
				acks = append(acks, it.ID)
			}
		}
		// No new item in a page: the holder went back to the start (the
		// page's last item expired meanwhile) and there is nothing more.
		if !page.More || len(page.Items) == 0 || fresh == 0 {
			break
		}
		after = page.Items[len(page.Items)-1].ID
	}
	for len(acks) > 0 {
		n := min(len(acks), wire.MaxMailboxItems)
		if _, err := s.h.Request(ctx, holder, &wire.MailboxAck{IDs: acks[:n]}); err != nil {
			return taken, errors.Join(failed, fmt.Errorf("acknowledging held messages to %s: %w", holder.Short(), err))
		}
		acks = acks[n:]
	}
	return taken, failed
}

func containsID(ids [][16]byte, x [16]byte) bool {
	for _, y := range ids {
		if y == x {
			return true
		}
	}
	return false
}

// refusedForGood reports whether handle's err means the item can never
// be taken (so the holder may drop it).
func refusedForGood(err error) bool {
	if errors.Is(err, errMailDrop) {
		return true
	}
	var e *node.Error
	if errors.As(err, &e) {
		for _, c := range dropCodes {
			if e.Code == c {
				return true
			}
		}
	}
	return false
}

// mailboxStats is what this node holds for others.
func (s *Service) mailboxStats() (held int, bytes int64) {
	m := &s.mail
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.h != nil && m.boxes != nil {
		m.expireLocked(s.h.Clock().Now())
	}
	return m.count, m.frames
}

// Store keys of held items: "mail/<to hex>/<id hex>".
const mailPrefix = "mail/"

func mailKey(to id.Address, item [16]byte) string {
	return mailPrefix + to.String() + "/" + hex.EncodeToString(item[:])
}

func parseMailKey(k string) (to id.Address, item [16]byte, ok bool) {
	rest, found := strings.CutPrefix(k, mailPrefix)
	a, b, found2 := strings.Cut(rest, "/")
	if !found || !found2 || len(a) != 2*id.Len || len(b) != 32 {
		return to, item, false
	}
	if _, err := hex.Decode(to[:], []byte(a)); err != nil {
		return to, item, false
	}
	if _, err := hex.Decode(item[:], []byte(b)); err != nil {
		return to, item, false
	}
	return to, item, mailKey(to, item) == k // lower case only: one key per item
}

// A held item's record, version 1: version | sequence number (u64) |
// from (20) | at (u64, Unix ms) | frame (the rest). The key names the
// receiver and the item.
const (
	mailRecordVersion = 1
	mailRecordHeader  = 1 + 8 + id.Len + 8
	// MaxMailRecord bounds a held item's record.
	MaxMailRecord = mailRecordHeader + wire.MaxSealed + 64
)

func encodeMailRecord(seq uint64, it wire.MailboxItem) []byte {
	b := make([]byte, 0, mailRecordHeader+len(it.Frame))
	b = append(b, mailRecordVersion)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, it.From[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(it.At))
	return append(b, it.Frame...)
}

func decodeMailRecord(b []byte) (uint64, wire.MailboxItem, error) {
	var it wire.MailboxItem
	if len(b) < mailRecordHeader || len(b) > MaxMailRecord {
		return 0, it, fmt.Errorf("a held message's record of %d bytes", len(b))
	}
	if b[0] != mailRecordVersion {
		return 0, it, fmt.Errorf("a held message's record of version %d", b[0])
	}
	seq := binary.BigEndian.Uint64(b[1:])
	if seq == 0 {
		return 0, it, errors.New("a held message's record with no sequence number")
	}
	copy(it.From[:], b[9:])
	it.At = int64(binary.BigEndian.Uint64(b[9+id.Len:]))
	it.Frame = append([]byte{}, b[mailRecordHeader:]...)
	return seq, it, nil
}
