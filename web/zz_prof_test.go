package web_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/profiler"
	"github.com/chromedp/chromedp"
)

func TestZZProf(t *testing.T) {
	r := startRelay(t, "-zone", "prof", "-log", "warn")
	r.stop()
	r.web = "/tmp/webprof"
	r.start()
	res := newPage(t, "")
	res.open(r.url())
	res.ready()
	p := newPage(t, "")
	onNewDocument(t, p, markTimes)
	call := func(f func(ctx context.Context, tg *chromedp.Target) error) {
		if _, err := chromedp.Run(p.ctx, chromedp.Action[bool](func(ctx context.Context, tg *chromedp.Target) (bool, error) { return true, f(ctx, tg) })); err != nil {
			t.Fatal(err)
		}
	}
	call(func(ctx context.Context, tg *chromedp.Target) error { _, err := cdp.Call(ctx, tg, profiler.Enable, cdp.Empty{}); return err })
	call(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, profiler.SetSamplingInterval, profiler.SetSamplingIntervalParams{Interval: 200})
		return err
	})
	call(func(ctx context.Context, tg *chromedp.Target) error { _, err := cdp.Call(ctx, tg, profiler.Start, cdp.Empty{}); return err })
	p.open(r.url())
	m := waitJoined(t, p)
	fmt.Printf("%+v\n", m)
	var prof *profiler.Profile
	call(func(ctx context.Context, tg *chromedp.Target) error {
		res, err := cdp.Call(ctx, tg, profiler.Stop, cdp.Empty{})
		prof = res.Profile
		return err
	})
	// self time by function and by package
	byID := map[int64]*profiler.ProfileNode{}
	for _, n := range prof.Nodes {
		byID[n.ID] = n
	}
	self := map[string]float64{}
	pkg := map[string]float64{}
	for i, s := range prof.Samples {
		n := byID[s]
		d := float64(prof.TimeDeltas[i]) / 1000
		name := n.CallFrame.FunctionName
		self[name] += d
		pk := name
		if j := strings.LastIndex(pk, "/"); j >= 0 {
			if k := strings.Index(pk[j:], "."); k >= 0 {
				pk = pk[:j+k]
			}
		} else if k := strings.Index(pk, "."); k >= 0 {
			pk = pk[:k]
		}
		pkg[pk] += d
	}
	top := func(m map[string]float64, n int) {
		type kv struct {
			k string
			v float64
		}
		var xs []kv
		for k, v := range m {
			xs = append(xs, kv{k, v})
		}
		sort.Slice(xs, func(i, j int) bool { return xs[i].v > xs[j].v })
		for i := 0; i < n && i < len(xs); i++ {
			fmt.Printf("%8.1f ms  %s\n", xs[i].v, xs[i].k)
		}
	}
	fmt.Println("== by package")
	top(pkg, 30)
	fmt.Println("== by function")
	top(self, 30)
}
