// Command extension builds the DDT browser extension (web/extension) for
// a relay: the unpacked folder Chromium loads, and a zip of it beside.
//
//	go run ./scripts/extension -relay http://127.0.0.1:8080 -build build/web -out dist/extension -zip dist/ddt-extension.zip
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"ddt/web"
	"ddt/web/extension"
)

func main() {
	relay := flag.String("relay", "http://127.0.0.1:8080", "the relay the extension's node uses until its user picks another")
	build := flag.String("build", "build/web", "the folder with ddt.wasm and wasm_exec.js (make build)")
	out := flag.String("out", "dist/extension", "the folder to write the unpacked extension into (emptied first)")
	zipPath := flag.String("zip", "dist/ddt-extension.zip", "the zip to write beside it (empty: none)")
	version := flag.String("version", "0.1.0", "the extension's version")
	flag.Parse()
	err := extension.Assemble(*out, extension.Options{Relay: *relay, Version: *version, Page: web.Static(), Build: *build})
	if err == nil && *zipPath != "" {
		var buf bytes.Buffer
		if err = extension.Zip(*out, &buf); err == nil {
			if err = os.MkdirAll(filepath.Dir(*zipPath), 0o755); err == nil {
				err = os.WriteFile(*zipPath, buf.Bytes(), 0o644)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("extension %s (ID %s) for relay %s: %s", *version, extension.ID(), *relay, *out)
	if *zipPath != "" {
		fmt.Printf(" and %s", *zipPath)
	}
	fmt.Println()
}
