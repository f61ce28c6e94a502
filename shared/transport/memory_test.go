package transport

import (
	"bytes"
	"sync/atomic"
	"testing"

	"ddt/shared/wait"
)

// TestMemoryBulkBackPressure sends 80 MiB on the memory transport's bulk
// channel to a receiver that reads nothing at first: the sender blocks
// with at most bulkHighWater queued (where the control channel would have
// been overrun at 64 MiB), a control message goes through at once, and
// once the receiver reads, everything arrives.
func TestMemoryBulkBackPressure(t *testing.T) {
	net := NewNetwork()
	sa, sb := connect(t, net.Transport(), net.Transport())
	ctrlA, ctrlB := channel(t, sa, sb, Control)
	bulkA, bulkB := channel(t, sa, sb, Bulk)
	const total, chunk = 80 << 20, 60 << 10
	var sent atomic.Int64
	done := make(chan error, 1)
	go func() {
		msg := make([]byte, chunk)
		for sent.Load() < total {
			if err := bulkA.Send(msg); err != nil {
				done <- err
				return
			}
			sent.Add(chunk)
		}
		done <- nil
	}()
	q := bulkB.(*pipeConn).in
	queued := func() int {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.bytes
	}
	wait.Until(t, wait.Default, "the bulk sender blocks", func() bool {
		n := queued() // nothing is read: everything sent is queued
		return n+chunk > bulkHighWater && sent.Load() == int64(n)
	})
	before := sent.Load()
	if err := ctrlA.Send([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m, err := ctrlB.Recv(); err != nil || !bytes.Equal(m, []byte("still here")) {
		t.Fatalf("control while bulk is blocked: %q %v", m, err)
	}
	if now := sent.Load(); now != before || now >= total {
		t.Fatalf("the bulk sender went on (%d bytes sent, then %d) while nothing was read", before, now)
	}
	var got int64
	for got < total {
		m, err := bulkB.Recv()
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		got += int64(len(m))
		if n := queued(); n > bulkHighWater {
			t.Fatalf("%d bytes queued on bulk, more than %d", n, bulkHighWater)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("bulk sender: %v", err)
	}
}
