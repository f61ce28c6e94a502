package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/site"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/username"
	"ddt/shared/wait"
	"ddt/shared/wire"
)

// apiNode is a native node admitted to a real relay that runs names, with
// its HTTP API served as `ddt-relay node -status` serves it.
type apiNode struct {
	n     *node.Node
	users *username.Client
	files *content.Service
	sites *site.Service
	base  string // http://127.0.0.1:port
	host  string // 127.0.0.1:port
	port  string
	http  *http.Client
}

func startAPINode(t *testing.T, z *testZone) *apiNode {
	t.Helper()
	return startAPINodeWith(t, z, content.Config{})
}

// startAPINodeWith is startAPINode with the content service configured by cfg.
func startAPINodeWith(t *testing.T, z *testZone, cfg content.Config) *apiNode {
	t.Helper()
	users := username.New()
	files := content.New(cfg)
	sites := site.New(site.Config{Files: files})
	n, err := node.New(node.Config{Relay: z.url, Store: store.NewMemory(), Transport: z.net.Transport(), MaxBackoff: 200 * time.Millisecond,
		Capabilities: []node.Capability{users, files, sites}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wait.Until(t, wait.Default, "admission", func() bool { s, _ := n.State(); return s == node.StateAdmitted })
	srv, ln, err := serveAPI("127.0.0.1:0", false, apiServices{n: n, users: users, files: files, sites: sites}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	host := ln.Addr().String()
	_, port, _ := strings.Cut(host, ":")
	// No idle connections left behind for the leak check.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return &apiNode{n: n, users: users, files: files, sites: sites, base: "http://" + host, host: host, port: port, http: c}
}

// call sends method path with headers (and Host, if set) as a browser or
// curl would, and returns the status and the {error, code} answer.
func (a *apiNode) call(t *testing.T, method, path string, headers map[string]string) (int, node.ErrorView, string) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e node.ErrorView
	json.Unmarshal(body, &e)
	return resp.StatusCode, e, string(body)
}

// A web page cannot drive the native node: a cross-site POST /register
// (what any page's fetch or form can send to 127.0.0.1) gets 403 and
// registers nothing; so does a page whose name was rebound to the node's
// address (its Host is that name); a GET on a state-changing call gets
// 405. curl, which sends no Origin, and the node's own origin still work.
func TestNodeAPIRefusesWebPages(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-api"})
	a := startAPINode(t, z)

	for _, tc := range []struct {
		what    string
		method  string
		path    string
		headers map[string]string
		status  int
		code    string
	}{
		{"a cross-site page registering", "POST", "/register?name=alice", map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, CodeCrossSite},
		{"a cross-site Origin alone", "POST", "/register?name=alice", map[string]string{"Origin": "https://evil.example"}, 403, CodeCrossSite},
		{"a sandboxed page (Origin null)", "POST", "/register?name=alice", map[string]string{"Origin": "null"}, 403, CodeCrossSite},
		{"another port of localhost (same-site)", "POST", "/register?name=alice", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-site"}, 403, CodeCrossSite},
		{"Sec-Fetch-Site cross-site alone", "POST", "/register?name=alice", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, CodeCrossSite},
		{"a rebound name", "POST", "/register?name=alice", map[string]string{"Host": "evil.example:" + a.port}, 403, CodeBadHost},
		{"a rebound name, same-origin to itself", "POST", "/register?name=alice",
			map[string]string{"Host": "evil.example:" + a.port, "Origin": "http://evil.example:" + a.port, "Sec-Fetch-Site": "same-origin"}, 403, CodeBadHost},
		{"a rebound name reading", "GET", "/status", map[string]string{"Host": "evil.example:" + a.port}, 403, CodeBadHost},
		{"the right name at another port", "GET", "/status", map[string]string{"Host": "127.0.0.1:1"}, 403, CodeBadHost},
		{"a cross-site page connecting", "POST", "/connect?address=" + strings.Repeat("00", 20), map[string]string{"Origin": "http://evil.example"}, 403, CodeCrossSite},
		{"GET on register", "GET", "/register?name=alice", nil, 405, CodeMethod},
		{"GET on connect", "GET", "/connect?address=" + strings.Repeat("00", 20), nil, 405, CodeMethod},
		{"GET on disconnect", "GET", "/disconnect?address=" + strings.Repeat("00", 20), nil, 405, CodeMethod},
		{"POST on a query", "POST", "/status", nil, 405, CodeMethod},
	} {
		status, e, body := a.call(t, tc.method, tc.path, tc.headers)
		if status != tc.status || e.Code != tc.code || e.Error == "" {
			t.Errorf("%s: %s %s → %d %s; want %d with code %s", tc.what, tc.method, tc.path, status, body, tc.status, tc.code)
		}
	}
	// Nothing was registered: the node has no name, and the relay knows
	// none under "alice".
	if name := a.users.Name(); name != "" {
		t.Fatalf("after refused requests the node is registered as %q", name)
	}
	other, _ := admit(t, z, nil)
	probe := &nameNode{rawClient: other}
	if res := probe.lookup("alice"); res.Code != wire.CodeNotFound {
		t.Fatalf("after refused requests the relay answers a lookup of alice with %+v", res)
	}

	// curl-style (no Origin) and the node's own origin still work.
	for _, tc := range []struct {
		what    string
		method  string
		path    string
		headers map[string]string
	}{
		{"curl registering", "POST", "/register?name=alice", nil},
		{"curl at localhost", "GET", "/status", map[string]string{"Host": "localhost:" + a.port}},
		{"the node's own origin", "GET", "/resolve?name=alice", map[string]string{"Origin": a.base, "Sec-Fetch-Site": "same-origin"}},
		{"typed in the address bar", "GET", "/status", map[string]string{"Sec-Fetch-Site": "none"}},
		{"HEAD on a query", "HEAD", "/status", nil},
	} {
		if status, _, body := a.call(t, tc.method, tc.path, tc.headers); status != http.StatusOK {
			t.Errorf("%s: %s %s → %d %s; want 200", tc.what, tc.method, tc.path, status, body)
		}
	}
	if name := a.users.Name(); name != "alice" {
		t.Fatalf("curl's POST /register: the node is registered as %q", name)
	}
}

// -status on an address that is not loopback is refused unless
// -status-public is given, with an error that says both.
func TestNodeAPILoopbackOnly(t *testing.T) {
	users := username.New()
	n, err := node.New(node.Config{Relay: "http://127.0.0.1:1", Store: store.NewMemory(), Transport: transport.NewNetwork().Transport(), Capabilities: []node.Capability{users}})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:8081"} {
		srv, _, err := serveStatus(addr, false, n, users, nil, testLogger())
		if err == nil {
			srv.Close()
			t.Errorf("-status %s served without -status-public", addr)
			continue
		}
		if !strings.Contains(err.Error(), "not a loopback address") || !strings.Contains(err.Error(), "-status-public") {
			t.Errorf("-status %s: %q; want it to say it is not loopback and name -status-public", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		srv, ln, err := serveStatus(addr, false, n, users, nil, testLogger())
		if err != nil {
			t.Errorf("-status %s: %v", addr, err)
			continue
		}
		if !isLoopbackHost(strings.Split(ln.Addr().String(), ":")[0]) {
			t.Errorf("-status %s listens on %s", addr, ln.Addr())
		}
		srv.Close()
	}
	srv, _, err := serveStatus("0.0.0.0:0", true, n, users, nil, testLogger())
	if err != nil {
		t.Fatalf("-status 0.0.0.0:0 -status-public: %v", err)
	}
	srv.Close()
}
