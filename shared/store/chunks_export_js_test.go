//go:build js && wasm

package store

import "ddt/shared/chunk"

// QuotaErrorForTest is how IndexedDBChunks reports err from the browser.
func QuotaErrorForTest(err error) error {
	return (&IndexedDBChunks{name: "test"}).wrap("put chunk", chunk.Hash{}, err)
}
