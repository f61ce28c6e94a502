package node

import (
	"context"
	"errors"
	"fmt"

	"ddt/shared/dht"
	"ddt/shared/wire"
)

// Errors returned by Node and Host methods.
var (
	ErrNotConnected = errors.New("node: no open data channel to that address")
	ErrNotAdmitted  = errors.New("node: not admitted to a zone yet")
	ErrNoRoute      = fmt.Errorf("node: no connected peer is closer to that address (%w)", dht.ErrNoPath)
	ErrTimeout      = errors.New("node: no answer in time")
	// ErrQueueFull: the peer takes messages more slowly than they come;
	// its send queue stayed full.
	ErrQueueFull = errors.New("node: the peer's send queue is full")
	// ErrUnsupported: the peer or relay did not announce the feature
	// whose message this was (it also matches wire.ErrUnsupported).
	ErrUnsupported = fmt.Errorf("node: %w", wire.ErrUnsupported)
)

// Error codes, as window.ddt's rejections (their code property) and the
// native node's JSON errors ({error, code}) carry them. Capabilities add
// their own (package username: "taken", "not-found", …).
const (
	CodeNotAdmitted  = "not-admitted"
	CodeNotConnected = "not-connected"
	CodeUnavailable  = "unavailable"
	CodeRateLimited  = "rate-limited"
	CodeTimeout      = "timeout"
	CodeUnsupported  = "unsupported"
	CodeInvalid      = "invalid" // a bad argument: an address that is not 40 hex digits, a byte count out of range
	CodeError        = "error"   // anything else
)

// Error is a failure worded for people, with a code programs switch on.
// Capabilities return their failures as Errors at the boundary (Register,
// Resolve, …), so window.ddt and the native node show Message as it is;
// Causes keep what classified it for errors.Is and errors.As.
type Error struct {
	Code    string
	Message string
	Causes  []error
}

func (e *Error) Error() string   { return e.Message }
func (e *Error) Unwrap() []error { return e.Causes }

// ErrorCode is e's code (for shared/bridge, which puts it on the
// JavaScript Error).
func (e *Error) ErrorCode() string { return e.Code }

// Errorf is an Error with code and a message formatted from format and
// args; causes are what it wraps.
func Errorf(code string, causes []error, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Causes: causes}
}

// ErrorView is an error as window.ddt's callers and the native node's
// HTTP clients see it.
type ErrorView struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Explain gives err's code and message: an *Error's own, or a code for
// the node's sentinels with err's text; nothing for nil.
func Explain(err error) ErrorView {
	if err == nil {
		return ErrorView{}
	}
	var e *Error
	if errors.As(err, &e) {
		return ErrorView{Error: e.Message, Code: e.Code}
	}
	code := CodeError
	switch {
	case errors.Is(err, ErrNotAdmitted):
		code = CodeNotAdmitted
	case errors.Is(err, ErrNotConnected):
		code = CodeNotConnected
	case errors.Is(err, ErrQueueFull):
		code = CodeUnavailable
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		code = CodeTimeout
	case errors.Is(err, wire.ErrUnsupported):
		code = CodeUnsupported
	}
	return ErrorView{Error: err.Error(), Code: code}
}

// Coded returns err as an *Error with the code and message Explain gives
// it (err itself if it is one), so every failure a caller sees carries a
// code; nil stays nil.
func Coded(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	v := Explain(err)
	return &Error{Code: v.Code, Message: v.Error, Causes: []error{err}}
}
