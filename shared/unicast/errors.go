package unicast

import (
	"errors"
	"fmt"

	"ddt/shared/node"
	"ddt/shared/wire"
)

// A refusal crosses the wire as a wire.Error, whose codes are numbers the
// wire package fixes; the service's codes travel as these (and back).
// The wire has no code of its own for each, so the closest one carries
// it, and the refusal's sentence says the rest.
var toWire = map[string]wire.Code{
	CodeInvalid:          wire.CodeMalformed,
	CodeNotFound:         wire.CodeNotFound,
	CodeForged:           wire.CodeBadSignature,
	CodeNotFriend:        wire.CodeUnknownPeer,
	CodeTooLarge:         wire.CodeTooLarge,
	CodeMailFull:         wire.CodeFull,
	CodeNoSession:        wire.CodeExpired,
	CodeReplay:           wire.CodeStale,
	node.CodeRateLimited: wire.CodeRateLimited,
	node.CodeUnavailable: wire.CodeUnavailable,
}

var fromWire = func() map[wire.Code]string {
	m := map[wire.Code]string{
		wire.CodeUnsupported: node.CodeUnsupported,
		wire.CodeNotAdmitted: node.CodeNotAdmitted,
		wire.CodeBadName:     CodeInvalid,
	}
	for c, w := range toWire {
		m[w] = c
	}
	return m
}()

// refuse is a handler's refusal with one of the service's codes, as the
// node sends it back (a *wire.RemoteError keeps its code and sentence).
func refuse(code, format string, args ...any) error {
	w, ok := toWire[code]
	if !ok {
		w = wire.CodeInternal
	}
	return &wire.RemoteError{Code: w, Message: fmt.Sprintf(format, args...)}
}

// remote turns the error of a Host.Request into a *node.Error with the
// service's code: a refusal the receiver sent, in its words (prefixed by
// what), or the node's own failure. notFound, if set, is the code a
// wire.CodeNotFound stands for in this exchange.
func remote(err error, what, notFound string) error {
	var re *wire.RemoteError
	if !errors.As(err, &re) {
		return node.Coded(err)
	}
	code, ok := fromWire[re.Code]
	if re.Code == wire.CodeNotFound && notFound != "" {
		code, ok = notFound, true
	}
	if !ok {
		code = node.CodeError
	}
	msg := re.Message
	if msg == "" {
		msg = re.Error()
	}
	return node.Errorf(code, []error{err}, "%s: %s", what, msg)
}

// serviceCode is the service's code of err ("" for nil).
func serviceCode(err error) string {
	if err == nil {
		return ""
	}
	var re *wire.RemoteError
	if errors.As(err, &re) {
		if c, ok := fromWire[re.Code]; ok {
			return c
		}
	}
	return node.Explain(err).Code
}

// answered reports whether err is the receiver's refusal (it got the
// request), as against no answer at all.
func answered(err error) bool {
	var re *wire.RemoteError
	return errors.As(err, &re)
}
