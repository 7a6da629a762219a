//! The admission webhook against the real kube-apiserver: `onus run` serves `/validate`, a
//! ValidatingWebhookConfiguration routes reviews to it by URL, and `kubectl apply` shows the
//! denials and warnings a user would see.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::endpoints::{Endpoints, Replica};
use support::onus::{Cleanup, Onus, eventually};
use support::{ControlPlane, control_plane};

/// Webhook configurations are cluster-wide: run these tests one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn install_crds(cp: &ControlPlane) {
    support::onus::install_crds(cp, &[]);
}

/// Start onus with self-managed certificates for 127.0.0.1, register the webhook by URL, and
/// wait until the API server has a caBundle for it.
fn start_onus<'a>(
    cp: &'a ControlPlane,
    failure_policy: &str,
    extra: &[&str],
) -> (Onus, Cleanup<'a>) {
    let onus_ns = cp.create_namespace("onus");
    let onus = Onus::start(cp, &strs(&replica_args(&onus_ns, extra)));
    let cleanup = register(cp, &onus_ns, &onus.url(), failure_policy);
    (onus, cleanup)
}

/// Flags of a replica in `onus_ns` that keeps the caBundle of `onus-{onus_ns}` up to date.
fn replica_args(onus_ns: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        format!("--namespace={onus_ns}"),
        format!("--webhook-config=onus-{onus_ns}"),
        "--cert-host=127.0.0.1".to_string(),
        "--cert-check-interval=1s".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Register the webhook `onus-{onus_ns}` at `url` and wait until it has a caBundle.
fn register<'a>(
    cp: &'a ControlPlane,
    onus_ns: &str,
    url: &str,
    failure_policy: &str,
) -> Cleanup<'a> {
    let vwc_name = format!("onus-{onus_ns}");
    let vwc = std::process::Command::new(env!("CARGO_BIN_EXE_onus"))
        .args([
            "webhook-config",
            "--url",
            url,
            "--name",
            &vwc_name,
            "--failure-policy",
            failure_policy,
            "--exclude-namespace",
            onus_ns,
        ])
        .output()
        .unwrap();
    assert!(
        vwc.status.success(),
        "{}",
        String::from_utf8_lossy(&vwc.stderr)
    );
    let cleanup = Cleanup {
        cp,
        args: vec!["validatingwebhookconfiguration".into(), vwc_name.clone()],
    };
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        &String::from_utf8(vwc.stdout).unwrap(),
    )
    .expect_success();
    eventually(
        Duration::from_secs(30),
        "caBundle in the webhook configuration",
        || {
            let out = cp.kubectl(&[
                "get",
                "validatingwebhookconfiguration",
                &vwc_name,
                "-o",
                "jsonpath={.webhooks[0].clientConfig.caBundle}",
            ]);
            (out.success() && out.stdout.len() > 100).then_some(())
        },
    );
    cleanup
}

fn baseline(cp: &ControlPlane, ns: &str, action: &str, extra: &str) {
    let rb = format!(
        "apiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws-iaas, namespace: {ns}}}\nspec:\n  provider: aws\n  serviceModel: iaas\n  action: {action}\n  controls:\n  - {{id: application.image-provenance, parameters: {{requireDigest: false}}}}\n{extra}"
    );
    cp.kubectl_stdin(&["apply", "-f", "-"], &rb)
        .expect_success();
}

fn deployment(ns: &str, name: &str, env: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/app:1.0\n        env: {env}\n"
    )
}

const KEYS: &str =
    "[{name: AWS_SECRET_ACCESS_KEY, valueFrom: {secretKeyRef: {name: keys, key: secret}}}]";

/// Apply until the webhook has seen the baseline (watch latency): returns the first output that
/// `done` accepts.
fn apply_until(
    cp: &ControlPlane,
    yaml: &str,
    extra: &[&str],
    what: &str,
    done: impl Fn(&support::Output) -> bool,
) -> support::Output {
    let mut args = vec!["apply", "-f", "-"];
    args.extend(extra);
    eventually(Duration::from_secs(30), what, || {
        let out = cp.kubectl_stdin(&args, yaml);
        done(&out).then_some(out)
    })
}

