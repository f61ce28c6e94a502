package store_test

import (
	"testing"

	"ddt/shared/store"
	"ddt/shared/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return store.NewMemory() })
}
