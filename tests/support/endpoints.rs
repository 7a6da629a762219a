//! A Service's endpoints as kube-proxy serves them, for replicas that run as local processes
//! (no kubelet runs here): new connections go round-robin to the replicas whose `/readyz` last
//! answered 200, polled like a readiness probe; connections already open stay with their
//! replica until either side closes them.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One replica: its webhook port and the port its `/readyz` answers on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Replica {
    pub webhook_port: u16,
    pub metrics_port: u16,
}

pub struct Endpoints {
    pub port: u16,
    replicas: Arc<Mutex<Vec<(Replica, bool)>>>,
    stop: Arc<AtomicBool>,
    /// Connections refused because no replica was ready.
    pub refused: Arc<AtomicUsize>,
}

/// How often readiness is probed (a kubelet's `periodSeconds`, shortened for a test).
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl Endpoints {
    pub fn start() -> Endpoints {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let replicas: Arc<Mutex<Vec<(Replica, bool)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(AtomicUsize::new(0));
        {
            let (replicas, stop) = (replicas.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let list: Vec<Replica> =
                        replicas.lock().unwrap().iter().map(|(r, _)| *r).collect();
                    for r in list {
                        let ready = ready(r.metrics_port);
                        if let Some(e) = replicas.lock().unwrap().iter_mut().find(|(x, _)| *x == r)
                        {
                            e.1 = ready;
                        }
                    }
                    std::thread::sleep(PROBE_EVERY);
                }
            });
        }
        {
            let (replicas, refused) = (replicas.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut next = 0usize;
                for client in listener.incoming().flatten() {
                    let ready: Vec<Replica> = replicas
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, ok)| *ok)
                        .map(|(r, _)| *r)
                        .collect();
                    if ready.is_empty() {
                        refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    next = next.wrapping_add(1);
                    let target = ready[next % ready.len()];
                    if let Ok(upstream) = TcpStream::connect(("127.0.0.1", target.webhook_port)) {
                        relay(client, upstream);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        Endpoints {
            port,
            replicas,
            stop,
            refused,
        }
    }

    /// Add a replica; it gets connections once its `/readyz` says so.
    pub fn add(&self, r: Replica) {
        self.replicas.lock().unwrap().push((r, false));
    }

    /// Remove a replica (its pod is gone).
    pub fn remove(&self, r: Replica) {
        self.replicas.lock().unwrap().retain(|(x, _)| *x != r);
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/validate", self.port)
    }
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn ready(metrics_port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", metrics_port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

/// Copy bytes both ways until either side closes; then close the other.
fn relay(a: TcpStream, b: TcpStream) {
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        });
    };
    let (a2, b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    pipe(a, b);
    pipe(b2, a2);
}
