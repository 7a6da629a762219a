# The README's test command is `make test`; .ci/run calls it.
.PHONY: test lint crds bench build controlplane moto azurite gcs oscal

# The control plane (etcd, kube-apiserver, kubectl, helm) is built from Go modules on first use
# and cached under ~/.cache/onus/controlplane; later runs reuse it.
test: lint controlplane moto azurite gcs oscal
	cargo test --all-targets

controlplane:
	hack/controlplane build

# moto[server] (a local AWS) in a venv under ~/.cache/onus/moto, pinned.
moto:
	hack/moto install

# azurite (a local Azure blob service) from npm under ~/.cache/onus/azurite, pinned.
azurite:
	hack/azurite install

# fake-gcs-server (a local Cloud Storage JSON API) built from its Go module, pinned.
gcs:
	hack/gcs install

# compliance-trestle (OSCAL models from NIST's schemas) in a venv under ~/.cache/onus/trestle.
oscal:
	hack/oscal install

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

build:
	cargo build --release

# CRDs come from the Rust types; the chart carries the same file, install.yaml the rendered chart.
crds:
	cargo run -q -- crd > crds/onus.dev.yaml
	cp crds/onus.dev.yaml charts/onus/crds/onus.dev.yaml
	ONUS_UPDATE_MANIFESTS=1 cargo test -q --test helm_e2e install_yaml

bench:
	cargo bench --bench evaluate
