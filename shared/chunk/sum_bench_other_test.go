//go:build !js

package chunk

import "testing"

// benchSumJS has nothing to measure natively: there is no JavaScript.
func benchSumJS(*testing.B, []byte) {}
