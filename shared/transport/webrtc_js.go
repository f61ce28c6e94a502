//go:build js && wasm

package transport

import (
	"context"
	"errors"
	"syscall/js"

	"github.com/pion/webrtc/v4"

	"ddt/shared/bridge"
)

// newAPI builds pion's js API, a thin layer over RTCPeerConnection.
func newAPI(Config) (*webrtc.API, func() error, error) {
	return webrtc.NewAPI(), nil, nil
}

var uint8Array = js.Global().Get("Uint8Array")

// attachReceive sets the channel's onmessage directly: pion's js backend
// hands each message to a new goroutine, which loses their order. Here the
// callback copies the bytes synchronously (it must not block) and queues
// them. Its release, called once the link is closed, detaches every
// handler of the channel.
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
		// The link is closed: no event of this channel matters any more,
		// and one that fired after the program ended would find no Go to
		// run it.
		for _, h := range []string{"onmessage", "onopen", "onclose", "onclosing", "onerror", "onbufferedamountlow"} {
			v.Set(h, js.Null())
		}
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

func (s sender) send(b []byte) error {
	js.CopyBytesToJS(s.buf, b)
	_, err := bridge.Call(s.ch, "send", s.buf.Call("subarray", 0, len(b)))
	return err
}

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
		go f(bridge.Stringify(c))
		return nil
	}))
}

// addCandidate hands a remote candidate (JSON of RTCIceCandidateInit) to
// the browser as it is.
func addCandidate(ctx context.Context, pc *webrtc.PeerConnection, data string) error {
	init, err := bridge.Parse(data)
	if err != nil {
		return err
	}
	if init.Type() != js.TypeObject || init.IsNull() {
		return errors.New("candidate is not an object")
	}
	p, err := bridge.Call(pc.JSValue(), "addIceCandidate", init)
	if err != nil {
		return err
	}
	_, err = bridge.AwaitContext(ctx, p)
	return err
}
