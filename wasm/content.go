//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall/js"
	"time"

	"ddt/shared/bridge"
	"ddt/shared/chunk"
	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/store"
)

// blobChunks is what the IndexedDB chunk store offers a page beyond
// store.Chunks: chunks kept and handed out as Blobs, so a file's bytes go
// from the picker to IndexedDB and from IndexedDB to the caller's Blob
// without passing through Go (a 1 GiB file never sits in wasm memory).
type blobChunks interface {
	// PutBlob stores blob as chunk h; the caller hashed it (chunk.SumJS).
	PutBlob(h chunk.Hash, blob js.Value) error
	// Blob is chunk h as a Blob backed by the store.
	Blob(h chunk.Hash) (js.Value, error)
}

// files is window.ddt's share of content: put, get, stat, storage, pin
// and unpin over the content service.
type files struct {
	svc *content.Service
	// blobs is the chunk store's Blob side, nil when the chunks live in
	// memory (no IndexedDB, or storage "memory"): then a put copies each
	// slice into Go and hands it to Service.Put, and a get reads the
	// chunks out of the library into Uint8Arrays. That costs wasm memory
	// as large as the file, which is acceptable only because such a node
	// keeps everything in memory anyway.
	blobs blobChunks
}

// Progress reports go to JavaScript at most this often (and at every
// change of phase, and at the end): a callback per frame would cost the
// page more than the transfer.
const progressEvery = 100 * time.Millisecond

// openChunks opens the chunk store beside the node's identity: IndexedDB
// database "<db>-chunks" when the node has a database of its own, else
// memory. It returns the Blob side when there is one. The IndexedDB store
// asks the browser for persistent storage as it opens.
func openChunks(cfg Config, slot int, log interface{ Warn(string, ...any) }) (store.Chunks, blobChunks) {
	if cfg.Storage == memoryStorage || slot < 0 {
		return store.NewMemoryChunks(), nil
	}
	c, err := store.OpenIndexedDBChunks(databaseName(cfg.Storage, slot)) // it adds "-chunks"
	if err != nil {
		log.Warn("IndexedDB unavailable for content; chunks are kept in memory and will not survive a reload", "err", err)
		return store.NewMemoryChunks(), nil
	}
	return c, c
}

// policy is the content service's Policy from the config's cache field.
func (c *Config) policy() content.Policy {
	return content.Policy{Types: c.Cache.Types, MaxAge: time.Duration(c.Cache.MaxAgeDays * float64(24*time.Hour))}
}

// methods are the window.ddt members files defines.
func (f *files) methods() map[string]func([]js.Value) any {
	return map[string]func([]js.Value) any{
		"put":     f.put,
		"get":     f.get,
		"stat":    f.stat,
		"storage": f.storage,
		"pin":     f.pin,
		"unpin":   f.unpin,
	}
}

// progress returns a content.Progress callback that calls fn (a
// JavaScript function, or undefined for none) with the report's
// JSON shape, throttled to progressEvery.
func progress(fn js.Value) func(content.Progress) {
	return throttled(fn, func(p content.Progress) (string, bool) {
		return p.Phase, p.Phase == "done" || (p.Total > 0 && p.Bytes >= p.Total)
	}, func(p content.Progress) (js.Value, error) { return bridge.Value(p) })
}

// throttled returns a callback that calls fn (a JavaScript function, or
// undefined for none: then it returns nil) with view of each report, at
// most every progressEvery, and at every change of phase and every final
// report (phase and final say which a report is).
func throttled[T any](fn js.Value, phase func(T) (string, bool), view func(T) (js.Value, error)) func(T) {
	if fn.Type() != js.TypeFunction {
		return nil
	}
	var mu sync.Mutex
	var last time.Time
	var was string
	return func(p T) {
		ph, final := phase(p)
		mu.Lock()
		now := time.Now()
		due := ph != was || final || now.Sub(last) >= progressEvery
		if due {
			last, was = now, ph
		}
		mu.Unlock()
		if !due {
			return
		}
		v, err := view(p)
		if err != nil {
			return
		}
		callSafely("onProgress", fn, v)
	}
}

