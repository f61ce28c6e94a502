package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/site"
	"ddt/shared/store"
	"ddt/shared/unicast"
	"ddt/shared/username"
	"ddt/shared/wait"
)

// startChatNode is an API node of z with the unicast service, as the
// native node runs it.
func startChatNode(t *testing.T, z *testZone) *apiNode {
	t.Helper()
	users := username.New()
	files := content.New(content.Config{})
	sites := site.New(site.Config{Files: files})
	chat := unicast.New(users, unicast.Config{})
	n, err := node.New(node.Config{Relay: z.url, Store: store.NewMemory(), Transport: z.net.Transport(), MaxBackoff: 200 * time.Millisecond,
		Capabilities: []node.Capability{users, files, sites, chat}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	wait.Until(t, wait.Default, "admission", func() bool { s, _ := n.State(); return s == node.StateAdmitted })
	srv, ln, err := serveAPI("127.0.0.1:0", false, apiServices{n: n, users: users, files: files, sites: sites, chat: chat}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	host := ln.Addr().String()
	_, port, _ := strings.Cut(host, ":")
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	return &apiNode{n: n, users: users, files: files, sites: sites, base: "http://" + host, host: host, port: port, http: c}
}

// jsonOf decodes the body of GET path into v.
func (a *apiNode) jsonOf(t *testing.T, path string, v any) {
	t.Helper()
	status, b, _ := a.get(t, path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// Two native nodes befriend, make a session and chat over the HTTP API;
// its refusals carry their codes and statuses.
func TestNodeAPIUnicast(t *testing.T) {
	z := newZone(t, store.NewMemory(), Config{Zone: "zone-chat"})
	a, b := startChatNode(t, z), startChatNode(t, z)
	for range 3 { // hops for the key exchange's chains
		startChatNode(t, z)
	}
	for _, x := range []struct {
		n    *apiNode
		name string
	}{{a, "alice"}, {b, "bob"}} {
		wait.For(t, 30*time.Second, "register "+x.name, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := x.n.users.Register(ctx, x.name)
			return err
		})
	}
	if status, e, _ := a.call(t, "POST", "/accept?name=bob", nil); status != http.StatusForbidden || e.Code != unicast.CodeNoRequest {
		t.Fatalf("accept with no request: %d %+v", status, e)
	}
	answer := make(chan string, 1)
	go func() {
		status, b := a.post(t, "/befriend?name=bob", nil, "")
		var v map[string]string
		json.Unmarshal(b, &v)
		if status != http.StatusOK {
			answer <- string(b)
			return
		}
		answer <- v["answer"]
	}()
	wait.Until(t, time.Minute, "bob's request list", func() bool {
		var rs []unicast.RequestView
		b.jsonOf(t, "/requests", &rs)
		return len(rs) == 1 && rs[0].From == "alice"
	})
	if status, body := b.post(t, "/accept?name=alice", nil, ""); status != http.StatusOK {
		t.Fatalf("accept: %d %s", status, body)
	}
	if got := <-answer; got != "accepted" {
		t.Fatalf("befriend: %s", got)
	}
	wait.Until(t, 2*time.Minute, "a session", func() bool {
		var fs []unicast.FriendView
		a.jsonOf(t, "/friends", &fs)
		return len(fs) == 1 && fs[0].Session == "ready"
	})
	status, body := a.post(t, "/send?name=bob", strings.NewReader("hello over HTTP"), "text/plain")
	var res unicast.SendResult
	if json.Unmarshal(body, &res); status != http.StatusOK || res.Delivered != "direct" || len(res.ID) != 32 {
		t.Fatalf("send: %d %s", status, body)
	}
	var h []unicast.MessageView
	b.jsonOf(t, "/history?name=alice", &h)
	if len(h) != 1 || h[0].Text != "hello over HTTP" || h[0].From != "alice" || h[0].ID != res.ID {
		t.Fatalf("bob's history %+v", h)
	}
	if status, body := b.post(t, "/read?name=alice", nil, ""); status != http.StatusOK {
		t.Fatalf("read: %d %s", status, body)
	}
	status, body = a.post(t, "/send?name=bob", strings.NewReader(strings.Repeat("x", unicast.MaxText+1)), "text/plain")
	if status != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), unicast.CodeTooLarge) {
		t.Fatalf("an oversized text: %d %s", status, body)
	}
	status, body = a.post(t, "/send?name=carol", strings.NewReader("hi"), "text/plain")
	if status != http.StatusForbidden || !strings.Contains(string(body), unicast.CodeNotFriend) {
		t.Fatalf("a text to a stranger: %d %s", status, body)
	}
	var st unicast.StatsView
	b.jsonOf(t, "/unicast", &st)
	if st.ChainsSent < 4 {
		t.Fatalf("bob's stats %+v", st)
	}
}
