package main

import (
	"context"
	"io"
	"net/http"
	"time"

	"ddt/shared/unicast"
)

// Timings and limits of the unicast routes.
const (
	// BefriendWait is how long POST /befriend waits for the answer.
	BefriendWait = 60 * time.Second
	// SendWait bounds POST /send (a session still being made, the
	// direct try, the hand-over to a holder).
	SendWait = 60 * time.Second
	// answerWait bounds POST /accept and /decline (the answer's delivery;
	// it is kept and sent again if the requester is away).
	answerWait = 15 * time.Second
)

// unicastRoutes serves the unicast service: GET /friends, GET /requests,
// POST /befriend?name=N ({answer}), POST /accept?name=N, POST
// /decline?name=N, POST /send?name=N (the body is the text: {id,
// delivered}), GET /history?name=N, POST /read?name=N, GET /unicast
// (the service's counters). Failures are {error, code} with the code's
// status.
func unicastRoutes(handle func(string, http.HandlerFunc), chat *unicast.Service) {
	named := func(f func(ctx context.Context, name string) (any, error), wait time.Duration) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			defer cancel()
			v, err := f(ctx, r.URL.Query().Get("name"))
			if err != nil {
				fail(w, err)
				return
			}
			reply(w, v)
		}
	}
	handle("GET /friends", func(w http.ResponseWriter, r *http.Request) { reply(w, chat.Friends()) })
	handle("GET /requests", func(w http.ResponseWriter, r *http.Request) { reply(w, chat.Requests()) })
	handle("GET /unicast", func(w http.ResponseWriter, r *http.Request) { reply(w, chat.Stats()) })
	handle("POST /befriend", named(func(ctx context.Context, name string) (any, error) {
		a, err := chat.Befriend(ctx, name)
		return map[string]string{"answer": a}, err
	}, BefriendWait))
	handle("POST /accept", named(func(ctx context.Context, name string) (any, error) {
		return map[string]bool{"accepted": true}, chat.Accept(ctx, name)
	}, answerWait))
	handle("POST /decline", named(func(ctx context.Context, name string) (any, error) {
		return map[string]bool{"declined": true}, chat.Decline(ctx, name)
	}, answerWait))
	handle("GET /history", named(func(_ context.Context, name string) (any, error) { return chat.History(name) }, answerWait))
	handle("POST /read", named(func(_ context.Context, name string) (any, error) {
		return map[string]bool{"read": true}, chat.MarkRead(name)
	}, answerWait))
	handle("POST /send", func(w http.ResponseWriter, r *http.Request) {
		// One byte past the limit tells an oversized text from one at it.
		b, err := io.ReadAll(io.LimitReader(r.Body, unicast.MaxText+1))
		if err != nil {
			refuse(w, http.StatusBadRequest, unicast.CodeInvalid, "could not read the text: "+err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), SendWait)
		defer cancel()
		res, err := chat.Send(ctx, r.URL.Query().Get("name"), string(b))
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, res)
	})
}
