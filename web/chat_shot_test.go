package web_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestScreenshotsChat saves PNGs of the Chat card in its states — before
// any friend, a request sent and waiting, an incoming request with its
// Accept and Decline, a conversation with messages delivered both ways
// and the safety number shown, a friend request refused (a name nobody
// holds), and messages held for a friend who closed its tab — to
// DDT_SHOTS, for a person to look at. It asserts nothing about looks; it
// waits for each state by the card's own words.
func TestScreenshotsChat(t *testing.T) {
	dir := shotsDir(t)
	r := startRelay(t, "-zone", "shots")
	for i := 0; i < 4; i++ {
		startNative(t, r, "-log", "warn")
	}
	a := newPage(t, "")
	if err := chromedp.Do(a.ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	openChat(t, a, r)
	browserB := newPage(t, "")
	b := browserB.newTab()
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	openChat(t, b, r)
	registerName(t, a, "alice")
	registerName(t, b, "bob")
	waitText(t, a, "#conversations-empty", "No friends yet")
	elementShot(t, a, "#chat-card", filepath.Join(dir, "chat-0-empty.png"))

	fillAndClick(t, a, "#befriend-input", "#befriend-go", "bob")
	waitText(t, a, "#befriend-status", "waiting for the answer")
	waitJS(t, a, 30*time.Second, "bob listed as requested", `!!document.querySelector('#conversations li[data-name="bob"][data-state="requested"]')`)
	elementShot(t, a, "#chat-card", filepath.Join(dir, "chat-1-request-sent.png"))

	waitJS(t, b, 90*time.Second, "the request in B's card", `!!document.querySelector('#request-list li[data-name="alice"]')`)
	elementShot(t, b, "#chat-card", filepath.Join(dir, "chat-2-incoming.png"))
	mustEval[bool](b, `document.querySelector('#request-list li[data-name="alice"] button[data-action="accept"]').click(), true`)
	waitText(t, a, "#befriend-status", "accepted")

	// A writes in its composer; B answers by the API.
	waitJS(t, a, 2*time.Minute, "A's session ready", `document.querySelector('#conv-session')?.dataset.state === 'ready'`)
	for _, text := range []string{"Hi Bob! Is this really you?", "Let's compare safety numbers when we meet."} {
		fillComposer(t, a, text)
		waitJS(t, a, time.Minute, "A's message delivered", `[...document.querySelectorAll('#messages li.mine')].some((li) => li.dataset.state === 'delivered' && li.textContent.includes(`+quote(text)+`))`)
	}
	mustSend(t, b, "alice", "Yes, it's me. Tuesday?", "direct")
	waitJS(t, a, time.Minute, "B's answer in A's conversation", `!!document.querySelector('#messages li.theirs')`)
	mustEval[bool](a, `document.querySelector('#conv-safety').open = true, true`)
	elementShot(t, a, "#chat-card", filepath.Join(dir, "chat-3-conversation.png"))

	// A name nobody holds.
	fillAndClick(t, a, "#befriend-input", "#befriend-go", "nobody")
	waitText(t, a, "#befriend-error", "Nobody holds the name @nobody")
	elementShot(t, a, "#chat-card", filepath.Join(dir, "chat-4-not-found.png"))

	// B closes its tab: A's next message is held for it.
	b.close()
	fillComposer(t, a, "I'll leave this here for when you're back.")
	waitJS(t, a, 2*time.Minute, "A's message stored", `[...document.querySelectorAll('#messages li.mine')].some((li) => li.dataset.state === 'stored')`)
	elementShot(t, a, "#chat-card", filepath.Join(dir, "chat-5-stored.png"))
}

// fillComposer writes text in the open conversation's composer and sends
// it, as a person would.
func fillComposer(t *testing.T, p *page, text string) {
	t.Helper()
	mustEval[bool](p, `(() => { const i = document.querySelector('#composer-input');
		i.value = `+quote(text)+`; i.dispatchEvent(new Event('input', {bubbles: true}));
		document.querySelector('#composer').requestSubmit(); return true; })()`)
}
