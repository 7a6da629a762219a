//! Audit benchmark for the Azure and GCP auditors (run by hand; the README has its numbers):
//! 1,000 blob containers in azurite (with their account read from the ARM stand-in) and 1,000
//! buckets in fake-gcs-server, each audited once, 32 at a time, as one reconcile pass does.
//! Prints calls per resource, wall time and the growth of peak RSS.
//!
//!   cargo test --release --test audit_bench -- --ignored --nocapture

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::StreamExt;
use onus::cloud::{Auditor, CallObserver, Credentials};
use onus::posture::CloudResource;

const N: usize = 1000;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn counting() -> (CallObserver, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (c, f) = (calls.clone(), failed.clone());
    let observe: CallObserver = Arc::new(move |_, _, outcome, _| {
        c.fetch_add(1, Ordering::Relaxed);
        if outcome != "ok" {
            f.fetch_add(1, Ordering::Relaxed);
        }
    });
    (observe, calls, failed)
}

async fn run(credentials: Credentials, resources: Vec<CloudResource>, label: &str) {
    let (observe, calls, failed) = counting();
    let auditor = Auditor::new(&credentials, observe).await.unwrap();
    let before = peak_rss_kib();
    let now = chrono::Utc::now();
    let start = Instant::now();
    let postures: Vec<_> = futures::stream::iter(resources.iter())
        .map(|r| auditor.audit(r, now))
        .buffer_unordered(32)
        .collect()
        .await;
    let took = start.elapsed();
    let errors = postures.iter().filter(|p| p.error.is_some()).count();
    let calls = calls.load(Ordering::Relaxed);
    println!(
        "{label}: {} resources in {:.2} s ({:.0}/s), {calls} calls ({:.2} per resource, {} failed), {errors} postures in error, peak RSS +{} KiB",
        resources.len(),
        took.as_secs_f64(),
        resources.len() as f64 / took.as_secs_f64(),
        calls as f64 / resources.len() as f64,
        failed.load(Ordering::Relaxed),
        peak_rss_kib().saturating_sub(before),
    );
    assert_eq!(errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by hand"]
async fn audit_1000_containers_and_1000_buckets() {
    use azure_storage_blob::models::BlobContainerClientCreateOptions;
    use support::arm::Arm;
    use support::azurite::{ACCOUNT, Azurite};
    use support::gcs::Gcs;

    let azurite = Azurite::start();
    let arm = Arm::start();
    arm.set_account(
        "00000000-0000-0000-0000-000000000001",
        "bench",
        ACCOUNT,
        serde_json::json!({"allowBlobPublicAccess": false, "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": true}),
    );
    let seed = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| {
            let c = azurite.container(&format!("c{i:04}"));
            async move {
                c.create(Some(BlobContainerClientCreateOptions::default()))
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    println!(
        "seeded {N} containers in {:.1} s",
        seed.elapsed().as_secs_f64()
    );
    let gcs = Gcs::start();
    for i in 0..N {
        gcs.create_bucket(&format!("bench-{i:04}"));
    }
    // SAFETY: set before any thread of this test reads the environment (the auditors read it
    // when made, below); this benchmark is the binary's only test.
    unsafe {
        for (k, v) in azurite.env().into_iter().chain(arm.env()).chain(gcs.env()) {
            std::env::set_var(k, v);
        }
    }
    let mut containers: Vec<CloudResource> = (0..N)
        .map(|i| CloudResource::AzureContainer {
            account: ACCOUNT.into(),
            container: format!("c{i:04}"),
        })
        .collect();
    run(
        Credentials::Azure {
            client_id: None,
            arm: None,
        },
        containers.clone(),
        "azure (data plane)",
    )
    .await;
    containers.push(CloudResource::AzureStorageAccount(ACCOUNT.into()));
    run(
        Credentials::Azure {
            client_id: None,
            arm: Some(onus::cloud::azure_arm::Scope {
                subscription: "00000000-0000-0000-0000-000000000001".into(),
                resource_group: "bench".into(),
            }),
        },
        containers,
        "azure (with ARM)",
    )
    .await;
    println!("ARM stand-in answered {} requests", arm.requests());
    run(
        Credentials::Gcp { project: None },
        (0..N)
            .map(|i| CloudResource::GcsBucket(format!("bench-{i:04}")))
            .collect(),
        "gcp",
    )
    .await;
}
