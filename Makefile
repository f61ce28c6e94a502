# DDT — the front door. `make help` lists the targets.

GO        ?= go
BUILD     := build
WEB       := $(BUILD)/web
WASM      := $(WEB)/ddt.wasm
RELAY     := $(BUILD)/ddt-relay
ADDR      ?= 127.0.0.1:8080
# BASELINE is the commit make bench measures this build against, side by
# side in the same run (the last one before the current issue's work).
BASELINE  ?= 5af3ca8
GOROOT    := $(shell $(GO) env GOROOT)
GOBIN     := $(shell $(GO) env GOPATH)/bin
WASMBROWSERTEST := $(GOBIN)/wasmbrowsertest
STATICCHECK := $(GOBIN)/staticcheck
# TypeScript checks the page's modules and an example host page against
# web/static/ddt.d.ts, and the extension's against Chrome's extension API
# (@types/chrome); both come from the npm registry, pinned, into build/.
TS_VERSION := 5.9.3
CHROME_TYPES_VERSION := 0.3.7
TS_DIR    := $(BUILD)/tsc
TSC       := $(TS_DIR)/node_modules/typescript/bin/tsc
TS_STAMP  := $(TS_DIR)/typescript-$(TS_VERSION)-chrome-$(CHROME_TYPES_VERSION)
# make extension builds the extension for this relay.
EXT_RELAY ?= http://$(ADDR)
# Everything that starts WebRTC runs in a network namespace whose only
# interface is loopback: no test traffic can leave this machine.
LOOPBACK  := unshare -n sh -c 'ip link set lo up && exec "$$@"' sh
GO_SOURCES := $(shell find . -name '*.go' -not -path './build/*') go.mod go.sum

.PHONY: help build run node extension test deps vet types unit wasm-test e2e baseline bench fuzz clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: $(RELAY) $(WASM).br $(WEB)/wasm_exec.js ## build the relay, the wasm node and the web files into build/

$(RELAY): $(GO_SOURCES) $(shell find web/static web/extension/files -type f)
	$(GO) build -trimpath -o $@ ./relay

$(WASM): $(GO_SOURCES)
	@mkdir -p $(WEB)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags='-s -w' -o $@ ./wasm

$(WASM).br: $(WASM)
	$(GO) run ./scripts/compress $<

$(WEB)/wasm_exec.js: $(GOROOT)/lib/wasm/wasm_exec.js
	@mkdir -p $(WEB)
	cp $< $@

run: build ## build everything and start the relay with the web app on http://127.0.0.1:8080
	$(RELAY) -addr $(ADDR) -data $(BUILD)/data -web $(WEB)

node: $(RELAY) ## start a headless native node on the relay of `make run` (its state in build/node)
	$(RELAY) node -relay http://$(ADDR) -data $(BUILD)/node -status 127.0.0.1:8081

extension: build ## build the browser extension into dist/extension and dist/ddt-extension.zip, for EXT_RELAY (default http://ADDR, the relay of make run)
	$(GO) run ./scripts/extension -relay $(EXT_RELAY) -build $(WEB) -out dist/extension -zip dist/ddt-extension.zip

deps: ## install what the tests need (Chromium, fonts, node, npm, iproute2, TypeScript) when missing
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	[ -e /usr/share/fonts/truetype/liberation ] || missing="$$missing fonts-liberation"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v unshare >/dev/null || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@[ -x $(WASMBROWSERTEST) ] || $(GO) install github.com/agnivade/wasmbrowsertest@v0.11.0
	@[ -x $(STATICCHECK) ] || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	@$(MAKE) -s --no-print-directory $(TS_STAMP)

$(TS_STAMP):
	@mkdir -p $(TS_DIR)
	npm install --prefix $(TS_DIR) --no-audit --no-fund --loglevel=error --save-exact typescript@$(TS_VERSION) @types/chrome@$(CHROME_TYPES_VERSION)
	@touch $@

vet: ## go vet and staticcheck, native and js/wasm; gofmt
	$(GO) vet ./...
	GOOS=js GOARCH=wasm $(GO) vet ./shared/... ./wasm/...
	$(STATICCHECK) ./...
	GOOS=js GOARCH=wasm $(STATICCHECK) ./shared/... ./wasm/...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

types: $(TS_STAMP) ## type-check the page's modules and the example host page against web/static/ddt.d.ts, and the extension's against Chrome's API (tsc)
	node $(TSC) -p web/tsconfig.json
	node $(TSC) -p web/extension/tsconfig.json

unit: ## unit, fuzz-seed and native WebRTC tests (loopback namespace)
	$(LOOPBACK) env GOPROXY=off $(GO) test -count=1 ./shared/... ./relay/...

