package content

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/node"
	"ddt/shared/store"
)

// Error codes of the service's failures, beside the node's own
// (node.CodeInvalid, node.CodeUnavailable, …). Every error the service
// returns at its boundary is a *node.Error with one of them.
const (
	CodeNotFound = "not-found" // no node holds the content (or a chunk of it)
	CodeCorrupt  = "corrupt"   // bytes that do not match their hash, a manifest that lies
	CodeQuota    = "quota"     // the pledge, or the platform's storage, is full
	CodeAborted  = "aborted"   // the caller cancelled
)

// Event kinds the service emits (Host.Emit).
const (
	// EventReplicas: content's replica count after publication
	// (ReplicasEvent).
	EventReplicas = "content.replicas"
	// EventPenalty: a provider was penalised (PenaltyEvent).
	EventPenalty = "content.penalty"
)

// ReplicasEvent is EventReplicas's value.
type ReplicasEvent struct {
	ID       string `json:"id"`
	Replicas int    `json:"replicas"`
}

// PenaltyEvent is EventPenalty's value.
type PenaltyEvent struct {
	Peer   string `json:"peer"`
	Reason string `json:"reason"`
}

// errMisbehaved marks a transfer failure the provider is to blame for:
// bytes beyond what was asked, out of order, or a short answer it called
// complete. The provider is penalised.
var errMisbehaved = errors.New("content: the provider broke the transfer protocol")

// errUnreachable: no data channel to the provider could be opened.
var errUnreachable = errors.New("content: the provider cannot be reached")

// errBusy: the provider serves as many transfers as it will; ask again
// soon.
var errBusy = errors.New("content: the provider is busy")

// errStalled: a provider sent nothing for FetchStall.
var errStalled = errors.New("content: the provider stopped sending")

// boundary turns err into the *node.Error a caller of the service sees:
// ctx's cancellation is CodeAborted, a full pledge or store CodeQuota,
// corrupt bytes CodeCorrupt; an *node.Error passes as it is.
func boundary(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var ne *node.Error
	if errors.As(err, &ne) {
		return err
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return node.Errorf(node.CodeTimeout, []error{err}, "the transfer took too long: %v", err)
		}
		return node.Errorf(CodeAborted, []error{err}, "cancelled")
	case errors.Is(err, ErrPledgeFull), errors.Is(err, store.ErrQuota):
		return node.Errorf(CodeQuota, []error{err}, "no room to store it: %v", err)
	case errors.Is(err, ErrPolicy):
		return node.Errorf(node.CodeInvalid, []error{err}, "%v; pin the content to keep it as this node's own", err)
	case errors.Is(err, chunk.ErrCorrupt), errors.Is(err, chunk.ErrTooLarge):
		return node.Errorf(CodeCorrupt, []error{err}, "%v", err)
	case errors.Is(err, chunk.ErrBadHash):
		return node.Errorf(node.CodeInvalid, []error{err}, "%v", err)
	}
	return node.Coded(err)
}

// notFound is the error for content no node could give.
func notFound(id chunk.Hash, causes ...error) error {
	return node.Errorf(CodeNotFound, causes, "no node holds content %s", id)
}

// withClock is context.WithTimeout on the node's clock, so simulations
// on virtual time see deadlines fire.
func withClock(parent context.Context, clk clock.Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	t := clk.AfterFunc(d, func() { cancel(fmt.Errorf("%w after %v", context.DeadlineExceeded, d)) })
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}
