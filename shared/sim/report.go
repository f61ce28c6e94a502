package sim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"ddt/shared/dht"
	"ddt/shared/id"
)

// Report is what one Measure saw.
type Report struct {
	Phase string
	Nodes int // live
	Gone  int // departed and not back

	Lookups      int
	Found        int     // lookups whose target answered
	MedianHops   int     // over all lookups
	P99Hops      int     // 99th percentile
	HopsSeen     []int   // HopsSeen[h]: how many lookups took h hops
	MeanMessages float64 // requests per lookup

	MeanContacts float64 // routing-table entries per live node
	LiveEntries  float64 // fraction of those entries that are live nodes
	KnowsClosest float64 // fraction of live nodes whose table holds their true K closest live nodes

	Puts       int // records published (or republished at a return) since the previous Report
	PutsStored int // of those, stored by at least one node
	Copies     int // nodes that stored them, in all

	Gets      int // records of live owners read back
	GetsFound int

	// Requests counts every request sent since the previous Report (or
	// New): joins, maintenance, publishing, lookups and reads.
	Requests int64

	Virtual time.Duration // virtual time since the simulation started
	Wall    time.Duration // wall time since the previous Report (or New)
}

// Success returns the fraction of lookups that found their target.
func (r Report) Success() float64 { return ratio(r.Found, r.Lookups) }

// GetSuccess returns the fraction of records read back.
func (r Report) GetSuccess() float64 { return ratio(r.GetsFound, r.Gets) }

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// Lookups runs count lookups of random live nodes from random live
// nodes; the next Measure reports them together with its own.
func (s *Sim) Lookups(count int) {
	s.mu.Lock()
	type pair struct {
		from   *Node
		target id.Address
	}
	pairs := make([]pair, 0, count)
	for range count {
		if len(s.live) < 2 {
			break
		}
		from := s.live[s.rng.IntN(len(s.live))]
		target := from
		for target == from {
			target = s.live[s.rng.IntN(len(s.live))]
		}
		pairs = append(pairs, pair{from, target.Addr})
	}
	s.mu.Unlock()
	results := make([]dht.Result, len(pairs))
	s.each(len(pairs), func(ctx context.Context, i int) {
		results[i], _ = pairs[i].from.DHT.Lookup(ctx, pairs[i].target)
		results[i].Closest = nil
	})
	s.mu.Lock()
	s.results = append(s.results, results...)
	s.mu.Unlock()
}

// Measure runs lookups of random live nodes from random live nodes (and
// counts those Lookups ran since the last Measure), reads back every
// record whose owner is live (from another random live node), and checks
// the routing tables against the live nodes.
func (s *Sim) Measure(phase string, lookups int) Report {
	s.Lookups(lookups)
	s.mu.Lock()
	results := s.results
	s.results = nil
	type get struct {
		from  *Node
		owner *Node
		rec   dht.Record
	}
	var gets []get
	for _, n := range s.live {
		for _, r := range n.Records {
			from := n
			for from == n && len(s.live) > 1 {
				from = s.live[s.rng.IntN(len(s.live))]
			}
			gets = append(gets, get{from, n, r})
		}
	}
	rep := Report{Phase: phase, Nodes: len(s.live), Gone: len(s.departed), Virtual: s.Clock.Now().Sub(s.start),
		Puts: s.puts, PutsStored: s.putsStored, Copies: s.copies}
	s.puts, s.putsStored, s.copies = 0, 0, 0
	live := slices.Clone(s.sorted)
	nodes := slices.Clone(s.live)
	s.mu.Unlock()

	got := make([]bool, len(gets))
	s.each(len(gets), func(ctx context.Context, i int) {
		g := gets[i]
		recs, _, _ := g.from.DHT.Get(ctx, g.rec.Key)
		got[i] = slices.ContainsFunc(recs, func(r dht.Record) bool { return r.Signer == g.rec.Signer && r.Seq >= g.rec.Seq })
	})

	rep.Lookups = len(results)
	hops := make([]int, len(results))
	total := 0
	for i, r := range results {
		if r.Found {
			rep.Found++
		}
		hops[i] = r.Hops
		total += r.Messages
		for len(rep.HopsSeen) <= r.Hops {
			rep.HopsSeen = append(rep.HopsSeen, 0)
		}
		rep.HopsSeen[r.Hops]++
	}
	if len(hops) > 0 {
		slices.Sort(hops)
		rep.MedianHops = hops[len(hops)/2]
		rep.P99Hops = hops[min(len(hops)-1, len(hops)*99/100)]
		rep.MeanMessages = float64(total) / float64(len(hops))
	}
	rep.Gets = len(gets)
	for _, ok := range got {
		if ok {
			rep.GetsFound++
		}
	}
	rep.MeanContacts, rep.LiveEntries, rep.KnowsClosest = s.health(nodes, live)
	rep.Wall = time.Since(s.last)
	s.last = time.Now()
	total64 := s.Net.Messages()
	rep.Requests = total64 - s.requests
	s.requests = total64
	return rep
}

