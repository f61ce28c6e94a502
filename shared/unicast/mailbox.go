package unicast

import (
	"context"

	"ddt/shared/id"
	"ddt/shared/node"
)

// mailbox is what this node holds for others as a holder of offline
// messages (see the package doc, "Offline delivery").
type mailbox struct{}

// attachMailbox registers the holder's request handlers (MailboxPut,
// MailboxCollect, MailboxAck) on h and loads the items held in the store.
func (s *Service) attachMailbox(h *node.Host) { panic("unicast: mailbox to build") }

// holdAt puts frame, named item, at the node closest to the address to
// (not to itself; this node if it is the closest) and returns that node.
func (s *Service) holdAt(ctx context.Context, to id.Address, item [16]byte, frame []byte) (id.Address, error) {
	panic("unicast: mailbox to build")
}

// collect takes what the nodes closest to this node's address hold for
// it: handle is called for each item, and the items it took (nil) or
// refused for good are acknowledged. It returns how many were taken.
func (s *Service) collect(ctx context.Context, handle func(from id.Address, frame []byte) error) (int, error) {
	panic("unicast: mailbox to build")
}

// mailboxStats is what this node holds for others.
func (s *Service) mailboxStats() (held int, bytes int64) { panic("unicast: mailbox to build") }
