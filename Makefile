# Keyward. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
GO ?= go
BIN := bin/keyward

# need CHECK PACKAGE: when CHECK fails, install Debian's PACKAGE as root, or
# stop with one line saying what to install.
define need
	@if ! ( $(1) ) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian package $(2)..." >&2; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null \
	      || { echo "keyward: could not install $(2) with apt-get" >&2; exit 1; }; \
	  else \
	    echo "keyward: missing $(2): install it with 'sudo apt-get install $(2)'" >&2; exit 1; \
	  fi; \
	fi
endef

POSTGRES_CHECK := ls /usr/lib/postgresql/*/bin/initdb || command -v initdb
CHROMIUM_CHECK := command -v chromium
REDIS_CHECK := command -v redis-server || test -x /usr/bin/redis-server
NPM_CHECK := command -v npm

# axe-core, the accessibility rules the browser tests run on every page. npm
# installs this pinned version under tmp/ (ignored by git); the tests read
# its axe.min.js from there.
AXE_VERSION := 4.14.1
AXE_DIR := tmp/axe

.PHONY: help
help: ## show this help
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: deps-postgres deps-chromium deps-redis deps-axe
deps-postgres:
	$(call need,$(POSTGRES_CHECK),postgresql)
deps-chromium:
	$(call need,$(CHROMIUM_CHECK),chromium)
deps-redis:
	$(call need,$(REDIS_CHECK),redis-server)
deps-axe:
	$(call need,$(NPM_CHECK),npm)
	@grep -qs '"version": "$(AXE_VERSION)"' $(AXE_DIR)/node_modules/axe-core/package.json \
	  || npm install --prefix $(AXE_DIR) --no-save --no-package-lock --no-audit --no-fund --loglevel=error axe-core@$(AXE_VERSION) >/dev/null \
	  || { echo "keyward: could not install axe-core $(AXE_VERSION) with npm" >&2; exit 1; }

.PHONY: build
build: ## build bin/keyward
	$(GO) build -o $(BIN) ./cmd/keyward

.PHONY: run
run: deps-postgres build ## start the portal on a private local Postgres under ./.keyward
	./$(BIN) serve

.PHONY: migrate
migrate: deps-postgres build ## apply database migrations
	./$(BIN) migrate

.PHONY: generate
generate: ## regenerate sqlc and templ output
	$(GO) tool sqlc generate
	$(GO) tool templ generate

.PHONY: check-generated
check-generated: ## fail when committed sqlc/templ output is stale
	@$(GO) tool sqlc diff || { echo "sqlc output is stale: run 'make generate' and commit" >&2; exit 1; }
	@$(GO) tool templ generate >/dev/null 2>&1 || { echo "templ generate failed" >&2; exit 1; }
	@git diff --exit-code --stat -- 'views/*_templ.go' 'db/*.go' \
	  || { echo "generated code differs from what is committed: run 'make generate' and commit" >&2; exit 1; }
	@test -z "$$(git ls-files --others --exclude-standard -- 'views/*_templ.go' 'db/*.go')" \
	  || { echo "generated files are not committed: run 'make generate' and commit" >&2; exit 1; }

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:" $$out >&2; exit 1; fi
	@if git grep -nE '^(<<<<<<<|>>>>>>>)( |$$)|^=======$$' -- . ':!*.sum' >&2; then echo "merge conflict markers left in the files above" >&2; exit 1; fi

.PHONY: test
test: deps-postgres deps-chromium deps-redis deps-axe check-generated lint ## run the whole suite (real Postgres, Redis, headless Chromium)
	@# -v, minus the chatter: what passing tests measured (t.Log) stays visible,
	@# such as how soon a revoke reaches a second instance.
	set -o pipefail; $(GO) test -count=1 -timeout 15m -v ./... \
	  | grep --line-buffered -vE '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS|PASS$$)'

.PHONY: e2e
e2e: deps-postgres deps-chromium deps-axe ## run only the browser tests
	$(GO) test -count=1 -run Browser -v ./web/...

.PHONY: bench
bench: deps-postgres ## run the Go benchmarks, then cmd/kwbench (API load), and write BENCHMARKS.md
	@mkdir -p tmp
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem ./... | tee tmp/gobench.txt
	$(GO) run ./cmd/kwbench -gobench tmp/gobench.txt -out BENCHMARKS.md
