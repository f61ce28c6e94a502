package wire

import (
	"errors"
	"fmt"
)

// Decoding errors.
var (
	ErrMalformed = errors.New("wire: malformed message")
	ErrTooLarge  = errors.New("wire: message too large")
	ErrVersion   = errors.New("wire: unsupported protocol version")
	// ErrUnknownType: a frame of a type this build does not have, as a
	// newer peer sends. It wraps ErrMalformed, but a link skips such a
	// frame (and counts it) instead of closing: test for it first.
	ErrUnknownType = fmt.Errorf("%w: unknown type", ErrMalformed)
)

// Errors a peer or relay reports with an Error or Refused message.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrNotAdmitted  = errors.New("not admitted to this zone")
	ErrUnknownPeer  = errors.New("no such node in this zone")
	ErrRateLimited  = errors.New("rate limited")
	ErrZoneFull     = errors.New("zone full")
	ErrExpired      = errors.New("lease expired")
	ErrProtocol     = errors.New("protocol violation")
	ErrInternal     = errors.New("internal error")
	ErrStale        = errors.New("stale record")
	ErrFull         = errors.New("storage full")
	ErrNameTaken    = errors.New("name taken")
	ErrNotFound     = errors.New("not found")
	ErrBadName      = errors.New("invalid name")
	ErrUnavailable  = errors.New("temporarily unavailable")
	ErrUnsupported  = errors.New("not supported")
)

// Code is an error as it crosses the wire.
type Code uint16

// Error codes. Values are part of the protocol: never renumber.
const (
	CodeNone         Code = 0
	CodeMalformed    Code = 1
	CodeTooLarge     Code = 2
	CodeVersion      Code = 3
	CodeBadSignature Code = 4
	CodeNotAdmitted  Code = 5
	CodeUnknownPeer  Code = 6
	CodeRateLimited  Code = 7
	CodeZoneFull     Code = 8
	CodeExpired      Code = 9
	CodeProtocol     Code = 10
	CodeInternal     Code = 11
	CodeNameTaken    Code = 12 // the username belongs to another key
	CodeNotFound     Code = 13 // no such name (or record)
	CodeBadName      Code = 14 // not a valid username, or a claim that does not verify
	CodeUnavailable  Code = 15 // the relay that decides cannot be reached now; try again
	CodeUnsupported  Code = 16 // a request of a type, or for a feature, the receiver does not have

	// 48–63: DHT refusals, numbered like the DHT's message types.
	CodeStale Code = 48 // a newer record, or a different one with the same sequence number, is stored
	CodeFull  Code = 49 // the key has its maximum of signers, or the node's record storage is full
)

// CodeAlreadyRegistered: the claimant's key holds another username (the
// name's home refuses a second name for one key). 17–19 are left free.
const CodeAlreadyRegistered Code = 20

// ErrAlreadyRegistered is CodeAlreadyRegistered's sentinel.
var ErrAlreadyRegistered = errors.New("already registered")

func init() { codeErrs[CodeAlreadyRegistered] = ErrAlreadyRegistered }

var codeErrs = map[Code]error{
	CodeMalformed:    ErrMalformed,
	CodeTooLarge:     ErrTooLarge,
	CodeVersion:      ErrVersion,
	CodeBadSignature: ErrBadSignature,
	CodeNotAdmitted:  ErrNotAdmitted,
	CodeUnknownPeer:  ErrUnknownPeer,
	CodeRateLimited:  ErrRateLimited,
	CodeZoneFull:     ErrZoneFull,
	CodeExpired:      ErrExpired,
	CodeProtocol:     ErrProtocol,
	CodeInternal:     ErrInternal,
	CodeNameTaken:    ErrNameTaken,
	CodeNotFound:     ErrNotFound,
	CodeBadName:      ErrBadName,
	CodeUnavailable:  ErrUnavailable,
	CodeUnsupported:  ErrUnsupported,
	CodeStale:        ErrStale,
	CodeFull:         ErrFull,
}

// Err returns the sentinel error for c (ErrInternal for unknown codes,
// nil for CodeNone).
func (c Code) Err() error {
	if c == CodeNone {
		return nil
	}
	if err, ok := codeErrs[c]; ok {
		return err
	}
	return ErrInternal
}

// CodeOf returns the code for err, matching sentinels with errors.Is.
func CodeOf(err error) Code {
	if err == nil {
		return CodeNone
	}
	for c, e := range codeErrs {
		if errors.Is(err, e) {
			return c
		}
	}
	return CodeInternal
}

// RemoteError is an error reported by the other side of a link.
type RemoteError struct {
	Code    Code
	Message string
}

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return e.Code.Err().Error()
	}
	return fmt.Sprintf("%v: %s", e.Code.Err(), e.Message)
}

// Unwrap lets errors.Is match the code's sentinel.
func (e *RemoteError) Unwrap() error { return e.Code.Err() }
