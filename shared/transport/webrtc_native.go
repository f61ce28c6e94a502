//go:build !js

package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"net"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// newAPI builds the native pion API. All sessions share one UDP socket
// (an ICE UDP mux) with a 4 MiB read buffer: default-sized buffers
// overflow at data-channel speeds and drop packets.
func newAPI(c Config) (*webrtc.API, func() error, error) {
	var se webrtc.SettingEngine
	listen := &net.UDPAddr{IP: net.IPv4zero}
	if c.LoopbackOnly {
		listen = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
		se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	} else if ifaces, err := net.Interfaces(); err == nil && onlyLoopback(ifaces, interfaceAddrs) {
		// ICE leaves loopback out, so a machine with nothing else up
		// would offer no candidate at all.
		c.logger().Info("no network interface up but loopback: offering loopback candidates")
		se.SetIncludeLoopbackCandidate(true)
	}
	conn, err := net.ListenUDP("udp4", listen)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: udp socket: %w", err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	mux := webrtc.NewICEUDPMux(nil, conn)
	se.SetICEUDPMux(mux)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se)), mux.Close, nil
}

func interfaceAddrs(i net.Interface) ([]net.Addr, error) { return i.Addrs() }

// onlyLoopback reports whether ICE would find no candidate off loopback:
// no interface other than loopback is up with an IPv4 address (the mux
// listens on IPv4). addrs lists an interface's addresses.
func onlyLoopback(ifaces []net.Interface, addrs func(net.Interface) ([]net.Addr, error)) bool {
	for _, i := range ifaces {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		as, err := addrs(i)
		if err != nil {
			continue
		}
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return false
			}
		}
	}
	return true
}

// attachReceive delivers messages in order: native pion calls OnMessage
// from one read loop per channel.
func attachReceive(dc *webrtc.DataChannel, push func([]byte)) (release func()) {
	dc.OnMessage(func(m webrtc.DataChannelMessage) { push(m.Data) })
	return func() {}
}

// sender hands messages to pion's data channel.
type sender struct{ dc *webrtc.DataChannel }

func newSender(dc *webrtc.DataChannel) sender { return sender{dc} }

func (s sender) send(b []byte) error { return s.dc.Send(b) }

// onLocalCandidate reports each gathered ICE candidate as JSON.
func onLocalCandidate(pc *webrtc.PeerConnection, f func(string)) {
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		if b, err := json.Marshal(c.ToJSON()); err == nil {
			f(string(b))
		}
	})
}

// addCandidate adds a remote candidate given as JSON. pion adds it at
// once: there is nothing to wait for, so ctx is unused.
func addCandidate(_ context.Context, pc *webrtc.PeerConnection, data string) error {
	var c webrtc.ICECandidateInit
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return err
	}
	return pc.AddICECandidate(c)
}
