//go:build js && wasm

package main

import (
	"context"
	"sync"
	"syscall/js"
	"time"

	"ddt/shared/bridge"
	"ddt/shared/node"
	"ddt/shared/unicast"
	"ddt/shared/wire"
)

// How long window.ddt's chat calls wait on the network. The service keeps
// what it was asked to do (a request, a message in the outbox) after them:
// a wait that ends only ends the promise.
const (
	// BefriendWait is how long befriend waits for the friend's answer,
	// as the native node's POST /befriend does; a later answer comes as
	// event friend.
	BefriendWait = 60 * time.Second
	// ChatSendWait is how long send waits for a session (the key exchange
	// of a new friendship) and for the message to be delivered or held.
	ChatSendWait = 60 * time.Second
	// ChatAnswerWait is how long accept and decline wait to tell the
	// asker.
	ChatAnswerWait = 30 * time.Second
)

// ChatRefresh is how often the snapshot behind friends(), requests() and
// chatStats() is taken again without an event: a friend's online dot
// goes out when it has been silent a while, which no event says.
const ChatRefresh = 2 * time.Second

// chat is window.ddt's share of the unicast service: friends, chat and
// offline delivery. Its events (friend-request, friend, message,
// delivered, session) reach ddt.on as every node event does (api.onEvent),
// each after the snapshot is taken again.
//
// friends(), requests() and chatStats() answer at once from a snapshot,
// never from the service: they run on the page's event loop, and the
// service holds its lock while it writes to IndexedDB, whose answer needs
// that loop — a call that waited for the lock there would wait forever.
// The snapshot is taken on goroutines: before each chat event reaches the
// page, before each chat promise settles, and every ChatRefresh.
type chat struct {
	svc *unicast.Service

	refreshing sync.Mutex // one refresh at a time
	mu         sync.Mutex
	friendsV   []unicast.FriendView
	requests   []unicast.RequestView
	statsV     unicast.StatsView
}

func newChat(svc *unicast.Service) *chat {
	c := &chat{svc: svc}
	go func() {
		c.refresh()
		for range time.Tick(ChatRefresh) {
			c.refresh()
		}
	}()
	return c
}

// refresh takes the snapshot. Never call it on the page's event loop.
// One at a time: a refresh that waited on the service's lock must not
// store its older view over a newer one's.
func (c *chat) refresh() {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	f, r, st := c.svc.Friends(), c.svc.Requests(), c.svc.Stats()
	c.mu.Lock()
	c.friendsV, c.requests, c.statsV = f, r, st
	c.mu.Unlock()
}

// isChatEvent reports whether kind is one of the service's events.
func isChatEvent(kind string) bool {
	switch kind {
	case unicast.EventFriendRequest, unicast.EventFriend, unicast.EventMessage, unicast.EventDelivered, unicast.EventSession:
		return true
	}
	return false
}

// promise is the package's promise with the snapshot taken again before
// it settles, so that what the call changed shows in friends() at once.
func (c *chat) promise(fn func() (any, error)) js.Value {
	return promise(func() (any, error) {
		v, err := fn()
		c.refresh()
		return v, err
	})
}

// methods are the window.ddt members chat defines.
func (c *chat) methods() map[string]func([]js.Value) any {
	return map[string]func([]js.Value) any{
		"befriend":  c.befriend,
		"accept":    c.accept,
		"decline":   c.decline,
		"friends":   c.friends,
		"requests":  c.listRequests,
		"send":      c.send,
		"history":   c.history,
		"markRead":  c.markRead,
		"chatStats": c.stats,
	}
}

// friendArg reads a friend's name argument, refusing a long string before
// it is copied into wasm memory (the service checks the name itself).
func friendArg(args []js.Value) (string, error) {
	if len(args) < 1 || args[0].Type() != js.TypeString {
		return "", node.Errorf(unicast.CodeInvalid, nil, "a friend's name must be a string: their username")
	}
	// A name is at most wire.MaxName letters and digits; a few more
	// let the service say what is wrong with one (spaces, case).
	return boundedString(args[0], "a username", 4*wire.MaxName)
}

// befriend(name) → Promise of "accepted" or "declined".
func (c *chat) befriend(args []js.Value) any {
	name, err := friendArg(args)
	return c.promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), BefriendWait)
		defer cancel()
		return c.svc.Befriend(ctx, name)
	})
}

// accept(name) → Promise, resolved once name's request is accepted (the
// key exchange then runs: event session says when it is ready).
func (c *chat) accept(args []js.Value) any {
	return c.answer(args, c.svc.Accept)
}

// decline(name) → Promise, resolved once name's request is declined.
func (c *chat) decline(args []js.Value) any {
	return c.answer(args, c.svc.Decline)
}

func (c *chat) answer(args []js.Value, fn func(context.Context, string) error) any {
	name, err := friendArg(args)
	return c.promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), ChatAnswerWait)
		defer cancel()
		return nil, fn(ctx, name)
	})
}

// friends() → [FriendView], at once, from the snapshot.
func (c *chat) friends([]js.Value) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return list(c.friendsV)
}

// requests() → [RequestView], at once, from the snapshot.
func (c *chat) listRequests([]js.Value) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return list(c.requests)
}

// send(name, text) → Promise of {id, delivered}.
func (c *chat) send(args []js.Value) any {
	name, err := friendArg(args)
	var text string
	if err == nil {
		if len(args) < 2 {
			err = node.Errorf(unicast.CodeInvalid, nil, "ddt.send(name, text): text must be a string")
		} else {
			// A UTF-16 code unit is at least one byte of UTF-8: a string
			// longer than MaxText units is too long before it is copied.
			text, err = boundedString(args[1], "a message", unicast.MaxText)
		}
	}
	return c.promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), ChatSendWait)
		defer cancel()
		r, err := c.svc.Send(ctx, name, text)
		if err != nil {
			return nil, err
		}
		return bridge.Value(r)
	})
}

// history(name) → Promise of [MessageView], oldest first.
func (c *chat) history(args []js.Value) any {
	name, err := friendArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		h, err := c.svc.History(name)
		if err != nil {
			return nil, err
		}
		return list(h), nil
	})
}

// markRead(name) → Promise, resolved once name's unread count is zero.
func (c *chat) markRead(args []js.Value) any {
	name, err := friendArg(args)
	return c.promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		return nil, c.svc.MarkRead(name)
	})
}

// chatStats() → StatsView, at once, from the snapshot.
func (c *chat) stats([]js.Value) any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bridge.MustValue(c.statsV)
}

// list is views as a JavaScript array: [] rather than null for none.
func list[T any](views []T) js.Value {
	if views == nil {
		views = []T{}
	}
	return bridge.MustValue(views)
}
