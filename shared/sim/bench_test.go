package sim

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestBenchSim prints the simulation benchmark table (make bench sets
// DDT_BENCH=1): 10,000 nodes, without churn and with a fifth of them
// leaving silently while lookups run.
func TestBenchSim(t *testing.T) {
	if os.Getenv("DDT_BENCH") == "" {
		t.Skip("set DDT_BENCH=1 to run the simulation benchmark")
	}
	const nodes, lookups = 10_000, 10_000
	start := time.Now()
	s := New(Config{Seed: 1})
	s.Join(nodes)
	s.Publish(100)
	var rs Reports
	rs = append(rs, s.Measure("no churn", lookups))
	// A fifth leave in ten waves, six virtual minutes apart, with lookups
	// in between: the tables still hold most of the departed.
	for range 10 {
		s.Leave(nodes / 50)
		s.Advance(6 * time.Minute)
		s.Lookups(lookups / 10)
	}
	rs = append(rs, s.Measure("20 % leaving", 0))
	fmt.Printf("DHT simulation: %d nodes in one process (k 20, α 3), %d lookups of random live nodes per column; %v on %d CPUs\n%s",
		nodes, lookups, time.Since(start).Round(time.Second), runtime.GOMAXPROCS(0), rs)
	for _, r := range rs {
		if r.Success() < 0.99 {
			t.Errorf("%s: lookup success %.2f %%", r.Phase, 100*r.Success())
		}
	}
}
