//! Shared support for integration tests: `mod support;` in a file under `tests/`.
//!
//! - [`control_plane()`]: a real etcd + kube-apiserver (v1.34, built from Go modules by
//!   `hack/controlplane`), started once per test binary and stopped when the binary exits,
//!   also when a test panics or the binary is killed.
//! - [`ControlPlane::kubectl`], [`ControlPlane::helm`]: run the matching CLIs against it.
//! - [`ControlPlane::client`]: a `kube::Client` for it; [`ControlPlane::create_namespace`]
//!   and [`create_namespace`]: a fresh, randomly named namespace per test.
#![allow(dead_code)]

pub mod arm;
pub mod azurite;
pub mod controlplane;
pub mod endpoints;
pub mod gcs;
pub mod moto;
pub mod onus;

#[allow(unused_imports)]
pub use controlplane::{ControlPlane, Output, control_plane, create_namespace, random_suffix};

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tiny server that answers every request with `head` and then `body_len` bytes (chunked,
/// no length), to play a proxy, a portal or a hostile endpoint.
pub fn hostile_server(head: &'static str, body_len: usize) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = c.read(&mut buf);
                let _ = c.write_all(head.as_bytes());
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while sent < body_len {
                    let n = chunk.len().min(body_len - sent);
                    if c.write_all(format!("{n:x}\r\n").as_bytes()).is_err()
                        || c.write_all(&chunk[..n]).is_err()
                        || c.write_all(b"\r\n").is_err()
                    {
                        return;
                    }
                    sent += n;
                }
                let _ = c.write_all(b"0\r\n\r\n");
            });
        }
    });
    port
}

/// Start an emulator again on the port it had: the old socket may linger for a moment, so a
/// launch that fails is retried for 30 s. Panics when it cannot.
pub fn relaunch(what: &str, launch: impl Fn() -> Result<(), String>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match launch() {
            Ok(()) => return,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            Err(e) => panic!("{what} did not restart: {e}"),
        }
    }
}

/// A free loopback port (the kernel picks it; a tiny race with other processes is accepted).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("find a free port: {e}"))
}

/// A shell that kills `server` when this test process is gone (also when it is killed), so
/// that no emulator outlives its tests. When it cannot start, `server` is stopped.
pub fn watchdog(
    name: &str,
    server: &mut std::process::Child,
) -> Result<std::process::Child, String> {
    use std::process::{Command, Stdio};
    let spawned = Command::new("bash")
        .args([
            "-c",
            "while kill -0 \"$1\" 2>/dev/null && kill -0 \"$2\" 2>/dev/null; do sleep 1; done; kill -9 \"$2\" 2>/dev/null; exit 0",
            &format!("{name}-watchdog"),
            &std::process::id().to_string(),
            &server.id().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    spawned.map_err(|e| {
        let _ = server.kill();
        let _ = server.wait();
        format!("spawn the {name} watchdog: {e}")
    })
}
