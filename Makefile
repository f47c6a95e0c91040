# Usher's developer entry points. `make test` is the README's test command and what CI runs.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

# Where etcd + kube-apiserver live: $KUBEBUILDER_ASSETS when set, else provisioned on first use
# and cached under ~/.cache/usher (the script shows its progress and prints the folder last).
ASSETS = $${KUBEBUILDER_ASSETS:-$$(scripts/provision-envtest.sh | tail -1)}

.PHONY: test deps envtest lint crds fmt bench dev fuzz

# Seconds each fuzz target runs in `make test` (and `make fuzz`).
FUZZ_SECONDS ?= 30

## Everything locally: control plane, webhook, controller, examples; prints invitation links.
## The first run builds the control plane (`usher dev` shows it as a progress bar).
dev:
	cargo build --workspace --bins --locked --features usher-operator/dev
	cargo run -q --locked --features usher-operator/dev --bin usher -- dev

## What the tests use, each installed only when missing: Debian packages (needs root or sudo),
## cargo-fuzz, cargo-deny, helm 4 + kubectl 1.33 + checkov for the chart, and playwright-core for the browser
## tests.
deps:
	scripts/install-deps.sh
	scripts/install-fuzz.sh
	scripts/install-deny.sh
	scripts/install-tools.sh
	[ -d e2e/node_modules/playwright-core ] && [ -d e2e/node_modules/openid-client ] || npm ci --prefix e2e --no-audit --no-fund

## Run every test (unit and end to end against a real kube-apiserver), then the fuzz targets.
test: deps
	KUBEBUILDER_ASSETS="$(ASSETS)" cargo test --workspace --locked --features usher-operator/dev
	$(MAKE) fuzz

## The cargo-fuzz targets (session cookie decoder, API-key parser), FUZZ_SECONDS each.
## cargo-fuzz wants nightly flags (sanitizers); RUSTC_BOOTSTRAP lets the machine's one stable
## toolchain accept them, as no other toolchain can be fetched on every machine.
fuzz:
	@command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: run scripts/install-fuzz.sh"; exit 1; }
	cd fuzz && for t in session_token api_key; do \
	  log="$$(mktemp)"; \
	  if RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) >"$$log" 2>&1; \
	  then tail -1 "$$log"; else tail -40 "$$log"; rm -f "$$log"; exit 1; fi; rm -f "$$log"; done

## Build or find the envtest binaries (etcd, kube-apiserver, kube-controller-manager, kubectl).
envtest:
	scripts/provision-envtest.sh

## rustfmt, clippy and cargo-deny (licences, banned and duplicate heavy crates, sources: deny.toml),
## as CI runs them.
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked --features usher-operator/dev -- -D warnings
	@command -v cargo-deny >/dev/null || { echo "cargo-deny is missing: run scripts/install-deny.sh"; exit 1; }
	cargo deny --locked check licenses bans sources
	# The fuzz targets are a workspace of their own: compiled here too, not only by `make fuzz`.
	cargo fmt --manifest-path fuzz/Cargo.toml --check
	cargo check --manifest-path fuzz/Cargo.toml --bins --locked

fmt:
	cargo fmt --all

## Benchmarks (ratios against baselines measured in the same run; not part of `make test`).
bench:
	cargo bench -p usher-webhook --bench admission
	KUBEBUILDER_ASSETS="$(ASSETS)" cargo bench -p usher-operator --bench onboarding
	KUBEBUILDER_ASSETS="$(ASSETS)" cargo bench -p usher-operator --bench auth
	KUBEBUILDER_ASSETS="$(ASSETS)" cargo bench -p usher-operator --bench scale
	KUBEBUILDER_ASSETS="$(ASSETS)" cargo bench -p usher-operator --bench oidc

## Regenerate crds/*.yaml and charts/usher/crds/*.yaml from the Rust types.
crds:
	USHER_BLESS=1 cargo test -q -p usher-crds --test schema generated
