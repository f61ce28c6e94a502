//go:build js && wasm

package chunk

import (
	"syscall/js"
	"testing"
)

// benchSumJS measures SumJS on a Uint8Array already in JavaScript.
func benchSumJS(b *testing.B, data []byte) {
	if subtleCrypto().IsUndefined() {
		return // node without WebCrypto in this context: nothing to compare
	}
	arr := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(arr, data)
	b.Run("SumJS", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := SumJS(arr); err != nil {
				b.Fatal(err)
			}
		}
	})
}
