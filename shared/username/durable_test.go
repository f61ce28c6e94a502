//go:build !js

package username

import (
	"context"
	"sync"
	"testing"
	"time"

	"ddt/shared/store"
	"ddt/shared/transport"
)

// durableLog is a memory store that notes which keys were written with
// PutDurable (on IndexedDB: a strict-durability transaction).
type durableLog struct {
	*store.Memory
	mu      sync.Mutex
	durable map[string]bool
}

func (d *durableLog) PutDurable(key string, value []byte) error {
	d.mu.Lock()
	d.durable[key] = true
	d.mu.Unlock()
	return d.Memory.Put(key, value)
}

func (d *durableLog) wrote(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.durable[key]
}

// The username record, and the identity it is claimed by, are written
// durably: a tab closed or crashed right after registering still holds
// its name when it comes back. (shared/store's browser test shows what
// PutDurable asks of IndexedDB.)
func TestRecordWrittenDurably(t *testing.T) {
	f := newFakeRelay(t)
	st := &durableLog{Memory: store.NewMemory(), durable: map[string]bool{}}
	_, a, _ := f.runNode(t, st, transport.NewNetwork(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.Register(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"identity", keyRecordIn} {
		if !st.wrote(key) {
			t.Errorf("%q was not written durably", key)
		}
	}
}
