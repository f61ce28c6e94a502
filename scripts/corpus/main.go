// Command corpus keeps a fuzz target's corpus in the repository: it
// copies the inputs `go test -fuzz` found interesting (kept in the build
// cache) into the package's testdata/fuzz/<target>/, where `go test`
// replays every one of them as a seed on every run. It keeps at most -max
// inputs per target, preferring those already committed, then the
// smallest, so the corpus stays small and reviewable.
//
//	go run ./scripts/corpus [-max 48] PACKAGE-DIR IMPORT-PATH TARGET
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	max := flag.Int("max", 48, "most inputs kept per target")
	flag.Parse()
	if flag.NArg() != 3 {
		fmt.Fprintln(os.Stderr, "usage: corpus [-max N] PACKAGE-DIR IMPORT-PATH TARGET")
		os.Exit(2)
	}
	dir, pkg, target := flag.Arg(0), flag.Arg(1), flag.Arg(2)
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		fail(err)
	}
	cache := filepath.Join(strings.TrimSpace(string(out)), "fuzz", pkg, target)
	dst := filepath.Join(dir, "testdata", "fuzz", target)
	kept, _ := os.ReadDir(dst)
	found, err := os.ReadDir(cache)
	if os.IsNotExist(err) {
		fmt.Printf("%s %s: nothing new in the cache\n", pkg, target)
		return
	}
	if err != nil {
		fail(err)
	}
	have := map[string]bool{}
	for _, e := range kept {
		have[e.Name()] = true
	}
	type input struct {
		name string
		size int64
	}
	var fresh []input
	for _, e := range found {
		if have[e.Name()] || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			fail(err)
		}
		fresh = append(fresh, input{e.Name(), info.Size()})
	}
	sort.Slice(fresh, func(i, j int) bool { return fresh[i].size < fresh[j].size })
	room := *max - len(kept)
	if room <= 0 || len(fresh) == 0 {
		fmt.Printf("%s %s: %d kept, none added\n", pkg, target, len(kept))
		return
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		fail(err)
	}
	added := 0
	for _, in := range fresh[:min(room, len(fresh))] {
		b, err := os.ReadFile(filepath.Join(cache, in.name))
		if err != nil {
			fail(err)
		}
		if err := os.WriteFile(filepath.Join(dst, in.name), b, 0o644); err != nil {
			fail(err)
		}
		added++
	}
	fmt.Printf("%s %s: %d kept, %d added\n", pkg, target, len(kept), added)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "corpus:", err)
	os.Exit(1)
}
