package sim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"ddt/shared/id"
)

func check(t *testing.T, r Report) {
	t.Helper()
	if r.Success() < 0.99 {
		t.Errorf("%s: %d of %d lookups found their target", r.Phase, r.Found, r.Lookups)
	}
	if r.GetsFound != r.Gets {
		t.Errorf("%s: %d of %d records of live owners read back", r.Phase, r.GetsFound, r.Gets)
	}
	if r.PutsStored != r.Puts {
		t.Errorf("%s: %d of %d records published were stored", r.Phase, r.PutsStored, r.Puts)
	}
}

// TestChurn runs 1,000 nodes through a day and a half of churn: a fifth
// leave without a word, half of those come back, new nodes join, and the
// clock moves past the 36 hours after which the departed are forgotten.
func TestChurn(t *testing.T) {
	s := New(Config{Seed: 7})
	var rs Reports
	s.Join(1000)
	s.Publish(100)
	rs = append(rs, s.Measure("joined", 1000))

	left := s.Leave(200)
	s.Advance(time.Hour)
	rs = append(rs, s.Measure("20 % left", 1000))

	addrs := map[*Node]id.Address{}
	for _, n := range left {
		addrs[n] = n.Addr
	}
	back := s.Return(100)
	for _, n := range back {
		if n.Addr != addrs[n] {
			t.Fatalf("a node back after an hour has a new address")
		}
	}
	s.Join(100)
	s.Advance(12 * time.Hour)
	rs = append(rs, s.Measure("13 h", 1000))

	s.Advance(25 * time.Hour)
	final := s.Measure("38 h", 1000)
	rs = append(rs, final)
	t.Logf("\n%s", rs)
	for _, r := range rs {
		check(t, r)
	}
	// The 100 that stayed away are out of every table.
	if final.LiveEntries != 1 {
		t.Errorf("after 38 h, %.3f %% of table entries are departed nodes", 100*(1-final.LiveEntries))
	}
	if final.KnowsClosest < 0.99 {
		t.Errorf("after 38 h, only %.1f %% of nodes know their closest", 100*final.KnowsClosest)
	}
}

// TestDepartedNode follows single nodes: one that leaves silently is out
// of every table after 36 hours and cannot be found; one back within the
// lease keeps its address; one back after 7 days gets a new one.
func TestDepartedNode(t *testing.T) {
	s := New(Config{Seed: 9})
	s.Join(300)
	live := s.Live()
	gone, brief := live[42], live[43]
	addr := gone.Addr
	if s.Holders(addr) == 0 {
		t.Fatal("nobody knows the node before it leaves")
	}
	s.LeaveNode(gone)
	s.LeaveNode(brief)
	for range 3 {
		s.Advance(12 * time.Hour)
	}
	if h := s.Holders(addr); h != 0 {
		t.Fatalf("%d tables still hold a node silent for 36 h", h)
	}
	asker := s.Live()[7]
	if res, err := s.Lookup(asker, addr); err != nil || res.Found {
		t.Fatalf("lookup of a departed node: %+v %v", res, err)
	}

	// Back after 36 h: within the lease, same address, found again.
	if got := s.ReturnNode(brief); got != live[43].Addr {
		t.Fatal("a node back within 7 days has a new address")
	}
	if res, err := s.Lookup(asker, brief.Addr); err != nil || !res.Found {
		t.Fatalf("lookup of a returned node: %+v %v", res, err)
	}

	// Back after 7 days: the lease lapsed, so a new address.
	s.Advance(5*24*time.Hour + 12*time.Hour)
	if got := s.ReturnNode(gone); got == addr {
		t.Fatal("a node back after 7 days kept its address")
	}
	if res, err := s.Lookup(asker, gone.Addr); err != nil || !res.Found {
		t.Fatalf("lookup of the new address: %+v %v", res, err)
	}
	if res, _ := s.Lookup(asker, addr); res.Found {
		t.Fatal("the old address answers")
	}
}

func TestClosestIn(t *testing.T) {
	s := New(Config{Seed: 3})
	var all []id.Address
	for range 2000 {
		all = append(all, s.randomAddress())
	}
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, id.Address.Compare)
	targets := []id.Address{all[0], all[1999], {}, {0xff}}
	for range 100 {
		targets = append(targets, s.randomAddress())
	}
	for _, target := range targets {
		want := slices.DeleteFunc(slices.Clone(all), func(a id.Address) bool { return a == target })
		slices.SortFunc(want, func(a, b id.Address) int { return a.Xor(target).Compare(b.Xor(target)) })
		for _, k := range []int{1, 8, 20, 3000} {
			if got := closestIn(sorted, target, k); !slices.Equal(got, want[:min(k, len(want))]) {
				t.Fatalf("closestIn(%s, %d) differs from a brute-force sort", target.Short(), k)
			}
		}
	}
}

func TestReportTable(t *testing.T) {
	r := Report{Phase: "x", Nodes: 10, Lookups: 4, Found: 3, MedianHops: 1, P99Hops: 2, Virtual: 48 * time.Hour}
	out := r.String()
	for _, want := range []string{"live nodes", "75.00 %", "1 / 2", "2 d"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
