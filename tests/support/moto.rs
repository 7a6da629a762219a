//! moto (a local AWS) in server mode, for tests: [`Moto::start`].
//!
//! The first start in a test binary runs `hack/moto install` (a no-op when the pinned
//! `moto[server]` venv is cached under `${ONUS_MOTO_CACHE:-~/.cache/onus/moto}`; a cold install
//! takes about a minute and shows its progress on stderr). Each [`Moto`] is one `moto_server`
//! process on a free loopback port, with its own directory under
//! `target/tmp/moto/<test binary>-<pid>-<n>/` holding `moto.log` and the request recording.
//!
//! - The process stops when the `Moto` is dropped, and also when the test binary dies in any
//!   way (a small watchdog shell polls the test process and kills moto when it is gone), so a
//!   `Moto` kept in a `static` is cleaned up too.
//! - [`Moto::stop`] / [`Moto::restart`] take the server down and bring it back on the same
//!   port. moto keeps its state in memory only, so every request made while recording is on
//!   (the default; see [`Moto::set_recording`]) is replayed into the new process, with the same
//!   random seed: buckets, roles, security groups (same ids) and trails come back as they were.
//!   Turn recording off once seeding is done, so that audit reads are not replayed.
//! - Point clients at it with [`Moto::env`] (for child processes such as `onus run`), or
//!   [`Moto::sdk_config`] and [`Moto::s3`] for seeding from the test.
//!
//! Methods block (process start, readiness polls of up to a few seconds): from an async test,
//! use a multi-thread runtime if other tasks must make progress meanwhile.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{free_port, repo_root};

/// Random seed given to every moto process, so that ids are the same after a restart.
const SEED: u32 = 20261128;
/// How long a fresh moto_server may take to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Access key and secret moto accepts (it accepts any).
pub const ACCESS_KEY: &str = "testing";
pub const SECRET_KEY: &str = "testing";
pub const REGION: &str = "us-east-1";
/// The account moto puts resources in for the default credentials.
pub const ACCOUNT: &str = "123456789012";

/// A running (or stopped) moto server.
#[derive(Debug)]
pub struct Moto {
    port: u16,
    dir: PathBuf,
    exe: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    server: Option<Child>,
    watchdog: Option<Child>,
    recording: bool,
}

/// The moto_server executable, installed once per test binary.
fn moto_server() -> &'static Path {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let exe = EXE.get_or_init(|| {
        let script = repo_root().join("hack/moto");
        let out = Command::new(&script)
            .arg("path")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("run {} path: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("`hack/moto path` failed ({})", out.status));
        }
        let exe = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if exe.is_file() {
            Ok(exe)
        } else {
            Err(format!(
                "`hack/moto path` printed {}, not a file",
                exe.display()
            ))
        }
    });
    match exe {
        Ok(p) => p,
        Err(e) => panic!("moto is not available: {e}"),
    }
}

impl Moto {
    /// Installs moto if needed and starts a server on a free loopback port. Panics when it
    /// cannot (with the end of moto's log).
    pub fn start() -> Moto {
        let exe = moto_server().to_path_buf();
        let dir = instance_dir();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let moto = Moto {
                port,
                dir: dir.clone(),
                exe: exe.clone(),
                state: Mutex::new(State {
                    server: None,
                    watchdog: None,
                    recording: true,
                }),
            };
            match moto.launch() {
                Ok(()) => {
                    moto.post(&format!("/moto-api/seed?a={SEED}"))
                        .unwrap_or_else(|e| panic!("seed moto: {e}"));
                    moto.post("/moto-api/recorder/start-recording")
                        .unwrap_or_else(|e| panic!("start moto's recorder: {e}"));
                    return moto;
                }
                Err(e) => last = e,
            }
        }
        panic!("moto_server did not start: {last}")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The instance directory (`moto.log`, `recording.jsonl`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Environment that points the AWS SDKs and CLIs at this server: `AWS_ENDPOINT_URL`,
    /// static `testing` keys, `AWS_REGION=us-east-1`, and no instance metadata lookups.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ]
    }