wasm-test: ## the core under GOOS=js GOARCH=wasm: in node, then in headless Chromium (stores, hashing, transport, the content library over IndexedDB)
	PATH="$$PATH:$(GOROOT)/lib/wasm" GOOS=js GOARCH=wasm $(GO) test -count=1 ./shared/...
	@tmp=$$(mktemp -d); \
	$(LOOPBACK) env TMPDIR=$$tmp GOPROXY=off PATH="$(CURDIR)/scripts/chromium:$$PATH" GOOS=js GOARCH=wasm \
		$(GO) test -count=1 -exec=$(WASMBROWSERTEST) ./shared/store/ ./shared/chunk/ ./shared/transport/ && \
	$(LOOPBACK) env TMPDIR=$$tmp GOPROXY=off PATH="$(CURDIR)/scripts/chromium:$$PATH" GOOS=js GOARCH=wasm \
		$(GO) test -count=1 -exec=$(WASMBROWSERTEST) -run '^TestLibrary' ./shared/content/; \
	rc=$$?; rm -rf $$tmp; exit $$rc

e2e: build ## end-to-end tests: relay, native node and real Chromium pages (loopback namespace)
	$(GO) test -c -o $(BUILD)/web.test ./web
	$(LOOPBACK) env DDT_BUILD=$(BUILD) $(BUILD)/web.test -test.count=1 -test.v -test.timeout=10m

test: deps build vet types unit wasm-test e2e ## everything: vet and staticcheck, types, unit, fuzz seeds, wasm (node and Chromium), end to end

baseline: ## build the BASELINE commit into build/baseline, for make bench to run beside this build
	@rev=$$(git rev-parse --short $(BASELINE)) || exit 1; \
	if [ "$$(cat $(BUILD)/baseline/.rev 2>/dev/null)" != "$$rev" ]; then \
		rm -rf $(BUILD)/baseline && mkdir -p $(BUILD)/baseline && \
		git archive $$rev | tar -x -C $(BUILD)/baseline && echo $$rev > $(BUILD)/baseline/.rev; \
	fi
	$(MAKE) -C $(BUILD)/baseline build

