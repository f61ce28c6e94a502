package node

import (
	"context"
	"testing"
	"time"

	"ddt/shared/dht"
	"ddt/shared/wire"
)

// seedFrames are frames a peer may send, for the fuzz targets to start
// from: every message a peer link carries, a DHT request in an RPC, and a
// frame of an unknown type.
func seedFrames(f *testing.F) {
	rec := dht.Record{Key: [20]byte{1}, Seq: 1, Value: []byte("v")}
	raw, _ := rec.Marshal()
	for _, m := range []wire.Message{
		&wire.Ping{ID: 1}, &wire.Pong{ID: 1}, &wire.BenchData{Data: []byte{1, 2}}, &wire.BenchEnd{Total: 2},
		&wire.BenchAck{Received: 2}, &wire.Bye{Reason: "x"}, &wire.Experiment{Label: "echo"},
		&wire.RPC{Nonce: 9, Frame: mustMarshal(&wire.FindNode{Target: [20]byte{3}})},
		&wire.RPC{Nonce: 9, Frame: mustMarshal(&wire.Store{Record: raw})},
		&wire.RPC{Nonce: 9, Reply: true, Frame: mustMarshal(&wire.Nodes{})},
		&wire.Signal{Kind: wire.SignalCandidate, Data: "{}"},
		&wire.Routed{Dest: [20]byte{2}, TTL: 3, Nonce: 1, Time: 1_800_000_000_000, Frame: mustMarshal(&wire.Ping{ID: 1})},
	} {
		f.Add(mustMarshal(m))
	}
	f.Add([]byte{wire.Version, 250, 1})
	f.Add([]byte{wire.Version, byte(wire.TypeRPC), 0xff})
}

// FuzzPeerFrame hands a node arbitrary frames from a connected peer: it
// never panics, and whatever the frame did to that link, the node still
// answers another peer.
func FuzzPeerFrame(f *testing.F) {
	seedFrames(f)
	ns := swarm(f, 3, Config{})
	a, b, c := ns[0], ns[1], ns[2]
	link(c, b)
	f.Fuzz(func(t *testing.T, frame []byte) {
		ca := rawLink(a, b) // a fresh link each time: a bad frame closes it
		if err := ca.Send(frame); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Ping(ctx, b.Address()); err != nil {
			t.Fatalf("b stopped answering c after a frame from a: %v", err)
		}
	})
}

// FuzzRoutedInner delivers arbitrary inner frames in routed messages
// that verify (signed by their origin): requests, replies, signals,
// unknown types. The destination never panics and keeps answering.
func FuzzRoutedInner(f *testing.F) {
	seedFrames(f)
	ns := swarm(f, 2, Config{})
	a, b := ns[0], ns[1]
	link(a, b)
	var nonce uint64
	f.Fuzz(func(t *testing.T, inner []byte) {
		if len(inner) > wire.MaxInner {
			return
		}
		nonce++
		r := &wire.Routed{Dest: b.Address(), TTL: wire.MaxTTL, Nonce: nonce, Time: time.Now().UnixMilli(), Origin: a.lease, Frame: inner}
		r.Sig = a.id.Sign(wire.RoutedSignedBytes(r.Dest, r.Nonce, r.Time, a.Address(), inner))
		b.onRouted(b.peer(a.Address()), r)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := a.call(ctx, b.Address(), &wire.Ping{ID: nonce}); err != nil {
			t.Fatalf("b stopped answering after a routed frame: %v", err)
		}
	})
}
