//go:build !js

package transport

import (
	"bytes"
	"errors"
	"net"
	"testing"
)

func TestOnlyLoopback(t *testing.T) {
	lo := net.Interface{Index: 1, Name: "lo", Flags: net.FlagUp | net.FlagLoopback}
	up := func(index int, name string) net.Interface {
		return net.Interface{Index: index, Name: name, Flags: net.FlagUp | net.FlagBroadcast}
	}
	cidr := func(s string) net.Addr {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return n
	}
	addrs := map[int][]net.Addr{
		1: {cidr("127.0.0.1/8"), cidr("::1/128")},
		2: {cidr("192.168.1.20/24"), cidr("fe80::1/64")},
		3: {cidr("fe80::2/64")},                     // IPv6 link-local only: no carrier yet
		4: {cidr("2001:db8::5/64")},                 // IPv6 only: the mux listens on IPv4
		5: {cidr("169.254.3.4/16")},                 // IPv4 link-local: ICE uses it
		6: {cidr("10.0.0.2/8")},                     // an address, but the interface is down
		7: nil,                                      // Addrs fails
		8: {&net.IPAddr{IP: net.IPv4(10, 0, 0, 3)}}, // not an IPNet: not counted
	}
	list := func(i net.Interface) ([]net.Addr, error) {
		if i.Index == 7 {
			return nil, errors.New("no such device")
		}
		return addrs[i.Index], nil
	}
	for _, c := range []struct {
		name   string
		ifaces []net.Interface
		want   bool
	}{
		{"nothing", nil, true},
		{"loopback", []net.Interface{lo}, true},
		{"ethernet", []net.Interface{lo, up(2, "eth0")}, false},
		{"wifi without a network", []net.Interface{lo, up(3, "wlan0")}, true},
		{"IPv6 only", []net.Interface{lo, up(4, "eth0")}, true},
		{"link-local IPv4", []net.Interface{lo, up(5, "eth0")}, false},
		{"down", []net.Interface{lo, {Index: 6, Name: "eth0", Flags: net.FlagBroadcast}}, true},
		{"unreadable", []net.Interface{lo, up(7, "eth0")}, true},
		{"odd address", []net.Interface{lo, up(8, "eth0")}, true},
		{"second loopback", []net.Interface{lo, {Index: 2, Name: "lo2", Flags: net.FlagUp | net.FlagLoopback}}, true},
	} {
		if got := onlyLoopback(c.ifaces, list); got != c.want {
			t.Errorf("%s: onlyLoopback = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLoopbackByItself connects two transports made without LoopbackOnly
// on a machine whose only interface is loopback, as the test namespace is.
// Anywhere else it would send traffic to real interfaces, so it skips.
func TestLoopbackByItself(t *testing.T) {
	ifaces, err := net.Interfaces()
	if err != nil || !onlyLoopback(ifaces, interfaceAddrs) {
		t.Skip("an interface other than loopback is up: run in a loopback-only network namespace")
	}
	w1, err := NewWebRTC(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	w2, err := NewWebRTC(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	sa, sb := connect(t, w1, w2)
	a, b := channel(t, sa, sb, Control)
	if err := a.Send([]byte("offline")); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(); err != nil || !bytes.Equal(m, []byte("offline")) {
		t.Fatalf("%q %v", m, err)
	}
}
