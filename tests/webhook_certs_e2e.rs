//! Webhook certificates against the real control plane: the self-managed Secret and the
//! `ValidatingWebhookConfiguration`'s `caBundle`, rotations under load with no failed request
//! (seen by a TLS client that trusts the live `caBundle`, and by the API server itself calling
//! the webhook with `failurePolicy: Fail`), and reloading certificate files.
//!
//! Each test serves a tiny axum app on 127.0.0.1 with the `RustlsConfig` from
//! `onus::webhook::certs::start`: `GET /x` answers `ok`, `POST /validate` allows every
//! AdmissionReview except for objects named `deny-me`.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::PostParams;
use onus::webhook::certs::{
    self, CertInfo, CertSource, CertifiedPem, SelfManagedConfig, parse_pem_certs,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use support::{ControlPlane, control_plane};
use tokio::task::JoinHandle;
use tokio::time::Instant;

const SECRET: &str = "onus-webhook-tls";

/// Aborts its tasks when dropped, also when the test panics.
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    fn spawn<F>(&mut self, f: F)
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.push(tokio::spawn(async move {
            let _ = f.await;
        }));
    }

    /// Spawns the certificate keeper; a keeper that returns (it should not) fails the test
    /// through the log and the requests that follow.
    fn keep<F>(&mut self, keeper: F)
    where
        F: std::future::Future<Output = Result<(), certs::CertError>> + Send + 'static,
    {
        self.0.push(tokio::spawn(async move {
            if let Err(e) = keeper.await {
                eprintln!("certificate keeper stopped: {e}");
            }
        }));
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

fn app() -> Router {
    async fn validate(axum::Json(review): axum::Json<Value>) -> axum::Json<Value> {
        let req = &review["request"];
        let name = req["name"]
            .as_str()
            .or_else(|| req["object"]["metadata"]["name"].as_str())
            .unwrap_or_default();
        let allowed = name != "deny-me";
        axum::Json(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": req["uid"],
                "allowed": allowed,
                "status": { "code": 403, "message": "deny-me is refused by the certificates test webhook" },
            },
        }))
    }
    Router::new()
        .route("/x", get(|| async { "ok" }))
        .route("/validate", post(validate))
}

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

fn serve(tasks: &mut Tasks, listener: TcpListener, tls: RustlsConfig) {
    let server = axum_server::from_tcp_rustls(listener, tls).expect("server from listener");
    tasks.spawn(server.serve(app().into_make_service()));
}

/// One HTTPS request with rustls, trusting only the certificates in `roots_pem`.
/// Returns the body and the DER of the certificate the server presented.
fn https_get(port: u16, roots_pem: &[u8], path: &str) -> Result<(String, Vec<u8>), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(roots_pem) {
        roots
            .add(c.map_err(|e| format!("roots PEM: {e}"))?)
            .map_err(|e| format!("root: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
    sock.set_write_timeout(Some(Duration::from_secs(5))).ok();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .map_err(|e| format!("TLS write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // Some servers close without close_notify; what arrived is the response.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => break,
            Err(e) => return Err(format!("TLS read: {e}")),
        }
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or("no peer certificate")?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected response: {text}"));
    }
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Ok((body, leaf))
}

async fn https_get_async(port: u16, roots_pem: Vec<u8>) -> Result<(String, Vec<u8>), String> {
    tokio::task::spawn_blocking(move || https_get(port, &roots_pem, "/x"))
        .await
        .map_err(|e| e.to_string())?
}

fn curl(port: u16, cacert: Option<&Path>) -> std::process::Output {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "5"]);
    match cacert {
        Some(p) => cmd.arg("--cacert").arg(p),
        // An empty CA file: nothing is trusted (the system store might be, by accident).
        None => cmd.args(["--cacert", "/dev/null", "--capath", "/nonexistent"]),
    };
    cmd.arg(format!("https://127.0.0.1:{port}/x"))
        .output()
        .expect("run curl")
}

/// A ValidatingWebhookConfiguration with two webhooks that call `https://127.0.0.1:PORT/validate`
/// for ConfigMap creations in `namespace` only, without a caBundle.
fn create_webhook_config(cp: &ControlPlane, name: &str, port: u16, namespace: &str, policy: &str) {
    let hook = |n: &str| {
        json!({
            "name": format!("{n}.certs-e2e.onus.dev"),
            "clientConfig": { "url": format!("https://127.0.0.1:{port}/validate") },
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE"], "resources": ["configmaps"], "scope": "Namespaced",
            }],
            "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": namespace } },
            "failurePolicy": policy,
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        })
    };
    let vwc = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": name },
        "webhooks": [hook("first"), hook("second")],
    });
    cp.kubectl_stdin(&["apply", "-f", "-"], &vwc.to_string())
        .expect_success();
}

