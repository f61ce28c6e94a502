//go:build js && wasm

package transport

import (
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