    /// Sets [`Moto::env`] on a command (and drops session tokens and profiles of the caller).
    pub fn apply_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for var in ["AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"] {
            cmd.env_remove(var);
        }
        cmd.envs(self.env())
    }

    /// An SDK configuration for this server that reads nothing from the environment.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "moto",
            ))
            .load()
            .await
    }

    /// An S3 client for this server (path-style addressing, as a loopback endpoint needs).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Whether requests are recorded for replay after [`Moto::restart`] (on at start).
    pub fn set_recording(&self, on: bool) {
        let path = if on {
            "/moto-api/recorder/start-recording"
        } else {
            "/moto-api/recorder/stop-recording"
        };
        self.post(path)
            .unwrap_or_else(|e| panic!("moto recorder: {e}"));
        self.lock().recording = on;
    }

    /// Is the server process running?
    pub fn is_running(&self) -> bool {
        let mut st = self.lock();
        match st.server.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server (SIGKILL: moto keeps nothing on disk but the recording). The port is
    /// free afterwards; calls to it are refused.
    pub fn stop(&self) {
        let mut st = self.lock();
        if let Some(mut w) = st.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(mut s) = st.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }

    /// Stops the server if it runs, starts it again on the same port and replays the recorded
    /// requests: the state is as before the stop. Panics when it cannot.
    pub fn restart(&self) {
        self.stop();
        super::relaunch(&format!("moto_server on port {}", self.port), || {
            self.launch()
        });
        self.post(&format!("/moto-api/seed?a={SEED}"))
            .unwrap_or_else(|e| panic!("seed moto: {e}"));
        if self.dir.join("recording.jsonl").is_file() {
            self.post("/moto-api/recorder/replay-recording")
                .unwrap_or_else(|e| panic!("replay moto's recording: {e}"));
        }
        if self.lock().recording {
            self.post("/moto-api/recorder/start-recording")
                .unwrap_or_else(|e| panic!("start moto's recorder: {e}"));
        }
    }

    /// The last `lines` lines of moto's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("moto.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts moto_server and its watchdog, and waits until it answers.
    fn launch(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("create {}: {e}", self.dir.display()))?;
        let log_path = self.dir.join("moto.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut server = Command::new(&self.exe)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", self.dir.join("recording.jsonl"))
            .env_remove("MOTO_ENABLE_RECORDING")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.exe.display()))?;
        let watchdog = super::watchdog("moto", &mut server)?;
        {
            let mut st = self.lock();
            st.server = Some(server);
            st.watchdog = Some(watchdog);
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            // (Our process must still run: another server may have taken the port.)
            if self.answers() && self.is_running() {
                return Ok(());
            }
            let exited = {
                let mut st = self.lock();
                st.server.as_mut().and_then(|c| c.try_wait().ok().flatten())
            };
            if let Some(status) = exited {
                self.stop();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let log = log.get(log_start as usize..).unwrap_or("");
                let why = if log.contains("Address already in use") {
                    "address in use".to_string()
                } else {
                    format!("exited ({status})")
                };
                return Err(format!(
                    "moto_server on port {} {why}:\n{}",
                    self.port,
                    tail(log, 15)
                ));
            }
            if Instant::now() >= deadline {
                self.stop();
                return Err(format!(
                    "moto_server on port {} not answering after {READY_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log_tail(15)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Does the server answer HTTP?
    fn answers(&self) -> bool {
        self.request("GET", "/moto-api/")
            .is_ok_and(|(status, _)| status > 0)
    }

    fn post(&self, path: &str) -> Result<String, String> {
        let (status, body) = self.request("POST", path)?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(format!("POST {path}: HTTP {status}: {body}"))
        }
    }

    /// A minimal HTTP/1.1 request without a body; returns status and body.
    fn request(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        // Replaying a long recording takes a while.
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .map_err(|e| format!("{method} {path}: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let text = String::from_utf8_lossy(&buf);
        let status = text
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("{method} {path}: not an HTTP answer: {text:.200}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `target/tmp/moto/<test binary>-<pid>-<n>`, after removing directories of test binaries
/// that are gone.
fn instance_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto");
    if N.load(Ordering::Relaxed) == 0
        && let Ok(entries) = std::fs::read_dir(&parent)
    {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !Path::new("/proc").join(pid.to_string()).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let stem = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".into());
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!("{stem}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// Buckets as tests seed them.

/// A bucket as AWS creates one today: ACLs disabled (Object Ownership `BucketOwnerEnforced`).
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    create_bucket_with(
        s3,
        bucket,
        aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced,
    )
    .await;
}

/// A bucket that takes ACLs (Object Ownership `ObjectWriter`), as a public ACL needs.
pub async fn create_acl_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    create_bucket_with(s3, bucket, aws_sdk_s3::types::ObjectOwnership::ObjectWriter).await;
}

pub async fn create_bucket_with(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    ownership: aws_sdk_s3::types::ObjectOwnership,
) {
    s3.create_bucket()
        .bucket(bucket)
        .object_ownership(ownership)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
}

/// `aws s3api put-bucket-ownership-controls ... BucketOwnerEnforced`: ACLs off.
pub async fn disable_acls(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.put_bucket_ownership_controls()
        .bucket(bucket)
        .ownership_controls(
            aws_sdk_s3::types::OwnershipControls::builder()
                .rules(
                    aws_sdk_s3::types::OwnershipControlsRule::builder()
                        .object_ownership(aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("ownership controls");
}
