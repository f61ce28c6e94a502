//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"

	"ddt/shared/bridge"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/username"
)

// api is window.ddt: the node's public JavaScript API, documented in the
// README and declared in web/static/ddt.d.ts. Every shape it hands out is
// one of the node's views (node.PeerView, node.LookupView,
// node.RoutingView, username.View, the events' payloads) converted by its
// JSON names, so it is the same shape the native node's HTTP API serves.
type api struct {
	n     *node.Node
	users *username.Client
	chat  *chat // chat.go; set before the node runs
	obj   js.Value

	mu        sync.Mutex
	ready     *bridge.Deferred
	settled   bool // ready resolved or rejected
	listeners map[string]map[int]js.Value
	next      int
}

func newAPI(n *node.Node, users *username.Client, f *files) *api {
	a := &api{n: n, users: users, obj: bridge.Object(nil), ready: bridge.NewDeferred(), listeners: map[string]map[int]js.Value{}}
	o := a.obj
	o.Set("ready", a.ready.Promise)
	o.Set("address", "")
	o.Set("zone", "")
	o.Set("relay", n.Relay())
	state, _ := n.State()
	o.Set("state", string(state))
	o.Set("username", users.Name())
	for name, fn := range map[string]func([]js.Value) any{
		"peers":      a.peers,
		"ping":       a.ping,
		"on":         a.on,
		"throughput": a.throughput,
		"lookup":     a.lookup,
		"connect":    a.connect,
		"disconnect": a.disconnect,
		"routing":    a.routing,
		"register":   a.register,
		"resolve":    a.resolve,
	} {
		o.Set(name, bridge.Method(fn))
	}
	for name, fn := range f.methods() { // content.go
		o.Set(name, bridge.Method(fn))
	}
	n.Subscribe(a.onEvent)
	return a
}

func (a *api) onEvent(e node.Event) {
	switch e.Kind {
	case node.EventState:
		a.onState(e)
	case username.Event:
		a.obj.Set("username", a.users.Name())
	}
	if a.chat != nil && isChatEvent(e.Kind) {
		a.chat.refresh() // what the event says shows in friends() at once
	}
	a.emit(e.Kind, bridge.MustValue(e.Payload()))
}

// onState keeps ddt.state, ddt.address, ddt.zone and ddt.ready current.
func (a *api) onState(e node.Event) {
	o := a.obj
	o.Set("state", string(e.State))
	o.Set("relay", a.n.Relay())
	switch e.State {
	case node.StateAdmitted:
		info := bridge.Object(map[string]any{"address": a.n.Address().String(), "zone": a.n.Zone()})
		o.Set("address", a.n.Address().String())
		o.Set("zone", a.n.Zone())
		a.mu.Lock()
		if !a.settled {
			a.settled = true
			a.ready.Resolve(info)
		} else if a.ready == nil {
			o.Set("ready", bridge.Resolved(info))
		}
		a.ready = nil
		a.mu.Unlock()
	case node.StateRefused:
		a.mu.Lock()
		if !a.settled {
			a.settled = true
			a.ready.Reject(errors.New(e.Detail))
			a.ready = nil
		}
		a.mu.Unlock()
	}
}

func (a *api) emit(event string, payload js.Value) {
	a.mu.Lock()
	fns := make([]js.Value, 0, len(a.listeners[event]))
	for _, fn := range a.listeners[event] {
		fns = append(fns, fn)
	}
	a.mu.Unlock()
	for _, fn := range fns {
		func() {
			defer func() {
				if r := recover(); r != nil {
					bridge.Global().Get("console").Call("error", fmt.Sprintf("ddt: %s listener threw: %v", event, r))
				}
			}()
			fn.Invoke(payload)
		}()
	}
}

// on(event, fn) → unsubscribe function.
func (a *api) on(args []js.Value) any {
	if len(args) < 2 || args[0].Type() != js.TypeString || args[1].Type() != js.TypeFunction {
		// A panic here would stop the node; report and hand back a no-op.
		bridge.Global().Get("console").Call("error", "ddt.on(event, fn): event must be a string and fn a function")
		return js.FuncOf(func(js.Value, []js.Value) any { return nil })
	}
	event := args[0].String()
	a.mu.Lock()
	k := a.next
	a.next++
	if a.listeners[event] == nil {
		a.listeners[event] = map[int]js.Value{}
	}
	a.listeners[event][k] = args[1]
	a.mu.Unlock()
	var off js.Func
	off = js.FuncOf(func(js.Value, []js.Value) any {
		a.mu.Lock()
		delete(a.listeners[event], k)
		a.mu.Unlock()
		off.Release()
		return nil
	})
	return off
}

