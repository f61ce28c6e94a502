//go:build js && wasm

package main

import (
	"fmt"
	"strconv"
	"syscall/js"

	"ddt/shared/bridge"
)

// maxSlots is how many tabs of one browser profile can each run a node.
const maxSlots = 16

// claimSlot gives this host its own node identity within the browser
// profile. Identities live in IndexedDB, which all tabs of a profile
// share; two tabs running the same identity would take turns evicting
// each other at the relay. So each host holds a Web Lock named for a slot
// of its storage for as long as it lives, and slot n has its own
// database. The tab remembers its slot in sessionStorage (which is per
// tab and survives a reload) and asks for it first, waiting briefly for
// the document it replaces to let go; so a reloaded tab keeps its
// address, and a second tab gets another slot. It returns -1 when every
// slot is taken.
func claimSlot(storage string) int {
	g := bridge.Global()
	locks := g.Get("navigator").Get("locks")
	if locks.IsUndefined() {
		return 0
	}
	key := storage + "-slot"
	session := g.Get("sessionStorage")
	preferred := 0
	if !session.IsUndefined() && !session.IsNull() {
		if v, err := bridge.Call(session, "getItem", key); err == nil && v.Type() == js.TypeString {
			if n, err := strconv.Atoi(v.String()); err == nil && n >= 0 && n < maxSlots {
				preferred = n
			}
		}
	}
	order := []int{preferred}
	for i := 0; i < maxSlots; i++ {
		if i != preferred {
			order = append(order, i)
		}
	}
	for k, i := range order {
		opts := map[string]any{"ifAvailable": true}
		if k == 0 {
			opts = map[string]any{"signal": g.Get("AbortSignal").Call("timeout", 500)}
		}
		if tryLock(locks, fmt.Sprintf("%s-node-%d", storage, i), opts) {
			if !session.IsUndefined() && !session.IsNull() {
				bridge.Call(session, "setItem", key, strconv.Itoa(i))
			}
			return i
		}
	}
	return -1
}

// tryLock requests a Web Lock and, if granted, holds it until the host
// goes away.
func tryLock(locks js.Value, name string, opts map[string]any) bool {
	got := make(chan bool, 1)
	hold := js.FuncOf(func(this js.Value, args []js.Value) any {
		if len(args) == 0 || args[0].IsNull() {
			got <- false
			return nil
		}
		got <- true
		// A promise that never settles keeps the lock for the host's life.
		return bridge.NewDeferred().Promise
	})
	p, err := bridge.Call(locks, "request", name, opts, hold)
	if err != nil {
		return false
	}
	go func() {
		if _, err := bridge.Await(p); err != nil {
			got <- false // aborted by the timeout
		}
	}()
	return <-got
}

// databaseName is the IndexedDB database of a slot: slot 0 keeps the
// storage's own name, so existing identities stay where they were.
func databaseName(storage string, slot int) string {
	if slot == 0 {
		return storage
	}
	return fmt.Sprintf("%s-%d", storage, slot)
}
