package web_test

// End to end in Chromium: friends, the chained key exchange, end-to-end
// chat and offline delivery (issue 22), between pages and native nodes
// of one zone, with the relay and the intermediaries recording every
// frame they handle.

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"ddt/shared/unicast"
	"ddt/shared/wait"

	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Shapes of window.ddt's chat calls and events, the node's own views.
type (
	friendView  = unicast.FriendView
	messageView = unicast.MessageView
	chatStats   = unicast.StatsView
	sendResult  = unicast.SendResult
)

// jsRecordChat, run at the start of every document, records the chat
// events from the node's first moment (a node collects its held messages
// as soon as it is admitted, before a test could subscribe), each with
// the wall-clock time it came (ms, fractional: pages of one machine
// share the clock), and the time of the node's admission.
const jsRecordChat = `addEventListener('ddt:loaded', () => {
  const rec = window.__chat = {message: [], delivered: [], 'friend-request': [], friend: [], session: []};
  for (const k of Object.keys(rec)) ddt.on(k, (v) => rec[k].push({...v, t: performance.timeOrigin + performance.now()}));
  ddt.ready.then(() => { rec.ready = performance.timeOrigin + performance.now(); }, () => {});
});`

// chatRecord is window.__chat.
type chatRecord struct {
	Message []struct {
		messageView
		T float64
	}
	Delivered []struct {
		To, ID string
		T      float64
	}
	FriendRequest []struct {
		From, Address string
		T             float64
	} `json:"friend-request"`
	Session []struct {
		Name, State string
		T           float64
	}
	Ready float64 // when the node was admitted
}

func recorded(p *page) (chatRecord, error) {
	return eval[chatRecord](p, `window.__chat || {message: [], delivered: [], 'friend-request': [], friend: [], session: []}`)
}

// openChat loads the DDT page of r in p with the chat events recorded,
// and waits for its admission; it returns the address.
func openChat(t *testing.T, p *page, r *relay) string {
	t.Helper()
	onNewDocument(t, p, jsRecordChat)
	if lv := os.Getenv("DDT_CHAT_LOG"); lv != "" {
		onNewDocument(t, p, `localStorage.setItem('ddt-log', `+quote(lv)+`)`)
	}
	keepConsole(t, p)
	p.open(r.url())
	addr := p.ready()
	t.Cleanup(func() {
		if t.Failed() {
			state, err := eval[string](p, `JSON.stringify({name: ddt.username, friends: ddt.friends(), requests: ddt.requests(), stats: ddt.chatStats(), events: window.__chat})`)
			t.Logf("--- chat state of %s: %s %v", addr[:8], state, err)
		}
	})
	return addr
}

// keepConsole keeps the console of a tab (newTab keeps none) for the log
// of a failed test.
func keepConsole(t *testing.T, p *page) {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	chromedp.Listen(p.ctx, func(ev any) {
		if e, ok := ev.(*cdpruntime.EventConsoleAPICalled); ok {
			line := consoleLine(e)
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("--- console of a chat tab:\n%s", strings.Join(lines, "\n"))
			mu.Unlock()
		}
	})
}

// registerName registers name for p's node.
func registerName(t testing.TB, p *page, name string) {
	t.Helper()
	o, err := evalFor[outcome](p, 90*time.Second, settle(`ddt.register(`+quote(name)+`)`))
	if err != nil || o.Record == nil {
		t.Fatalf("register %s: %+v, %v", name, o, err)
	}
}

// waitJS waits until expr, evaluated in p, is true.
func waitJS(t testing.TB, p *page, d time.Duration, what, expr string) {
	t.Helper()
	wait.For(t, d, what, func() error {
		ok, err := eval[bool](p, expr)
		if err == nil && !ok {
			err = fmt.Errorf("not yet: %s", expr)
		}
		return err
	})
}

// chatOutcome is a settled chat call: its value, or its error's code and
// message.
type chatOutcome[T any] struct {
	Value   *T
	Code    string
	Message string
}

// settleChat wraps a promise expression so it resolves to a chatOutcome.
func settleChat(expr string) string {
	return `(async () => { try { return {value: await ` + expr + `}; } catch (e) { return {code: e.code || '', message: e.message}; } })()`
}