#[test]
fn deny_warn_and_allow_through_kubectl() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let (onus, _vwc) = start_onus(cp, "Fail", &[]);

    let deny_ns = cp.create_namespace("deny");
    let warn_ns = cp.create_namespace("warn");
    let open_ns = cp.create_namespace("nobaseline");
    baseline(cp, &deny_ns, "Deny", "");
    baseline(cp, &warn_ns, "Warn", "");

    // Static keys in a Deny namespace: refused, with the control id in stderr.
    let out = apply_until(
        cp,
        &deployment(&deny_ns, "keys", KEYS),
        &[],
        "a denial",
        |o| !o.success(),
    );
    assert!(out.stderr.contains("denied the request"), "{out}");
    assert!(out.stderr.contains("identity.workload-identity"), "{out}");
    assert!(out.stderr.contains("fix:"), "{out}");
    // --dry-run=server gives the same verdict and stores nothing.
    let dry = cp.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &deployment(&deny_ns, "keys", KEYS),
    );
    assert!(
        dry.expect_failure().contains("identity.workload-identity"),
        "{dry}"
    );
    assert!(
        !cp.kubectl(&["get", "deployment", "keys", "-n", &deny_ns])
            .success()
    );

    // The same in a Warn namespace: accepted, kubectl prints the warning.
    let out = apply_until(
        cp,
        &deployment(&warn_ns, "keys", KEYS),
        &[],
        "a warning",
        |o| o.stderr.contains("Warning:"),
    );
    assert!(out.success(), "{out}");
    assert!(out.stderr.contains("identity.workload-identity"), "{out}");

    // A clean Deployment passes in the Deny namespace.
    cp.kubectl_stdin(&["apply", "-f", "-"], &deployment(&deny_ns, "clean", "[]"))
        .expect_success();
    let dry = cp.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &deployment(&deny_ns, "clean2", "[]"),
    );
    dry.expect_success();

    // No baseline, and kube-system: untouched.
    cp.kubectl_stdin(&["apply", "-f", "-"], &deployment(&open_ns, "keys", KEYS))
        .expect_success();
    let ks = cp.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &deployment("kube-system", "keys", KEYS),
    );
    ks.expect_success();
    assert!(!ks.stderr.contains("Warning"), "{ks}");

    // A LoadBalancer open on port 22.
    let svc = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: ssh, namespace: {deny_ns}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: x}}\n  ports: [{{port: 22}}]\n"
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &svc);
    assert!(out.expect_failure().contains("network.exposure"), "{out}");
    assert!(out.stderr.contains("port 22"), "{out}");

    // An ACK Bucket with a public ACL, once the ACK CRD is installed.
    support::onus::install_crds(cp, &["s3.services.k8s.aws_buckets.yaml"]);
    let bucket = format!(
        "apiVersion: s3.services.k8s.aws/v1alpha1\nkind: Bucket\nmetadata: {{name: assets, namespace: {deny_ns}}}\nspec:\n  name: acme-assets\n  acl: public-read\n"
    );
    let out = apply_until(cp, &bucket, &[], "the bucket denial", |o| {
        !o.success() && o.stderr.contains("denied")
    });
    assert!(
        out.stderr.contains("data.public-access") && out.stderr.contains("s3://acme-assets"),
        "{out}"
    );
    assert!(out.stderr.contains("put-public-access-block"), "{out}");

    // Metrics counted what happened.
    let m = onus.metrics();
    assert!(m.contains("onus_admission_requests_total{kind=\"Deployment\",operation=\"CREATE\",decision=\"deny\"}"), "{m}");
    assert!(m.contains("onus_admission_violations_total{control=\"identity.workload-identity\",action=\"Deny\"}"), "{m}");
    assert!(
        m.contains("onus_admission_duration_seconds_bucket{le=\"0.001\"}"),
        "{m}"
    );
    assert!(
        m.contains("onus_baselines{scope=\"namespaced\",state=\"valid\"}"),
        "{m}"
    );
    assert!(
        m.contains("onus_webhook_certificate_expiry_timestamp_seconds"),
        "{m}"
    );
    assert_eq!(onus.http_get("/healthz").map(|r| r.0), Some(200));
}