// callSafely calls fn with args; a throw is reported on the console, so
// that a page's callback cannot stop the node.
func callSafely(what string, fn js.Value, args ...any) {
	defer func() {
		if r := recover(); r != nil {
			bridge.Global().Get("console").Call("error", fmt.Sprintf("ddt: %s threw: %v", what, r))
		}
	}()
	fn.Invoke(args...)
}

// option is opts[name] when opts is an object, else undefined.
func option(args []js.Value, i int, name string) js.Value {
	if len(args) <= i || args[i].Type() != js.TypeObject || args[i].IsNull() {
		return js.Undefined()
	}
	return args[i].Get(name)
}

// maxOptionLen bounds a string option, in UTF-16 code units: a name is
// at most chunk.MaxName bytes, which no longer string can encode to.
const maxOptionLen = chunk.MaxName

// stringLen is the length of the JavaScript string v in UTF-16 code
// units, read without copying it into Go (js.Value's Length and Get panic
// on a primitive, so it asks a String wrapper).
func stringLen(v js.Value) int {
	return js.Global().Get("String").New(v).Get("length").Int()
}

func stringOption(args []js.Value, i int, name string) (string, error) {
	v := option(args, i, name)
	switch v.Type() {
	case js.TypeUndefined, js.TypeNull:
		return "", nil
	case js.TypeString:
		// Names and types are at most a few hundred bytes: a longer
		// string is refused before it is copied into wasm memory.
		if n := stringLen(v); n > maxOptionLen {
			return "", node.Errorf(node.CodeInvalid, nil, "options.%s is %d characters, at most %d", name, n, maxOptionLen)
		}
		return v.String(), nil
	}
	return "", node.Errorf(node.CodeInvalid, nil, "options.%s must be a string", name)
}

// put(data, {name, type, unicast, onProgress, signal}) → Promise of the content
// id. data is a Uint8Array (or ArrayBuffer), a Blob, a File or a string.
func (f *files) put(args []js.Value) any {
	blob, name, typ, err := f.putArgs(args)
	unicast := option(args, 1, "unicast").Truthy()
	report := progress(option(args, 1, "onProgress"))
	ctx, aborted, stop := abortable(option(args, 1, "signal"))
	return promise(func() (any, error) {
		defer stop()
		if err != nil {
			return nil, err
		}
		if aborted() {
			return nil, errAborted("put", context.Canceled)
		}
		o := content.PutOptions{Name: name, Type: typ, Unicast: unicast, Progress: report}
		size := int64(blob.Get("size").Float())
		var id chunk.Hash
		if f.blobs == nil {
			id, err = f.svc.Put(ctx, &blobReader{blob: blob, size: size}, size, o)
		} else {
			id, err = f.putBlob(ctx, blob, size, o)
		}
		if err != nil {
			if aborted() {
				return nil, errAborted("put", err)
			}
			return nil, err
		}
		return id.String(), nil
	})
}

