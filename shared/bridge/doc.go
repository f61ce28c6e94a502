// Package bridge is the one way DDT's Go code talks to JavaScript: every
// promise DDT's code awaits or makes, every exception it catches and every
// shape it hands a page passes through it, in the browser entry (wasm/)
// and the browser WebRTC transport alike. (Event handlers are plain
// js.FuncOf callbacks that must not block; the IndexedDB store goes
// through hack-pad/go-indexeddb, which has glue of its own.)
//
// It turns a JavaScript promise into a blocking call on an ordinary
// goroutine (Await) and a Go function into a promise (Promise); it turns
// a thrown JavaScript exception or a rejection into a Go error (*JSError,
// and Call, which catches what a call throws) and a Go error into a
// JavaScript Error with a code (Error); and it turns a Go value into a
// plain JavaScript object through its JSON encoding (Value), so a shape
// defined once with JSON field names is the same in window.ddt, in the
// native node's HTTP API and in the tests.
//
// Blocking calls must never run inside a js.FuncOf callback, where they
// would hang forever: Promise runs its function on a goroutine of its
// own, and so should every callback that needs to wait.
//
// The package has code only under GOOS=js GOARCH=wasm.
package bridge
