//! Cloud auditors: live posture of the resources workloads use.
//!
//! Each auditor turns a [`crate::posture::CloudResource`] into a
//! [`crate::posture::Posture`] with `source: live`; a resource that cannot be read gives a
//! posture with `error` set (never a pass).

pub mod aws;
