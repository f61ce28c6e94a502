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
)

// api is window.ddt.
type api struct {
	n   *node.Node
	obj js.Value

	mu        sync.Mutex
	ready     *bridge.Deferred
	settled   bool // ready resolved or rejected
	listeners map[string]map[int]js.Value
	next      int
}

func newAPI(n *node.Node) *api {
	a := &api{n: n, obj: bridge.Object(nil), ready: bridge.NewDeferred(), listeners: map[string]map[int]js.Value{}}
	o := a.obj
	o.Set("ready", a.ready.Promise)
	o.Set("address", "")
	o.Set("zone", "")
	o.Set("relay", n.Relay())
	state, _ := n.State()
	o.Set("state", string(state))
	o.Set("username", n.Username())
	o.Set("peers", bridge.Method(a.peers))
	o.Set("ping", bridge.Method(a.ping))
	o.Set("on", bridge.Method(a.on))
	o.Set("throughput", bridge.Method(a.throughput))
	o.Set("lookup", bridge.Method(a.lookup))
	o.Set("connect", bridge.Method(a.connect))
	o.Set("disconnect", bridge.Method(a.disconnect))
	o.Set("routing", bridge.Method(a.routing))
	o.Set("register", bridge.Method(a.register))
	o.Set("resolve", bridge.Method(a.resolve))
	n.Subscribe(a.onEvent)
	return a
}

func (a *api) onEvent(e node.Event) {
	var payload js.Value
	switch e.Kind {
	case node.EventPeer:
		payload = bridge.Object(map[string]any{"address": e.Peer.Address.String(), "native": e.Peer.Native, "via": e.Peer.Via})
	case node.EventPeerGone:
		payload = bridge.Object(map[string]any{"address": e.Peer.Address.String(), "reason": e.Reason})
	case node.EventState:
		a.onState(e)
		payload = bridge.Object(map[string]any{"state": string(e.State), "detail": e.Detail, "retryInMs": e.RetryIn.Milliseconds()})
	case node.EventUsername:
		rec := a.n.UserRecord()
		if rec == nil {
			return
		}
		a.obj.Set("username", rec.Claim.Name)
		payload = userObject(node.ViewRecord(rec))
	default:
		return
	}
	a.emit(e.Kind, payload)
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

// peers() → Promise of [{address, rttMs, native, via}].
func (a *api) peers(args []js.Value) any {
	return bridge.Promise(func() (any, error) {
		ps := a.n.Peers()
		out := make([]any, 0, len(ps))
		for _, p := range ps {
			out = append(out, peerObject(p))
		}
		return out, nil
	})
}

func peerObject(p node.PeerInfo) js.Value {
	return bridge.Object(map[string]any{
		"address": p.Address.String(),
		"rttMs":   float64(p.RTT.Microseconds()) / 1000,
		"native":  p.Native,
		"via":     p.Via,
	})
}

// lookup(address) → Promise of {found, hops, ms, messages, closest}.
func (a *api) lookup(args []js.Value) any {
	addr, err := addressArg(args)
	return bridge.Promise(func() (any, error) {
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
		closest := make([]any, len(r.Closest))
		for i, c := range r.Closest {
			closest[i] = c.String()
		}
		return bridge.Object(map[string]any{
			"found": r.Found, "hops": r.Hops, "messages": r.Messages,
			"ms": float64(time.Since(t0).Microseconds()) / 1000, "closest": closest,
		}), nil
	})
}

// connect(address) → Promise of the peer, once a data channel is open.
func (a *api) connect(args []js.Value) any {
	addr, err := addressArg(args)
	return bridge.Promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		defer cancel()
		p, err := a.n.Connect(ctx, addr)
		if err != nil {
			return nil, err
		}
		return peerObject(p), nil
	})
}

// disconnect(address) → Promise of whether a channel was open.
func (a *api) disconnect(args []js.Value) any {
	addr, err := addressArg(args)
	return bridge.Promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		return a.n.Disconnect(addr), nil
	})
}

