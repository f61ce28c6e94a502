package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/username"
)

// The native node's username endpoints answer errors as JSON with a code
// and an HTTP status that says the same. (Registering for real needs a
// relay that sequences names; the node package tests that part.)
func TestNameEndpointErrors(t *testing.T) {
	users := username.New()
	n, err := node.New(node.Config{Relay: "http://127.0.0.1:1", Store: store.NewMemory(), Transport: transport.NewNetwork().Transport(),
		Capabilities: []node.Capability{users}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(statusMux(n, users, nil))
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		code, says   string
	}{
		{"POST", "/register?name=bob_1", http.StatusBadRequest, username.CodeInvalid, "only letters and digits, not '_'"},
		{"POST", "/register?name=" + strings.Repeat("a", 17), http.StatusBadRequest, username.CodeInvalid, "too long: 17 characters, at most 16"},
		{"POST", "/register", http.StatusBadRequest, username.CodeInvalid, "empty"},
		{"POST", "/register?name=alice", http.StatusServiceUnavailable, node.CodeNotAdmitted, "not admitted"},
		{"GET", "/resolve?name=alice&fresh=1", http.StatusServiceUnavailable, node.CodeNotAdmitted, "not admitted"},
		{"GET", "/resolve?name=al%20ice", http.StatusBadRequest, username.CodeInvalid, "only letters and digits, not ' '"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error, Code string }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || body.Code != tc.code || !strings.Contains(body.Error, tc.says) ||
			strings.Contains(body.Error, "names:") || strings.Contains(body.Error, "node:") {
			t.Errorf("%s %s: %d %+v (%v); want %d %s saying %q", tc.method, tc.path, resp.StatusCode, body, err, tc.status, tc.code, tc.says)
		}
	}
}

// A native node started without -data keeps its state in the user's
// configuration folder, not in the working directory (a checkout, where
// it would show up untracked).
func TestNodeDataOutsideWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if got, want := defaultNodeData(), filepath.Join(dir, "ddt", "node"); got != want {
		t.Fatalf("default -data %q, want %q", got, want)
	}
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "")
	if got := defaultNodeData(); got != "ddt-node" {
		t.Fatalf("without a home folder the default is %q", got)
	}
}
