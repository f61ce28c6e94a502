package dht

import (
	"errors"
	"fmt"

	"ddt/shared/wire"
)

// Errors. Those a node reports to a peer wrap a wire sentinel, so
// wire.CodeOf maps them to the code that crosses the wire.
var (
	// ErrNoContacts: the routing table is empty, so there is no one to ask.
	ErrNoContacts = errors.New("dht: no contacts")
	// ErrNoPath: a Network wraps it when it could not send a request at
	// all (say, no connection yet); the contact is not counted as failed.
	ErrNoPath = errors.New("dht: no way to reach the contact")
	// ErrNotStored: Put found nodes but none of them kept the record.
	ErrNotStored = errors.New("dht: no node stored the record")

	// ErrUnsigned: a record without a signer or a signature.
	ErrUnsigned = fmt.Errorf("dht: unsigned record: %w", wire.ErrBadSignature)
	// ErrBadSignature: a record whose signature does not verify.
	ErrBadSignature = fmt.Errorf("dht: bad record signature: %w", wire.ErrBadSignature)
	// ErrTooLarge: a record or value over its limit.
	ErrTooLarge = fmt.Errorf("dht: record too large: %w", wire.ErrTooLarge)
	// ErrMalformed: bytes that do not decode as a record.
	ErrMalformed = fmt.Errorf("dht: malformed record: %w", wire.ErrMalformed)
	// ErrStale: the node holds a record of the same key and signer with a
	// higher sequence number, or a different one with the same number.
	ErrStale = fmt.Errorf("dht: %w", wire.ErrStale)
	// ErrTooManySigners: the key already holds records of MaxSigners
	// other signers.
	ErrTooManySigners = fmt.Errorf("dht: key has %d signers: %w", MaxSigners, wire.ErrFull)
	// ErrFull: the node's storage for others' records is full of records
	// closer to it than this one.
	ErrFull = fmt.Errorf("dht: record storage full: %w", wire.ErrFull)
	// ErrUnexpected: a request Handle does not serve.
	ErrUnexpected = fmt.Errorf("dht: unexpected request: %w", wire.ErrProtocol)
	// ErrBadReply: a peer answered with the wrong message.
	ErrBadReply = fmt.Errorf("dht: unexpected reply: %w", wire.ErrProtocol)
)
