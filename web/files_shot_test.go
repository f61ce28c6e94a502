package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/wait"

	"github.com/chromedp/chromedp"
)

// TestScreenshotsFiles saves PNGs of the Files card in its states — idle
// with its storage meter, a file shared (by the picker) with its id, a
// download under way, a download done with its save link, one that routed
// around a provider serving corrupt bytes, and an id
// nobody holds — to DDT_SHOTS, for a person to look at. Like
// TestScreenshots it asserts nothing about looks; it waits for each state
// by the card's own words.
func TestScreenshotsFiles(t *testing.T) {
	dir := shotsDir(t)
	r := startRelay(t, "-zone", "shots")
	p := newPage(t, "")
	if err := chromedp.Do(p.ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	p.open(r.url())
	p.ready()
	waitText(t, p, "#storage-text", "pledged")
	cardShot(t, p, filepath.Join(dir, "files-0-idle.png"))

	// Share a 9 MB file through the picker, as a person would.
	file := filepath.Join(t.TempDir(), "holiday.mp4")
	if err := os.WriteFile(file, randomBytes(t, 9<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(p.ctx, chromedp.SetUploadFiles("#share-input", []string{file})); err != nil {
		t.Fatal(err)
	}
	waitText(t, p, "#share-status", "Anyone with this id")
	time.Sleep(3500 * time.Millisecond) // the storage meter's next poll
	cardShot(t, p, filepath.Join(dir, "files-1-shared.png"))

	// Another page puts 48 MiB; this one downloads it, caught part way.
	q := newPage(t, "")
	q.open(r.url())
	q.ready()
	id := mustEval[string](q, `ddt.put(new Uint8Array(48 << 20).map((_, i) => (i * 2654435761) >>> 24), {name: "talk.webm", type: "video/webm"})`)
	fillAndClick(t, p, "#fetch-id", "#fetch-go", id)
	wait.For(t, 60*time.Second, "the download part way", func() error {
		s, err := eval[string](p, `document.querySelector('#fetch-status')?.textContent || ''`)
		if err == nil && !(len(s) > 0 && s[:len("Downloading…")] == "Downloading…") {
			err = fmt.Errorf("fetch status reads %q", s)
		}
		return err
	})
	cardShot(t, p, filepath.Join(dir, "files-2-downloading.png"))
	waitText(t, p, "#fetch-save", "talk.webm")
	cardShot(t, p, filepath.Join(dir, "files-3-downloaded.png"))

	// A provider that serves corrupt bytes, routed around: the hostile
	// node of TestContentCorruptProvider holds another item of q's.
	_, hostile := startHostile(t, r)
	for attempt := 1; ; attempt++ {
		bad := putRandom(t, q, 16<<20, fmt.Sprintf(`{name: "notes-%d.pdf", type: "application/pdf", unicast: true}`, attempt))
		badID, err := chunk.Parse(bad.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hostile.Fetch(context.Background(), badID, content.GetOptions{Pin: true}); err != nil {
			t.Fatal(err)
		}
		fillAndClick(t, p, "#fetch-id", "#fetch-go", bad.ID)
		waitText(t, p, "#fetch-save", fmt.Sprintf("notes-%d.pdf", attempt))
		if note, _ := eval[string](p, `document.querySelector('#fetch-note').textContent`); note != "" {
			cardShot(t, p, filepath.Join(dir, "files-5-routed-around.png"))
			break
		}
		if attempt == 4 {
			t.Log("no download asked the hostile node; no shot of the routed-around note")
			break
		}
	}

	fillAndClick(t, p, "#fetch-id", "#fetch-go", "00000000000000000000000000000000000000000000000000000000000000aa")
	wait.For(t, 120*time.Second, "not found", func() error {
		s, err := eval[string](p, `document.querySelector('#fetch-error')?.textContent || ''`)
		if err == nil && s == "" {
			err = fmt.Errorf("no error yet")
		}
		return err
	})
	cardShot(t, p, filepath.Join(dir, "files-6-not-found.png"))
}

// cardShot saves a PNG of the Files card.
func cardShot(t *testing.T, p *page, path string) {
	t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.Screenshot("#files-card"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
}
