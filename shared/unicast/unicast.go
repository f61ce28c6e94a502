package unicast

import (
	"io"
	"sync"
	"time"

	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/unicast/onion"
	"ddt/shared/username"
	"ddt/shared/wire"
)

// Events the service emits (node.Host.Emit), with their payloads.
const (
	EventFriendRequest = "friend-request" // RequestView: someone asks to be our friend
	EventFriend        = "friend"         // FriendView: a friend was added, answered, came online or went away
	EventMessage       = "message"        // MessageView: a message from a friend, delivered once and in order
	EventDelivered     = "delivered"      // DeliveredView: a friend acknowledged one of our messages
	EventSession       = "session"        // SessionView: a session with a friend was established or lost
)

// Error codes, beside the node's own (node.CodeUnavailable,
// node.CodeTimeout, node.CodeNotAdmitted, …) and username's.
const (
	CodeInvalid   = "invalid"      // not a username, an empty or oversized text
	CodeNoName    = "no-username"  // this node has no username: register one first
	CodeNotFound  = "not-found"    // nobody holds that name
	CodeForged    = "forged"       // a record, share or message that does not verify
	CodeNotFriend = "not-friend"   // a message to or from a name that is not a friend
	CodeSelf      = "self"         // a request to oneself
	CodeDeclined  = "declined"     // the friend request was declined
	CodeNoRequest = "no-request"   // accept or decline with no request from that name
	CodeTooLarge  = "too-large"    // a message above the limit
	CodeMailFull  = "mailbox-full" // the holder has no room for the receiver
	CodeNoSession = "no-session"   // the receiver has no session of that id (it is established again)
	CodeReplay    = "replay"       // a share, onion or message seen before
)

// Defaults of Config.
const (
	DefaultMaxMessage     = 64 << 10 // a held message (its frame)
	DefaultMaxPerReceiver = 4 << 20  // what one holder keeps for one receiver
	DefaultMaxAge         = 7 * 24 * time.Hour
	DefaultMaxHeld        = 64 << 20 // what one holder keeps in all
	MaxText               = 16 << 10 // the longest text of a message, in bytes of UTF-8
)

// Config configures the service. Zero fields take the defaults.
type Config struct {
	// Mailbox limits, as a holder: the largest held message, what is
	// kept for one receiver and in all, and for how long.
	MaxMessage     int
	MaxPerReceiver int64
	MaxHeld        int64
	MaxAge         time.Duration
	// What one sender may have held at a holder: for one receiver
	// (default MaxPerReceiver/MailSenderShare) and for all its receivers
	// (default MaxHeld/MailSenderShare), so that no stranger fills a
	// friend's mailbox or the holder's room alone.
	MaxPerSender     int64
	MaxHeldPerSender int64
	// Rand is the source of keys, shares and hop choices (crypto/rand).
	Rand io.Reader
	// DropOnions makes this node a hop that takes onion layers and
	// forwards none: for tests of a chain that fails (ddt-relay node
	// -drop-onions). Never set it otherwise.
	DropOnions bool
}

// Service is the unicast capability: friends, the chained key exchange,
// chat and offline delivery. Make one with New and list it in the node's
// Config.Capabilities after the username client.
type Service struct {
	cfg   Config
	h     *node.Host
	users *username.Client
	mail  mailbox // what this node holds for others: mailbox.go

	okey    *onion.PrivateKey // this node's onion key (store: onion-key)
	replays *onion.Replays    // onion layers opened, under omu
	omu     sync.Mutex
	flood   rates         // onions per origin
	work    chan struct{} // onions being peeled (MaxOnionWork)
	hops    hopCache
	stats   stats

	mu          sync.Mutex
	friends     map[string]*friend  // by name, ours and pending
	requests    map[string]*request // requests waiting for our answer
	sessions    map[[16]byte]*session
	outbox      map[string]map[[16]byte]*outItem // by friend name, by message id
	early       map[string]map[uint64]*heldText  // received ahead of their turn
	exchanges   map[[16]byte]*exchange           // key exchanges this node started
	incoming    map[[16]byte]*incoming           // shares received, by session
	seenShare   map[shareKey]time.Time           // shares taken, for replays
	waiters     map[string][]chan string         // Befriend calls waiting for an answer
	changed     chan struct{}                    // closed and replaced when a session changes
	lastSeen    map[string]time.Time
	lastReceipt map[string]time.Time // unrequested receipts sent, by friend
	looping     bool                 // the retry loop runs

	// preferHop, for tests only, is made the first hop of every share's
	// first chain (a hop that drops onions, to exercise the retries).
	preferHop id.Address
}

