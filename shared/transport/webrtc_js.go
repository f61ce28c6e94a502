//go:build js && wasm

package transport

import (
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
func attachReceive(dc *webrtc.DataChannel, push func([]byte)) {
	v := dc.JSValue()
	v.Set("binaryType", "arraybuffer")
	v.Set("onmessage", js.FuncOf(func(this js.Value, args []js.Value) any {
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
	}))
}
