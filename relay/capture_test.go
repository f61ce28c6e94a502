package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"ddt/shared/id"
	"ddt/shared/store"
	"ddt/shared/wait"
)

// A relay with -capture writes every WebSocket message it handles to the
// file as records an auditor can walk: both ways, each whole, and among
// them the lease it gave a node (the node's address is in what it wrote).
func TestCaptureRecordsFrames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.capture")
	c, err := OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	z := newZone(t, store.NewMemory(), Config{Capture: c})
	a := z.join(store.NewMemory())
	b := z.join(store.NewMemory())
	wait.Until(t, wait.Default, "the two nodes' channel", func() bool { return len(a.Peers()) == 1 && len(b.Peers()) == 1 })
	z.stop()
	c.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	count := map[byte]int{}
	var written []byte
	for rest := raw; len(rest) > 0; {
		if len(rest) < 5 {
			t.Fatalf("a record cut short: %d bytes left", len(rest))
		}
		dir, n := rest[0], int(binary.BigEndian.Uint32(rest[1:5]))
		if dir != captureRead && dir != captureWritten || len(rest) < 5+n {
			t.Fatalf("a bad record: direction %q, length %d of %d left", dir, n, len(rest)-5)
		}
		count[dir]++
		if dir == captureWritten {
			written = append(written, rest[5:5+n]...)
		}
		rest = rest[5+n:]
	}
	if count[captureRead] == 0 || count[captureWritten] == 0 {
		t.Fatalf("records read/written: %d/%d, want both", count[captureRead], count[captureWritten])
	}
	for name, addr := range map[string]id.Address{"a": a.Address(), "b": b.Address()} {
		if !bytes.Contains(written, addr[:]) {
			t.Errorf("node %s's address is in none of the frames the relay wrote", name)
		}
	}
}

// A capture stops at its bound, with the records before it whole: a peer
// that streams at a node cannot fill its disk.
func TestCaptureBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bounded.capture")
	c, err := OpenCapture(path)
	if err != nil {
		t.Fatal(err)
	}
	c.max = 100
	for range 10 {
		c.record(captureRead, make([]byte, 20)) // 25 bytes a record
	}
	c.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 100 {
		t.Fatalf("the capture holds %d bytes; its bound is 100 (four whole records)", fi.Size())
	}
}
