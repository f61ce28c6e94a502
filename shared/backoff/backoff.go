// Package backoff spaces out retries: exponential backoff with jitter, as
// the node uses between attempts to reach its relay and a relay between
// redials of a federation link.
package backoff

import (
	"crypto/rand"
	"math/big"
	"time"
)

// Jitter returns d moved by up to an eighth either way (d - d/8 to
// d + d/8), so that many clients that failed together do not retry
// together.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	r, err := rand.Int(rand.Reader, big.NewInt(int64(d/4)+1))
	if err != nil {
		return d
	}
	return d - d/8 + time.Duration(r.Int64())
}

// Backoff is a retry delay that doubles from Min up to Max. The zero value
// is not usable; set Min and Max.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the delay before the next attempt, jittered, and doubles
// the one after it (up to Max).
func (b *Backoff) Next() time.Duration {
	if b.cur < b.Min {
		b.cur = b.Min
	}
	d := Jitter(b.cur)
	b.cur = min(2*b.cur, b.Max)
	return d
}

// Reset starts again from Min: the last attempt succeeded.
func (b *Backoff) Reset() { b.cur = b.Min }