// send sends text from p to name and returns what the promise settled to.
func send(t testing.TB, p *page, name, text string) chatOutcome[sendResult] {
	t.Helper()
	o, err := evalFor[chatOutcome[sendResult]](p, 2*time.Minute, settleChat(`ddt.send(`+quote(name)+`, `+quote(text)+`)`))
	if err != nil {
		t.Fatalf("send to %s: %v", name, err)
	}
	return o
}

// mustSend sends and wants the message delivered as want ("direct" or
// "stored").
func mustSend(t testing.TB, p *page, name, text, want string) sendResult {
	t.Helper()
	o := send(t, p, name, text)
	if o.Value == nil || o.Value.Delivered != want || len(o.Value.ID) != 32 {
		t.Fatalf("send %q to %s: %+v; want it delivered %q", text, name, o, want)
	}
	return *o.Value
}

func history(t testing.TB, p *page, name string) []messageView {
	t.Helper()
	o, err := eval[chatOutcome[[]messageView]](p, settleChat(`ddt.history(`+quote(name)+`)`))
	if err != nil || o.Value == nil {
		t.Fatalf("history of %s: %+v, %v", name, o, err)
	}
	return *o.Value
}

func friendsOf(t testing.TB, p *page) []friendView {
	t.Helper()
	return mustEval[[]friendView](p, `ddt.friends()`)
}

func friendNamed(fs []friendView, name string) (friendView, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f, true
		}
	}
	return friendView{}, false
}

// marker is a text no frame could hold by chance.
func marker(t testing.TB, what string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "mk" + what + hex.EncodeToString(b)
}

// leak says how data holds text, if it does: as UTF-8, UTF-16 (either
// byte order), hex, or base64 (standard or URL alphabet, at any of the
// three alignments a text inside a longer encoded run can have).
func leak(data []byte, text string) string {
	forms := map[string][]byte{"UTF-8": []byte(text), "hex": []byte(hex.EncodeToString([]byte(text)))}
	var le, be []byte
	for _, u := range utf16.Encode([]rune(text)) {
		le = append(le, byte(u), byte(u>>8))
		be = append(be, byte(u>>8), byte(u))
	}
	forms["UTF-16LE"], forms["UTF-16BE"] = le, be
	for k := 0; k < 3; k++ {
		in := append(make([]byte, k), text...)
		for name, enc := range map[string]*base64.Encoding{"base64": base64.StdEncoding, "base64url": base64.URLEncoding} {
			s := enc.EncodeToString(in)
			// The first group mixes in the k bytes before the text, the
			// last one what follows it.
			from := 0
			if k > 0 {
				from = 4
			}
			forms[fmt.Sprintf("%s at offset %d", name, k)] = []byte(s[from : len(s)-4])
		}
	}
	for name, f := range forms {
		if bytes.Contains(data, f) {
			return name
		}
	}
	return ""
}

// chatIntermediaries is how many native nodes of TestChat relay onions
// (besides the one that drops them, and the third page). A share whose
// chain failed goes again on hops none of its failed chains used, so the
// acceptor needs three candidates beyond the three of a failed chain.
const chatIntermediaries = 5

