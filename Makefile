# Switchyard: the two commands a newcomer needs are `make run` and `make test`.
# Both install what is missing first (system packages, the MLX library, npm packages,
# test fixtures, the pinned client programs, tauri-driver), idempotently.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# One feature set for clippy, the desktop build and the e2e binary, so nothing is
# compiled twice (custom-protocol = the UI is embedded, not loaded from a dev server).
DESKTOP := --features tauri/custom-protocol

.PHONY: help run test deps system-deps mlx ui-deps ui-build fixtures clients tauri-driver \
        lint ui-test desktop bundle bundle-test rust-test e2e serve soak fuzz bench bench-engine bench-routing bench-vault bench-tokens bench-gateway

help:
	@echo "make run    install what is missing, build, and start the Switchyard app"
	@echo "make test   install what is missing and run every test (Rust, UI, e2e)"
	@echo "make serve  the headless gateway (switchyard serve)"
	@echo "make bundle the Linux package of the app (.deb, release build) in target/release/bundle/deb/"
	@echo "make bench  all benchmarks (engine, routing, vault, tokens, gateway)"
	@echo "make soak   the reliability suite at full size (10,000 requests, 64 connections)"
	@echo "make fuzz   the model-file parsers (GGUF header, safetensors header and index) under mutation fuzzing (FUZZ_SECS each, default 300)"

run: deps ui-build
	cargo build --release $(DESKTOP)
	./target/release/switchyard

serve: deps
	cargo run --release --no-default-features -- serve

test: deps ui-build fixtures clients tauri-driver lint ui-test desktop bundle-test rust-test e2e
	@echo "make test: all passed"

deps: system-deps mlx ui-deps

system-deps:
	scripts/install-system-deps.sh

mlx:
	scripts/fetch-mlx.sh

ui-deps:
	scripts/ui-deps.sh

ui-build: ui-deps
	cd ui && npm run --silent build

fixtures:
	scripts/fetch-fixtures.sh

# The real clients the gateway tests drive: Claude Code, Codex CLI, the openai and
# anthropic Python SDKs, pinned (tests/clients/, tests/sdk/requirements.txt).
clients:
	scripts/ensure-clients.sh

tauri-driver:
	@if [ "$$(uname -s)" = Linux ]; then scripts/ensure-tauri-driver.sh; fi

lint: ui-build
	cargo fmt --all -- --check
	cd ui && npm run --silent check
	cargo clippy --all-targets $(DESKTOP) -- -D warnings

ui-test: ui-deps
	cd ui && npm test --silent

# The desktop binary, copied aside for the e2e test: the core-only test run rebuilds
# target/debug/switchyard without the desktop feature.
desktop: ui-build
	cargo build $(DESKTOP)
	mkdir -p target/desktop && cp target/debug/switchyard target/desktop/switchyard

# The Linux package (.deb) of the release build: binary, desktop entry, icons, libmlx.
bundle: deps ui-build
	scripts/bundle.sh

# make test packages the debug build the same way, installs it into a scratch root
# (dpkg -x) and checks what is there and that the installed binary runs.
bundle-test: desktop
	scripts/bundle.sh --debug --check

# Every Rust test runs on the core alone: proof that nothing but desktop/ needs tauri.
rust-test:
	@n=$$(cargo tree --no-default-features -e normal | grep -c tauri || true); \
	  if [ "$$n" != 0 ]; then echo "tauri is in the core-only dependency tree ($$n lines)"; exit 1; fi
	cargo test --no-default-features

# The reliability suite at full size (make test runs it with 600 requests).
soak: deps
	SWITCHYARD_SOAK_REQUESTS=10000 SWITCHYARD_SOAK_CONNECTIONS=64 \
	  cargo test --no-default-features --test soak -- --nocapture

# Mutation fuzzing of the GGUF header, safetensors header and safetensors index parsers for a fixed time each
# (make test runs 3,000 cases of each).
FUZZ_SECS ?= 300
fuzz: deps
	SWITCHYARD_FUZZ_SECS=$(FUZZ_SECS) cargo test --no-default-features --lib fuzz_ -- --nocapture --test-threads 1

e2e: desktop tauri-driver
	scripts/e2e.sh

bench: bench-engine bench-routing bench-vault bench-tokens bench-gateway

bench-engine: deps fixtures
	scripts/bench-engine.sh

bench-routing: deps
	scripts/bench-routing.sh

bench-vault: deps
	scripts/bench-vault.sh

bench-tokens: deps
	scripts/bench-tokens.sh

bench-gateway: deps
	scripts/bench-gateway.sh