// putArgs reads put's arguments: data as a Blob, and the name and type
// (from the options, else from a File, else none and the Blob's own).
func (f *files) putArgs(args []js.Value) (blob js.Value, name, typ string, err error) {
	if name, err = stringOption(args, 1, "name"); err != nil {
		return
	}
	if typ, err = stringOption(args, 1, "type"); err != nil {
		return
	}
	g := bridge.Global()
	var data js.Value
	if len(args) > 0 {
		data = args[0]
	}
	switch {
	case len(args) == 0:
		err = node.Errorf(node.CodeInvalid, nil, "ddt.put(data): data must be a Uint8Array, a Blob, a File or a string")
		return
	case data.Type() == js.TypeString:
		if typ == "" {
			typ = "text/plain;charset=utf-8"
		}
		blob, err = bridge.New(g.Get("Blob"), []any{data})
	case data.Type() == js.TypeObject && data.InstanceOf(g.Get("Blob")):
		blob = data
		if name == "" && data.InstanceOf(g.Get("File")) {
			name = data.Get("name").String()
		}
		if typ == "" {
			typ = data.Get("type").String()
		}
	case data.Type() == js.TypeObject && (data.InstanceOf(g.Get("ArrayBuffer")) || g.Get("ArrayBuffer").Call("isView", data).Bool()):
		// A copy, so a caller that reuses its buffer cannot change what is
		// being stored.
		blob, err = bridge.New(g.Get("Blob"), []any{data})
	default:
		err = node.Errorf(node.CodeInvalid, nil, "ddt.put(data): data must be a Uint8Array, a Blob, a File or a string")
		return
	}
	if err != nil {
		err = node.Errorf(node.CodeInvalid, []error{err}, "ddt.put: the data cannot be read: %v", err)
		return
	}
	if len(name) > chunk.MaxName {
		err = node.Errorf(node.CodeInvalid, nil, "ddt.put: a name is at most %d bytes, not %d", chunk.MaxName, len(name))
	} else if len(typ) > chunk.MaxType {
		err = node.Errorf(node.CodeInvalid, nil, "ddt.put: a type is at most %d bytes, not %d", chunk.MaxType, len(typ))
	}
	return
}

// putBlob stores blob chunk by chunk: each 4 MiB slice is read into a
// JavaScript ArrayBuffer only to be hashed by WebCrypto, then the slice
// itself (a Blob) goes into IndexedDB, and the library accounts for it as
// this node's own. Then the service publishes the chunk list.
func (f *files) putBlob(ctx context.Context, blob js.Value, size int64, o content.PutOptions) (chunk.Hash, error) {
	if size > chunk.MaxContent {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "ddt.put: %d bytes is more than one item can hold (%d)", size, chunk.MaxContent)
	}
	lib := f.svc.Library()
	n := chunk.Count(size, chunk.MaxSize)
	hs := make([]chunk.Hash, 0, n)
	published := false
	defer func() {
		if !published {
			lib.Unown(hs...) // what a failed put stored is cache, not pinned for good
		}
	}()
	t0 := time.Now()
	report := func(phase string, done int64) {
		if o.Progress == nil {
			return
		}
		rate := 0.0
		if s := time.Since(t0).Seconds(); s > 0 {
			rate = float64(done) / s
		}
		o.Progress(content.Progress{Phase: phase, Bytes: done, Total: size, BytesPerSec: rate, Chunks: n, ChunksDone: len(hs)})
	}
	for off := int64(0); off < size; off += chunk.MaxSize {
		end := min(off+chunk.MaxSize, size)
		part := blob.Call("slice", off, end)
		buf, err := readBlob(ctx, part)
		if err != nil {
			return chunk.Hash{}, err
		}
		report("hashing", off)
		h, err := chunk.SumJS(buf)
		if err != nil {
			return chunk.Hash{}, node.Errorf(node.CodeError, []error{err}, "ddt.put: could not hash the data: %v", err)
		}
		if err := f.blobs.PutBlob(h, part); err != nil {
			return chunk.Hash{}, storeError(err)
		}
		if err := lib.Adopt(h, int(end-off), content.Own, o.Type); err != nil {
			return chunk.Hash{}, storeError(err)
		}
		hs = append(hs, h)
		report("storing", end)
	}
	id, err := f.svc.Publish(ctx, size, hs, o)
	published = err == nil
	return id, err
}

// storeError words a failure to store for people: the browser's quota
// (with what to do about it), or the store's own words.
func storeError(err error) error {
	if errors.Is(err, store.ErrQuota) {
		return node.Errorf(content.CodeQuota, []error{err}, "The browser has no room left for this site's data: free some disk space, or unpin content you no longer need, and try again.")
	}
	return node.Coded(err)
}

