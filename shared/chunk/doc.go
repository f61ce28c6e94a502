// Package chunk is how DDT names content: a payload is cut into chunks of
// at most MaxSize bytes (the paper's 4 MiB), each named by its SHA-256
// (a Hash), and a Manifest lists them with the payload's name, size and
// type. The manifest's encoding is itself content — a chunk — and its
// hash is the content id.
//
// Nothing here trusts its input: Manifest.Unmarshal checks every length
// and that the chunk list is exactly as long as the size requires, and
// Verify checks a chunk's bytes against the hash it was asked for before
// anyone stores or uses them.
//
// Sum hashes with Go's crypto/sha256 natively and with the browser's
// WebCrypto under js/wasm (measured here: 9 ms per 4 MiB against 37 ms
// for Go's SHA-256 in wasm); both give the same Hash.
package chunk