bench: deps build baseline ## benchmarks, printed as tables (join, throughput and wasm size beside the BASELINE build; the relay under a flood; content transfer, memory, hashing and IndexedDB; chat: the key exchange and message latency; the extension: its start, its restart, calls through the popup)
	$(GO) test -c -o $(BUILD)/web.test ./web
	$(GO) test -c -o $(BUILD)/transport.test ./shared/transport
	$(LOOPBACK) env DDT_BUILD=$(BUILD) DDT_BASELINE=$(CURDIR)/$(BUILD)/baseline/build DDT_BASELINE_REV=$$(cat $(BUILD)/baseline/.rev) DDT_BENCH=1 \
		$(BUILD)/web.test -test.run '^TestBench' -test.v -test.timeout=30m > $(BUILD)/bench-web.out 2>&1; \
		echo $$? > $(BUILD)/bench-web.rc; grep -v '^=== \|^--- PASS\|^--- SKIP\|^PASS\|^ok' $(BUILD)/bench-web.out; true
	@echo; echo "native↔native data channel (pion, 64 MiB over loopback):"
	@$(LOOPBACK) $(BUILD)/transport.test -test.run '^$$' -test.bench Throughput -test.benchtime 5x -test.count 1 | grep Benchmark
	@echo; DDT_BENCH=1 GOPROXY=off $(GO) test -count=1 -run '^TestBenchSim$$' -v -timeout 20m ./shared/sim \
		| grep -v '^=== \|^--- \|^PASS\|^ok'
	@echo; DDT_BENCH=1 GOPROXY=off $(GO) test -count=1 -run '^TestBenchNames$$' -v -timeout 10m ./relay \
		| grep -v '^=== \|^--- \|^PASS\|^ok'
	@echo; DDT_BENCH=1 GOPROXY=off $(GO) test -count=1 -run '^TestBenchFlood$$' -v -timeout 10m ./relay \
		| grep -v '^=== \|^--- \|^PASS\|^ok'
	@echo; DDT_BENCH=1 GOPROXY=off $(GO) test -count=1 -run '^TestBenchLedger$$' -v -timeout 20m ./shared/ledger \
		| grep -v '^=== \|^--- \|^PASS\|^ok'
	@echo; echo "### Username record verification (claim signature, checkpoint signature, inclusion proof), native and wasm in headless Chromium"; echo; \
	tmp=$$(mktemp -d); \
	GOPROXY=off $(GO) test -count=1 -run '^$$' -bench . -benchtime 2000x ./shared/names | grep '^Benchmark' > $$tmp/native; \
	$(LOOPBACK) env TMPDIR=$$tmp GOPROXY=off PATH="$(CURDIR)/scripts/chromium:$$PATH" GOOS=js GOARCH=wasm \
		$(GO) test -count=1 -exec=$(WASMBROWSERTEST) -run '^$$' -bench . -benchtime 500x ./shared/names 2>/dev/null | grep '^Benchmark' > $$tmp/wasm; \
	echo "| benchmark | native µs/op | wasm in Chromium µs/op | wasm ÷ native |"; echo "|---|---|---|---|"; \
	sed 's/-[0-9]* / /' $$tmp/native | awk '{print $$1, $$3}' | sort > $$tmp/n; awk '{print $$1, $$3}' $$tmp/wasm | sort > $$tmp/w; \
	join $$tmp/n $$tmp/w | awk '{printf "| %s | %.1f | %.1f | %.1f |\n", $$1, $$2/1000, $$3/1000, $$3/$$2}'; \
	rm -rf $$tmp
	@echo; echo "### Chat crypto: seal/open and onion build/peel, native and wasm in headless Chromium (1 KiB messages; a hop's peel of a hybrid slot)"; echo; \
	tmp=$$(mktemp -d); \
	GOPROXY=off $(GO) test -count=1 -run '^$$' -bench . -benchtime 2000x ./shared/unicast/ratchet ./shared/unicast/onion | grep '^Benchmark' > $$tmp/native; \
	$(LOOPBACK) env TMPDIR=$$tmp GOPROXY=off PATH="$(CURDIR)/scripts/chromium:$$PATH" GOOS=js GOARCH=wasm \
		$(GO) test -count=1 -exec=$(WASMBROWSERTEST) -run '^$$' -bench . -benchtime 200x ./shared/unicast/ratchet ./shared/unicast/onion 2>/dev/null | grep '^Benchmark' > $$tmp/wasm; \
	echo "| benchmark | native µs/op | wasm in Chromium µs/op | wasm ÷ native | native MB/s | wasm MB/s |"; echo "|---|---|---|---|---|---|"; \
	for f in native wasm; do \
		sed 's/-[0-9]* / /' $$tmp/$$f | awk '{mbs="—"; for (i = 1; i <= NF; i++) if ($$i == "MB/s") mbs = $$(i-1); print $$1, $$3, mbs}' | sort > $$tmp/$$f.t; \
	done; \
	join $$tmp/native.t $$tmp/wasm.t | awk '{printf "| %s | %.1f | %.1f | %.1f | %s | %s |\n", $$1, $$2/1000, $$4/1000, $$4/$$2, $$3, $$5}'; \
	rm -rf $$tmp
	@echo; echo "### Chunks in headless Chromium: SHA-256 (Go in wasm vs WebCrypto) and the IndexedDB chunk store (4 MiB chunks)"; echo; \
	tmp=$$(mktemp -d); \
	$(LOOPBACK) env TMPDIR=$$tmp GOPROXY=off PATH="$(CURDIR)/scripts/chromium:$$PATH" GOOS=js GOARCH=wasm \
		$(GO) test -count=1 -exec=$(WASMBROWSERTEST) -run '^$$' -bench . -benchtime 16x ./shared/chunk ./shared/store > $$tmp/out 2>&1; \
	rc=$$?; grep '^Benchmark' $$tmp/out > $$tmp/wasm; \
	if [ $$rc -ne 0 ]; then cat $$tmp/out; rm -rf $$tmp; exit $$rc; fi; \
	echo "| benchmark | ms/op | MB/s |"; echo "|---|---|---|"; \
	awk '{mbs="—"; for (i = 1; i <= NF; i++) if ($$i == "MB/s") mbs = $$(i-1); printf "| %s | %.2f | %s |\n", $$1, $$3/1e6, mbs}' $$tmp/wasm; \
	rm -rf $$tmp
	@# The browser benchmarks ran first and the rest went on after them;
	@# one that failed fails make bench here, at the end.
	@rc=$$(cat $(BUILD)/bench-web.rc); if [ "$$rc" != 0 ]; then echo; echo "make bench: a browser benchmark failed (exit $$rc): see its output above"; exit $$rc; fi

fuzz: ## run each fuzz target for a while (FUZZTIME=30s; loopback namespace) and keep what it finds in testdata/fuzz
	@for pkg in $$($(GO) list ./...); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "$$pkg $$f"; $(LOOPBACK) $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} $$pkg || exit 1; \
			$(GO) run ./scripts/corpus $$dir $$pkg $$f || exit 1; \
		done; \
	done

clean: ## remove build outputs
	rm -rf $(BUILD)
