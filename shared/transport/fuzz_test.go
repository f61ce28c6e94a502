//go:build !js

package transport

import (
	"testing"

	"ddt/shared/wire"
)

// FuzzHandleSignal feeds hostile signaling (it comes from other nodes) to a
// fresh WebRTC session: it may be refused, never crash the node.
func FuzzHandleSignal(f *testing.F) {
	w, err := NewWebRTC(Config{LoopbackOnly: true})
	if err != nil {
		f.Fatal(err)
	}
	defer w.Close()
	f.Add(uint8(wire.SignalOffer), "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")
	f.Add(uint8(wire.SignalCandidate), `{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0"}`)
	f.Add(uint8(wire.SignalCandidate), `{"candidate":"candidate:x","sdpMLineIndex":65535}`)
	f.Add(uint8(wire.SignalAnswer), "v=0")
	f.Add(uint8(wire.SignalBye), "")
	f.Fuzz(func(t *testing.T, kind uint8, data string) {
		s, err := w.NewSession(false, func(wire.SignalKind, string) {})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		s.Handle(wire.SignalKind(kind), data)
		s.Handle(wire.SignalCandidate, data)
	})
}
