// Package leakcheck fails a test binary whose own goroutines outlive its
// tests: a keepalive, reader or link left running is a leak a user would
// eventually notice. Use it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
//
// Only goroutines running DDT code (module path "ddt/") count; library
// goroutines that wind down on their own schedule are ignored.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests, then waits up to 5 s for DDT goroutines to end.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := wait(5 * time.Second); leaked != "" {
			fmt.Fprintln(os.Stderr, "goroutines of DDT code still running after the tests:\n"+leaked)
			code = 1
		}
	}
	os.Exit(code)
}

func wait(limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for {
		leaked := own()
		if leaked == "" || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// own returns the stacks of goroutines running DDT code, other than the
// test runner and this check.
func own() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "ddt/") || strings.Contains(g, "ddt/shared/leakcheck.") || strings.Contains(g, "testing.(*M)") {
			continue
		}
		out = append(out, g)
	}
	return strings.Join(out, "\n\n")
}
