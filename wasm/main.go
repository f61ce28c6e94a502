//go:build js && wasm

// Command wasm is the browser entry of a DDT node. It runs the protocol
// core (shared/node) in the page, keeps the node's identity and lease in
// IndexedDB, links to peers over the browser's WebRTC data channels, and
// publishes the node as window.ddt (documented in the README).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall/js"
	"time"

	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
)

func main() {
	// Every line the node logs costs a console write; a page logs warnings
	// and errors unless localStorage "ddt-log" names a lower level
	// ("debug" or "info").
	level := slog.LevelWarn
	if v := js.Global().Get("localStorage").Call("getItem", "ddt-log"); v.Type() == js.TypeString {
		level.UnmarshalText([]byte(v.String()))
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
	relay := js.Global().Get("location").Get("origin").String()
	if v := js.Global().Get("DDT_RELAY"); v.Type() == js.TypeString {
		relay = v.String()
	}
	// Dial the relay now, while IndexedDB opens and the identity loads.
	dial := node.EarlyDialer(relay)
	perf := js.Global().Get("performance")
	t0 := perf.Call("now").Float()
	var st store.Store
	var err error
	slot := claimSlot()
	if slot < 0 {
		log.Warn("every identity slot of this browser profile is in use by other tabs; this tab's node gets a temporary identity")
		st = store.NewMemory()
	} else if st, err = store.OpenIndexedDB(databaseName(slot)); err != nil {
		log.Warn("IndexedDB unavailable; this tab's identity will not survive a reload", "err", err)
		st = store.NewMemory()
	}
	t1 := perf.Call("now").Float()
	tr, err := transport.NewWebRTC(transport.Config{Logger: log})
	if err != nil {
		fatal(err)
	}
	maxPeers := 0
	if v := js.Global().Get("DDT_MAX_PEERS"); v.Type() == js.TypeNumber {
		maxPeers = v.Int()
	}
	n, err := node.New(node.Config{Relay: relay, Dial: dial, Store: st, Transport: tr, Agent: "ddt-browser", Logger: log, MaxPeers: maxPeers})
	if err != nil {
		fatal(err)
	}
	log.Debug("node started", "slot", slot, "goMainAtMs", int(t0), "storeMs", int(t1-t0), "identityMs", int(perf.Call("now").Float()-t1))
	api := newAPI(n)
	js.Global().Set("ddt", api.obj)
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("ddt:loaded"))
	if err := n.Run(context.Background()); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	js.Global().Get("console").Call("error", "ddt: "+err.Error())
	os.Exit(1)
}

// api is window.ddt.
type api struct {
	n   *node.Node
	obj js.Value

	mu        sync.Mutex
	ready     *deferred
	settled   bool // ready resolved or rejected
	listeners map[string]map[int]js.Value
	next      int
}

func newAPI(n *node.Node) *api {
	a := &api{n: n, obj: jsObject.New(), ready: newDeferred(), listeners: map[string]map[int]js.Value{}}
	o := a.obj
	o.Set("ready", a.ready.value)
	o.Set("address", "")
	o.Set("zone", "")
	o.Set("relay", n.Relay())
	state, _ := n.State()
	o.Set("state", string(state))
	o.Set("username", n.Username())
	o.Set("peers", method(a.peers))
	o.Set("ping", method(a.ping))
	o.Set("on", method(a.on))
	o.Set("throughput", method(a.throughput))
	o.Set("lookup", method(a.lookup))
	o.Set("connect", method(a.connect))
	o.Set("disconnect", method(a.disconnect))
	o.Set("routing", method(a.routing))
	o.Set("register", method(a.register))
	o.Set("resolve", method(a.resolve))
	n.Subscribe(a.onEvent)
	return a
}

