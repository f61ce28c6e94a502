package web_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"ddt/web"
)

// The public API is written down three times: the README's window.ddt
// section (for people), web/static/ddt.d.ts (for TypeScript and editors)
// and the node itself (wasm/). These tests keep them naming the same
// members, events and config fields.

// TestAPIDrift: the README's window.ddt table, the DDT interface of
// ddt.d.ts and Object.keys(window.ddt) on the live DDT page are one set of
// members; the README's events table and ddt.d.ts's DDTEvents are one set
// of events; and the README's config table, ddt.d.ts's DDTConfig and
// StartConfig, and the wasm's Config are one set of fields.
func TestAPIDrift(t *testing.T) {
	section := readmeSection(t, "## `window.ddt`")
	dts := declarations(t)

	documented := tableColumn(t, section, "| member |", `ddt\.([A-Za-z_$][\w$]*)`)
	declared := dts.members(t, "DDT")
	same(t, "members: README table vs ddt.d.ts interface DDT", documented, declared)

	events := tableColumn(t, section, "| event |", `([a-z][a-z.-]*)`)
	same(t, "events: README table vs ddt.d.ts interface DDTEvents", events, dts.members(t, "DDTEvents"))

	config := tableColumn(t, section, "| config |", `([A-Za-z]+)`)
	nodeConfig := dts.members(t, "DDTConfig")
	same(t, "config: README table vs ddt.d.ts DDTConfig and StartConfig", config, append(nodeConfig, dts.members(t, "StartConfig")...))
	same(t, "config: ddt.d.ts DDTConfig vs the wasm's Config (wasm/main.go)", nodeConfig, goConfigFields(t))

	// The running node.
	r := startRelay(t, "-zone", "api")
	p := newPage(t, "")
	p.open(r.url())
	p.ready()
	live := mustEval[[]string](p, `Object.keys(window.ddt)`)
	same(t, "members: README table vs Object.keys(window.ddt) on the DDT page", documented, live)
}

// TestExtensionAPIDrift: what the extension's window.ddt adds to a page's
// is the same in the README's table and in ddt.d.ts (ExtensionDDT)
// (TestExtension checks the running popup against both).
func TestExtensionAPIDrift(t *testing.T) {
	same(t, "the extension's members: README table vs ddt.d.ts interface ExtensionDDT",
		extensionMembers(t), declarations(t).members(t, "ExtensionDDT"))
}

// extensionMembers are the members the README says the extension's
// window.ddt adds to a page's.
func extensionMembers(t *testing.T) []string {
	t.Helper()
	return tableColumn(t, readmeSection(t, "## The browser extension"), "| member (the extension", `ddt\.([A-Za-z_$][\w$]*)`)
}

// TestPageModules: index.html modulepreloads exactly the modules app.js
// imports statically (the ones the wasm's compile waits for), so that the
// browser fetches them at once rather than import by import; every other
// module of the page is imported by one of them; and the page still
// preloads the wasm.
func TestPageModules(t *testing.T) {
	static := web.Static()
	html, err := fs.ReadFile(static, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	var preloaded []string
	for _, m := range regexp.MustCompile(`<link rel="modulepreload" href="([^"]+)">`).FindAllStringSubmatch(string(html), -1) {
		preloaded = append(preloaded, m[1])
	}
	staticImport := regexp.MustCompile(`(?m)^import\s(?:[^'";]*?\sfrom\s)?'(\.{1,2}/[^']+)'`)
	dynamicImport := regexp.MustCompile(`\bimport\('(\.{1,2}/[^']+)'\)`)
	imports := func(file string, re *regexp.Regexp) []string {
		src, err := fs.ReadFile(static, file)
		if err != nil {
			t.Fatalf("%v (imported by the page)", err)
		}
		var out []string
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			out = append(out, path.Join(path.Dir(file), m[1]))
		}
		return out
	}
	// The static closure of app.js, and everything reachable from it.
	closure := map[string]bool{}
	reached := map[string]bool{}
	var walk func(file string, static bool)
	walk = func(file string, isStatic bool) {
		if isStatic {
			if closure[file] {
				return
			}
			closure[file] = true
		} else if reached[file] {
			return
		}
		reached[file] = true
		for _, f := range imports(file, staticImport) {
			walk(f, isStatic)
		}
		for _, f := range imports(file, dynamicImport) {
			walk(f, false)
		}
	}
	walk("app.js", true)
	delete(closure, "app.js") // the page's script itself
	// What the node's start waits for is preloaded: app.js's static imports
	// and Go's wasm_exec.js, which the loader imports before it runs the
	// node. The views are not: they load once the wasm is compiled, so
	// parsing them does not slow the compile on a first visit.
	want := []string{"wasm_exec.js"}
	for f := range closure {
		want = append(want, f)
	}
	same(t, "modules: index.html's modulepreloads vs app.js's static imports and wasm_exec.js", preloaded, want)
	fs.WalkDir(static, ".", func(file string, d fs.DirEntry, err error) error {
		// site/ holds the frames of sites' origins, served only there.
		if err == nil && strings.HasSuffix(file, ".js") && !strings.HasPrefix(file, "site/") && !reached[file] {
			t.Errorf("%s is no module of the page: app.js does not reach it", file)
		}
		return err
	})
	for _, want := range []string{
		`<link rel="preload" href="ddt.wasm" as="fetch" type="application/wasm" crossorigin>`,
		// async and render-blocking: app.js runs as soon as it and the
		// loader are in, before the first paint rather than after it.
		`<script type="module" async blocking="render" src="app.js"></script>`,
	} {
		if !strings.Contains(string(html), want) {
			t.Errorf("index.html lacks %s", want)
		}
	}
}