fn delete_webhook_config(cp: &ControlPlane, name: &str) {
    let _ = cp.kubectl(&[
        "delete",
        "validatingwebhookconfiguration",
        name,
        "--ignore-not-found",
    ]);
}

/// Deletes the webhook configuration when dropped (a leftover one only affects its own,
/// per-test namespace, but tidy up anyway).
struct WebhookConfigGuard<'a>(&'a ControlPlane, String);

impl Drop for WebhookConfigGuard<'_> {
    fn drop(&mut self) {
        delete_webhook_config(self.0, &self.1);
    }
}

/// Every webhook's caBundle (None when the configuration is missing).
async fn webhook_ca_bundles(client: &kube::Client, name: &str) -> Option<Vec<Option<Vec<u8>>>> {
    let vwc = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get_opt(name)
        .await
        .expect("get webhook configuration")?;
    Some(
        vwc.webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.client_config.ca_bundle.map(|b| b.0))
            .collect(),
    )
}

async fn secret(client: &kube::Client, namespace: &str) -> Secret {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get(SECRET)
        .await
        .expect("get Secret")
}

fn data(s: &Secret, key: &str) -> Vec<u8> {
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .unwrap_or_else(|| panic!("Secret has no {key}"))
}

fn cert(pem: &[u8]) -> CertInfo {
    parse_pem_certs(pem).expect("certificate PEM").remove(0)
}

fn config(namespace: &str, webhook_config: Option<&str>) -> SelfManagedConfig {
    SelfManagedConfig {
        namespace: namespace.to_owned(),
        secret_name: SECRET.to_owned(),
        webhook_config_name: webhook_config.map(str::to_owned),
        dns_names: vec!["localhost".to_owned()],
        ip_addresses: vec![IpAddr::from([127, 0, 0, 1])],
        check_interval: Duration::from_secs(1),
        propagation_delay: Duration::from_secs(1),
        ..SelfManagedConfig::default()
    }
}

type Expiries = Arc<Mutex<Vec<i64>>>;

fn recorder() -> (Expiries, impl Fn(i64) + Send + Sync + 'static) {
    let seen: Expiries = Arc::default();
    let s = seen.clone();
    (seen, move |t| s.lock().unwrap().push(t))
}

