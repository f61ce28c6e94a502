package zone_test

import (
	"context"
	"fmt"

	"ddt/relay/zone"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/wire"
)

// A service adds a node message type to a zone: it registers a handler
// for the type and the feature it belongs to, which the Challenge lists.
// The zone serves any transport.Conn; here, one end of a pipe.
func ExampleZone_Handle() {
	key, _ := identity.New()
	z, _ := zone.New(zone.Config{Name: "demo", MaxNodes: 8, Key: key, Store: store.NewMemory()})
	defer z.Close()
	z.Handle(wire.TypePing, "echo", func(m *zone.Member, msg wire.Message) error {
		m.SendMsg(&wire.Pong{ID: msg.(*wire.Ping).ID})
		return nil
	})

	relaySide, nodeSide := transport.Pipe()
	z.JoinSlot()
	done := make(chan struct{})
	go func() { z.Serve(context.Background(), relaySide, "example"); close(done) }()
	read := func() wire.Message {
		b, _ := nodeSide.Recv()
		m, _ := wire.Unmarshal(b)
		return m
	}
	send := func(m wire.Message) {
		b, _ := wire.Marshal(m)
		nodeSide.Send(b)
	}

	ch := read().(*wire.Challenge)
	fmt.Println("features:", ch.Features)
	me, _ := identity.New()
	hello := &wire.Hello{SignKey: me.SignKey(), AgreeKey: me.AgreeKey()}
	hello.Sig = me.Sign(wire.HelloSignedBytes(ch, hello.SignKey, hello.AgreeKey, false))
	send(hello)
	fmt.Println("admitted to", read().(*wire.Admitted).Lease.Zone)
	send(&wire.Ping{ID: 7})
	fmt.Println("pong", read().(*wire.Pong).ID)

	nodeSide.Close()
	<-done
	// Output:
	// features: [echo]
	// admitted to demo
	// pong 7
}