// repoRoot is the folder of go.mod, found upward from the working
// directory (the package's folder under go test, the repository's when
// make runs the test binary).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = up
	}
}

// readmeSection returns the README's section whose heading starts with
// heading, up to the next heading of the same level.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n"+heading)
	if start < 0 {
		t.Fatalf("README has no section %q", heading)
	}
	rest := text[start+1:]
	if end := strings.Index(rest, "\n## "); end >= 0 {
		rest = rest[:end]
	}
	return rest
}

// tableColumn returns the names in the first column of the markdown table
// whose header row starts with header: from each code span of the cell,
// the first group of pattern matched at its start.
func tableColumn(t *testing.T, section, header, pattern string) []string {
	t.Helper()
	i := strings.Index(section, "\n"+header)
	if i < 0 {
		t.Fatalf("no table %q in the README section", header)
	}
	re := regexp.MustCompile(`^` + pattern)
	var names []string
	for n, line := range strings.Split(section[i+1:], "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if n < 2 { // the header and the |---| row
			continue
		}
		cell := strings.Split(line, "|")[1]
		spans := regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(cell, -1)
		if len(spans) == 0 {
			t.Errorf("README table %q: row %q names nothing in code", header, line)
		}
		for _, s := range spans {
			m := re.FindStringSubmatch(s[1])
			if m == nil {
				t.Errorf("README table %q: %q is not a name", header, s[1])
				continue
			}
			names = append(names, m[1])
		}
	}
	return names
}

// dts is ddt.d.ts without its comments.
type dts string

func declarations(t *testing.T) dts {
	t.Helper()
	b, err := fs.ReadFile(web.Static(), "ddt.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	src := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(string(b), "")
	src = regexp.MustCompile(`(?m)//.*$`).ReplaceAllString(src, "")
	return dts(src)
}

// members returns the names of the members the interface declares itself
// (at the top level of its braces; not those it extends).
func (d dts) members(t *testing.T, iface string) []string {
	t.Helper()
	src := string(d)
	m := regexp.MustCompile(`(?m)^export interface ` + regexp.QuoteMeta(iface) + `\b[^{]*\{`).FindStringIndex(src)
	if m == nil {
		t.Fatalf("ddt.d.ts declares no interface %s", iface)
	}
	member := regexp.MustCompile(`^\s*(?:readonly\s+)?('[^']+'|[A-Za-z_$][\w$]*)\s*\??\s*[:(<]`)
	var names []string
	depth := 1
	for _, line := range strings.Split(src[m[1]:], "\n") {
		if depth == 1 {
			if mm := member.FindStringSubmatch(line); mm != nil {
				names = append(names, strings.Trim(mm[1], "'"))
			}
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if depth <= 0 {
			return names
		}
	}
	t.Fatalf("ddt.d.ts: interface %s does not end", iface)
	return nil
}

// goConfigFields returns the JSON names of the fields of the wasm's
// Config, the struct ddtStart decodes its argument into.
func goConfigFields(t *testing.T) []string {
	t.Helper()
	path := filepath.Join(repoRoot(t), "wasm", "main.go")
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "Config" {
			return true
		}
		for _, fld := range ts.Type.(*ast.StructType).Fields.List {
			tag := ""
			if fld.Tag != nil {
				tag, _ = strconv.Unquote(fld.Tag.Value)
			}
			name, _, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
			if name == "" {
				t.Errorf("wasm Config field %s has no json name", fld.Names[0])
			}
			names = append(names, name)
		}
		return false
	})
	if len(names) == 0 {
		t.Fatalf("%s declares no Config fields", path)
	}
	return names
}

// same reports, under what, the names one list has and the other lacks.
func same(t *testing.T, what string, a, b []string) {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		t.Errorf("%s: an empty list (%v, %v): the parse is broken", what, a, b)
		return
	}
	onlyA, onlyB := missing(a, b), missing(b, a)
	if len(onlyA) > 0 || len(onlyB) > 0 {
		t.Errorf("%s differ: only in the first %v, only in the second %v", what, onlyA, onlyB)
	}
}

func missing(from, in []string) []string {
	var out []string
	for _, s := range from {
		if !slices.Contains(in, s) {
			out = append(out, s)
		}
	}
	return out
}