// readBlob is blob.arrayBuffer(), awaited; ctx ends the wait.
func readBlob(ctx context.Context, blob js.Value) (js.Value, error) {
	p, err := bridge.Call(blob, "arrayBuffer")
	if err == nil {
		var buf js.Value
		if buf, err = bridge.AwaitContext(ctx, p); err == nil {
			return buf, nil
		}
	}
	return js.Value{}, node.Errorf(node.CodeInvalid, []error{err}, "ddt.put: the data cannot be read: %v", err)
}

// blobReader reads a Blob 4 MiB at a time into Go, for Service.Put where
// the chunks live in memory.
type blobReader struct {
	blob      js.Value
	size, off int64
	buf       []byte
}

func (r *blobReader) Read(p []byte) (int, error) {
	if len(r.buf) == 0 {
		if r.off >= r.size {
			return 0, io.EOF
		}
		end := min(r.off+chunk.MaxSize, r.size)
		ab, err := readBlob(context.Background(), r.blob.Call("slice", r.off, end))
		if err != nil {
			return 0, err
		}
		u8 := bridge.Global().Get("Uint8Array").New(ab)
		r.buf = make([]byte, u8.Length())
		js.CopyBytesToGo(r.buf, u8)
		r.off = end
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// persisted is navigator.storage.persisted(), false where unknown:
// whether the browser will keep this origin's data (the node's pinned
// content with it) when the disk runs short.
func persisted() bool {
	st := bridge.Global().Get("navigator").Get("storage")
	if st.Type() != js.TypeObject || st.Get("persisted").Type() != js.TypeFunction {
		return false
	}
	p, err := bridge.Call(st, "persisted")
	if err != nil {
		return false
	}
	v, err := bridge.Await(p)
	return err == nil && v.Truthy()
}

// idArg reads a content id: 64 hex digits.
func idArg(args []js.Value) (chunk.Hash, error) {
	if len(args) < 1 || args[0].Type() != js.TypeString {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "a content id must be a string of 64 hex digits")
	}
	// The length first: a page's string of any size would otherwise be
	// copied into wasm memory, which never shrinks.
	if n := stringLen(args[0]); n != 2*chunk.HashLen {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "a content id is 64 hex digits, not %d characters", n)
	}
	s := args[0].String()
	h, err := chunk.Parse(s)
	if err != nil {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, []error{err}, "%q is not a content id: an id is 64 hex digits", s)
	}
	return h, nil
}

// errAborted is the rejection of a call (a download, a put, a pin) once
// its signal aborts.
func errAborted(what string, cause error) error {
	return node.Errorf(content.CodeAborted, []error{cause}, "The %s was cancelled.", what)
}

// abortable is a context that ends when signal (an AbortSignal, or
// undefined for none) aborts, whether signal has aborted, and the stop
// that lets the listener go.
func abortable(signal js.Value) (ctx context.Context, aborted func() bool, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	if signal.Type() != js.TypeObject || signal.IsNull() || signal.Get("addEventListener").Type() != js.TypeFunction {
		return ctx, func() bool { return false }, cancel
	}
	if signal.Get("aborted").Truthy() {
		cancel()
		return ctx, func() bool { return true }, cancel
	}
	// The listener only cancels: a js.FuncOf callback must not block.
	onAbort := js.FuncOf(func(js.Value, []js.Value) any { cancel(); return nil })
	signal.Call("addEventListener", "abort", onAbort, map[string]any{"once": true})
	return ctx, func() bool { return signal.Get("aborted").Truthy() }, func() {
		signal.Call("removeEventListener", "abort", onAbort)
		onAbort.Release()
		cancel()
	}
}

