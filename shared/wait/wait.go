// Package wait is the tests' one way to wait for something to happen:
// poll a condition until it holds or a limit passes, then fail the test
// saying what did not happen and, for For, the condition's last error.
// Waiting this way asserts an outcome, never a duration: the limit is
// only how long to keep looking.
package wait

import (
	"testing"
	"time"
)

// Default is the limit most waits use.
const Default = 10 * time.Second

// For polls f until it returns nil, failing t if it has not by limit.
// Polls start 10 ms apart and slow to 100 ms.
func For(t testing.TB, limit time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	pause := 10 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// Until polls cond until it is true, failing t if it is not by limit.
func Until(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	For(t, limit, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

type notYet struct{}

func (notYet) Error() string { return "the condition does not hold" }

var errNotYet error = notYet{}
