// Package web is DDT's front end: the page that hosts a browser node, and
// the loader any other page can host one with.
//
// static/ddt.js is the loader, a native ES module: start(config) loads Go's
// wasm_exec.js (unless the host did), fetches ddt.wasm beside it with
// progress reports, compiles it as it streams, runs it and calls the node's
// ddtStart(config), resolving with the public API (window.ddt).
// static/ddt.d.ts declares the loader, the config and the whole API.
//
// The page (static/index.html, app.js, style.css) is ES modules too, with no
// build step: app.js starts the node with ddt.js and hands it to the views
// in static/views/, each owning one card (boot progress, identity and state,
// username, find a user, peers, routing table and find a node, event log),
// which from then on only read the public API. The JavaScript holds no
// protocol logic; `make types` type-checks it, and an example host page,
// against ddt.d.ts with tsc.
//
// The relay serves [Static] at "/" and provides /ddt.wasm and /wasm_exec.js
// beside it; neither is part of this package, so it builds without them.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static returns the page's files, rooted so that "index.html" is at the top:
// serve it at "/" (for example with http.FileServerFS).
func Static() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// fs.Sub fails only for an invalid path; "static" is a constant.
		panic(err)
	}
	return sub
}