func (a *api) onEvent(e node.Event) {
	var payload js.Value
	switch e.Kind {
	case node.EventPeer:
		payload = object(map[string]any{"address": e.Peer.Address.String(), "native": e.Peer.Native, "via": e.Peer.Via})
	case node.EventPeerGone:
		payload = object(map[string]any{"address": e.Peer.Address.String(), "reason": e.Reason})
	case node.EventState:
		a.onState(e)
		payload = object(map[string]any{"state": string(e.State), "detail": e.Detail, "retryInMs": e.RetryIn.Milliseconds()})
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
		info := object(map[string]any{"address": a.n.Address().String(), "zone": a.n.Zone()})
		o.Set("address", a.n.Address().String())
		o.Set("zone", a.n.Zone())
		a.mu.Lock()
		if !a.settled {
			a.settled = true
			a.ready.resolve.Invoke(info)
		} else if a.ready == nil {
			o.Set("ready", jsPromise.Call("resolve", info))
		}
		a.ready = nil
		a.mu.Unlock()
	case node.StateRefused:
		a.mu.Lock()
		if !a.settled {
			a.settled = true
			// Mark the rejection handled so a page that waits on events
			// instead of ready gets no console noise.
			a.ready.value.Call("catch", js.FuncOf(func(js.Value, []js.Value) any { return nil }))
			a.ready.reject.Invoke(jsError.New(e.Detail))
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
					js.Global().Get("console").Call("error", fmt.Sprintf("ddt: %s listener threw: %v", event, r))
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
		js.Global().Get("console").Call("error", "ddt.on(event, fn): event must be a string and fn a function")
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
	return promise(func() (any, error) {
		ps := a.n.Peers()
		out := make([]any, 0, len(ps))
		for _, p := range ps {
			out = append(out, peerObject(p))
		}
		return out, nil
	})
}

func peerObject(p node.PeerInfo) js.Value {
	return object(map[string]any{
		"address": p.Address.String(),
		"rttMs":   float64(p.RTT.Microseconds()) / 1000,
		"native":  p.Native,
		"via":     p.Via,
	})
}

// lookup(address) → Promise of {found, hops, ms, messages, closest}.
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
		closest := make([]any, len(r.Closest))
		for i, c := range r.Closest {
			closest[i] = c.String()
		}
		return object(map[string]any{
			"found": r.Found, "hops": r.Hops, "messages": r.Messages,
			"ms": float64(time.Since(t0).Microseconds()) / 1000, "closest": closest,
		}), nil
	})
}

// connect(address) → Promise of the peer, once a data channel is open.
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
		return peerObject(p), nil
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

// routing() → Promise of {buckets: [{index, contacts, connected}], contacts, overlay: {sent, delivered, forwarded, dropped}}.
func (a *api) routing(args []js.Value) any {
	return promise(func() (any, error) {
		var buckets []any
		total := 0
		for _, b := range a.n.Routing() {
			total += b.Contacts
			buckets = append(buckets, object(map[string]any{"index": b.Index, "contacts": b.Contacts, "connected": b.Connected}))
		}
		st := a.n.OverlayStats()
		return object(map[string]any{
			"buckets":  buckets,
			"contacts": total,
			"overlay": object(map[string]any{
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
// test data over the data channel and waits for the peer's receipt.
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
			return nil, errors.New("bytes must be between 1 and 1 GiB")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		d, err := a.n.Throughput(ctx, addr, total)
		if err != nil {
			return nil, err
		}
		ms := float64(d.Microseconds()) / 1000
		return object(map[string]any{"bytes": total, "ms": ms, "mibPerSec": float64(total) / (1 << 20) / d.Seconds()}), nil
	})
}

// register(name) → Promise of the verified record once the name is this
// node's; rejected with an Error whose code is one of node's Code*
// constants ("invalid", "taken", "unavailable", …).
func (a *api) register(args []js.Value) any {
	name, err := nameArg(args)
	return promise(func() (any, error) {
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
	return promise(func() (any, error) {
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

// userObject is a record as the page sees it: {name, address, zone,
// signKey, agreeKey, version, ledger: {zone, index, relayKey, size}, seq}.
func userObject(v node.UserView) js.Value {
	return object(map[string]any{
		"name": v.Name, "address": v.Address, "zone": v.Zone,
		"signKey": v.SignKey, "agreeKey": v.AgreeKey, "version": v.Version,
		"ledger": object(map[string]any{
			"zone": v.Ledger.Zone, "index": v.Ledger.Index, "relayKey": v.Ledger.RelayKey, "size": v.Ledger.Size,
		}),
		"seq": v.Seq,
	})
}
