package federation

import "errors"

// Errors of links and dials.
var (
	// ErrSelfLink: the relay at the other end is this relay (a -peer that
	// names this relay's own URL). Its dialer stops.
	ErrSelfLink = errors.New("the other relay is this relay")
	// ErrDuplicate: a link to that relay is up already and is kept. The
	// dialer waits for it to end.
	ErrDuplicate = errors.New("already linked to that relay")
	// ErrTooMany: as many relays are linked, or known, as a relay keeps.
	ErrTooMany = errors.New("too many federated relays")
	// ErrShuttingDown: the relay is closing.
	ErrShuttingDown = errors.New("relay shutting down")
	// ErrUntrusted: a relay whose key this relay does not trust tried to
	// link, and this relay is not in open federation. It is refused.
	ErrUntrusted = errors.New("relay not trusted")
	// ErrKeyMismatch: the relay at a -peer URL proved another key than
	// the one named or pinned for it. It is refused, and dialed again
	// with backoff.
	ErrKeyMismatch = errors.New("relay key mismatch")
	// ErrBadPeer is what Config.Dial returns, wrapped, for a -peer it can
	// never dial (an unusable URL): its dialer gives up.
	ErrBadPeer = errors.New("unusable relay URL")
)
