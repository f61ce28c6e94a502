package web_test

import (
	"fmt"
	"testing"
	"time"

	"ddt/shared/wait"
)

// The chat benchmarks of `make bench`: they measure and print, and assert
// nothing about speed.

// jsTimedAccept accepts name's request and resolves with the ms from the
// call to this node's session with name being ready: the acceptor starts
// the exchange (four chains of three intermediaries each) and its session
// is ready last, once the friend's confirmation opens.
const jsTimedAccept = `((name) => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const off = ddt.on('session', (s) => {
    if (s.name === name && s.state === 'ready') { off(); resolve(performance.now() - t0); }
  });
  ddt.accept(name).catch((e) => { off(); reject(e); });
}))`

// jsTimedSend sends text to name and resolves with {at, ms}: the wall
// clock at the call and the ms until the promise resolved.
const jsTimedSend = `(async (name, text) => {
  const at = performance.timeOrigin + performance.now();
  const r = await ddt.send(name, text);
  return {at, ms: performance.timeOrigin + performance.now() - at, delivered: r.delivered};
})`

type timedSend struct {
	At, MS    float64
	Delivered string
}

// TestBenchChat: in a zone of four native nodes and two pages, the time
// from B's accept to its session being ready (the chained key exchange:
// four chains, each of three intermediaries), the latency of a message
// sent directly (A's send to B's message event), and of one held while B
// is away: A's send until the holder has it, and B's admission on its
// return until the message's event. Each run befriends a new page A.
func TestBenchChat(t *testing.T) {
	benchOnly(t)
	r := startRelay(t, "-zone", "bench-chat", "-log", "warn")
	for i := 0; i < 4; i++ {
		startNative(t, r, "-log", "warn")
	}
	browserB := newPage(t, "")
	b := browserB.newTab()
	openChat(t, b, r)
	registerName(t, b, "bob")

	const runs, perRun = 5, 5
	var session, direct, hold, collect []float64
	for i := 0; i < runs; i++ {
		a := newPage(t, "")
		openChat(t, a, r)
		name := fmt.Sprintf("alice%d", i)
		registerName(t, a, name)
		mustEval[bool](a, `window.__answer = ddt.befriend('bob'), true`)
		waitJS(t, b, 90*time.Second, "the request of "+name, `(window.__chat?.['friend-request'] || []).some((r) => r.from === `+quote(name)+`)`)
		ms, err := evalFor[float64](b, 2*time.Minute, fmt.Sprintf(`(%s)(%s)`, jsTimedAccept, quote(name)))
		if err != nil {
			t.Fatal(err)
		}
		session = append(session, ms)
		if v, err := evalFor[string](a, time.Minute, `window.__answer`); err != nil || v != "accepted" {
			t.Fatalf("%s's befriend: %q, %v", name, v, err)
		}

		for k := 0; k < perRun; k++ {
			text := marker(t, fmt.Sprintf("d%d", k))
			s := timedSendOf(t, a, "bob", text)
			if s.Delivered != "direct" {
				t.Fatalf("a direct send was %q", s.Delivered)
			}
			direct = append(direct, arrival(t, b, text)-s.At)
		}

		// B goes away; A's message is held; B comes back.
		before, err := r.stats()
		if err != nil {
			t.Fatal(err)
		}
		b.close()
		waitNodes(t, r, before.Nodes-1)
		text := marker(t, "held")
		s := timedSendOf(t, a, "bob", text)
		if s.Delivered != "stored" {
			t.Fatalf("a send to the absent B was %q", s.Delivered)
		}
		hold = append(hold, s.MS)
		b = browserB.newTab()
		openChat(t, b, r)
		got := arrival(t, b, text)
		rec, err := recorded(b)
		if err != nil {
			t.Fatal(err)
		}
		collect = append(collect, got-rec.Ready)
		a.close()
	}
	fmt.Printf("\n### Chat: friends, the chained key exchange and messages, in Chromium (4 native nodes, 2 pages, %d runs)\n\n", runs)
	fmt.Printf("| measure | median ms | runs (ms) |\n|---|---|---|\n")
	fmt.Printf("| session established (4 chains of 3 intermediaries): B's accept → B's session ready | %.0f | %s |\n", median(session), fmtList(session))
	fmt.Printf("| message latency, direct: A's send → B's message event | %.1f | %s |\n", median(direct), fmtList(direct))
	fmt.Printf("| offline store: A's send → held at the node closest to B (resolves \"stored\"; includes the 4 s a send waits for a direct receipt first) | %.0f | %s |\n", median(hold), fmtList(hold))
	fmt.Printf("| offline store: B's admission on its return → the held message's event | %.0f | %s |\n", median(collect), fmtList(collect))
}

func timedSendOf(t *testing.T, p *page, name, text string) timedSend {
	t.Helper()
	s, err := evalFor[timedSend](p, 2*time.Minute, fmt.Sprintf(`(%s)(%s, %s)`, jsTimedSend, quote(name), quote(text)))
	if err != nil {
		t.Fatalf("send to %s: %v", name, err)
	}
	return s
}

// arrival waits for p's message event with text and returns when it came
// (the wall clock, ms).
func arrival(t *testing.T, p *page, text string) float64 {
	t.Helper()
	waitJS(t, p, 2*time.Minute, "the message "+text, `(window.__chat?.message || []).some((m) => m.text === `+quote(text)+`)`)
	return mustEval[float64](p, `window.__chat.message.find((m) => m.text === `+quote(text)+`).t`)
}

// waitNodes waits until r counts n nodes in its zone.
func waitNodes(t *testing.T, r *relay, n int) {
	t.Helper()
	wait.For(t, 30*time.Second, fmt.Sprintf("the relay to count %d nodes", n), func() error {
		s, err := r.stats()
		if err == nil && s.Nodes != n {
			err = fmt.Errorf("%d nodes", s.Nodes)
		}
		return err
	})
}
