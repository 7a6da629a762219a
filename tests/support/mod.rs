//! Shared support for integration tests: `mod support;` in a file under `tests/`.
//!
//! - [`control_plane()`]: a real etcd + kube-apiserver (v1.34, built from Go modules by
//!   `hack/controlplane`), started once per test binary and stopped when the binary exits,
//!   also when a test panics or the binary is killed.
//! - [`ControlPlane::kubectl`], [`ControlPlane::helm`]: run the matching CLIs against it.
//! - [`ControlPlane::client`]: a `kube::Client` for it; [`ControlPlane::create_namespace`]
//!   and [`create_namespace`]: a fresh, randomly named namespace per test.
#![allow(dead_code)]

pub mod arm;
pub mod azurite;
pub mod controlplane;
pub mod endpoints;
pub mod gcs;
pub mod moto;
pub mod onus;

#[allow(unused_imports)]
pub use controlplane::{ControlPlane, Output, control_plane, create_namespace, random_suffix};

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}
