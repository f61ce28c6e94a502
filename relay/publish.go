package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/clock"
	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/site"
)

// runPublish is "ddt-relay publish -relay URL -domain example.ddt
// [-data DIR] ./folder": it runs a native node (its identity kept in
// -data, so that the same owner publishes the next version later),
// publishes the folder's files as the domain's site, waits until they
// are stored, the domain claimed and the files' first replicas placed,
// prints the domain, version and manifest id, and exits.
func runPublish(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	relayURL := fs.String("relay", "http://127.0.0.1:8080", "relay base URL")
	domain := fs.String("domain", "", "the domain to publish the site as (example.ddt); claimed for this node's key the first time")
	data := fs.String("data", defaultPublishData(), "folder for the publisher's identity (its domains' owner key) and its content chunks")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to try to reach the relay")
	wait := fs.Duration("wait", time.Minute, "how long to wait, once published, for other nodes to take replicas of the files")
	loopback := fs.Bool("loopback", false, "restrict WebRTC to the loopback interface (tests)")
	logLevel := fs.String("log", "warn", "log level: debug, info, warn, error")
	var ice listFlag
	fs.Var(&ice, "ice", "STUN/TURN URL (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *domain == "":
		return errors.New("-domain is missing: the domain to publish as, e.g. -domain example.ddt")
	case fs.NArg() == 0:
		return errors.New("the folder to publish is missing: ddt-relay publish -relay URL -domain example.ddt ./folder")
	case fs.NArg() > 1:
		return fmt.Errorf("one folder to publish, not %d (%s); flags go before the folder", fs.NArg(), strings.Join(fs.Args(), " "))
	}
	d, err := site.NormalizeDomain(*domain)
	if err != nil {
		return err
	}
	files, skipped, err := folderFiles(fs.Arg(0))
	if err != nil {
		return err
	}
	if skipped > 0 {
		fmt.Fprintf(out, "skipping %d hidden files and folders (names starting with a dot)\n", skipped)
	}
	nn, err := openNative(nativeConfig{relay: *relayURL, data: *data, ice: ice, loopback: *loopback, log: newLogger(*logLevel)})
	if err != nil {
		return err
	}
	defer nn.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- nn.n.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	if err := awaitAdmission(ctx, nn.n, *relayURL, *timeout); err != nil {
		return err
	}
	_, err = publishFolder(ctx, nn, d, files, *wait, out)
	return err
}

// defaultPublishData is the publisher's folder unless told: beside the
// node's (defaultNodeData), not in it, so that publishing works while
// `ddt-relay node` runs.
func defaultPublishData() string {
	return filepath.Join(filepath.Dir(defaultNodeData()), "publisher")
}

// awaitAdmission waits until n is admitted, for at most timeout, and
// says what stands in the way if it is not.
func awaitAdmission(ctx context.Context, n *node.Node, relayURL string, timeout time.Duration) error {
	admitted := make(chan struct{}, 1)
	unsub := n.Subscribe(func(e node.Event) {
		if e.Kind == node.EventState && e.State == node.StateAdmitted {
			select {
			case admitted <- struct{}{}:
			default:
			}
		}
	})
	defer unsub()
	if s, _ := n.State(); s == node.StateAdmitted {
		return nil
	}
	t := clock.System.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-admitted:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		state, detail := n.State()
		return fmt.Errorf("could not join through the relay at %s within %s (%s: %s): is it running, and is the URL right?", relayURL, timeout, state, detail)
	}
}

// publishFolder publishes files as domain's site from nn (admitted),
// printing progress to out, then waits up to wait for the replicas of
// every file and says how many nodes hold them.
func publishFolder(ctx context.Context, nn *nativeNode, domain string, files []site.File, wait time.Duration, out io.Writer) (*site.Published, error) {
	var mu sync.Mutex
	copies := map[chunk.Hash]int{} // content id → copies, once replicated
	got := make(chan struct{}, 1)
	unsub := nn.n.Subscribe(func(e node.Event) {
		if ev, ok := e.Value.(content.ReplicasEvent); ok && e.Kind == content.EventReplicas {
			if id, err := chunk.Parse(ev.ID); err == nil {
				mu.Lock()
				copies[id] = max(copies[id], ev.Replicas)
				mu.Unlock()
				select {
				case got <- struct{}{}:
				default:
				}
			}
		}
	})
	defer unsub()
	lastFiles := -1
	pub, err := nn.sites.Publish(ctx, domain, files, site.PublishOptions{Progress: func(p site.PublishProgress) {
		switch {
		case p.Phase == "files" && p.Files != lastFiles:
			lastFiles = p.Files
			fmt.Fprintf(out, "stored %d of %d files, %s of %s\n", p.Files, p.TotalFiles, formatBytes(p.Bytes), formatBytes(p.TotalBytes))
		case p.Phase == "manifest":
			fmt.Fprintf(out, "storing the site manifest\n")
		case p.Phase == "claim":
			fmt.Fprintf(out, "claiming %s\n", domain)
		}
	}})
	if err != nil {
		e := node.Explain(err)
		if e.Code == site.CodeTaken {
			return nil, fmt.Errorf("%s is taken: another key holds it (%s); choose another domain", domain, e.Error)
		}
		return nil, fmt.Errorf("publish %s: %s (%s)", domain, e.Error, e.Code)
	}
	ids := pub.IDs()
	fmt.Fprintf(out, "published %s version %d manifest %s (%d files)\n", pub.Domain, pub.Version, pub.Manifest, len(pub.Site.Entries))
	t := clock.System.NewTimer(wait)
	defer t.Stop()
	least := func() (n int, all bool) {
		mu.Lock()
		defer mu.Unlock()
		n, all = -1, true
		for _, id := range ids {
			c, ok := copies[id]
			if !ok {
				all = false
				continue
			}
			if n < 0 || c < n {
				n = c
			}
		}
		return n, all
	}
	for {
		n, all := least()
		if all {
			if n <= 1 {
				fmt.Fprintf(out, "warning: no other node took replicas: the files are only on this node and leave with it; run a node with -host %s to keep them\n", domain)
			} else {
				fmt.Fprintf(out, "replicated: every file is on at least %d nodes\n", n)
			}
			return pub, nil
		}
		select {
		case <-got:
		case <-ctx.Done():
			return pub, ctx.Err()
		case <-t.C():
			fmt.Fprintf(out, "warning: after %s some files have no replica yet: they may be only on this node\n", wait)
			return pub, nil
		}
	}
}

// folderFiles lists the regular files under dir as a site's files,
// their paths relative to dir with slashes. Names starting with a dot
// (.git, .DS_Store) are skipped, and counted, except .well-known; a path
// a site may not have is an error naming it.
func folderFiles(dir string) (files []site.File, skipped int, err error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, 0, fmt.Errorf("the folder %s does not exist", dir)
	case err != nil:
		return nil, 0, err
	case !st.IsDir():
		return nil, 0, fmt.Errorf("%s is not a folder: publish the folder that holds the site's index.html", dir)
	}
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if strings.HasPrefix(e.Name(), ".") && e.Name() != ".well-known" {
			skipped++
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil // folders are walked; links and devices are not a site's
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if err := site.CheckPath(rel); err != nil {
			return fmt.Errorf("%s: %v", p, node.Explain(err).Error)
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		files = append(files, site.File{Path: rel, Size: info.Size(), Open: func() (io.ReadCloser, error) { return os.Open(p) }})
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("the folder %s has no files to publish", dir)
	}
	return files, skipped, nil
}

// formatBytes writes n for people: 1.2 MiB.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