// TestChat: friends, the chained key exchange, chat and offline delivery
// end to end, with six native nodes besides the pages (five
// intermediaries, a node that drops every onion, the holder being
// whichever is closest).
// Pages A and B become friends (B accepts in its Chat card) and chat
// directly; B closes its tab and A's next three messages are held; B
// comes back with the same identity and gets them, in order, once each,
// and A hears each delivered. The relay and the intermediaries record
// every frame they handle, and none holds a message's text; a chain
// through the dropper was sent again on other hops; and a third page,
// not a friend, reads nothing and injects nothing.
func TestChat(t *testing.T) {
	caps := t.TempDir()
	relayCap := filepath.Join(caps, "relay.capture")
	r := startRelay(t, "-zone", "chat", "-capture", relayCap)
	var natives []*nativeNode
	var nativeCaps []string
	for i := 0; i < chatIntermediaries; i++ {
		c := filepath.Join(caps, fmt.Sprintf("node%d.capture", i))
		nativeCaps = append(nativeCaps, c)
		natives = append(natives, startNative(t, r, "-log", "info", "-capture", c))
	}
	dropper := startNative(t, r, "-log", "info", "-drop-onions")
	t.Cleanup(func() {
		if t.Failed() {
			for i, n := range append(natives, dropper) {
				var s chatStats
				err := getJSON("http://"+n.status+"/unicast", &s)
				t.Logf("--- chat stats of native %d: %+v %v", i, s, err)
			}
		}
	})

	a := newPage(t, "")
	addrA := openChat(t, a, r)
	browserB := newPage(t, "") // B's browser; its tab comes and goes
	b := browserB.newTab()
	addrB := openChat(t, b, r)
	c := newPage(t, "")
	openChat(t, c, r)
	registerName(t, a, "alice")
	registerName(t, b, "bob")
	registerName(t, c, "carol")

	// A asks; B's card shows the request; B accepts there; A hears it.
	mustEval[bool](a, `window.__answer = ddt.befriend('bob').then((v) => ({value: v}), (e) => ({code: e.code, message: e.message})), true`)
	waitJS(t, b, 90*time.Second, "B's friend-request event from alice", `(window.__chat?.['friend-request'] || []).some((r) => r.from === 'alice')`)
	reqs := mustEval[[]struct{ From, Address string }](b, `ddt.requests()`)
	if len(reqs) != 1 || reqs[0].From != "alice" || reqs[0].Address != addrA {
		t.Fatalf("B's requests: %+v; want alice at %s", reqs, addrA)
	}
	waitJS(t, b, 30*time.Second, "the request in B's Chat card", `!!document.querySelector('#request-list li[data-name="alice"] button[data-action="accept"]')`)
	mustEval[bool](b, `document.querySelector('#request-list li[data-name="alice"] button[data-action="accept"]').click(), true`)
	answer, err := evalFor[chatOutcome[string]](a, 2*time.Minute, `window.__answer`)
	if err != nil || answer.Value == nil || *answer.Value != "accepted" {
		t.Fatalf("A's befriend: %+v, %v; want accepted", answer, err)
	}
	// Both keep the friend, and show the same safety number.
	waitJS(t, b, 2*time.Minute, "B's session with alice ready", `ddt.friends().some((f) => f.name === 'alice' && f.session === 'ready')`)
	waitJS(t, a, 2*time.Minute, "A's session with bob ready", `ddt.friends().some((f) => f.name === 'bob' && f.session === 'ready')`)
	fa, _ := friendNamed(friendsOf(t, a), "bob")
	fb, _ := friendNamed(friendsOf(t, b), "alice")
	if fa.State != "friend" || fb.State != "friend" || fa.Address != addrB || fb.Address != addrA {
		t.Fatalf("friends: A has %+v, B has %+v", fa, fb)
	}
	if !regexp.MustCompile(`^\d{5}( \d{5}){11}$`).MatchString(fa.Safety) || fa.Safety != fb.Safety {
		t.Errorf("safety numbers: A sees %q, B sees %q; want the same 12 groups of five digits", fa.Safety, fb.Safety)
	}

	// Direct: each send is acknowledged at once, and arrives in order.
	var texts []string
	toB := []string{marker(t, "ab1"), marker(t, "ab2"), marker(t, "ab3")}
	toA := []string{marker(t, "ba1"), marker(t, "ba2")}
	texts = append(append(texts, toB...), toA...)
	for _, m := range toB {
		mustSend(t, a, "bob", m, "direct")
	}
	for _, m := range toA {
		mustSend(t, b, "alice", m, "direct")
	}
	waitJS(t, b, time.Minute, "B's three message events", `window.__chat.message.length >= 3`)
	waitJS(t, a, time.Minute, "A's two message events", `window.__chat.message.length >= 2`)
	checkReceived(t, "B", b, "alice", toB)
	checkReceived(t, "A", a, "bob", toA)
	for _, side := range []struct {
		who    string
		p      *page
		friend string
	}{{"A", a, "bob"}, {"B", b, "alice"}} {
		h := history(t, side.p, side.friend)
		var got []string
		for _, m := range h {
			got = append(got, m.Text)
		}
		if want := append(append([]string{}, toB...), toA...); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s's history with %s: %q; want %q", side.who, side.friend, got, want)
		}
	}
	// The exchange's chains, counted before B's tab (and its counters)
	// goes.
	statsA := mustEval[chatStats](a, `ddt.chatStats()`)
	statsB := mustEval[chatStats](b, `ddt.chatStats()`)
	t.Logf("chat stats: A %+v, B %+v", statsA, statsB)

	// B closes its tab; A's next three messages are held for it.
	before, err := r.stats()
	if err != nil {
		t.Fatal(err)
	}
	b.close()
	waitNodes(t, r, before.Nodes-1)
	held := []string{marker(t, "held1"), marker(t, "held2"), marker(t, "held3")}
	texts = append(texts, held...)
	var heldIDs []string
	for _, m := range held {
		heldIDs = append(heldIDs, mustSend(t, a, "bob", m, "stored").ID)
	}
	for _, m := range history(t, a, "bob")[len(toB)+len(toA):] {
		if m.State != "stored" {
			t.Errorf("A's history shows a held message %s as %q; want stored until B acknowledges it", m.ID, m.State)
		}
	}

	// B comes back: same browser profile, same identity, same address.
	b = browserB.newTab()
	if again := openChat(t, b, r); again != addrB {
		t.Fatalf("B came back at %s; want its address %s", again, addrB)
	}
	waitJS(t, b, 2*time.Minute, "B's three held messages", `window.__chat.message.length >= 3`)
	waitJS(t, a, 2*time.Minute, "A's three delivered events", `window.__chat.delivered.filter((d) => d.to === 'bob').length >= 3`)
	// A last message, direct: message events come in order, so once it
	// is in, any duplicate of the held three would have been too.
	last := marker(t, "last")
	texts = append(texts, last)
	mustSend(t, a, "bob", last, "direct")
	waitJS(t, b, time.Minute, "B's last message", `window.__chat.message.some((m) => m.text === `+quote(last)+`)`)
	checkReceived(t, "B after its return", b, "alice", append(append([]string{}, held...), last))
	recA, err := recorded(a)
	if err != nil {
		t.Fatal(err)
	}
	var delivered []string
	for _, d := range recA.Delivered {
		if d.To == "bob" {
			delivered = append(delivered, d.ID)
		}
	}
	for _, id := range heldIDs {
		if n := strings.Count(strings.Join(delivered, ","), id); n != 1 {
			t.Errorf("A heard held message %s delivered %d times; want once", id, n)
		}
	}
	for _, m := range history(t, a, "bob") {
		if m.From == "" && m.State != "delivered" {
			t.Errorf("A's history shows %s as %q once B has everything; want delivered", m.ID, m.State)
		}
	}
	if h := history(t, b, "alice"); len(h) != len(toB)+len(toA)+len(held)+1 {
		t.Errorf("B's history after its return has %d messages; want %d (kept in IndexedDB, the held ones added)", len(h), len(toB)+len(toA)+len(held)+1)
	}

	// The dropper took onions and passed none on; whenever it dropped
	// one, a chain was sent again on other hops, and the exchange still
	// completed (the sessions above).
	var drops chatStats
	if err := getJSON("http://"+dropper.status+"/unicast", &drops); err != nil {
		t.Fatal(err)
	}
	t.Logf("the dropper's stats: %+v", drops)
	if drops.OnionsForwarded != 0 {
		t.Errorf("the -drop-onions node forwarded %d onions", drops.OnionsForwarded)
	}
	if drops.OnionsDropped > 0 && statsA.ChainsRetried+statsB.ChainsRetried == 0 {
		t.Errorf("the dropper dropped %d onions, yet no chain was sent again (A %+v, B %+v)", drops.OnionsDropped, statsA, statsB)
	}
	var forwarded int64
	for _, n := range natives {
		var s chatStats
		if err := getJSON("http://"+n.status+"/unicast", &s); err != nil {
			t.Fatal(err)
		}
		forwarded += s.OnionsForwarded
	}
	if forwarded == 0 {
		t.Errorf("no intermediary forwarded an onion: the chains did not pass through them")
	}

	// C is not a friend: nothing reaches it, and what it sends is refused.
	if o := send(t, c, "alice", marker(t, "inject")); o.Value != nil || o.Code != unicast.CodeNotFriend {
		t.Errorf("C's send to alice: %+v; want code not-friend", o)
	}
	if o := mustEval[chatOutcome[[]messageView]](c, settleChat(`ddt.history('alice')`)); o.Value != nil && len(*o.Value) > 0 {
		t.Errorf("C has a conversation with alice: %+v", *o.Value)
	}
	if fs := friendsOf(t, c); len(fs) != 0 {
		t.Errorf("C has friends: %+v", fs)
	}
	recC, err := recorded(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(recC.Message) != 0 {
		t.Errorf("C got message events: %+v", recC.Message)
	}
	for _, m := range recA.Message {
		if m.From != "bob" {
			t.Errorf("A got a message from %q: %+v", m.From, m)
		}
	}
	if _, ok := friendNamed(friendsOf(t, a), "carol"); ok {
		t.Errorf("carol is among A's friends")
	}

	// No frame the relay or an intermediary handled holds a text; the
	// captures are real (the intermediaries' hold the pages' addresses,
	// which routed frames, lookups and records carry).
	r.stop()
	var all []byte
	for _, path := range append([]string{relayCap}, nativeCaps...) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			t.Errorf("%s recorded nothing", filepath.Base(path))
		}
		for _, m := range texts {
			if how := leak(data, m); how != "" {
				t.Errorf("%s holds the message %q as %s", filepath.Base(path), m, how)
			}
		}
		if path != relayCap {
			all = append(all, data...)
		}
	}
	rawA, _ := hex.DecodeString(addrA)
	rawB, _ := hex.DecodeString(addrB)
	if !bytes.Contains(all, rawA) && !bytes.Contains(all, rawB) {
		t.Errorf("no intermediary's capture holds A's or B's address: the captures miss what the nodes handled")
	}
}

