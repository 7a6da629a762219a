//! `onus run`: watches, the admission webhook and the metrics endpoint, in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch as channel;

use kube::runtime::events::{Recorder, Reporter};

use crate::controller;
use crate::metrics::{CONTENT_TYPE, Metrics, ScopeLabels};
use crate::watch;
use crate::webhook::certs::{self, CertSource};
use crate::webhook::{WebhookState, router};

/// The HTTPS server for `/validate`, with TCP_NODELAY and every wait bounded: the TLS handshake (10 s, the
/// acceptor's default), the first request on a connection, each request's headers (which also
/// ends idle keep-alive connections), the body (in the handler), and HTTP/2 streams per
/// connection.
fn webhook_server(
    addr: SocketAddr,
    tls: axum_server::tls_rustls::RustlsConfig,
    state: WebhookState,
    handle: axum_server::Handle<SocketAddr>,
) -> impl std::future::Future<Output = std::io::Result<()>> {
    // TCP_NODELAY: a review's answer is one small write; without it, Nagle's algorithm and the
    // client's delayed ACK can hold an answer back for tens of milliseconds.
    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .acceptor(axum_server::accept::NoDelayAcceptor::new());
    let mut server = axum_server::bind(addr)
        .acceptor(acceptor)
        .handle(handle)
        .first_request_timeout(Duration::from_secs(10));
    let http = server.http_builder();
    http.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    http.http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(crate::webhook::MAX_IN_FLIGHT as u32)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    server.serve(router(state).into_make_service())
}

/// Why `onus run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    // Not a `source`: kube's messages already carry their causes, and chains would repeat them.
    #[error("kubernetes client: {0}")]
    Kube(kube::Error),
    #[error("certificates: {0}")]
    Certs(#[from] certs::CertError),
    #[error("{what} on {addr}: {source}")]
    Serve {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0} stopped unexpectedly")]
    Stopped(&'static str),
    #[error("a subsystem panicked: {0}")]
    Panicked(String),
}

impl From<kube::Error> for RunError {
    fn from(e: kube::Error) -> Self {
        RunError::Kube(e)
    }
}

pub struct RunOptions {
    pub webhook_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub certs: CertSource,
    pub rediscover_every: Duration,
    /// Audited postures older than this count as not audited.
    pub posture_max_age: Duration,
    /// After SIGTERM: how long to keep serving while `/readyz` says 503, so the API server's
    /// endpoints drop this replica before it stops answering.
    pub shutdown_grace: Duration,
    /// The reconcile loop; `None` runs the webhook alone.
    pub controller: Option<ControllerOptions>,
}

pub struct ControllerOptions {
    /// onus's namespace, where the leader Lease lives.
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub interval: Duration,
    pub posture_ttl: Duration,
    pub concurrency: usize,
    /// How long a `CloudResource` that nothing uses is kept.
    pub unused_grace: Duration,
}

/// How long a watch may fail, or the API server stay silent, before `/readyz` says so.
const UNHEALTHY_AFTER: Duration = Duration::from_secs(30);
/// How often the API server is asked whether it still answers.
const PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Health {
    ready: Arc<std::sync::atomic::AtomicBool>,
    /// SIGTERM received: still serving, no longer ready.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    metrics: Metrics,
    snapshots: channel::Receiver<Arc<crate::index::Snapshot>>,
    watches: Arc<watch::WatchHealth>,
    lag: Arc<watch::IndexLag>,
    /// When the API server last answered a probe.
    api_answered: Arc<std::sync::Mutex<std::time::Instant>>,
}

impl Health {
    /// Why this replica should not get reviews, if it should not: watches not synced, a watch
    /// failing, or an API server that stopped answering (a hung server fails no watch, it only
    /// goes silent, and the snapshot goes stale).
    fn not_ready(&self) -> Option<String> {
        if self.stopping.load(Ordering::Acquire) {
            return Some("shutting down".into());
        }
        if !self.ready.load(Ordering::Acquire) {
            return Some("watches not synced yet".into());
        }
        let silent = self
            .api_answered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed();
        if silent > UNHEALTHY_AFTER {
            return Some(format!(
                "the API server has not answered for {} s: decisions would come from a stale snapshot",
                silent.as_secs()
            ));
        }
        let lag = self.lag.current();
        if lag > UNHEALTHY_AFTER {
            return Some(format!(
                "the index is {} s behind the watches (more changes than it can keep up with): decisions would come from a stale snapshot",
                lag.as_secs()
            ));
        }
        let failing = self.watches.failing_longer_than(UNHEALTHY_AFTER);
        if !failing.is_empty() {
            let list: Vec<String> = failing
                .iter()
                .map(|(k, d)| format!("{k} ({} s)", d.as_secs()))
                .collect();
            return Some(format!("watches failing: {}", list.join(", ")));
        }
        None
    }
}

/// Ask the API server for its version every few seconds; record when it last answered.
async fn probe_api_server(
    client: kube::Client,
    answered: Arc<std::sync::Mutex<std::time::Instant>>,
) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(PROBE_EVERY, client.apiserver_version()).await {
            Ok(Ok(_)) => {
                *answered.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now()
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "the API server did not answer the probe"),
            Err(_) => {
                tracing::warn!("the API server did not answer the probe within {PROBE_EVERY:?}")
            }
        }
    }
}

