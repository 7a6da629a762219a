//! `onus run` as a child process of a test, against the test control plane.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ControlPlane;

pub use super::free_port;

/// A running `onus run`; killed when dropped, also when the test panics.
pub struct Onus {
    child: Child,
    pub webhook_port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
}

impl Onus {
    /// Start `onus run` on free loopback ports with `extra` flags, and wait for `/readyz`.
    pub fn start(cp: &ControlPlane, extra: &[&str]) -> Onus {
        Onus::start_with_env(cp, extra, &[])
    }

    /// Like `start`, with extra environment. AWS calls go to a closed loopback port unless `env`
    /// points them elsewhere (moto): tests never reach a real cloud endpoint or the instance
    /// metadata address.
    pub fn start_with_env(cp: &ControlPlane, extra: &[&str], env: &[(&str, &str)]) -> Onus {
        let webhook_port = free_port();
        let metrics_port = free_port();
        let log = cp.dir().join(format!("onus-{webhook_port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_onus"))
            .arg("run")
            .arg(format!("--webhook-addr=127.0.0.1:{webhook_port}"))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics_port}"))
            .args(extra)
            .env("KUBECONFIG", cp.kubeconfig())
            .env("RUST_LOG", "info,onus=debug")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            // Azure calls go to a closed port too, signed with a made-up key, unless `env` says.
            .env("ONUS_AZURE_BLOB_ENDPOINT", "http://127.0.0.1:9/{account}")
            .env("ONUS_AZURE_STORAGE_KEY", "a2V5")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn onus run");
        let mut onus = Onus {
            child,
            webhook_port,
            metrics_port,
            log,
        };
        onus.wait_ready(Duration::from_secs(60));
        onus
    }

    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("onus run exited with {status}:\n{}", self.logs());
            }
            if self
                .http_get("/readyz")
                .is_some_and(|(code, _)| code == 200)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "onus run not ready after {timeout:?}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Send SIGTERM and wait (at most `timeout`) for the process to exit; its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Plain-HTTP GET on the metrics port: (status code, body).
    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((code, body))
    }

    pub fn metrics(&self) -> String {
        self.http_get("/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/validate", self.webhook_port)
    }

    /// POST `body` to this replica's `/validate` with curl, trusting the CA that self-managed
    /// certificates keep in `onus-webhook-tls` of namespace `onus_ns`: (HTTP code, body).
    pub fn post_review(&self, cp: &ControlPlane, onus_ns: &str, body: &[u8]) -> (String, String) {
        self.post_review_with(cp, onus_ns, body, &[])
    }

    /// `post_review` with extra curl arguments (headers, options).
    pub fn post_review_with(
        &self,
        cp: &ControlPlane,
        onus_ns: &str,
        body: &[u8],
        curl_args: &[&str],
    ) -> (String, String) {
        let ca_file = cp.dir().join(format!("ca-{}.pem", self.webhook_port));
        write_ca(cp, onus_ns, &ca_file);
        let body_file = cp.dir().join(format!("body-{}.bin", self.webhook_port));
        std::fs::write(&body_file, body).unwrap();
        post_review_to(&self.url(), &ca_file, &body_file, curl_args)
    }
}

/// Write the CA of the self-managed certificates in `onus_ns` to `path` (PEM).
pub fn write_ca(cp: &ControlPlane, onus_ns: &str, path: &std::path::Path) {
    std::fs::write(path, decode_base64(&ca_bundle(cp, onus_ns))).unwrap();
}

/// POST the file `body_file` to `url` with curl, trusting `ca_file`, on a new connection:
/// (HTTP code, body); code "000" and curl's message when no HTTP answer came.
pub fn post_review_to(
    url: &str,
    ca_file: &std::path::Path,
    body_file: &std::path::Path,
    curl_args: &[&str],
) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca_file)
        .args([
            "-H",
            "Content-Type: application/json",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .args(curl_args)
        .arg("--data-binary")
        .arg(format!("@{}", body_file.display()))
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    if code == "000" {
        // No HTTP answer: what curl says instead.
        return (
            code.to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
    }
    (code.to_string(), body.to_string())
}

/// The CA that self-managed certificates keep in `onus-webhook-tls` of `onus_ns`, base64 (as a
/// webhook's `caBundle` wants it).
pub fn ca_bundle(cp: &ControlPlane, onus_ns: &str) -> String {
    let ca = cp.kubectl(&[
        "get",
        "secret",
        "onus-webhook-tls",
        "-n",
        onus_ns,
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    ca.expect_success().stdout.trim().to_string()
}

/// `onus run --webhook-only` with self-managed certificates for 127.0.0.1 in a new namespace
/// named after `prefix`, no webhook configuration: (the process, its namespace).
pub fn start_webhook_only(cp: &ControlPlane, prefix: &str) -> (Onus, String) {
    let ns = cp.create_namespace(prefix);
    let onus = Onus::start(
        cp,
        &[
            &format!("--namespace={ns}"),
            "--cert-host=127.0.0.1",
            "--webhook-config=none",
            "--webhook-only",
        ],
    );
    (onus, ns)
}

fn decode_base64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

impl Drop for Onus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Deletes a cluster-scoped object when dropped (webhook configurations must not outlive their
/// server, or they would block the rest of the test binary).
pub struct Cleanup<'a> {
    pub cp: &'a ControlPlane,
    pub args: Vec<String>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let mut args = vec!["delete".to_string(), "--ignore-not-found".to_string()];
        args.extend(self.args.clone());
        let _ = self.cp.kubectl(&args);
    }
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until these CRDs (`plural.group`) are Established.
pub fn wait_established(cp: &ControlPlane, crds: &[&str]) {
    for crd in crds {
        cp.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ])
        .expect_success();
    }
}

/// Apply onus's own CRDs and the named files of `shared/thirdparty-crds/`, and wait for all of them.
pub fn install_crds(cp: &ControlPlane, thirdparty: &[&str]) {
    cp.kubectl_stdin(&["apply", "-f", "-"], &onus::api::crds_yaml().unwrap())
        .expect_success();
    let mut names = vec![
        "responsibilitybaselines.onus.dev".to_string(),
        "clusterresponsibilitybaselines.onus.dev".to_string(),
        "cloudresources.onus.dev".to_string(),
    ];
    for file in thirdparty {
        let path = super::repo_root()
            .join("../shared/thirdparty-crds")
            .join(file);
        cp.kubectl(&["apply", "--server-side", "-f", path.to_str().unwrap()])
            .expect_success();
        // Files are named after the CRD (`group_plural.yaml`): plural.group.
        if let Some((group, plural)) = file.trim_end_matches(".yaml").split_once('_') {
            names.push(format!("{plural}.{group}"));
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    wait_established(cp, &names);
}
