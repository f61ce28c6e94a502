package store

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Writes that arrive while a commit runs are committed together in the
// next one, each caller gets its own commit's error, no commit holds more
// than max, and every write is committed exactly once.
func TestGroupCommit(t *testing.T) {
	var g group[int]
	g.max = 8
	release := make(chan struct{})
	var commits, biggest atomic.Int32
	seen := make(map[int]int)
	var mu sync.Mutex
	bad := errors.New("the disk is full")
	commit := func(ops []int) error {
		if commits.Add(1) == 1 {
			<-release // the first commit is slow: the others queue behind it
		}
		if int32(len(ops)) > biggest.Load() {
			biggest.Store(int32(len(ops)))
		}
		mu.Lock()
		defer mu.Unlock()
		var err error
		for _, op := range ops {
			seen[op]++
			if op == 13 {
				err = bad
			}
		}
		return err
	}
	const writers = 40
	errs := make([]error, writers)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); errs[0] = g.do(0, commit) }()
	for commits.Load() == 0 {
		runtime.Gosched()
	}
	for i := 1; i < writers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = g.do(i, commit) }()
	}
	for {
		g.mu.Lock()
		n := len(g.queue)
		g.mu.Unlock()
		if n == writers-1 {
			break
		}
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	for i := 0; i < writers; i++ {
		if seen[i] != 1 {
			t.Errorf("write %d committed %d times", i, seen[i])
		}
	}
	if c := commits.Load(); c != 1+(writers-1+7)/8 {
		t.Errorf("%d commits for %d writes (39 queued behind the first), want %d", c, writers, 1+(writers-1+7)/8)
	}
	if b := biggest.Load(); b > 8 {
		t.Errorf("a commit of %d writes, more than max 8", b)
	}
	// 13 failed its commit, and so did the writes committed with it.
	failed := 0
	for i, err := range errs {
		if errors.Is(err, bad) {
			failed++
		} else if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if !errors.Is(errs[13], bad) || failed < 1 || failed > 8 {
		t.Errorf("write 13's commit failed for %d writes (13's own: %v); want 13's group only", failed, errs[13])
	}
}
