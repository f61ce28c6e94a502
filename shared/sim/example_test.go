package sim_test

import (
	"fmt"
	"time"

	"ddt/shared/sim"
)

func Example() {
	s := sim.New(sim.Config{Seed: 1})
	s.Join(200)
	s.Publish(10)
	before := s.Measure("joined", 200)

	s.Leave(40)               // a fifth leave without a word
	s.Advance(37 * time.Hour) // every live node runs Maintain
	after := s.Measure("37 h later", 200)

	fmt.Printf("found %.0f %% then %.0f %%; departed left in tables: %.0f %%\n",
		100*before.Success(), 100*after.Success(), 100*(1-after.LiveEntries))
	// Output: found 100 % then 100 %; departed left in tables: 0 %
}