// checkReceived wants p's message events to be exactly texts from from,
// in order, each once.
func checkReceived(t *testing.T, who string, p *page, from string, texts []string) {
	t.Helper()
	rec, err := recorded(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range rec.Message {
		if m.From != from || m.To != "" || len(m.ID) != 32 {
			t.Errorf("%s got a message event %+v; want one from %s to it", who, m.messageView, from)
		}
		got = append(got, m.Text)
	}
	if strings.Join(got, ",") != strings.Join(texts, ",") {
		t.Errorf("%s's message events: %q; want %q, in order, once each", who, got, texts)
	}
}

// The capture check finds a text in each form it looks for, inside other
// bytes at any offset, and nothing in bytes without it.
func TestLeakFindsEveryForm(t *testing.T) {
	text := "mkexample0123456789abcdef"
	var u16 []byte
	for _, u := range utf16.Encode([]rune(text)) {
		u16 = append(u16, byte(u), byte(u>>8))
	}
	for k := 0; k < 3; k++ {
		pad := bytes.Repeat([]byte{0xee}, k)
		for name, data := range map[string][]byte{
			"UTF-8":     append(append(append([]byte{}, pad...), text...), "tail"...),
			"UTF-16":    append(append([]byte("head"), pad...), u16...),
			"base64":    []byte("{\"v\":\"" + base64.StdEncoding.EncodeToString(append(append(append([]byte{}, pad...), text...), 1, 2)) + "\"}"),
			"base64url": []byte(base64.RawURLEncoding.EncodeToString(append(append([]byte{9}, pad...), text...))),
			"hex":       []byte("x" + hex.EncodeToString(append(pad, text...))),
		} {
			if leak(data, text) == "" {
				t.Errorf("%s with %d bytes before it: not found", name, k)
			}
		}
	}
	if how := leak([]byte("mkexample0123456789abcdeX and other bytes"), text); how != "" {
		t.Errorf("found as %s in bytes without it", how)
	}
}