// get(id, {onProgress, signal, pin}) → Promise of the content as a File
// (a Blob with the content's name and type) once every chunk is stored
// here. The Blob is made of the stored chunks' Blobs, not of bytes copied
// through Go.
func (f *files) get(args []js.Value) any {
	h, err := idArg(args)
	report := progress(option(args, 1, "onProgress"))
	pin := option(args, 1, "pin").Truthy()
	signal := option(args, 1, "signal")
	ctx, aborted, stop := abortable(signal)
	return promise(func() (any, error) {
		defer stop()
		if err != nil {
			return nil, err
		}
		if aborted() {
			return nil, errAborted("download", context.Canceled)
		}
		var file js.Value
		// The File is composed while the download still holds its chunks:
		// composed after, an eviction in between could take one.
		use := func(m *chunk.Manifest) (err error) {
			file, err = f.compose(m)
			return err
		}
		if _, err := f.svc.Fetch(ctx, h, content.GetOptions{Progress: report, Pin: pin, Use: use}); err != nil {
			if aborted() {
				return nil, errAborted("download", err)
			}
			return nil, err
		}
		return file, nil
	})
}

// compose makes the File of m's chunks, all stored here.
func (f *files) compose(m *chunk.Manifest) (js.Value, error) {
	g := bridge.Global()
	lib := f.svc.Library()
	release := lib.Hold(m.Chunks...)
	defer release()
	parts := g.Get("Array").New()
	for i, h := range m.Chunks {
		if f.blobs != nil {
			b, err := f.blobs.Blob(h)
			if err != nil {
				return js.Value{}, node.Errorf(content.CodeNotFound, []error{err}, "Chunk %d of %s is no longer stored here: %v", i, m.Name, err)
			}
			parts.Call("push", b)
			continue
		}
		buf := make([]byte, m.ChunkLen(i))
		if _, err := lib.ReadAt(h, buf, 0); err != nil && !errors.Is(err, io.EOF) {
			return js.Value{}, node.Errorf(content.CodeNotFound, []error{err}, "Chunk %d of %s is no longer stored here: %v", i, m.Name, err)
		}
		u8 := g.Get("Uint8Array").New(len(buf))
		js.CopyBytesToJS(u8, buf)
		parts.Call("push", u8)
	}
	file, err := bridge.New(g.Get("File"), parts, m.Name, map[string]any{"type": m.Type})
	if err != nil {
		return js.Value{}, node.Coded(err)
	}
	return file, nil
}

// stat(id) → Promise of {id, name, size, type, chunks, local, pinned,
// replicas}.
func (f *files) stat(args []js.Value) any {
	h, err := idArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		st, err := f.svc.Stat(ctx, h)
		if err != nil {
			return nil, err
		}
		return bridge.Value(st)
	})
}

// storage() → Promise of {usedBytes, pledgedBytes, pinnedBytes, chunks,
// persisted}.
func (f *files) storage([]js.Value) any {
	return promise(func() (any, error) {
		v, err := bridge.Value(f.svc.Storage())
		if err != nil {
			return nil, err
		}
		// Chunks in memory persist nowhere, whatever the browser grants.
		v.Set("persisted", f.blobs != nil && persisted())
		return v, nil
	})
}

// pin(id, {signal}) → Promise, resolved once the content is stored here and pinned
// (fetched first if it is not).
func (f *files) pin(args []js.Value) any {
	h, err := idArg(args)
	ctx, aborted, stop := abortable(option(args, 1, "signal"))
	return promise(func() (any, error) {
		defer stop()
		if err != nil {
			return nil, err
		}
		if err := f.svc.Pin(ctx, h); err != nil {
			if aborted() {
				return nil, errAborted("pin", err)
			}
			return nil, err
		}
		return nil, nil
	})
}

// unpin(id) → Promise, resolved once the content is no longer pinned (its
// chunks become cache, evicted when room is needed).
func (f *files) unpin(args []js.Value) any {
	h, err := idArg(args)
	return promise(func() (any, error) {
		if err != nil {
			return nil, err
		}
		return nil, f.svc.Unpin(h)
	})
}
