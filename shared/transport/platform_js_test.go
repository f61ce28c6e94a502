//go:build js && wasm

package transport

import (
	"testing"

	"ddt/shared/bridge"
)

// webrtcAvailable reports whether this runtime has RTCPeerConnection (a
// browser, not node). Chromium gathers loopback candidates only for a page
// with media permission, so it asks for the (fake) microphone once.
func webrtcAvailable(t testing.TB) bool {
	if bridge.Global().Get("RTCPeerConnection").IsUndefined() {
		return false
	}
	md := bridge.Global().Get("navigator").Get("mediaDevices")
	p, err := bridge.Call(md, "getUserMedia", map[string]any{"audio": true})
	if err == nil {
		_, err = bridge.Await(p)
	}
	if err != nil {
		t.Logf("no media permission, loopback candidates may be missing: %v", err)
	}
	return true
}
