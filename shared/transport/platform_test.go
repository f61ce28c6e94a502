//go:build !js

package transport

import "testing"

// webrtcAvailable reports whether this test process can make WebRTC
// connections: native pion always can.
func webrtcAvailable(testing.TB) bool { return true }
