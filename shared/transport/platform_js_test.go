//go:build js && wasm

package transport

import (
	"syscall/js"
	"testing"
)

// webrtcAvailable reports whether this runtime has RTCPeerConnection (a
// browser, not node). Chromium gathers loopback candidates only for a page
// with media permission, so it asks for the (fake) microphone once.
func webrtcAvailable(t testing.TB) bool {
	if js.Global().Get("RTCPeerConnection").IsUndefined() {
		return false
	}
	done := make(chan error, 1)
	ok := js.FuncOf(func(js.Value, []js.Value) any { done <- nil; return nil })
	fail := js.FuncOf(func(_ js.Value, args []js.Value) any {
		done <- js.Error{Value: args[0]}
		return nil
	})
	defer ok.Release()
	defer fail.Release()
	md := js.Global().Get("navigator").Get("mediaDevices")
	md.Call("getUserMedia", map[string]any{"audio": true}).Call("then", ok, fail)
	if err := <-done; err != nil {
		t.Logf("no media permission, loopback candidates may be missing: %v", err)
	}
	return true
}
