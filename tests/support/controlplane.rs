//! A process-wide test control plane, driven by `hack/controlplane`.
//!
//! The first call to [`control_plane()`] in a test binary runs `hack/controlplane build`
//! (a no-op when the binaries are cached; a cold build takes several minutes and shows its
//! progress on stderr) and `hack/controlplane up DIR` with `ONUS_CONTROLPLANE_OWNER_PID` set to
//! this process. The script's watchdog runs `down DIR` as soon as this process is gone, so the
//! processes stop at the end of the test binary whatever way it ends (Rust runs no destructors
//! for statics, and a panicking test must not leave etcd behind).
//!
//! DIR is `target/tmp/controlplane/<test binary>-<pid>`; directories of earlier runs whose
//! owner is gone and whose processes were stopped are removed, so the logs of the last run stay
//! for inspection. With `ONUS_TEST_CONTROLPLANE_DIR` set, that directory's instance is used (and
//! started if needed) and left running: handy to iterate on one test without a 4 s start.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::repo_root;

/// A running control plane: etcd + kube-apiserver on loopback, client-certificate auth as a
/// member of `system:masters`.
#[derive(Debug)]
pub struct ControlPlane {
    dir: PathBuf,
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane of this test binary, started on first use.
///
/// Panics (in every test that asks) when it cannot be built or started, with the script's
/// output and the tail of the process logs.
pub fn control_plane() -> &'static ControlPlane {
    match CONTROL_PLANE.get_or_init(ControlPlane::start) {
        Ok(cp) => cp,
        Err(e) => panic!("test control plane is not available:\n{e}"),
    }
}

fn script() -> PathBuf {
    repo_root().join("hack/controlplane")
}

impl ControlPlane {
    fn start() -> Result<ControlPlane, String> {
        let (dir, owned) = match std::env::var_os("ONUS_TEST_CONTROLPLANE_DIR") {
            Some(d) if !d.is_empty() => (PathBuf::from(d), false),
            _ => {
                let parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("controlplane");
                remove_stale_dirs(&parent);
                let exe = std::env::current_exe().ok();
                let stem = exe
                    .as_deref()
                    .and_then(Path::file_stem)
                    .and_then(|s| s.to_str())
                    .unwrap_or("test");
                (parent.join(format!("{stem}-{}", std::process::id())), true)
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;

        // Build first, with stderr shown: a cold build takes minutes and says what it does.
        let build = Command::new(script())
            .arg("build")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("run {} build: {e}", script().display()))?;
        if !build.status.success() {
            return Err(format!(
                "`hack/controlplane build` failed ({})",
                build.status
            ));
        }
        let bin_dir = PathBuf::from(String::from_utf8_lossy(&build.stdout).trim());

        let mut up = Command::new(script());
        up.arg("up").arg(&dir).stdin(Stdio::null());
        if owned {
            up.env(
                "ONUS_CONTROLPLANE_OWNER_PID",
                std::process::id().to_string(),
            );
        } else {
            up.env_remove("ONUS_CONTROLPLANE_OWNER_PID");
        }
        let out = up
            .output()
            .map_err(|e| format!("run {} up: {e}", script().display()))?;
        if !out.status.success() {
            return Err(format!(
                "`hack/controlplane up {}` failed ({}):\n{}\n--- etcd.log (tail)\n{}\n--- kube-apiserver.log (tail)\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                tail(&dir.join("etcd.log"), 20),
                tail(&dir.join("kube-apiserver.log"), 20),
            ));
        }
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let kubeconfig = dir.join("kubeconfig");
        if !kubeconfig.is_file() {
            return Err(format!("`up` did not write {}", kubeconfig.display()));
        }
        Ok(ControlPlane {
            dir,
            bin_dir,
            kubeconfig,
        })
    }

    /// The kube-apiserver's process id (to pause it in tests).
    pub fn apiserver_pid(&self) -> i32 {
        std::fs::read_to_string(self.dir.join("kube-apiserver.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .expect("kube-apiserver.pid")
    }

    /// Path of the admin kubeconfig (client certificate in `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The instance directory: kubeconfig, `pki/`, `etcd.log`, `kube-apiserver.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Directory holding `kubectl`, `helm`, `kube-apiserver` and `etcd`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// API server URL, `https://127.0.0.1:PORT`.
    pub fn server(&self) -> String {
        let port = std::fs::read_to_string(self.dir.join("port")).unwrap_or_default();
        format!("https://127.0.0.1:{}", port.trim())
    }

    /// A `Command` for one of the control plane's tools (`kubectl`, `helm`, ...) or any other
    /// program, with `KUBECONFIG` set, the tools first on `PATH`, and kubectl's discovery cache
    /// and helm's cache/config/data kept inside the instance directory.
    pub fn command(&self, program: &str) -> Command {
        let local = self.bin_dir.join(program);
        let mut cmd = Command::new(if local.is_file() {
            local
        } else {
            PathBuf::from(program)
        });
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.bin_dir.clone()];
        paths.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths).expect("PATH entries"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("kube-cache"))
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `kubectl ARGS` against the control plane.
    pub fn kubectl<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.run("kubectl", args, None)
    }

    /// Runs `kubectl ARGS` with `stdin` as its standard input (e.g. `apply -f -`).
    pub fn kubectl_stdin<S: AsRef<str>>(&self, args: &[S], stdin: &str) -> Output {
        self.run("kubectl", args, Some(stdin))
    }

    /// Runs `helm ARGS` against the control plane.
    pub fn helm<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.run("helm", args, None)
    }