/// Server-side dry-run create of a ConfigMap: goes through the webhook, stores nothing.
async fn dry_run_configmap(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": namespace },
        "data": { "k": "v" },
    }))
    .expect("ConfigMap");
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .create(&pp, &cm)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_managed_start_creates_the_secret_and_fills_every_ca_bundle() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.create_namespace("certs");
    let (listener, port) = listener();
    let vwc = format!("onus-certs-{ns}");
    create_webhook_config(cp, &vwc, port, &ns, "Ignore");
    let _guard = WebhookConfigGuard(cp, vwc.clone());
    assert_eq!(
        webhook_ca_bundles(&client, &vwc).await,
        Some(vec![None, None])
    );

    let mut tasks = Tasks::default();
    let (expiries, on_expiry) = recorder();
    let (tls, keeper) = certs::start(
        CertSource::SelfManaged(config(&ns, Some(&vwc))),
        Some(client.clone()),
        on_expiry,
    )
    .await
    .expect("start self-managed certificates");
    tasks.keep(keeper);
    serve(&mut tasks, listener, tls);

    // The Secret: a kubernetes.io/tls Secret with the serving pair, the CA and the bundle.
    let s = secret(&client, &ns).await;
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<&str> = s
        .data
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["ca-bundle.crt", "ca.crt", "ca.key", "tls.crt", "tls.key"]
    );
    let ca_pem = data(&s, "ca.crt");
    let bundle = data(&s, "ca-bundle.crt");
    assert_eq!(bundle, ca_pem, "a fresh bundle holds the one CA");
    let ca = cert(&ca_pem);
    let leaf = cert(&data(&s, "tls.crt"));
    assert!(ca.is_ca && !leaf.is_ca);
    assert_eq!(leaf.issuer, ca.subject);
    assert_eq!(leaf.dns_names, ["localhost"]);
    assert_eq!(leaf.ip_addresses, [IpAddr::from([127, 0, 0, 1])]);
    let now = chrono::Utc::now().timestamp();
    let days = |t: i64| (t - now) as f64 / 86400.0;
    assert!(
        (89.9..=90.1).contains(&days(leaf.not_after)),
        "{}",
        days(leaf.not_after)
    );
    assert!(
        (364.9..=365.1).contains(&days(ca.not_after)),
        "{}",
        days(ca.not_after)
    );
    assert_eq!(*expiries.lock().unwrap(), vec![leaf.not_after]);

    // Every webhook of the configuration got the bundle.
    assert_eq!(
        webhook_ca_bundles(&client, &vwc).await,
        Some(vec![Some(bundle.clone()), Some(bundle.clone())])
    );

    // A client trusting the CA from the Secret gets through and sees the Secret's certificate;
    // one trusting another CA does not.
    let (body, presented) = https_get_async(port, ca_pem.clone())
        .await
        .expect("HTTPS with the CA");
    assert_eq!(body, "ok");
    assert_eq!(presented, leaf.der);
    let other = certs::generate_ca(Duration::from_secs(3600), now).unwrap();
    let err = https_get_async(port, other.cert_pem.into_bytes())
        .await
        .expect_err("a client trusting another CA must fail");
    assert!(
        err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
        "{err}"
    );

    // The same with curl (OpenSSL).
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let ok = tokio::task::block_in_place(|| curl(port, Some(&ca_file)));
    assert!(
        ok.status.success(),
        "curl --cacert: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "ok");
    let bad = tokio::task::block_in_place(|| curl(port, None));
    assert!(!bad.status.success(), "curl without the CA succeeded");

    // The API server itself calls the webhook with that caBundle: `deny-me` is refused
    // (with failurePolicy Ignore, a TLS failure would let it through instead).
    let deadline = Instant::now() + Duration::from_secs(20);
    let denial = loop {
        match dry_run_configmap(&client, &ns, "deny-me").await {
            Err(kube::Error::Api(s))
                if s.message
                    .contains("refused by the certificates test webhook") =>
            {
                break s.message;
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "the API server never reached the webhook: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert!(denial.contains("certs-e2e.onus.dev"), "{denial}");
    dry_run_configmap(&client, &ns, "allowed")
        .await
        .expect("allowed ConfigMap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_starts_reuse_the_secret_and_a_late_webhook_config_gets_the_bundle() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.create_namespace("certs");
    let vwc = format!("onus-certs-late-{ns}");
    let _guard = WebhookConfigGuard(cp, vwc.clone());
    let cfg = config(&ns, Some(&vwc));
    let mut tasks = Tasks::default();

    // Two replicas starting at once, no Secret yet: one creates it, the other adopts it.
    let (ra, rb) = tokio::join!(
        certs::start(
            CertSource::SelfManaged(cfg.clone()),
            Some(client.clone()),
            |_| {}
        ),
        certs::start(
            CertSource::SelfManaged(cfg.clone()),
            Some(client.clone()),
            |_| {}
        ),
    );
    let (tls_a, keeper_a) = ra.expect("start replica a");
    let (tls_b, keeper_b) = rb.expect("start replica b");
    tasks.keep(keeper_a);
    tasks.keep(keeper_b);
    let s = secret(&client, &ns).await;
    let version = s.metadata.resource_version.clone();
    let leaf = data(&s, "tls.crt");
    let ca_pem = data(&s, "ca.crt");

    // A third start, later, keeps everything: no write, the same certificate.
    let (expiries, on_expiry) = recorder();
    let (tls_c, keeper_c) = certs::start(
        CertSource::SelfManaged(cfg.clone()),
        Some(client.clone()),
        on_expiry,
    )
    .await
    .expect("start replica c");
    tasks.keep(keeper_c);
    assert_eq!(*expiries.lock().unwrap(), vec![cert(&leaf).not_after]);

    let mut ports = Vec::new();
    for tls in [tls_a, tls_b, tls_c] {
        let (l, port) = listener();
        serve(&mut tasks, l, tls);
        ports.push(port);
    }
    for port in &ports {
        let (_, presented) = https_get_async(*port, ca_pem.clone()).await.expect("HTTPS");
        assert_eq!(
            presented,
            cert(&leaf).der,
            "replica on port {port} serves another certificate"
        );
    }
    // A few checks later, still untouched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = secret(&client, &ns).await;
    assert_eq!(
        again.metadata.resource_version, version,
        "the Secret was rewritten"
    );
    assert_eq!(data(&again, "tls.crt"), leaf);

    // The webhook configuration appears after the start: the next checks fill in its caBundle.
    assert_eq!(webhook_ca_bundles(&client, &vwc).await, None);
    create_webhook_config(cp, &vwc, ports[0], &ns, "Ignore");
    let bundle = data(&again, "ca-bundle.crt");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = webhook_ca_bundles(&client, &vwc).await;
        if got == Some(vec![Some(bundle.clone()), Some(bundle.clone())]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "caBundle never filled in: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the load loops saw.
#[derive(Default)]
struct Observed {
    ok: usize,
    failures: Vec<String>,
    /// Distinct serving certificates, in the order first seen.
    leaves: Vec<Vec<u8>>,
    /// Distinct issuers (CA subjects) of those certificates.
    issuers: Vec<Vec<u8>>,
    api_ok: usize,
    api_denied: usize,
}

/// How stale the TLS client's copy of the caBundle is: like the API server, whose view of the
/// webhook configuration lags a little, it must succeed with a bundle that is not the latest
/// (onus waits `propagation_delay`, 1 s here, before serving a certificate from a new CA).
const BUNDLE_LAG: Duration = Duration::from_millis(400);

/// Runs two load loops until `done` says so or `limit` passes:
/// - a TLS client that re-reads the webhook configuration's caBundle before every request and
///   trusts only the one it read [`BUNDLE_LAG`] ago;
/// - the API server calling the webhook (failurePolicy Fail): dry-run ConfigMap creations that
///   must be allowed, and every tenth one named `deny-me` that must be denied by the webhook.
async fn load(
    client: &kube::Client,
    ns: &str,
    vwc: &str,
    port: u16,
    limit: Duration,
    done: impl Fn(&Observed) -> bool,
) -> Observed {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + limit;

    let tls_loop = {
        let (client, vwc, observed, stop) = (
            client.clone(),
            vwc.to_owned(),
            observed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            // Bundles read so far, oldest first; each request trusts the newest one that is
            // at least BUNDLE_LAG old.
            let mut bundles: std::collections::VecDeque<(Instant, Vec<u8>)> = Default::default();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let bundle = webhook_ca_bundles(&client, &vwc)
                    .await
                    .and_then(|b| b.into_iter().next().flatten())
                    .unwrap_or_default();
                bundles.push_back((Instant::now(), bundle));
                while bundles.len() > 1 && bundles[1].0.elapsed() >= BUNDLE_LAG {
                    bundles.pop_front();
                }
                let bundle = bundles[0].1.clone();
                let result = https_get_async(port, bundle).await;
                {
                    let mut o = observed.lock().unwrap();
                    match result {
                        Ok((_, leaf)) => {
                            o.ok += 1;
                            if !o.leaves.contains(&leaf) {
                                let issuer = cert(&pem_of(&leaf)).issuer;
                                if !o.issuers.contains(&issuer) {
                                    o.issuers.push(issuer);
                                }
                                o.leaves.push(leaf);
                            }
                        }
                        Err(e) => o.failures.push(format!("TLS client: {e}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let api_loop = {
        let (client, ns, observed, stop) = (
            client.clone(),
            ns.to_owned(),
            observed.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let deny = i.is_multiple_of(10);
                let name = if deny {
                    "deny-me".to_owned()
                } else {
                    format!("cm-{i}")
                };
                let result = dry_run_configmap(&client, &ns, &name).await;
                {
                    let mut o = observed.lock().unwrap();
                    match (deny, result) {
                        (false, Ok(())) => o.api_ok += 1,
                        (true, Err(kube::Error::Api(s)))
                            if s.message
                                .contains("refused by the certificates test webhook") =>
                        {
                            o.api_denied += 1
                        }
                        (_, other) => o.failures.push(format!("API server, {name}: {other:?}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    struct AbortOnDrop(Vec<JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for h in &self.0 {
                h.abort();
            }
        }
    }
    let loops = AbortOnDrop(vec![tls_loop, api_loop]);

    while Instant::now() < deadline && !done(&observed.lock().unwrap()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in &loops.0 {
        let _ = tokio::time::timeout(Duration::from_secs(15), async {
            while !h.is_finished() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
    drop(loops);
    std::mem::take(&mut *observed.lock().unwrap())
}

fn pem_of(der: &[u8]) -> Vec<u8> {
    certs::pem_encode("CERTIFICATE", der).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load_fail_no_request() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.create_namespace("certs");
    let (listener, port) = listener();
    let vwc = format!("onus-certs-rotate-{ns}");
    create_webhook_config(cp, &vwc, port, &ns, "Fail");
    let _guard = WebhookConfigGuard(cp, vwc.clone());

    // Serving certificates live 7 s and are replaced when less than 4 s remain; a CA lives
    // 18 s and is replaced when it would not outlive a new certificate by 4 s. So: a new
    // certificate from the same CA about every 3 s, and a CA rotation about every 9 s.
    let cfg = SelfManagedConfig {
        ca_validity: Duration::from_secs(18),
        cert_validity: Duration::from_secs(7),
        rotate_before: Duration::from_secs(4),
        check_interval: Duration::from_secs(1),
        propagation_delay: Duration::from_secs(1),
        ..config(&ns, Some(&vwc))
    };
    let mut tasks = Tasks::default();
    let (expiries, on_expiry) = recorder();
    let (tls, keeper) = certs::start(
        CertSource::SelfManaged(cfg),
        Some(client.clone()),
        on_expiry,
    )
    .await
    .expect("start");
    tasks.keep(keeper);
    serve(&mut tasks, listener, tls);
    let first = data(&secret(&client, &ns).await, "tls.crt");

    // Until at least two CA rotations (three CAs) and four certificate changes were seen.
    let seen = load(&client, &ns, &vwc, port, Duration::from_secs(75), |o| {
        o.issuers.len() >= 3 && o.leaves.len() >= 5
    })
    .await;
    eprintln!(
        "rotations: {} certificates from {} CAs; {} TLS requests, {} allowed and {} denied through the API server, {} failures",
        seen.leaves.len(),
        seen.issuers.len(),
        seen.ok,
        seen.api_ok,
        seen.api_denied,
        seen.failures.len()
    );
    assert!(
        seen.failures.is_empty(),
        "{} failed requests (of {} TLS, {} API server): {:#?}",
        seen.failures.len(),
        seen.ok,
        seen.api_ok + seen.api_denied,
        seen.failures
    );
    assert!(
        seen.issuers.len() >= 3,
        "saw {} CAs and {} certificates in 75 s",
        seen.issuers.len(),
        seen.leaves.len()
    );
    assert!(
        seen.leaves.len() >= 5,
        "saw {} certificates",
        seen.leaves.len()
    );
    assert!(
        seen.ok > 50 && seen.api_ok > 20 && seen.api_denied > 2,
        "too little load: {} TLS, {} API ok, {} denied",
        seen.ok,
        seen.api_ok,
        seen.api_denied
    );

    let last = secret(&client, &ns).await;
    assert_ne!(
        data(&last, "tls.crt"),
        first,
        "the serving certificate changed"
    );
    let bundle = parse_pem_certs(&data(&last, "ca-bundle.crt")).unwrap();
    assert!(
        bundle.len() <= 2,
        "the bundle keeps at most the previous and the current CA"
    );
    assert_eq!(bundle.last().unwrap().der, cert(&data(&last, "ca.crt")).der);
    let reported = expiries.lock().unwrap().clone();
    assert!(
        reported.len() >= 5,
        "expiry reported for every certificate: {reported:?}"
    );
    assert!(reported.windows(2).all(|w| w[0] <= w[1]), "{reported:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_now_moves_running_servers_to_a_new_ca_without_failures() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = cp.create_namespace("certs");
    let (listener, port) = listener();
    let vwc = format!("onus-certs-now-{ns}");
    create_webhook_config(cp, &vwc, port, &ns, "Fail");
    let _guard = WebhookConfigGuard(cp, vwc.clone());
    let cfg = config(&ns, Some(&vwc));

    let mut tasks = Tasks::default();
    let (tls, keeper) = certs::start(
        CertSource::SelfManaged(cfg.clone()),
        Some(client.clone()),
        |_| {},
    )
    .await
    .expect("start");
    tasks.keep(keeper);
    serve(&mut tasks, listener, tls);
    let before = secret(&client, &ns).await;
    let old_ca = cert(&data(&before, "ca.crt"));
    let old_leaf = data(&before, "tls.crt");

    let rotation = {
        let (client, cfg) = (client.clone(), cfg.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            certs::rotate_now(client, &cfg).await
        })
    };
    let seen = {
        let old_subject = old_ca.subject.clone();
        load(
            &client,
            &ns,
            &vwc,
            port,
            Duration::from_secs(30),
            move |o| {
                o.issuers.len() >= 2 && o.issuers.iter().any(|i| *i != old_subject) && o.ok > 20
            },
        )
        .await
    };
    tokio::time::timeout(Duration::from_secs(20), rotation)
        .await
        .expect("rotate_now finished")
        .expect("rotate_now task")
        .expect("rotate_now");
    assert!(
        seen.failures.is_empty(),
        "failed requests: {:#?}",
        seen.failures
    );

    let after = secret(&client, &ns).await;
    let new_ca = cert(&data(&after, "ca.crt"));
    assert_ne!(new_ca.der, old_ca.der, "a new CA");
    let bundle = parse_pem_certs(&data(&after, "ca-bundle.crt")).unwrap();
    let ders: Vec<&[u8]> = bundle.iter().map(|c| c.der.as_slice()).collect();
    assert_eq!(
        ders,
        [old_ca.der.as_slice(), new_ca.der.as_slice()],
        "bundle = previous + new CA"
    );
    let leaf = cert(&data(&after, "tls.crt"));
    assert_ne!(data(&after, "tls.crt"), old_leaf);
    assert_eq!(leaf.issuer, new_ca.subject);
    assert_eq!(
        seen.issuers,
        [old_ca.subject.clone(), new_ca.subject.clone()]
    );
    assert_eq!(
        seen.leaves.last(),
        Some(&leaf.der),
        "the server presents the new certificate"
    );
    assert_eq!(
        webhook_ca_bundles(&client, &vwc).await,
        Some(vec![Some(data(&after, "ca-bundle.crt")); 2])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_reloaded_when_a_complete_new_pair_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let now = chrono::Utc::now().timestamp();
    let names = ["localhost".to_owned()];
    let ips = [IpAddr::from([127, 0, 0, 1])];
    let issue = |ca: &CertifiedPem, hours: u64| {
        certs::issue_serving_cert(ca, &names, &ips, Duration::from_secs(hours * 3600), now).unwrap()
    };
    let ca_a = certs::generate_ca(Duration::from_secs(100 * 3600), now).unwrap();
    let ca_b = certs::generate_ca(Duration::from_secs(100 * 3600), now).unwrap();
    let (a, b) = (issue(&ca_a, 10), issue(&ca_b, 20));
    std::fs::write(&cert_file, &a.cert_pem).unwrap();
    std::fs::write(&key_file, &a.key_pem).unwrap();

    let mut tasks = Tasks::default();
    let (expiries, on_expiry) = recorder();
    let (tls, keeper) = certs::start(
        CertSource::Files {
            cert: cert_file.clone(),
            key: key_file.clone(),
        },
        None,
        on_expiry,
    )
    .await
    .expect("start from files");
    tasks.keep(keeper);
    let (l, port) = listener();
    serve(&mut tasks, l, tls);

    let leaf_a = cert(a.cert_pem.as_bytes());
    let leaf_b = cert(b.cert_pem.as_bytes());
    let (_, presented) = https_get_async(port, ca_a.cert_pem.clone().into_bytes())
        .await
        .expect("HTTPS with CA a");
    assert_eq!(presented, leaf_a.der);
    https_get_async(port, ca_b.cert_pem.clone().into_bytes())
        .await
        .expect_err("CA b does not trust the first certificate");
    assert_eq!(*expiries.lock().unwrap(), vec![leaf_a.not_after]);

    // Half-written: the new certificate next to the old key. The old pair keeps serving.
    std::fs::write(&cert_file, &b.cert_pem).unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, presented) = https_get_async(port, ca_a.cert_pem.clone().into_bytes())
            .await
            .expect("old certificate still served while the pair is incomplete");
        assert_eq!(presented, leaf_a.der);
    }

    // Complete: within a few seconds the server presents the new certificate.
    std::fs::write(&key_file, &b.key_pem).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((_, presented)) = https_get_async(port, ca_b.cert_pem.clone().into_bytes()).await
        {
            assert_eq!(presented, leaf_b.der);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    https_get_async(port, ca_a.cert_pem.clone().into_bytes())
        .await
        .expect_err("CA a no longer trusts the server");
    assert_eq!(
        *expiries.lock().unwrap(),
        vec![leaf_a.not_after, leaf_b.not_after]
    );

    // Garbage never replaces working material.
    std::fs::write(&cert_file, "-----BEGIN CERTIFICATE-----\ntruncated").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, presented) = https_get_async(port, ca_b.cert_pem.clone().into_bytes())
        .await
        .expect("still served");
    assert_eq!(presented, leaf_b.der);
}
