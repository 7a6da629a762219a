# The README's test command is `make test`; .ci/run calls it.
.PHONY: test lint crds bench build

test: lint
	cargo test --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

build:
	cargo build --release

crds:
	cargo run -q -- crd > crds/onus.dev.yaml

bench:
	cargo bench --bench evaluate
