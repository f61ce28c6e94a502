//go:build js && wasm

// Command wasm is the browser entry of a DDT node. It runs the protocol
// core (shared/node) in whatever hosts it — the DDT page, any other page,
// an extension's offscreen document — keeps the node's identity and lease
// in IndexedDB, links to peers over the browser's WebRTC data channels,
// and publishes the node as window.ddt (documented in the README).
//
// It reads nothing from its host's globals. Its host runs the module
// (go.run) and then calls the function it defines,
//
//	globalThis.ddtStart(config) → Promise of window.ddt
//
// with one configuration object: {relay, maxPeers, logLevel, storage,
// agent, pledge, cache} (see Config). web/static/ddt.js is the loader that does this for
// any host; the DDT page uses it too.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall/js"

	"ddt/shared/bridge"
)

// Config is what a host passes to ddtStart. JSON names are the
// JavaScript object's; web/static/ddt.d.ts declares it as DDTConfig.
type Config struct {
	// Relay is the relay's base URL (http or https); required.
	Relay string `json:"relay"`
	// MaxPeers is the connection budget (data channels kept open); 0 or
	// absent means the node's default.
	MaxPeers int `json:"maxPeers"`
	// LogLevel is the lowest level logged to the console: "debug",
	// "info", "warn" (the default) or "error".
	LogLevel string `json:"logLevel"`
	// Storage names the IndexedDB database that keeps the identity
	// (default "ddt"; tab slot n > 0 uses "<storage>-<n>"); "memory"
	// keeps it in memory only, so it does not outlive the host.
	Storage string `json:"storage"`
	// Agent names the host software in the relay's logs (default
	// "ddt-browser").
	Agent string `json:"agent"`
	// Pledge is the storage, in bytes, this node lends others for
	// replicas and cache (default content.DefaultPledge, 64 MiB). The
	// node's own and pinned content is not counted against it.
	Pledge int64 `json:"pledge"`
	// Cache says what the node is willing to hold for others.
	Cache CacheConfig `json:"cache"`
}

// CacheConfig is the node's policy for what it holds for others (see
// content.Policy).
type CacheConfig struct {
	// Types are media-type prefixes ("image/", "text/html") the node
	// holds for others; empty: every type.
	Types []string `json:"types"`
	// MaxAgeDays drops replicas and cache not used for this many days;
	// 0: no limit.
	MaxAgeDays float64 `json:"maxAgeDays"`
}

// memoryStorage is the Storage value that keeps nothing.
const memoryStorage = "memory"

// check fills in defaults and says what is wrong with c, if anything.
func (c *Config) check() error {
	if c.Relay == "" {
		return errors.New("ddtStart: config.relay must name the relay (its http or https URL)")
	}
	if !strings.HasPrefix(c.Relay, "http://") && !strings.HasPrefix(c.Relay, "https://") {
		return fmt.Errorf("ddtStart: config.relay %q must be an http or https URL", c.Relay)
	}
	if c.MaxPeers < 0 {
		return fmt.Errorf("ddtStart: config.maxPeers must be a positive number, not %d", c.MaxPeers)
	}
	if c.LogLevel == "" {
		c.LogLevel = "warn"
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("ddtStart: config.logLevel %q must be debug, info, warn or error", c.LogLevel)
	}
	if c.Storage == "" {
		c.Storage = "ddt"
	}
	if c.Agent == "" {
		c.Agent = "ddt-browser"
	}
	if c.Pledge < 0 {
		return fmt.Errorf("ddtStart: config.pledge must be a number of bytes (0 for the default of 64 MiB), not %d", c.Pledge)
	}
	if c.Cache.MaxAgeDays < 0 {
		return fmt.Errorf("ddtStart: config.cache.maxAgeDays must be 0 (no limit) or more, not %v", c.Cache.MaxAgeDays)
	}
	return nil
}

func (c *Config) level() slog.Level {
	var lv slog.Level
	lv.UnmarshalText([]byte(c.LogLevel))
	return lv
}

func main() {
	var once sync.Once
	start := bridge.Method(func(args []js.Value) any {
		var cfg Config
		var err error
		if len(args) == 0 || args[0].Type() != js.TypeObject {
			err = errors.New("ddtStart(config): config must be an object such as {relay: 'https://relay.example'}")
		} else if err = bridge.Decode(args[0], &cfg); err != nil {
			err = fmt.Errorf("ddtStart: config: %w", err)
		} else {
			err = cfg.check()
		}
		if err != nil {
			return bridge.Promise(func() (any, error) { return nil, err })
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			return bridge.Promise(func() (any, error) { return nil, errors.New("ddtStart: the node has already started") })
		}
		ready := make(chan js.Value, 1)
		failed := make(chan error, 1)
		go run(cfg, ready, failed)
		return bridge.Promise(func() (any, error) {
			select {
			case api := <-ready:
				return api, nil
			case err := <-failed:
				return nil, err
			}
		})
	})
	bridge.Global().Set("ddtStart", start)
	select {} // the node runs on other goroutines for the host's life
}

// logger writes to the console at cfg's level: every line costs a
// console write, so a host logs warnings and errors unless it asks for
// more.
func logger(cfg Config) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.level()}))
}

func fatal(err error) {
	bridge.Global().Get("console").Call("error", "ddt: "+err.Error())
	os.Exit(1)
}
