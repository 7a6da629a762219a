//! onus: the customer's side of the cloud shared-responsibility model, enforced in Kubernetes.
//!
//! One pure engine ([`engine::evaluate`]) and its drivers: `onus check` ([`check`]), the
//! admission webhook and the controller.

pub mod api;
pub mod baseline;
pub mod check;
pub mod cloud;
pub mod compliance;
pub mod controller;
pub mod declared;
pub mod engine;
pub mod iam;
pub mod index;
pub mod inventory;
pub mod metrics;
pub mod model;
pub mod network;
pub mod object;
pub mod posture;
pub mod refs;
pub mod run;
pub mod text;
pub mod watch;
pub mod webhook;
pub mod who_uses;
