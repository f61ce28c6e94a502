package link

import (
	"errors"
	"fmt"

	"ddt/shared/wire"
)

// ErrViolation is a handler's answer that a frame broke a rule and the
// handler has already told the other side (a NameResult refusing a
// claim, say): the frame counts against the link.
var ErrViolation = errors.New("frame refused")

// Refusal is a handler's answer that a frame is refused: the other side
// hears Message in an Error with Code, the link stays, and the frame
// counts against it.
type Refusal struct {
	Code    wire.Code
	Message string
}

func (r *Refusal) Error() string { return r.Message }

// Refuse returns a Refusal with code and a message made like fmt.Sprintf.
func Refuse(code wire.Code, format string, args ...any) error {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}
