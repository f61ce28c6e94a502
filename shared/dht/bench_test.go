package dht

import (
	"math/rand/v2"
	"testing"

	"ddt/shared/id"
)

func BenchmarkClosest(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	random := func() id.Address {
		var a id.Address
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		return a
	}
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
