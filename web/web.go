// Package web is DDT's front end: the page that hosts a browser node.
//
// The page (static/index.html, app.js, style.css) loads Go's /wasm_exec.js,
// downloads /ddt.wasm with a progress bar and runs it. The running node
// defines window.ddt and dispatches the "ddt:loaded" event; from then on the
// page only reads that public API (ready, address, zone, relay, state,
// peers, ping, on) to show the node's identity, its connection state, its
// peers and an event log. The JavaScript holds no protocol logic.
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