#[test]
fn existing_failing_objects_can_be_labelled_scaled_and_deleted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let (_onus, _vwc) = start_onus(cp, "Fail", &[]);
    let ns = cp.create_namespace("existing");
    // Created before the namespace had a baseline, with a finalizer so deletion waits for it.
    let failing = deployment(&ns, "legacy", KEYS).replace(
        "metadata: {name: legacy,",
        "metadata: {finalizers: [example.com/cleanup], name: legacy,",
    );
    cp.kubectl_stdin(&["apply", "-f", "-"], &failing)
        .expect_success();
    baseline(cp, &ns, "Deny", "");
    // The webhook has the baseline once a new failing object is refused.
    apply_until(cp, &deployment(&ns, "new", KEYS), &[], "a denial", |o| {
        !o.success()
    });

    // A label, a scale: allowed, with a warning that the old gap is still open.
    let out = cp.kubectl(&["label", "deployment", "legacy", "-n", &ns, "team=payments"]);
    out.expect_success();
    assert!(
        out.stderr.contains("already failing before this update"),
        "{out}"
    );
    cp.kubectl(&["scale", "deployment", "legacy", "-n", &ns, "--replicas=3"])
        .expect_success();
    // Making it worse is refused, and the message tells the old gap from the new one.
    let worse = failing.replace(
        "    spec:\n      containers:",
        "    spec:\n      hostNetwork: true\n      containers:",
    );
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], &worse);
    let err = out.expect_failure();
    assert!(err.contains("host-os.isolation"), "{out}");
    assert!(
        err.contains("(already failing before this update)"),
        "{out}"
    );
    // Delete: the object waits on its finalizer; removing it is an UPDATE that must pass.
    cp.kubectl(&["delete", "deployment", "legacy", "-n", &ns, "--wait=false"])
        .expect_success();
    cp.kubectl(&[
        "patch",
        "deployment",
        "legacy",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .expect_success();
    eventually(Duration::from_secs(20), "the Deployment to be gone", || {
        (!cp.kubectl(&["get", "deployment", "legacy", "-n", &ns])
            .success())
        .then_some(())
    });
}

/// Open `n` TLS connections to the webhook, finish each handshake, send nothing, and report
/// how many the server has closed after `wait` seconds (a Python script: ssl from the standard
/// library).
fn idle_connections_closed(port: u16, ca: &std::path::Path, n: usize, wait: u64) -> usize {
    let script = r#"
import socket, ssl, sys, time
port, ca, n, wait = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    conns.append(ctx.wrap_socket(s, server_hostname="127.0.0.1"))
time.sleep(wait)
closed = 0
for c in conns:
    c.settimeout(0.5)
    try:
        if c.recv(1) == b"":
            closed += 1
    except (ssl.SSLError, ConnectionError, OSError):
        closed += 1
print(closed)
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            &port.to_string(),
            ca.to_str().unwrap(),
            &n.to_string(),
            &wait.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn idle_connections_are_closed_and_reviews_keep_flowing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let (onus, ns) = support::onus::start_webhook_only(cp, "onus-idle");
    let ok = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"DELETE","kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
    // Fetch the CA once (post_review writes it next to the control plane).
    assert_eq!(onus.post_review(cp, &ns, ok.as_bytes()).0, "200");
    let ca = cp.dir().join(format!("ca-{}.pem", onus.webhook_port));
    let port = onus.webhook_port;
    let ca2 = ca.clone();
    let idle = std::thread::spawn(move || idle_connections_closed(port, &ca2, 500, 15));
    // While 500 connections sit idle, reviews are answered.
    std::thread::sleep(Duration::from_secs(3));
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let (code, body) = onus.post_review(cp, &ns, ok.as_bytes());
        assert_eq!(code, "200", "{body}");
        eprintln!(
            "review answered in {:?} with 500 idle connections open",
            started.elapsed()
        );
    }
    let closed = idle.join().unwrap();
    assert_eq!(closed, 500, "idle connections still open after 15 s");
}

