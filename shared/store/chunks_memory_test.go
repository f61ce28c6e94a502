package store_test

import (
	"testing"

	"ddt/shared/store"
	"ddt/shared/store/storetest"
)

func TestMemoryChunks(t *testing.T) {
	storetest.RunChunks(t, func(t *testing.T) store.Chunks { return store.NewMemoryChunks() })
}
