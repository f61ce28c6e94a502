package web_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"ddt/shared/wait"

	"github.com/chromedp/chromedp"
)

// TestScreenshotsSites saves PNGs of DDT sites in the page — the Sites
// card with a folder published through its picker, the browse view while
// a first visit fetches a large image (the loading indicator's steps),
// the site shown, the 404 page of a missing file and of an unknown
// domain — to DDT_SHOTS, for a person to look at. It asserts nothing
// about looks; it waits for each state by the page's own words.
func TestScreenshotsSites(t *testing.T) {
	dir := shotsDir(t)
	r := startRelay(t, "-zone", "shots")
	startNative(t, r)
	a := newPage(t, "")
	if err := chromedp.Do(a.ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	a.open(r.url())
	a.ready()

	// A folder on disk, picked in the card as a person would.
	site := exampleSite(t, 1, siteOrigin(r, "other.ddt"))
	site["img/big.png"] = randomBytes(t, 30<<20)
	site["index.html"] = append(site["index.html"], []byte(`<img src="img/big.png" alt="" width="1" height="1">`)...)
	folder := filepath.Join(t.TempDir(), "my-site")
	for p, b := range site {
		f := filepath.Join(folder, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(a.ctx, chromedp.SetUploadFiles("#publish-input", []string{folder})); err != nil {
		t.Fatal(err)
	}
	waitText(t, a, "#publish-files", "32 files")
	fillAndClick(t, a, "#publish-domain", "#publish-go", "example")
	wait.For(t, 2*time.Minute, "the publication part way", func() error {
		s, err := eval[string](a, `document.querySelector('#publish-status').textContent`)
		if err == nil && !regexp.MustCompile(`Storing the files: [1-9]\d? of 32`).MatchString(s) {
			err = fmt.Errorf("status %q", s)
		}
		return err
	})
	elementShot(t, a, "#sites-card", filepath.Join(dir, "sites-0-publishing.png"))
	waitText(t, a, "#publish-result", "version 1")
	elementShot(t, a, "#sites-card", filepath.Join(dir, "sites-1-published.png"))

	// A first visit, caught while the large image's chunks arrive.
	b := newPage(t, "")
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1100, 800)); err != nil {
		t.Fatal(err)
	}
	b.open(r.url())
	b.ready()
	openSite(b, "example.ddt", "/")
	wait.For(t, 2*time.Minute, "the loading indicator part way", func() error {
		s, err := eval[string](b, `document.querySelector('#browse-loading').hidden ? 'hidden' : document.querySelector('#step-fetch').textContent`)
		if err == nil && !regexp.MustCompile(`big\.png: .*received, [1-6] of 8 chunks stored`).MatchString(s) {
			err = fmt.Errorf("step reads %q", s)
		}
		return err
	})
	shot(t, b, filepath.Join(dir, "sites-2-loading.png"))
	checkHome(t, b, siteOrigin(r, "example.ddt"), 1)
	waitText(t, b, "#browse-status", "version 1")
	shot(t, b, filepath.Join(dir, "sites-3-browsing.png"))

	openSite(b, "example.ddt", "/missing.html")
	waitFrame(t, b, siteOrigin(r, "example.ddt"), `document.querySelector('[data-ddt-error]')?.dataset.ddtError || ''`, "not-found")
	shot(t, b, filepath.Join(dir, "sites-4-not-found.png"))
	openSite(b, "nobody-here.ddt", "/")
	waitFrame(t, b, siteOrigin(r, "nobody-here.ddt"), `document.querySelector('[data-ddt-error]')?.dataset.ddtError || ''`, "unknown-domain")
	shot(t, b, filepath.Join(dir, "sites-5-unknown-domain.png"))
}

// elementShot saves a PNG of the element sel.
func elementShot(t *testing.T, p *page, sel, path string) {
	t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.Screenshot(sel))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
}
