//! Cloud Storage for tests: fake-gcs-server (built by `hack/gcs`) behind a small front.
//!
//! fake-gcs-server v1.56.1 keeps buckets and answers the JSON API's bucket calls, but drops
//! `iamConfiguration`, `encryption` and `logging` from the metadata it stores and has no `/iam`
//! endpoint (checked against the binary). The front forwards every bucket read to the emulator,
//! so bucket existence, 404s and a stopped emulator come from it, and adds what the test sets
//! with [`Gcs::set_metadata`] and [`Gcs::set_iam`] in the documented JSON shapes of the real API
//! (the Bucket resource; Buckets: getIamPolicy). The front is the only hand-written part; it
//! speaks plain HTTP, as the emulator and `STORAGE_EMULATOR_HOST` do.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::{free_port, repo_root};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Extras {
    metadata: HashMap<String, Value>,
    iam: HashMap<String, Value>,
}

#[derive(Clone)]
struct Front {
    emulator: String,
    extras: Arc<Mutex<Extras>>,
    http: reqwest::Client,
}

pub struct Gcs {
    emulator_port: u16,
    front_port: u16,
    exe: PathBuf,
    dir: PathBuf,
    extras: Arc<Mutex<Extras>>,
    server: Mutex<Option<Child>>,
}

fn fake_gcs_server() -> &'static Path {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let exe = EXE.get_or_init(|| {
        let script = repo_root().join("hack/gcs");
        let out = Command::new(&script)
            .arg("path")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("run {} path: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!("`hack/gcs path` failed ({})", out.status));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    match exe {
        Ok(p) => p,
        Err(e) => panic!("fake-gcs-server is not available: {e}"),
    }
}

impl Gcs {
    pub fn start() -> Gcs {
        let exe = fake_gcs_server().to_path_buf();
        let emulator_port = free_port();
        let dir = repo_root()
            .join("target/tmp/gcs")
            .join(format!("{}-{emulator_port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let extras = Arc::new(Mutex::new(Extras::default()));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let front_port = listener.local_addr().unwrap().port();
        let front = Front {
            emulator: format!("http://127.0.0.1:{emulator_port}"),
            extras: extras.clone(),
            http: reqwest::Client::new(),
        };
        let app = axum::Router::new()
            .route("/storage/v1/b/{bucket}", get(bucket))
            .route("/storage/v1/b/{bucket}/iam", get(iam))
            .with_state(front);
        // Its own thread and runtime, so that sync and async tests can both use it; it serves
        // until the test binary exits.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app).await;
            });
        });
        let gcs = Gcs {
            emulator_port,
            front_port,
            exe,
            dir,
            extras,
            server: Mutex::new(None),
        };
        gcs.launch()
            .unwrap_or_else(|e| panic!("fake-gcs-server did not start: {e}"));
        gcs
    }

    /// `STORAGE_EMULATOR_HOST` for onus.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![(
            "STORAGE_EMULATOR_HOST",
            format!("http://127.0.0.1:{}", self.front_port),
        )]
    }

    /// Create a bucket in the emulator.
    pub fn create_bucket(&self, name: &str) {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                &json!({"name": name}).to_string(),
                &format!(
                    "http://127.0.0.1:{}/storage/v1/b?project=test",
                    self.emulator_port
                ),
            ])
            .output()
            .unwrap();
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            code,
            "200",
            "create bucket {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Fields the emulator drops (`iamConfiguration`, `encryption`, `logging`), as the Bucket
    /// resource spells them.
    pub fn set_metadata(&self, bucket: &str, fields: Value) {
        self.extras
            .lock()
            .unwrap()
            .metadata
            .insert(bucket.into(), fields);
    }

    /// The bucket's IAM policy (`bindings`), as Buckets: getIamPolicy returns it.
    pub fn set_iam(&self, bucket: &str, bindings: Value) {
        self.extras
            .lock()
            .unwrap()
            .iam
            .insert(bucket.into(), bindings);
    }

    pub fn stop(&self) {
        if let Some(mut c) = self.server.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the emulator again on the same port, empty (the front keeps what was set with
    /// [`Gcs::set_metadata`] and [`Gcs::set_iam`]).
    pub fn start_again(&self) {
        self.stop();
        super::relaunch("fake-gcs-server", || self.launch());
    }

    fn launch(&self) -> Result<(), String> {
        let log = std::fs::File::create(self.dir.join("fake-gcs-server.log"))
            .map_err(|e| e.to_string())?;
        let port = self.emulator_port.to_string();
        let child = Command::new(&self.exe)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port,
                "-backend",
                "memory",
                "-external-url",
                &format!("http://127.0.0.1:{port}"),
                "-log-level",
                "warn",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.exe.display()))?;
        let mut child = child;
        super::watchdog("fake-gcs-server", &mut child)?;
        *self.server.lock().unwrap() = Some(child);
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.emulator_port));
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("not listening on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Gcs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The emulator's answer for the bucket, or the front's error when the emulator is gone.
async fn emulator_bucket(front: &Front, bucket: &str) -> Result<Value, Response> {
    let rsp = front
        .http
        .get(format!("{}/storage/v1/b/{bucket}", front.emulator))
        .send()
        .await
        .map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": {"code": 503, "message": format!("backend: {e}")}})),
            )
                .into_response()
        })?;
    let status = StatusCode::from_u16(rsp.status().as_u16()).unwrap();
    let body: Value = rsp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err((status, axum::Json(body)).into_response());
    }
    Ok(body)
}

async fn bucket(State(front): State<Front>, UrlPath(name): UrlPath<String>) -> Response {
    let mut meta = match emulator_bucket(&front, &name).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if let (Some(m), Some(Value::Object(extra))) = (
        meta.as_object_mut(),
        front.extras.lock().unwrap().metadata.get(&name).cloned(),
    ) {
        m.extend(extra);
    }
    axum::Json(meta).into_response()
}

async fn iam(State(front): State<Front>, UrlPath(name): UrlPath<String>) -> Response {
    if let Err(r) = emulator_bucket(&front, &name).await {
        return r;
    }
    let bindings = front
        .extras
        .lock()
        .unwrap()
        .iam
        .get(&name)
        .cloned()
        .unwrap_or_else(|| {
            json!([{"role": "roles/storage.legacyBucketOwner", "members": ["projectOwner:test"]}])
        });
    axum::Json(json!({
        "kind": "storage#policy",
        "resourceId": format!("projects/_/buckets/{name}"),
        "version": 1,
        "etag": "CAE=",
        "bindings": bindings,
    }))
    .into_response()
}
