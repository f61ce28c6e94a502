//go:build js && wasm

package transport

import (
	"errors"
	"fmt"
	"syscall/js"

	"github.com/pion/webrtc/v4"
)

// newAPI builds pion's js API, a thin layer over RTCPeerConnection.
func newAPI(Config) (*webrtc.API, func() error, error) {
	return webrtc.NewAPI(), nil, nil
}

var uint8Array = js.Global().Get("Uint8Array")

// attachReceive sets the channel's onmessage directly: pion's js backend
// hands each message to a new goroutine, which loses their order. Here the
// callback copies the bytes synchronously (it must not block) and queues
// them.
func attachReceive(dc *webrtc.DataChannel, push func([]byte)) (release func()) {
	v := dc.JSValue()
	v.Set("binaryType", "arraybuffer")
	fn := js.FuncOf(func(this js.Value, args []js.Value) any {
		data := args[0].Get("data")
		if data.Type() == js.TypeString {
			push([]byte(data.String()))
			return nil
		}
		arr := uint8Array.New(data)
		b := make([]byte, arr.Get("length").Int())
		js.CopyBytesToGo(b, arr)
		push(b)
		return nil
	})
	v.Set("onmessage", fn)
	return func() {
		v.Set("onmessage", js.Null())
		fn.Release()
	}
}

// sender copies each message into one reusable Uint8Array and sends a view
// of it: RTCDataChannel.send copies the bytes at once, so the buffer is
// free again when it returns, and no garbage is made per message (pion's
// Send allocates a new array every time). Calls are serialized by
// dcConn's send lock.
type sender struct {
	ch  js.Value
	buf js.Value
}

func newSender(dc *webrtc.DataChannel) sender {
	return sender{ch: dc.JSValue(), buf: uint8Array.New(MaxMessage)}
}

func (s sender) send(b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	js.CopyBytesToJS(s.buf, b)
	s.ch.Call("send", s.buf.Call("subarray", 0, len(b)))
	return nil
}

var jsJSON = js.Global().Get("JSON")

// onLocalCandidate reports each gathered ICE candidate as the browser's own
// JSON of it. pion's OnICECandidate parses every candidate into Go types
// first, which a first visit pays for in compile time; nothing here needs
// them parsed.
func onLocalCandidate(pc *webrtc.PeerConnection, f func(string)) {
	pc.JSValue().Set("onicecandidate", js.FuncOf(func(this js.Value, args []js.Value) any {
		c := args[0].Get("candidate")
		if c.IsNull() || c.IsUndefined() {
			return nil
		}
		s := jsJSON.Call("stringify", c).String()
		go f(s)
		return nil
	}))
}

// addCandidate hands a remote candidate (JSON of RTCIceCandidateInit) to
// the browser as it is.
func addCandidate(pc *webrtc.PeerConnection, data string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	init := jsJSON.Call("parse", data)
	if init.Type() != js.TypeObject {
		return errors.New("candidate is not an object")
	}
	done := make(chan error, 1)
	ok := js.FuncOf(func(js.Value, []js.Value) any { done <- nil; return nil })
	fail := js.FuncOf(func(_ js.Value, args []js.Value) any {
		done <- errors.New(args[0].Call("toString").String())
		return nil
	})
	defer ok.Release()
	defer fail.Release()
	pc.JSValue().Call("addIceCandidate", init).Call("then", ok, fail)
	return <-done
}