#[test]
fn a_namespace_its_baseline_and_a_workload_applied_together_are_judged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let (onus, _vwc) = start_onus(cp, "Fail", &[]);
    let mut refused = 0;
    for i in 0..15 {
        let ns = format!("together-{}-{i}", support::random_suffix());
        let yaml = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\napiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws-iaas, namespace: {ns}}}\nspec: {{provider: aws, serviceModel: iaas, action: Deny}}\n---\n{}",
            deployment(&ns, "keys", KEYS)
        );
        let out = cp.kubectl_stdin(&["apply", "-f", "-"], &yaml);
        if !out.success() && out.stderr.contains("identity.workload-identity") {
            refused += 1;
        }
        let _ = cp.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    }
    assert_eq!(refused, 15, "the workload must be judged every time");
    assert!(
        onus.metrics()
            .contains("onus_namespace_reads_total{outcome=\"found\"}"),
        "{}",
        onus.metrics()
    );
}

/// Resumes a paused process when dropped, also when the test fails.
struct Paused(i32);

impl Paused {
    fn new(pid: i32) -> Paused {
        signal(pid, "STOP");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn readiness_follows_the_api_server() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let (onus, _) = support::onus::start_webhook_only(cp, "onus-ready");
    assert_eq!(onus.http_get("/readyz").map(|r| r.0), Some(200));
    assert!(onus.metrics().contains("onus_ready 1"));
    // A hung API server fails no watch: it goes silent. onus must stop calling itself ready.
    let paused = Paused::new(cp.apiserver_pid());
    let (code, body) = eventually(Duration::from_secs(60), "/readyz to turn 503", || {
        onus.http_get("/readyz").filter(|(c, _)| *c == 503)
    });
    assert_eq!(code, 503);
    assert!(body.contains("has not answered"), "{body}");
    assert!(onus.metrics().contains("onus_ready 0"));
    drop(paused);
    eventually(Duration::from_secs(30), "/readyz to recover", || {
        onus.http_get("/readyz").filter(|(c, _)| *c == 200)
    });
}

#[test]
fn an_expired_exception_no_longer_exempts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let (_onus, _vwc) = start_onus(cp, "Fail", &[]);
    let ns = cp.create_namespace("exceptions");
    let exception = |expires: &str| {
        format!(
            "  exceptions:\n  - control: identity.workload-identity\n    resources: [{{kind: Deployment, name: legacy-*}}]\n    justification: vendor tool needs keys until Q3\n    expires: \"{expires}\"\n"
        )
    };
    baseline(cp, &ns, "Deny", &exception("2099-01-01T00:00:00Z"));
    // While the exception holds, the Deployment is admitted.
    let out = apply_until(
        cp,
        &deployment(&ns, "legacy-sync", KEYS),
        &["--dry-run=server"],
        "the exception to apply",
        |o| o.success(),
    );
    assert!(out.success());
    // Expired: refused again, and the message says so.
    baseline(cp, &ns, "Deny", &exception("2020-01-01T00:00:00Z"));
    let out = apply_until(
        cp,
        &deployment(&ns, "legacy-sync", KEYS),
        &["--dry-run=server"],
        "the expired exception",
        |o| !o.success(),
    );
    assert!(out.stderr.contains("exception expired"), "{out}");
}

