package dht

import (
	"testing"

	"ddt/shared/id"
)

func BenchmarkClosest(b *testing.B) {
	random := randomAddresses()
	self := random()
	tb := newTable(self, 20, 0)
	for range 10000 {
		tb.seen(random(), t0)
	}
	targets := make([]id.Address, 1024)
	for i := range targets {
		targets[i] = random()
		if i%2 == 0 { // near self, as in a lookup's last rounds
			copy(targets[i][:2], self[:2])
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tb.closest(targets[i%len(targets)], 20, self)
	}
}