var _ node.Capability = (*Service)(nil)

// New returns a unicast service for the node whose username client is
// users.
func New(users *username.Client, cfg Config) *Service {
	return &Service{cfg: cfg, users: users}
}

// Feature implements node.Capability.
func (s *Service) Feature() string { return wire.FeatureUnicast }

// FriendView is a friend as window.ddt.friends() and GET /friends show it.
type FriendView struct {
	Name    string `json:"name"`
	Address string `json:"address"` // its last known address, 40 hex digits
	Online  bool   `json:"online"`  // it answered or sent something lately
	Since   int64  `json:"since"`   // when the friendship began (Unix ms); 0 while pending
	// State: "friend", "requested" (we asked; no answer yet), "declined".
	State string `json:"state"`
	// Session: "none", "connecting" (the key exchange runs), "ready".
	Session string `json:"session"`
	Unread  int    `json:"unread"` // messages received since MarkRead
	Safety  string `json:"safety"` // the safety number, 12 groups of five digits
}

// RequestView is a friend request waiting for an answer (event
// friend-request, window.ddt.requests()).
type RequestView struct {
	From    string `json:"from"`
	Address string `json:"address"`
	At      int64  `json:"at"`
}

// MessageView is one message of a conversation (event message,
// window.ddt.history()).
type MessageView struct {
	ID   string `json:"id"`   // 32 hex digits, the sender's
	From string `json:"from"` // the sender's name ("" for our own)
	To   string `json:"to"`   // the receiver's name ("" for one to us)
	Text string `json:"text"`
	At   int64  `json:"at"` // when it was sent, at the sender (Unix ms)
	// State of our own: "sending", "stored" (held for the offline
	// friend), "delivered" (the friend acknowledged it); "received" for
	// one to us.
	State string `json:"state"`
}

// DeliveredView is the payload of event delivered.
type DeliveredView struct {
	To string `json:"to"`
	ID string `json:"id"`
}

// SessionView is the payload of event session.
type SessionView struct {
	Name  string `json:"name"`
	State string `json:"state"` // "ready", "connecting", "none"
}

// SendResult is what Send resolves to.
type SendResult struct {
	ID string `json:"id"`
	// Delivered: "direct" (the friend acknowledged it now), "stored"
	// (held for it at the node closest to its address; event delivered
	// follows when it collects it), "queued" (it waits in the outbox and
	// goes when it can: no session with the friend yet — it has been
	// away since it accepted, or the last session expired — or the
	// friend and every holder refused or could not be reached now).
	Delivered string `json:"delivered"`
}

// StatsView counts what the service did (GET /unicast, ddt.chatStats()).
type StatsView struct {
	OnionsForwarded int64 `json:"onionsForwarded"` // layers peeled and passed on
	OnionsDropped   int64 `json:"onionsDropped"`   // refused: not for us, stale, replayed, flood, or DropOnions
	ChainsSent      int64 `json:"chainsSent"`      // chains this node started
	ChainsRetried   int64 `json:"chainsRetried"`   // chains sent again on other hops for want of a ShareAck
	Held            int   `json:"held"`            // messages this node holds for others
	HeldBytes       int64 `json:"heldBytes"`
}