#[test]
fn malformed_bodies_get_a_clear_4xx() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let ns = cp.create_namespace("onus-raw");
    let onus = Onus::start(
        cp,
        &[
            &format!("--namespace={ns}"),
            "--cert-host=127.0.0.1",
            "--webhook-config=none",
        ],
    );
    let post = |body: &[u8]| onus.post_review(cp, &ns, body);
    let (code, body) = post(b"this is not json");
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("not JSON"), "{body}");
    let (code, body) = post(br#"{"apiVersion":"v1","kind":"Pod"}"#);
    assert_eq!(code, "400");
    assert!(body.contains("AdmissionReview"), "{body}");
    let (code, body) = post(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#);
    assert_eq!(code, "400");
    assert!(body.contains("no request"), "{body}");
    let big = format!(
        r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"x","operation":"CREATE","object":{{"data":"{}"}}}}}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    // Refused from its Content-Length, before the body is read: an HTTP/1.1 client that waits
    // for the go-ahead (Expect: 100-continue) gets the 413 and never uploads the 3 MiB. (Over
    // HTTP/2 the same 413 is followed by a reset of the stream, which curl reports as an error;
    // either way nothing past the limit is read.)
    let (code, body) = onus.post_review_with(
        cp,
        &ns,
        big.as_bytes(),
        &[
            "--http1.1",
            "-H",
            "Expect: 100-continue",
            "--expect100-timeout",
            "30",
        ],
    );
    assert_eq!(code, "413", "{body}");
    assert!(body.contains("larger than"), "{body}");
    // Still serving after all that.
    let ok = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"DELETE","kind":{"group":"","version":"v1","kind":"Pod"}}}"#;
    let (code, body) = post(ok.as_bytes());
    assert_eq!(code, "200");
    assert!(body.contains("\"allowed\":true"), "{body}");
    assert!(onus.metrics().contains("decision=\"invalid\""));
}

#[test]
fn certificate_rotation_under_load_fails_no_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    // Certificates that live 20 s and rotate when 14 s remain: a rotation every ~6 s.
    let (onus, _vwc) = start_onus(
        cp,
        "Fail",
        &["--cert-validity=20s", "--cert-rotate-before=14s"],
    );
    let ns = cp.create_namespace("rotation");
    baseline(cp, &ns, "Deny", "");
    let serial_of = || {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("echo | openssl s_client -connect 127.0.0.1:{} 2>/dev/null | openssl x509 -noout -serial", onus.webhook_port))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let first = serial_of();
    let mut serials = vec![first.clone()];
    let started = std::time::Instant::now();
    let (mut ok, mut failed) = (0, Vec::new());
    let mut i = 0;
    while (serials.len() < 3 || i < 40) && started.elapsed() < Duration::from_secs(180) {
        // Alternate a clean object (must be admitted) and a bad one (must be denied by onus,
        // not failed by a TLS error).
        let (yaml, want_ok) = if i % 2 == 0 {
            (deployment(&ns, "clean", "[]"), true)
        } else {
            (deployment(&ns, "keys", KEYS), false)
        };
        let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &yaml);
        let right = if want_ok {
            out.success()
        } else {
            !out.success() && out.stderr.contains("identity.workload-identity")
        };
        if right {
            ok += 1;
        } else {
            failed.push(out.to_string());
        }
        if i % 5 == 0 {
            let s = serial_of();
            if !s.is_empty() && !serials.contains(&s) {
                serials.push(s);
            }
        }
        i += 1;
    }
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across rotations; first:\n{}\nonus log:\n{}",
        failed.len(),
        ok + failed.len(),
        failed[0],
        onus.logs()
    );
    assert!(ok >= 40, "only {ok} requests made in 180 s");
    assert!(
        serials.len() >= 3,
        "expected at least two rotations, saw serials {serials:?}"
    );
}

/// A review onus always allows (a DELETE of a Pod).
const DELETE_REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"DELETE","kind":{"group":"","version":"v1","kind":"Pod"}}}"#;

