package main

import (
	"context"
	"testing"
	"time"

	"ddt/shared/node"
	"ddt/shared/store"
	"ddt/shared/wait"
)

// TestNodeMovesWhenRelayGone: a node learns of the federated relays at
// admission, keeps them, and when its own relay stays unreachable joins
// the other one by itself (a new zone, so a new address); a later start
// remembers both relays.
func TestNodeMovesWhenRelayGone(t *testing.T) {
	zs := federate(t, Config{Zone: "north"}, Config{Zone: "south"})
	a, b := zs[0], zs[1]
	st := store.NewMemory()
	n := a.join(st)
	first := n.Address()
	if n.Zone() != "north" {
		t.Fatalf("joined zone %q", n.Zone())
	}

	a.stop()
	wait.Until(t, wait.Default, "moved to the other relay", func() bool {
		s, _ := n.State()
		return s == node.StateAdmitted && n.Zone() == "south"
	})
	if n.Relay() != b.url {
		t.Errorf("relay is %s, want %s", n.Relay(), b.url)
	}
	if n.Address() == first {
		t.Error("the address in the new zone is the old one")
	}

	// Another node that starts with the saved relay list (its own identity,
	// the first node's list): its configured relay is gone, so it goes to
	// the live one.
	saved, err := st.Get("relays")
	if err != nil {
		t.Fatalf("relay list not saved: %v", err)
	}
	st2 := store.NewMemory()
	st2.Put("relays", saved)
	m, err := node.New(node.Config{Relay: a.url, Store: st2, Transport: b.net.Transport(), MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wait.Until(t, wait.Default, "second start joins the live relay", func() bool {
		s, _ := m.State()
		return s == node.StateAdmitted && m.Relay() == b.url
	})
}
