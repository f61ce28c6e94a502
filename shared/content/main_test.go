package content

import (
	"testing"

	"ddt/shared/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