// health compares every live node's routing table with the live nodes.
func (s *Sim) health(nodes []*Node, live []id.Address) (meanContacts, liveEntries, knowsClosest float64) {
	k := s.cfg.DHT.K
	if k <= 0 {
		k = dht.DefaultK
	}
	var mu sync.Mutex
	entries, alive, knows := 0, 0, 0
	s.each(len(nodes), func(_ context.Context, i int) {
		n := nodes[i]
		cs := n.DHT.Contacts()
		table := make(map[id.Address]bool, len(cs))
		a := 0
		for _, c := range cs {
			table[c.Address] = true
			if _, ok := slices.BinarySearchFunc(live, c.Address, id.Address.Compare); ok {
				a++
			}
		}
		all := true
		for _, c := range closestIn(live, n.Addr, k) {
			if !table[c] {
				all = false
				break
			}
		}
		mu.Lock()
		entries += len(cs)
		alive += a
		if all {
			knows++
		}
		mu.Unlock()
	})
	return float64(entries) / float64(max(1, len(nodes))), ratio(alive, entries), ratio(knows, len(nodes))
}

// String prints the report as a table.
func (r Report) String() string { return Reports{r}.String() }

// Reports prints several reports side by side, one column each.
type Reports []Report

func (rs Reports) String() string {
	rows := []struct {
		name string
		cell func(Report) string
	}{
		{"live nodes", func(r Report) string { return fmt.Sprint(r.Nodes) }},
		{"departed", func(r Report) string { return fmt.Sprint(r.Gone) }},
		{"virtual time", func(r Report) string { return virtual(r.Virtual) }},
		{"lookups", func(r Report) string { return fmt.Sprint(r.Lookups) }},
		{"found", func(r Report) string { return percent(r.Success()) }},
		{"hops median / p99", func(r Report) string { return fmt.Sprintf("%d / %d", r.MedianHops, r.P99Hops) }},
		{"hops 0 / 1 / 2 / 3 / more", func(r Report) string {
			if r.Lookups == 0 {
				return "–"
			}
			var parts []string
			for h := range 5 {
				n := 0
				for i, c := range r.HopsSeen {
					if i == h || h == 4 && i > 4 {
						n += c
					}
				}
				parts = append(parts, fmt.Sprintf("%.0f", 100*ratio(n, r.Lookups)))
			}
			return strings.Join(parts, " / ") + " %"
		}},
		{"messages per lookup", func(r Report) string { return fmt.Sprintf("%.1f", r.MeanMessages) }},
		{"contacts per node", func(r Report) string { return fmt.Sprintf("%.1f", r.MeanContacts) }},
		{"table entries live", func(r Report) string { return percent(r.LiveEntries) }},
		{"nodes knowing their K closest", func(r Report) string { return percent(r.KnowsClosest) }},
		{"records published: stored / copies each", func(r Report) string {
			if r.Puts == 0 {
				return "–"
			}
			return fmt.Sprintf("%d/%d / %.1f", r.PutsStored, r.Puts, float64(r.Copies)/float64(r.Puts))
		}},
		{"records read back", func(r Report) string {
			return fmt.Sprintf("%d/%d", r.GetsFound, r.Gets)
		}},
		{"requests since previous column", func(r Report) string { return fmt.Sprint(r.Requests) }},
		{"wall time", func(r Report) string { return r.Wall.Round(time.Millisecond).String() }},
	}
	cells := [][]string{{""}}
	for _, r := range rs {
		cells[0] = append(cells[0], r.Phase)
	}
	for _, row := range rows {
		line := []string{row.name}
		for _, r := range rs {
			line = append(line, row.cell(r))
		}
		cells = append(cells, line)
	}
	widths := make([]int, len(cells[0]))
	for _, line := range cells {
		for i, c := range line {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, line := range cells {
		for i, c := range line {
			pad := strings.Repeat(" ", widths[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func percent(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) }

func virtual(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 0 {
		return fmt.Sprintf("%d d", d/(24*time.Hour))
	}
	return fmt.Sprintf("%.0f h", d.Hours())
}
