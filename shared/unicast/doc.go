// Package unicast is the paper's unicast domain: friends, the chained key
// exchange, end-to-end encrypted chat, and offline delivery.
//
// # Friends
//
// Befriend resolves the name (package username: a record whose ledger
// proof verifies against a trusted relay) and sends a FriendRequest to
// the name's address with Host.Request (over a data channel if one is
// open, else routed). It carries our own username record (we must have a
// name), the name we asked for, and our onion public key. The receiver
// checks the record (it verifies, its lease address is the address the
// request came from, To is its own name) and keeps the request (event
// friend-request) until the user answers. Accept and Decline send a
// FriendAnswer the same way. Both sides keep the friend — name, identity
// keys, onion key, last address, since — in the node's store. A friend is
// its key: a record of the same name with another key is refused.
// Requests and answers to a node that is away are kept and sent again
// when it is back (its Presence) or at the next admission.
//
// # The chained key exchange
//
// On acceptance the acceptor (the initiator of the exchange) makes a
// session id, four random 32-byte shares and a ratchet key pair, and
// sends each share as a signed ConnectShare in an Onion (package onion)
// through three intermediaries picked at random from its routing table
// (Host.Contacts, neither friend, with a verified KeyRecord each) — four
// chains, so no one node sees more than one share. Each hop routes the
// peeled onion to the next (Host.SendRouted); the receiver checks the
// share (signed by the friend, addressed to it, fresh, not replayed) and
// routes a ShareAck back. A share with no ShareAck in ChainTimeout goes
// again on a new chain, of the hops in the fewest failed chains. With all
// four, the receiver derives the keyring (ratchet.Derive: the shares and
// the X25519 agreement of the two identity keys, so a node in the middle
// that swapped shares still cannot derive it), starts its ratchet state
// and sends its first message, the confirmation; the initiator's state
// is ready once that opens. Sessions are made again after SessionMaxAge,
// or when a friend answers CodeNoSession (it lost its state).
//
// # Messages
//
// Send seals the text with the session's ratchet (a plaintext of its own
// binary layout: kind, number, id, time, text) and sends a ChatMessage
// with Host.Request; the friend opens it, stores it, and answers with a
// sealed receipt (the highest number it has delivered in order). Messages
// are numbered per conversation and direction: the receiver delivers
// number n only after n−1 (holding the early ones), and never twice.
// History — both directions — stays in the node's store.
//
// # Offline delivery
//
// A friend that does not answer gets the message held: a MailboxPut of
// the sealed ChatMessage to the node closest to the friend's address
// (one replica). A holder keeps at most MaxMessage a message, MaxPerReceiver
// for one receiver, MaxHeld in all, for MaxAge (on the node's clock).
// A node that is admitted collects from the nodes closest to its own
// address (MailboxCollect, pages of MailboxItems), handles each item as
// if its sender had sent it, acknowledges to the holder (MailboxAck), and
// sends a Presence to its friends. The sender keeps each message in its
// outbox until the friend's receipt: it puts it again while the friend
// stays away (so a holder that went away loses nothing) and sends it
// directly when the friend's Presence comes. A message is "delivered"
// only on the friend's receipt.
//
// # What others see
//
// The relay: that a node sent a frame to another (signaling), never
// contents. A hop of a chain: the hop before and after it, a fixed-size
// onion. The holder: the sender's and receiver's addresses, sizes and
// times of sealed messages. The overlay's forwarders of a routed message:
// its origin and destination addresses, its size and its sealed bytes.
// None of them can read or forge a share, a message or a receipt.
package unicast
