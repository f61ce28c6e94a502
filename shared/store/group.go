package store

import "sync"

// group commits writes that arrive while one is being committed together,
// in the next commit: IndexedDB orders read-write transactions on one
// object store one after another, each ~3 ms to commit in Chromium, so a
// dozen chunks of a page load stored at once waited ~40 ms each, one
// transaction apiece; grouped, they share one or two. Each caller waits
// for the commit that holds its write and gets that commit's error.
type group[T any] struct {
	max   int // writes in one commit at most
	mu    sync.Mutex
	queue []*groupWrite[T]
	busy  bool // a leader is committing
}

type groupWrite[T any] struct {
	op   T
	done chan error    // the commit that held op
	lead chan struct{} // this caller commits the next group
}

// do queues op, and either waits for a leader's commit of it or, if no
// commit is running (or the last leader hands over), commits what is
// queued itself, up to max writes, with commit.
func (g *group[T]) do(op T, commit func(ops []T) error) error {
	w := &groupWrite[T]{op: op, done: make(chan error, 1), lead: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	if g.busy {
		g.mu.Unlock()
		select {
		case err := <-w.done:
			return err
		case <-w.lead:
		}
		g.mu.Lock()
	}
	g.busy = true
	n := len(g.queue)
	if g.max > 0 {
		n = min(n, g.max)
	}
	batch := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	ops := make([]T, len(batch))
	for i, b := range batch {
		ops[i] = b.op
	}
	err := commit(ops)
	for _, b := range batch {
		b.done <- err
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		// The next waiter leads, so that no caller commits for others
		// without end.
		g.queue[0].lead <- struct{}{}
	} else {
		g.busy = false
	}
	g.mu.Unlock()
	return <-w.done
}
