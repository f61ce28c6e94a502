package names

import (
	"testing"
	"time"

	"ddt/shared/leakcheck"
)

var testNow = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) { leakcheck.Main(m) }