// routing() → Promise of {buckets: [{index, contacts, connected}], contacts, overlay: {sent, delivered, forwarded, dropped}}.
func (a *api) routing(args []js.Value) any {
	return bridge.Promise(func() (any, error) {
		var buckets []any
		total := 0
		for _, b := range a.n.Routing() {
			total += b.Contacts
			buckets = append(buckets, bridge.Object(map[string]any{"index": b.Index, "contacts": b.Contacts, "connected": b.Connected}))
		}
		st := a.n.OverlayStats()
		return bridge.Object(map[string]any{
			"buckets":  buckets,
			"contacts": total,
			"overlay": bridge.Object(map[string]any{
				"sent": st.Sent, "delivered": st.Delivered, "forwarded": st.Forwarded, "dropped": st.Dropped,
			}),
		}), nil
	})
}

func addressArg(args []js.Value) (id.Address, error) {
	if len(args) < 1 || args[0].Type() != js.TypeString {
		return id.Address{}, errors.New("address must be a string of 40 hex digits")
	}
	return id.Parse(args[0].String())
}

// ping(address) → Promise of the round trip in ms.
func (a *api) ping(args []js.Value) any {
	addr, err := addressArg(args)
	return bridge.Promise(func() (any, error) {
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
// test data over the data channel and waits for the peer's receipt.
func (a *api) throughput(args []js.Value) any {
	addr, err := addressArg(args)
	total := 16 << 20
	if len(args) > 1 && args[1].Type() == js.TypeNumber {
		total = args[1].Int()
	}
	return bridge.Promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		if total <= 0 || total > 1<<30 {
			return nil, errors.New("bytes must be between 1 and 1 GiB")
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

// register(name) → Promise of the verified record once the name is this
// node's; rejected with an Error whose code is one of node's Code*
// constants ("invalid", "taken", "unavailable", …).
func (a *api) register(args []js.Value) any {
	name, err := nameArg(args)
	return bridge.Promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		rec, err := a.n.Register(context.Background(), name)
		if err != nil {
			return nil, nameError(err)
		}
		return userObject(node.ViewRecord(rec)), nil
	})
}

// resolve(name, {fresh}) → Promise of the verified record of name;
// fresh skips the five-minute cache. Rejected like register ("not-found",
// "invalid", "forged", …).
func (a *api) resolve(args []js.Value) any {
	name, err := nameArg(args)
	fresh := len(args) > 1 && args[1].Type() == js.TypeObject && args[1].Get("fresh").Truthy()
	return bridge.Promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		rec, err := a.n.Resolve(context.Background(), name, fresh)
		if err != nil {
			return nil, nameError(err)
		}
		return userObject(node.ViewRecord(rec)), nil
	})
}

func nameArg(args []js.Value) (string, error) {
	if len(args) < 1 || args[0].Type() == js.TypeUndefined || args[0].Type() == js.TypeNull {
		return "", nil // Normalize says the name is empty
	}
	if args[0].Type() != js.TypeString {
		return "", &codedError{node.CodeInvalid, "a username must be a string"}
	}
	return args[0].String(), nil
}

// nameError words a username failure for the page, with its code.
func nameError(err error) error {
	code, msg := node.ExplainNameError(err)
	return &codedError{code, msg}
}

// codedError is an error the host sees as an Error whose code property
// says what kind of failure it is (see node.ExplainNameError).
type codedError struct{ code, msg string }

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Code() string  { return e.code }

// userObject is a record as the page sees it: {name, address, zone,
// signKey, agreeKey, version, ledger: {zone, index, relayKey, size}, seq}.
func userObject(v node.UserView) js.Value {
	return bridge.Object(map[string]any{
		"name": v.Name, "address": v.Address, "zone": v.Zone,
		"signKey": v.SignKey, "agreeKey": v.AgreeKey, "version": v.Version,
		"ledger": bridge.Object(map[string]any{
			"zone": v.Ledger.Zone, "index": v.Ledger.Index, "relayKey": v.Ledger.RelayKey, "size": v.Ledger.Size,
		}),
		"seq": v.Seq,
	})
}