    /// Runs `program ARGS` (see [`ControlPlane::command`]) and collects its output.
    pub fn run<S: AsRef<str>>(&self, program: &str, args: &[S], stdin: Option<&str>) -> Output {
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        let mut cmd = self.command(program);
        cmd.args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            let input = input.to_owned();
            // Write from a thread so a large input cannot deadlock against a full stdout pipe.
            std::thread::spawn(move || {
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait for {program}: {e}"));
        Output {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Creates a namespace with a fresh random name (`{prefix}-xxxxxxxx`) through kubectl and
    /// returns the name. Namespaces are not deleted (there is no namespace controller; the
    /// whole etcd goes away with the control plane).
    pub fn create_namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", random_suffix());
        self.kubectl(&["create", "namespace", &name])
            .expect_success();
        name
    }

    /// A `kube::Client` for the control plane, from its kubeconfig.
    pub async fn client(&self) -> kube::Client {
        // kube is built with rustls + aws-lc-rs; install it as the process default in case
        // more than one provider is compiled in (then rustls cannot pick one by itself).
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.kubeconfig.display()));
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("kube config from {}: {e}", self.kubeconfig.display()));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("kube client: {e}"))
    }
}

/// Creates a namespace with a fresh random name (`{prefix}-xxxxxxxx`) through `client`.
pub async fn create_namespace(client: &kube::Client, prefix: &str) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    let name = format!("{prefix}-{}", random_suffix());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": { "onus.test/e2e": "true" } },
    }))
    .expect("namespace object");
    kube::Api::<Namespace>::all(client.clone())
        .create(&kube::api::PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    name
}

/// Eight random lowercase hex digits (valid in DNS-1123 names), distinct within a process.
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// Captured result of a command.
#[derive(Debug, Clone)]
pub struct Output {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the command, status, stdout and stderr unless it succeeded.
    #[track_caller]
    pub fn expect_success(&self) -> &Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panics unless the command failed; returns its stderr.
    #[track_caller]
    pub fn expect_failure(&self) -> &str {
        assert!(!self.success(), "command unexpectedly succeeded: {self}");
        &self.stderr
    }

    /// stdout parsed as JSON (e.g. `-o json`); panics with the output when it is not JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` ({})\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Removes `parent/<name>-<pid>` directories of test binaries that are gone and whose
/// processes were stopped (no pid files left), keeping the parent tidy across runs.
fn remove_stale_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let owner_alive = Path::new("/proc").join(pid.to_string()).exists();
        let stopped = ["etcd.pid", "kube-apiserver.pid", "watchdog.pid"]
            .iter()
            .all(|f| !path.join(f).exists());
        if !owner_alive && stopped {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}