pub async fn run(opts: RunOptions) -> Result<(), RunError> {
    let client = kube::Client::try_default().await?;
    let metrics = Metrics::new();

    // Every replica judges from its own watches, postures included (`CloudResource` objects that
    // the leader publishes): no replica knows anything the others cannot see.
    let (watches, watch_loop) =
        watch::start(client.clone(), opts.posture_max_age, opts.rediscover_every);

    let lease = opts
        .controller
        .as_ref()
        .map(|c| (c.namespace.clone(), c.identity.clone()));
    let controller_options = opts.controller;
    let (controller_client, controller_metrics) = (client.clone(), metrics.clone());
    let (snapshots, synced) = (watches.snapshots.clone(), watches.ready.clone());
    let controller = async move {
        let Some(c) = controller_options else {
            return std::future::pending::<()>().await;
        };
        let (client, metrics) = (controller_client, controller_metrics);
        let (lead_tx, lead_rx) = channel::channel(false);
        let election = controller::campaign(
            client.clone(),
            controller::LeaderConfig {
                namespace: c.namespace.clone(),
                name: "onus-controller".into(),
                identity: c.identity.clone(),
                lease_duration: c.lease_duration,
                renew_every: c.lease_duration / 3,
            },
            lead_tx,
        );
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "onus".into(),
                instance: Some(c.identity.clone()),
            },
        );
        let ctx = Arc::new(controller::Context::new(
            client.clone(),
            metrics.clone(),
            snapshots,
            recorder,
            controller::AuditSettings {
                posture_ttl: c.posture_ttl,
                concurrency: c.concurrency,
                unused_grace: c.unused_grace,
            },
            lead_rx.clone(),
        ));
        // Reconcile only once the watches have listed everything.
        while !synced.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::join!(
            election,
            controller::run(ctx.clone(), lead_rx, c.interval),
            controller::record(ctx)
        );
    };

    let expiry_gauge = metrics.certificate_expiry.clone();
    let (tls, cert_loop) = certs::start(opts.certs, Some(client.clone()), move |t| {
        expiry_gauge.set(t);
    })
    .await?;

    let mut state = WebhookState::new(
        watches.snapshots.clone(),
        metrics.clone(),
        watches.ready.clone(),
        client.clone(),
    );
    state.onus_user = own_user(&client).await.map(Arc::from);
    let server = axum_server::Handle::new();
    let webhook = webhook_server(opts.webhook_addr, tls, state, server.clone());
    let api_answered = Arc::new(std::sync::Mutex::new(std::time::Instant::now()));
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let health = Health {
        stopping: stopping.clone(),
        ready: watches.ready.clone(),
        metrics: metrics.clone(),
        snapshots: watches.snapshots.clone(),
        watches: watches.health.clone(),
        lag: watches.lag.clone(),
        api_answered: api_answered.clone(),
    };
    let probe = probe_api_server(client.clone(), api_answered);
    let metrics_app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready_handler))
        .with_state(health);
    let metrics_listener = tokio::net::TcpListener::bind(opts.metrics_addr)
        .await
        .map_err(|source| RunError::Serve {
            what: "metrics",
            addr: opts.metrics_addr,
            source,
        })?;
    tracing::info!(webhook = %opts.webhook_addr, metrics = %opts.metrics_addr, "onus running");

    // Baseline gauges follow the snapshots.
    let mut snaps = watches.snapshots.clone();
    let gauges = metrics.clone();
    let baseline_gauges = async move {
        while snaps.changed().await.is_ok() {
            let counts = snaps.borrow().counts;
            for (scope, state, n) in [
                ("namespaced", "valid", counts.namespaced),
                ("cluster", "valid", counts.cluster),
                ("namespaced", "invalid", counts.invalid_namespaced),
                ("cluster", "invalid", counts.invalid_cluster),
            ] {
                gauges
                    .baselines
                    .get_or_create(&ScopeLabels {
                        scope: scope.into(),
                        state: state.into(),
                    })
                    .set(n as i64);
            }
        }
    };

    // Each subsystem is a task of its own: none can starve another, and one that ends (they all
    // run until shutdown) ends the process with its name and error.
    let webhook_addr = opts.webhook_addr;
    let metrics_addr = opts.metrics_addr;
    let mut tasks: tokio::task::JoinSet<(&'static str, Result<(), RunError>)> =
        tokio::task::JoinSet::new();
    let webhook_task = tasks
        .spawn(async move {
            let r = webhook.await.map_err(|source| RunError::Serve {
                what: "webhook",
                addr: webhook_addr,
                source,
            });
            ("webhook", r)
        })
        .id();
    tasks.spawn(async move {
        let r = axum::serve(metrics_listener, metrics_app)
            .await
            .map_err(|source| RunError::Serve {
                what: "metrics",
                addr: metrics_addr,
                source,
            });
        ("metrics", r)
    });
    tasks.spawn(async move { ("certificates", cert_loop.await.map_err(RunError::from)) });
    tasks.spawn(async move {
        watch_loop.await;
        ("watches", Ok(()))
    });
    tasks.spawn(async move {
        baseline_gauges.await;
        ("snapshots", Ok(()))
    });
    tasks.spawn(async move {
        probe.await;
        ("API server probe", Ok(()))
    });
    let controller_task = tasks.spawn(async move {
        controller.await;
        ("controller", Ok(()))
    });

    tokio::select! {
        Some(ended) = tasks.join_next() => return Err(ended_early(ended)),
        _ = shutdown_signal() => {}
    }

    // Shutdown: say "not ready" but keep answering for the grace period, so reviews already
    // routed here (and those sent before the endpoints update) get an answer; stop the
    // controller and give the Lease up; then stop accepting, let the reviews in flight finish,
    // and exit.
    stopping.store(true, Ordering::Release);
    tracing::info!(grace = ?opts.shutdown_grace, "asked to stop (SIGTERM or SIGINT): not ready; serving until the grace period ends");
    controller_task.abort();
    let controller_id = controller_task.id();
    // Wait for the controller to be gone before releasing: no renewal may follow the release.
    // Anything else ending first is a failure, as before the signal.
    match tasks.join_next_with_id().await {
        Some(Err(e)) if e.id() == controller_id => {}
        Some(Ok((id, _))) if id == controller_id => {}
        Some(ended) => return Err(ended_early(ended.map(|(_, r)| r))),
        None => {}
    }
    if let Some((namespace, identity)) = &lease {
        controller::release(client.clone(), namespace, "onus-controller", identity).await;
    }
    let grace = tokio::time::sleep(opts.shutdown_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            Some(ended) = tasks.join_next_with_id() => match ended {
                Ok((id, (_, r))) if id == webhook_task => return r,
                // Other subsystems may end now; the webhook still answers.
                Ok((_, (what, Err(e)))) => tracing::warn!(%what, error = %e, "stopped while shutting down"),
                _ => {}
            },
            () = &mut grace => break,
        }
    }
    server.graceful_shutdown(Some(Duration::from_secs(10)));
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(ended) = tasks.join_next_with_id().await {
            if matches!(&ended, Ok((id, _)) if *id == webhook_task) {
                return;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("reviews still in flight after 15 s; stopping anyway");
    }
    tasks.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// A subsystem ended before shutdown: why, as the process's error.
fn ended_early(
    ended: Result<(&'static str, Result<(), RunError>), tokio::task::JoinError>,
) -> RunError {
    match ended {
        Ok((_, Err(e))) => e,
        Ok((what, Ok(()))) => RunError::Stopped(what),
        Err(e) if e.is_panic() => RunError::Panicked(e.to_string()),
        Err(_) => RunError::Stopped("a subsystem"),
    }
}

/// The user this process writes as, from a SelfSubjectReview: the webhook lets only it change
/// what broken baselines fall back to. Unknown (an API server without the API, or one that
/// refuses): then nobody may change it, onus included, and the log says why.
async fn own_user(client: &kube::Client) -> Option<String> {
    use k8s_openapi::api::authentication::v1::SelfSubjectReview;
    let api: kube::Api<SelfSubjectReview> = kube::Api::all(client.clone());
    match api
        .create(
            &kube::api::PostParams::default(),
            &SelfSubjectReview::default(),
        )
        .await
    {
        Ok(r) => {
            let user = r.status.and_then(|s| s.user_info).and_then(|u| u.username);
            tracing::info!(user = ?user, "onus writes as this user");
            user
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot find out which user onus writes as (SelfSubjectReview); status.lastValidSpec writes will be refused for every user");
            None
        }
    }
}

async fn metrics_handler(State(h): State<Health>) -> impl IntoResponse {
    // An age grows with the clock, not with events: read it when scraped.
    let oldest = h.snapshots.borrow().oldest_audit;
    let age = oldest.map_or(0, |at| (chrono::Utc::now() - at).num_seconds().max(0));
    h.metrics.posture_oldest_age.set(age);
    h.metrics.ready.set(i64::from(h.not_ready().is_none()));
    h.metrics.index_lag.set(h.lag.current().as_secs_f64());
    h.metrics
        .watches_failing
        .set(h.watches.failing_longer_than(Duration::ZERO).len() as i64);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], h.metrics.render())
}

async fn ready_handler(State(h): State<Health>) -> impl IntoResponse {
    match h.not_ready() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Paths for file-based certificates.
pub fn file_certs(cert: PathBuf, key: PathBuf) -> CertSource {
    CertSource::Files { cert, key }
}
