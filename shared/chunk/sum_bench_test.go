package chunk

import "testing"

// BenchmarkSum hashes a 4 MiB chunk: Go's crypto/sha256 (SumGo), and Sum,
// which in the browser is WebCrypto behind a copy of the bytes into
// JavaScript; under js/wasm also SumJS, WebCrypto on bytes already in
// JavaScript (a Blob's or File's), see sum_bench_js_test.go. Run it in
// Chromium: GOOS=js GOARCH=wasm go test -exec=wasmbrowsertest -run '^$'
// -bench Sum ./shared/chunk.
func BenchmarkSum(b *testing.B) {
	data := make([]byte, MaxSize)
	for i := range data {
		data[i] = byte(i * 31)
	}
	b.Run("Go", func(b *testing.B) {
		b.SetBytes(MaxSize)
		for b.Loop() {
			SumGo(data)
		}
	})
	b.Run("Sum", func(b *testing.B) {
		b.SetBytes(MaxSize)
		for b.Loop() {
			if _, err := Sum(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	benchSumJS(b, data)
}
