//go:build js && wasm

package chunk

import (
	"fmt"
	"syscall/js"

	"ddt/shared/bridge"
)

// webCryptoMin is the smallest input hashed by WebCrypto: below it the
// round trip through a promise costs more than Go's own SHA-256.
const webCryptoMin = 64 << 10

// Sum is the SHA-256 of data: by WebCrypto (crypto.subtle.digest) where the
// runtime has it and data is large, else by Go's crypto/sha256. It waits
// for a promise, so call it from an ordinary goroutine, never inside a
// js.FuncOf callback.
func Sum(data []byte) (Hash, error) {
	subtle := subtleCrypto()
	if len(data) < webCryptoMin || subtle.IsUndefined() {
		return SumGo(data), nil
	}
	arr := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(arr, data)
	return SumJS(arr)
}

// SumJS is the SHA-256, by WebCrypto, of the bytes of arr (a Uint8Array,
// an ArrayBuffer or a view of one), which never enter Go's memory. Without
// WebCrypto it copies them in and uses Go's.
func SumJS(arr js.Value) (Hash, error) {
	subtle := subtleCrypto()
	if subtle.IsUndefined() {
		u8 := js.Global().Get("Uint8Array").New(arr)
		b := make([]byte, u8.Length())
		js.CopyBytesToGo(b, u8)
		return SumGo(b), nil
	}
	p, err := bridge.Call(subtle, "digest", "SHA-256", arr)
	if err != nil {
		return Hash{}, fmt.Errorf("chunk: WebCrypto digest: %w", err)
	}
	v, err := bridge.Await(p)
	if err != nil {
		return Hash{}, fmt.Errorf("chunk: WebCrypto digest: %w", err)
	}
	var h Hash
	u8 := js.Global().Get("Uint8Array").New(v)
	if u8.Length() != HashLen {
		return Hash{}, fmt.Errorf("chunk: WebCrypto digest of %d bytes", u8.Length())
	}
	js.CopyBytesToGo(h[:], u8)
	return h, nil
}

// subtleCrypto is crypto.subtle, or undefined (an insecure context, a
// runtime without WebCrypto).
func subtleCrypto() js.Value {
	c := js.Global().Get("crypto")
	if c.IsUndefined() || c.IsNull() {
		return js.Undefined()
	}
	s := c.Get("subtle")
	if s.IsNull() {
		return js.Undefined()
	}
	return s
}
