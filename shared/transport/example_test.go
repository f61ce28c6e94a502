package transport_test

import (
	"context"
	"fmt"

	"ddt/shared/transport"
	"ddt/shared/wire"
)

// A session carries a control channel and a bulk one. Here two sessions on
// the memory transport meet (their signals handed over directly); a chunk
// goes on bulk while a ping goes on control.
func ExampleSession_Channel() {
	net := transport.NewNetwork()
	var initiator, responder transport.Session
	both := make(chan struct{}) // both sessions exist: signals may flow
	initiator, _ = net.Transport().NewSession(true, func(kind wire.SignalKind, data string) {
		<-both
		responder.Handle(kind, data) // the offer
	})
	responder, _ = net.Transport().NewSession(false, func(kind wire.SignalKind, data string) {
		<-both
		initiator.Handle(kind, data) // the answer
	})
	close(both)
	defer initiator.Close()

	ctx := context.Background()
	bulk, _ := initiator.Channel(ctx, transport.Bulk)
	control, _ := initiator.Conn(ctx) // the control channel
	go bulk.Send(make([]byte, 60<<10))
	control.Send([]byte("ping"))

	theirControl, _ := responder.Conn(ctx)
	theirBulk, _ := responder.Channel(ctx, transport.Bulk)
	msg, _ := theirControl.Recv()
	chunk, _ := theirBulk.Recv()
	fmt.Printf("%s, and %d KiB of bulk\n", msg, len(chunk)>>10)
	// Output: ping, and 60 KiB of bulk
}