/// A rolling restart of two replicas behind a Service, under a steady stream of applies through
/// the API server with `failurePolicy: Fail`: every apply gets onus's own answer, none fails.
/// (No kubelet runs here: `Endpoints` plays kube-proxy and the readiness probe.)
#[test]
fn a_rolling_restart_fails_no_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cp = control_plane();
    install_crds(cp);
    let onus_ns = cp.create_namespace("onus");
    let endpoints = Endpoints::start();
    let args = replica_args(&onus_ns, &["--webhook-only", "--shutdown-grace=3s"]);
    let start = || {
        let o = Onus::start(cp, &strs(&args));
        let r = Replica {
            webhook_port: o.webhook_port,
            metrics_port: o.metrics_port,
        };
        endpoints.add(r);
        (o, r)
    };
    let (mut a, ra) = start();
    let (mut b, rb) = start();
    let _vwc = register(cp, &onus_ns, &endpoints.url(), "Fail");
    let ns = cp.create_namespace("rolling");
    baseline(cp, &ns, "Deny", "");
    apply_until(
        cp,
        &deployment(&ns, "probe", KEYS),
        &["--dry-run=server"],
        "a denial",
        |o| !o.success(),
    );

    let stop = std::sync::atomic::AtomicBool::new(false);
    // (should be denied, what kubectl said)
    let seen: Mutex<Vec<(bool, support::Output)>> = Mutex::default();
    let mut stopped = Vec::new();
    let direct: Mutex<Vec<(String, String)>> = Mutex::default();
    std::thread::scope(|s| {
        for client in 0..2 {
            let (stop, seen, ns) = (&stop, &seen, &ns);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let deny = i % 2 == 1;
                    let name = format!("app-{client}-{i}");
                    let yaml = deployment(ns, &name, if deny { KEYS } else { "[]" });
                    let out = cp.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &yaml);
                    seen.lock().unwrap().push((deny, out));
                    i += 1;
                }
            });
        }
        // Another API server (an HA control plane has several) opens a connection per review.
        let direct = &direct;
        let (stop_ref, url) = (&stop, endpoints.url());
        s.spawn(move || {
            let ca = cp.dir().join(format!("ca-rolling-{}.pem", endpoints.port));
            support::onus::write_ca(cp, &onus_ns, &ca);
            let body = cp
                .dir()
                .join(format!("review-rolling-{}.json", endpoints.port));
            std::fs::write(&body, DELETE_REVIEW).unwrap();
            while !stop_ref.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = support::onus::post_review_to(&url, &ca, &body, &[]);
                direct.lock().unwrap().push(answer);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        // Roll: a new replica is ready before an old one is told to stop, twice.
        std::thread::sleep(Duration::from_secs(2));
        for (old, r) in [(&mut a, ra), (&mut b, rb)] {
            let (new, _) = start();
            stopped.push(new);
            std::thread::sleep(Duration::from_secs(1));
            let status = old.terminate(Duration::from_secs(40));
            endpoints.remove(r);
            assert!(
                status.is_some_and(|s| s.success()),
                "a replica stops cleanly on SIGTERM: {status:?}\n{}",
                old.logs()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let seen = seen.into_inner().unwrap();
    let failed: Vec<String> = seen
        .iter()
        .filter(|(deny, out)| {
            if *deny {
                out.success() || !out.stderr.contains("identity.workload-identity")
            } else {
                !out.success()
            }
        })
        .map(|(deny, out)| format!("expected {}: {out}", if *deny { "deny" } else { "allow" }))
        .collect();
    assert!(
        seen.len() >= 20,
        "a steady stream of applies during the restart: {}",
        seen.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} applies did not get onus's answer:\n{}",
        failed.len(),
        seen.len(),
        failed.join("\n")
    );
    // A stopping replica keeps listening until the endpoints have dropped it, and finishes
    // what it accepted: clients that do not retry (not every caller is an API server that
    // retries a refused connection) saw no failure either.
    let direct = direct.into_inner().unwrap();
    let bad: Vec<&(String, String)> = direct
        .iter()
        .filter(|(code, body)| code != "200" || !body.contains("\"allowed\":true"))
        .collect();
    assert!(direct.len() >= 50, "{} direct reviews", direct.len());
    assert!(
        bad.is_empty(),
        "{} of {} direct reviews failed: {bad:?}",
        bad.len(),
        direct.len()
    );
    assert_eq!(
        endpoints.refused.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "connections routed to a replica that no longer listened"
    );
    assert!(
        a.logs().contains("SIGTERM") && b.logs().contains("stopped"),
        "{}",
        b.logs()
    );
    drop(stopped);
}