// peers() → Promise of [PeerView].
func (a *api) peers([]js.Value) any {
	return promise(func() (any, error) { return bridge.Value(node.PeerViews(a.n.Peers())) })
}

// lookup(address) → Promise of LookupView.
func (a *api) lookup(args []js.Value) any {
	addr, err := addressArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t0 := time.Now()
		r, err := a.n.Lookup(ctx, addr)
		if err != nil {
			return nil, err
		}
		return bridge.Value(node.ViewLookup(r, time.Since(t0)))
	})
}

// connect(address) → Promise of the PeerView, once a data channel is open.
func (a *api) connect(args []js.Value) any {
	addr, err := addressArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		p, err := a.n.Connect(ctx, addr)
		if err != nil {
			return nil, err
		}
		return bridge.Value(p.View())
	})
}

// disconnect(address) → Promise of whether a channel was open.
func (a *api) disconnect(args []js.Value) any {
	addr, err := addressArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		return a.n.Disconnect(addr), nil
	})
}

// routing() → Promise of RoutingView.
func (a *api) routing([]js.Value) any {
	return promise(func() (any, error) { return bridge.Value(a.n.RoutingView()) })
}

// promise is bridge.Promise with every rejection coded (node.Coded), so
// a caller can switch on err.code whichever call failed.
func promise(fn func() (any, error)) js.Value {
	return bridge.Promise(func() (any, error) {
		v, err := fn()
		return v, node.Coded(err)
	})
}

func addressArg(args []js.Value) (id.Address, error) {
	if len(args) < 1 || args[0].Type() != js.TypeString {
		return id.Address{}, node.Errorf(node.CodeInvalid, nil, "an address must be a string of 40 hex digits")
	}
	a, err := id.Parse(args[0].String())
	if err != nil {
		return id.Address{}, node.Errorf(node.CodeInvalid, []error{err}, "%v", err)
	}
	return a, nil
}

// ping(address) → Promise of the round trip in ms.
func (a *api) ping(args []js.Value) any {
	addr, err := addressArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rtt, err := a.n.Ping(ctx, addr)
		if err != nil {
			return nil, err
		}
		return float64(rtt.Microseconds()) / 1000, nil
	})
}

// throughput(address, bytes) → Promise of {bytes, ms, mibPerSec}: sends
// test data over the bulk channel and waits for the peer's receipt.
func (a *api) throughput(args []js.Value) any {
	addr, err := addressArg(args)
	total := 16 << 20
	if len(args) > 1 && args[1].Type() == js.TypeNumber {
		total = args[1].Int()
	}
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		if total <= 0 || total > 1<<30 {
			return nil, node.Errorf(node.CodeInvalid, nil, "bytes must be between 1 and 1 GiB, not %d", total)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		d, err := a.n.Throughput(ctx, addr, total)
		if err != nil {
			return nil, err
		}
		ms := float64(d.Microseconds()) / 1000
		return bridge.Object(map[string]any{"bytes": total, "ms": ms, "mibPerSec": float64(total) / (1 << 20) / d.Seconds()}), nil
	})
}

// register(name) → Promise of the verified username.View once the name
// is this node's; rejected with an Error whose code says why ("invalid",
// "taken", "unavailable", …).
func (a *api) register(args []js.Value) any {
	name, err := nameArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		rec, err := a.users.Register(context.Background(), name)
		if err != nil {
			return nil, err
		}
		return bridge.Value(username.ViewOf(rec))
	})
}

// resolve(name, {fresh}) → Promise of the verified username.View of
// name; fresh skips the five-minute cache. Rejected like register
// ("not-found", "invalid", "forged", …).
func (a *api) resolve(args []js.Value) any {
	name, err := nameArg(args)
	fresh := len(args) > 1 && args[1].Type() == js.TypeObject && args[1].Get("fresh").Truthy()
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		rec, err := a.users.Resolve(context.Background(), name, fresh)
		if err != nil {
			return nil, err
		}
		return bridge.Value(username.ViewOf(rec))
	})
}

func nameArg(args []js.Value) (string, error) {
	if len(args) < 1 || args[0].Type() == js.TypeUndefined || args[0].Type() == js.TypeNull {
		return "", nil // Normalize says the name is empty
	}
	if args[0].Type() != js.TypeString {
		return "", node.Errorf(username.CodeInvalid, nil, "a username must be a string")
	}
	return args[0].String(), nil
}
