//go:build js && wasm

package store_test

import (
	"testing"

	"ddt/shared/chunk"
)

// BenchmarkIndexedDBChunks measures IndexedDB with 4 MiB chunks in the
// browser (run it under wasmbrowsertest): Put (copy into JavaScript,
// WebCrypto verify, one transaction), PutBlob (the transaction alone, for
// a Blob the page already has) and ReadAt of a whole chunk (blob.slice,
// arrayBuffer, copy into Go), each over chunks the read-ahead does not
// hold. Storage stays bounded whatever -benchtime: writes are deleted
// (untimed) after each put, reads cycle over 16 chunks.
func BenchmarkIndexedDBChunks(b *testing.B) {
	if !haveIndexedDB() {
		b.Skip("no IndexedDB in this runtime; run under wasmbrowsertest")
	}
	const size = chunk.MaxSize
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	h := chunk.SumGo(data)

	b.Run("Put", func(b *testing.B) {
		s := openIDBChunks(b)
		defer s.Close()
		b.SetBytes(size)
		for b.Loop() {
			if err := s.Put(h, data); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Delete(h); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("PutBlob", func(b *testing.B) {
		s := openIDBChunks(b)
		defer s.Close()
		blob := jsBlob(data)
		b.SetBytes(size)
		for b.Loop() {
			if err := s.PutBlob(h, blob); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Delete(h); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("ReadAt", func(b *testing.B) {
		s := openIDBChunks(b)
		defer s.Close()
		const n = 16 // well past IndexedDBReadAhead (3), so every read misses
		var hs []chunk.Hash
		for i := range n {
			d := append([]byte{}, data...)
			d[0] = byte(i)
			hi := chunk.SumGo(d)
			if err := s.Put(hi, d); err != nil {
				b.Fatal(err)
			}
			hs = append(hs, hi)
		}
		p := make([]byte, size)
		b.SetBytes(size)
		i := 0
		for b.Loop() {
			if n, err := s.ReadAt(hs[i%n], p, 0); err != nil || n != size {
				b.Fatalf("ReadAt = %d, %v", n, err)
			}
			i++
		}
	})
}
