//go:build js && wasm

package main

import (
	"context"
	"syscall/js"

	"ddt/shared/bridge"
	"ddt/shared/content"
	"ddt/shared/node"
	"ddt/shared/site"
	"ddt/shared/store"
	"ddt/shared/transport"
	"ddt/shared/unicast"
	"ddt/shared/username"
)

// run starts the node cfg describes: it sends window.ddt on ready once
// the node has its identity (or an error on failed), then keeps the node
// in its zone for the host's life.
func run(cfg Config, ready chan<- js.Value, failed chan<- error) {
	log := logger(cfg)
	// Dial the relay now, while IndexedDB opens and the identity loads.
	dial := node.EarlyDialer(cfg.Relay)
	perf := bridge.Global().Get("performance")
	t0 := perf.Call("now").Float()
	st, slot := openStore(cfg, log)
	t1 := perf.Call("now").Float()
	tr, err := transport.NewWebRTC(transport.Config{Logger: log})
	if err != nil {
		failed <- err
		return
	}
	users := username.New()
	chunks, blobs := openChunks(cfg, slot, log)
	svc := content.New(content.Config{Chunks: chunks, Pledge: cfg.Pledge, Policy: cfg.policy()})
	sitesSvc := site.New(site.Config{Files: svc})
	chatSvc := unicast.New(users, unicast.Config{})
	n, err := node.New(node.Config{Relay: cfg.Relay, Dial: dial, Store: st, Transport: tr, Agent: cfg.Agent, Logger: log, MaxPeers: cfg.MaxPeers,
		Capabilities: []node.Capability{users, chatSvc, svc, sitesSvc}})
	if err != nil {
		failed <- err
		return
	}
	log.Debug("node started", "slot", slot, "storage", cfg.Storage, "goMainAtMs", int(t0), "storeMs", int(t1-t0), "identityMs", int(perf.Call("now").Float()-t1))
	api := newAPI(n, users, &files{svc: svc, blobs: blobs})
	siteAPI := &sites{svc: sitesSvc, relay: cfg.Relay}
	go siteAPI.askRelaySites()
	for name, fn := range siteAPI.methods() { // site.go
		api.obj.Set(name, bridge.Method(fn))
	}
	api.chat = newChat(chatSvc)
	for name, fn := range api.chat.methods() { // chat.go
		api.obj.Set(name, bridge.Method(fn))
	}
	g := bridge.Global()
	g.Set("ddt", api.obj)
	if ev, err := bridge.New(g.Get("Event"), "ddt:loaded"); err == nil && g.Get("dispatchEvent").Type() == js.TypeFunction {
		g.Call("dispatchEvent", ev)
	}
	ready <- api.obj
	if err := n.Run(context.Background()); err != nil {
		fatal(err)
	}
}

// openStore opens the node's store: its tab slot's IndexedDB database of
// cfg.Storage, or memory when the config asks for it, every slot is in
// use, or IndexedDB is unavailable. It returns the slot (-1 for memory).
func openStore(cfg Config, log interface{ Warn(string, ...any) }) (store.Store, int) {
	if cfg.Storage == memoryStorage {
		return store.NewMemory(), -1
	}
	slot := claimSlot(cfg.Storage)
	if slot < 0 {
		log.Warn("every identity slot of this browser profile is in use by other tabs; this node gets a temporary identity")
		return store.NewMemory(), -1
	}
	st, err := store.OpenIndexedDB(databaseName(cfg.Storage, slot))
	if err != nil {
		log.Warn("IndexedDB unavailable; this node's identity will not survive a reload", "err", err)
		return store.NewMemory(), -1
	}
	return st, slot
}
