//! azurite (a local Azure Storage blob service), for tests: [`Azurite::start`].
//!
//! The first start in a test binary runs `hack/azurite install` (a no-op when the pinned
//! azurite is cached under `${ONUS_AZURITE_CACHE:-~/.cache/onus/azurite}`; a cold install takes
//! about 20 s). Each [`Azurite`] is one `azurite-blob` process on a free loopback port, in memory,
//! with the storage account [`ACCOUNT`] (key [`KEY`]) and its log under
//! `target/tmp/azurite/<test binary>-<pid>-<n>/`.
//!
//! - The process stops when the `Azurite` is dropped, and when the test binary dies (a watchdog
//!   shell polls the test process).
//! - [`Azurite::stop`] / [`Azurite::start_again`] take the service down and bring it back on the
//!   same port; azurite keeps its state in memory, so what was seeded is gone after a restart.
//! - [`Azurite::env`] points onus at it; [`Azurite::container`] makes SDK clients for seeding.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use azure_core::http::{ClientOptions, Url};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};

use super::{free_port, repo_root};

/// The emulator's storage account and its key (base64), made up for the tests.
pub const ACCOUNT: &str = "onusshop";
pub const KEY: &str = "b251cy10ZXN0LWtleS1mb3ItYXp1cml0ZS1vbmx5LW5vdC1hLXNlY3JldA==";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Azurite {
    port: u16,
    dir: PathBuf,
    exe: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    server: Option<Child>,
    watchdog: Option<Child>,
}

/// The azurite-blob executable, installed once per test binary.
fn azurite_blob() -> &'static Path {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let exe = EXE.get_or_init(|| {
        let script = repo_root().join("hack/azurite");
        let out = Command::new(&script)
            .arg("path")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("run {} path: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("`hack/azurite path` failed ({})", out.status));
        }
        let exe = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if exe.is_file() {
            Ok(exe)
        } else {
            Err(format!(
                "`hack/azurite path` printed {}, not a file",
                exe.display()
            ))
        }
    });
    match exe {
        Ok(p) => p,
        Err(e) => panic!("azurite is not available: {e}"),
    }
}

fn instance_dir() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".into());
    repo_root().join("target/tmp/azurite").join(format!(
        "{binary}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

impl Azurite {
    pub fn start() -> Azurite {
        let exe = azurite_blob().to_path_buf();
        let mut last = String::new();
        for _ in 0..5 {
            let a = Azurite {
                port: free_port(),
                dir: instance_dir(),
                exe: exe.clone(),
                state: Mutex::new(State::default()),
            };
            match a.launch() {
                Ok(()) => return a,
                Err(e) => last = e,
            }
        }
        panic!("azurite did not start: {last}")
    }

    /// The blob endpoint template onus takes (`ONUS_AZURE_BLOB_ENDPOINT`).
    pub fn endpoint_template(&self) -> String {
        format!("http://127.0.0.1:{}/{{account}}", self.port)
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ONUS_AZURE_BLOB_ENDPOINT", self.endpoint_template()),
            ("ONUS_AZURE_STORAGE_KEY", KEY.to_string()),
        ]
    }

    /// An SDK client for a container of [`ACCOUNT`], signed with its key.
    pub fn container(&self, name: &str) -> BlobContainerClient {
        let url = Url::parse(&format!("http://127.0.0.1:{}/{ACCOUNT}/{name}/", self.port)).unwrap();
        let mut client_options = ClientOptions::default();
        client_options
            .per_try_policies
            .push(onus::cloud::azure::shared_key_policy(ACCOUNT, KEY).unwrap());
        BlobContainerClient::new(
            url,
            None,
            Some(BlobContainerClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .unwrap()
    }

    pub fn is_running(&self) -> bool {
        let mut st = self.lock();
        match st.server.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn stop(&self) {
        let mut st = self.lock();
        for child in [st.watchdog.take(), st.server.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start again on the same port, empty.
    pub fn start_again(&self) {
        self.stop();
        super::relaunch(&format!("azurite on port {}", self.port), || self.launch());
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("azurite.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn launch(&self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("create {}: {e}", self.dir.display()))?;
        let log_path = self.dir.join("azurite.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("open {}: {e}", log_path.display()))?;
        let mut server = Command::new(&self.exe)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &self.port.to_string(),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableProductStyleUrl",
            ])
            .env("AZURITE_ACCOUNTS", format!("{ACCOUNT}:{KEY}"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.exe.display()))?;
        let watchdog = super::watchdog("azurite", &mut server)?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Ok(Some(status)) = server.try_wait() {
                return Err(format!(
                    "azurite exited ({status}) on port {}: {}",
                    self.port,
                    self.log_tail(20)
                ));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = server.kill();
                return Err(format!(
                    "azurite did not listen on {addr} within {READY_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut st = self.lock();
        st.server = Some(server);
        st.watchdog = Some(watchdog);
        Ok(())
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}
