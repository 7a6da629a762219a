//! The `onus` binary: `check`, `matrix`, `crd` (and `run` once the webhook lands).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use onus::check::{self, CheckOptions, Format, TextOptions};
use onus::compliance::{self, ComplianceFormat, Framework};
use onus::model::{Matrix, Provider, ServiceModel};
use onus::webhook::certs::{CertSource, SelfManagedConfig};

#[derive(Parser)]
#[command(
    name = "onus",
    version,
    about = "Enforce the customer's side of the cloud shared-responsibility model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Evaluate manifests offline. Exit 0: nothing at Deny; 1: a Deny verdict; 2: input error.
    Check {
        /// A file holding baselines (repeatable); baselines may also sit among PATHs.
        #[arg(long = "baseline", value_name = "FILE")]
        baselines: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        output: Format,
        /// Namespace of objects that do not name one.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Also audit the referenced cloud resources live, before judging: AWS (standard
        /// credential chain, AWS_ENDPOINT_URL), Azure (workload identity, service principal or
        /// managed identity; ONUS_AZURE_BLOB_ENDPOINT), GCP (application default credentials;
        /// STORAGE_EMULATOR_HOST). What is not audited within 120 s is an error.
        #[arg(long)]
        live: bool,
        /// Text output: list the compliance requirement ids under each finding (JSON and SARIF
        /// always carry them).
        #[arg(long)]
        show_frameworks: bool,
        /// Files or directories of YAML/JSON manifests.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Which requirements of a compliance framework are the customer's under a provider and
    /// service model, and which onus checks give evidence. With PATHs (judged as `onus check`
    /// judges them), also whether each is met. Exit 0: nothing failing; 1: a requirement
    /// fails; 2: input error.
    Compliance {
        #[arg(long, value_parser = parse_enum::<Framework>)]
        framework: Framework,
        #[arg(long, value_parser = parse_enum::<Provider>)]
        provider: Provider,
        #[arg(long, value_parser = parse_enum::<ServiceModel>)]
        model: ServiceModel,
        #[arg(long, value_enum, default_value_t = ComplianceFormat::Text)]
        output: ComplianceFormat,
        /// A file holding baselines (repeatable), as for `onus check`.
        #[arg(long = "baseline", value_name = "FILE")]
        baselines: Vec<PathBuf>,
        /// With PATHs: namespace of objects that do not name one (default `default`). With
        /// --cluster: only this namespace's Report (default: every namespace).
        #[arg(long)]
        namespace: Option<String>,
        /// Also audit the referenced cloud resources live, as `onus check --live`.
        #[arg(long)]
        live: bool,
        /// Take the evidence from the Reports the controller wrote in the cluster of the
        /// current kubeconfig context, instead of from PATHs.
        #[arg(long, conflicts_with_all = ["paths", "live", "baselines"])]
        cluster: bool,
        /// Files or directories of manifests to take the evidence from.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Print the responsibility matrix for a provider and service model.
    Matrix {
        #[arg(long, value_parser = parse_enum::<Provider>)]
        provider: Provider,
        #[arg(long, value_parser = parse_enum::<ServiceModel>)]
        model: ServiceModel,
        #[arg(long, value_enum, default_value_t = MatrixFormat::Text)]
        output: MatrixFormat,
    },
    /// Print every CRD onus owns, as YAML.
    Crd,
    /// Which workloads use a cloud resource, and what onus found on it (reads the cluster, like
    /// kubectl). ID: s3://NAME, arn:aws:s3:::NAME, a role ARN, sg-..., azblob://ACCOUNT/CONTAINER,
    /// gs://NAME. Exit 0: no failing check; 1: failing checks; 2: no such resource; 3: the
    /// cluster could not be read.
    WhoUses {
        id: String,
        #[arg(long, value_enum, default_value_t = WhoUsesFormat::Text)]
        output: WhoUsesFormat,
    },
    /// Run the watches, the admission webhook and the metrics endpoint.
    Run(Box<RunArgs>),
    /// Print the ValidatingWebhookConfiguration that routes reviews to onus.
    WebhookConfig {
        /// Reach onus at this URL (https://HOST:PORT/validate), e.g. outside the cluster.
        #[arg(long, conflicts_with = "service")]
        url: Option<String>,
        /// Reach onus through this Service, as NAMESPACE/NAME.
        #[arg(long)]
        service: Option<String>,
        /// PEM file whose content goes into caBundle (base64-encoded).
        #[arg(long)]
        ca_bundle_file: Option<PathBuf>,
        #[arg(long, default_value = "onus")]
        name: String,
        /// Fail refuses requests while onus is unreachable; Ignore admits them unjudged.
        #[arg(long, default_value = "Fail", value_parser = ["Fail", "Ignore"])]
        failure_policy: String,
        #[arg(long, default_value_t = 5)]
        timeout_seconds: u8,
        /// Namespaces never sent to onus (repeatable); kube-system is always excluded.
        #[arg(long = "exclude-namespace")]
        exclude_namespaces: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    #[arg(long, default_value = "0.0.0.0:8443")]
    webhook_addr: std::net::SocketAddr,
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Serving certificate (PEM), reloaded when it changes; with --tls-key-file.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Namespace onus runs in (self-managed certificates live there).
    #[arg(long, env = "POD_NAMESPACE", default_value = "onus-system")]
    namespace: String,
    /// Secret that holds self-managed certificates.
    #[arg(long, default_value = "onus-webhook-tls")]
    cert_secret: String,
    /// ValidatingWebhookConfiguration whose caBundle onus keeps current.
    #[arg(long, default_value = "onus")]
    webhook_config: String,
    /// Service name: the serving certificate covers SERVICE.NAMESPACE.svc.
    #[arg(long, default_value = "onus")]
    service: String,
    /// Extra names or IP addresses for the serving certificate (repeatable).
    #[arg(long = "cert-host")]
    cert_hosts: Vec<String>,
    /// Lifetime of self-managed serving certificates, e.g. 90d, 12h, 30s.
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
    cert_validity: std::time::Duration,
    /// Rotate self-managed certificates when less than this remains.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    cert_rotate_before: std::time::Duration,
    /// How often self-managed certificates are checked.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    cert_check_interval: std::time::Duration,
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Serve the webhook only: no reconcile loop, no cloud audits, no leader election.
    #[arg(long)]
    webhook_only: bool,
    /// How often the leader reconciles every namespace with a baseline.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    audit_interval: std::time::Duration,
    /// How long a cloud audit result is trusted before it is read again.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    posture_ttl: std::time::Duration,
    /// Audited postures older than this count as not audited (the baseline's
    /// unknownCloudResources decides); default three times --posture-ttl.
    #[arg(long, value_parser = parse_duration)]
    posture_max_age: Option<std::time::Duration>,
    /// How long a CloudResource that nothing uses or declares is kept before it is deleted.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    unused_grace: std::time::Duration,
    /// Cloud audits running at once.
    #[arg(long, default_value_t = 32)]
    audit_concurrency: usize,
    /// Leader lease duration: a new leader takes over this long after the old one stops renewing.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    lease_duration: std::time::Duration,
    /// After SIGTERM, keep answering this long while /readyz says 503 (endpoints catch up),
    /// then drain the reviews in flight and exit. Keep it below terminationGracePeriodSeconds.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    shutdown_grace: std::time::Duration,
    /// Identity in the leader Lease (defaults to the pod name, else host name and pid).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `90d`, `12h`, `30m`, `45s`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number followed by s, m, h or d"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Clone, Copy, ValueEnum)]
enum WhoUsesFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum MatrixFormat {
    Text,
    Json,
    Markdown,
}

/// Write a command's output. A reader that went away (`onus check ... | head`) ends the
/// output quietly instead of a panic, as other command-line tools do; any other failure (a full
/// disk) exits 2, so a pipeline never takes a missing report for a clean one.
fn emit(text: &str) {
    emit_with(|out| out.write_all(text.as_bytes()));
}

/// [`emit`] for output written as it is made.
fn emit_with(write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = write(&mut out).and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("onus: error: writing the output: {e}");
        std::process::exit(2);
    }
}

fn parse_enum<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, String> {
    s.parse()
}

/// Admission reviews and `onus check` allocate many small JSON values; mimalloc halves what
/// glibc's allocator costs there (measured with `cargo bench --bench evaluate -- webhook`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // One TLS crypto provider for every client (kube, the cloud SDKs, reqwest).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // clap exits 0 for --help/--version and 2 for usage errors, as the contract wants.
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("onus: {}", onus::text::printable(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check {
            baselines,
            output,
            namespace,
            live,
            show_frameworks,
            paths,
        } => {
            let opts = CheckOptions {
                baselines,
                paths,
                namespace,
                now: chrono::Utc::now(),
                live,
            };
            let report = check::run(&opts);
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let text = TextOptions {
                colour,
                frameworks: show_frameworks,
            };
            emit_with(|out| check::write(&report, output, text, out));
            for e in &report.errors {
                eprintln!("onus: error: {}", onus::text::printable(&e.to_string()));
            }
            Ok(ExitCode::from(report.exit_code() as u8))
        }
        Command::Compliance {
            framework,
            provider,
            model,
            output,
            baselines,
            namespace,
            live,
            cluster,
            paths,
        } => {
            if output == ComplianceFormat::OscalAssessmentResults && paths.is_empty() && !cluster {
                eprintln!(
                    "onus: error: --output oscal-assessment-results needs PATHs to judge, or --cluster"
                );
                return Ok(ExitCode::from(2));
            }
            let now = chrono::Utc::now();
            let evidence: Option<Vec<onus::engine::Verdict>> = if cluster {
                let runtime =
                    tokio::runtime::Runtime::new().context("starting the async runtime")?;
                match runtime.block_on(read_reports(namespace.as_deref())) {
                    Ok(vs) => Some(vs),
                    Err(e) => {
                        eprintln!("onus: error: {}", onus::text::printable(&format!("{e:#}")));
                        return Ok(ExitCode::from(2));
                    }
                }
            } else if paths.is_empty() {
                None
            } else {
                let r = check::run(&CheckOptions {
                    baselines,
                    paths,
                    namespace: namespace.unwrap_or_else(|| "default".into()),
                    now,
                    live,
                });
                for e in &r.errors {
                    eprintln!("onus: error: {}", onus::text::printable(&e.to_string()));
                }
                if !r.errors.is_empty() {
                    return Ok(ExitCode::from(2));
                }
                Some(r.verdicts)
            };
            if let Some(vs) = &evidence {
                // Verdicts count for the provider and model of their baseline only; say so when
                // none is the one asked about, or every row reads "no evidence" unexplained.
                let judged: std::collections::BTreeSet<String> = vs
                    .iter()
                    .map(|v| format!("{} {}", v.provider, v.service_model))
                    .collect();
                if judged.is_empty() {
                    eprintln!("onus: warning: the evidence holds no verdicts");
                } else if !judged.contains(&format!("{provider} {model}")) {
                    eprintln!(
                        "onus: warning: no baseline in the evidence is {provider} {model} (found: {}); its verdicts are not evidence here",
                        judged.into_iter().collect::<Vec<_>>().join(", ")
                    );
                }
            }
            let rows =
                match compliance::requirements(framework, provider, model, evidence.as_deref()) {
                    Ok(rows) => rows,
                    Err(e) => {
                        eprintln!("onus: error: {}", onus::text::printable(&e.to_string()));
                        return Ok(ExitCode::from(2));
                    }
                };
            let heading = compliance::Heading {
                framework,
                provider,
                model,
            };
            let verdicts = evidence.as_deref().unwrap_or(&[]);
            emit(&compliance::render(&rows, &heading, output, verdicts, now));
            let failing = rows
                .iter()
                .any(|r| r.status == Some(compliance::RequirementStatus::Failing));
            Ok(ExitCode::from(u8::from(failing)))
        }
        Command::Matrix {
            provider,
            model,
            output,
        } => {
            emit(&render_matrix(
                &Matrix::resolve(provider, model, &[]),
                output,
            )?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd => {
            emit(&onus::api::crds_yaml().context("rendering CRDs")?);
            Ok(ExitCode::SUCCESS)
        }
        Command::WhoUses { id, output } => {
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            let found = match runtime.block_on(onus::who_uses::lookup(&id)) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("onus: {e}");
                    return Ok(ExitCode::from(e.exit_code()));
                }
            };
            match output {
                WhoUsesFormat::Text => emit(&onus::who_uses::render_text(&found)),
                WhoUsesFormat::Json => emit(&(serde_json::to_string_pretty(&found)? + "\n")),
            }
            // Like `onus check`: exit 1 when the resource has failing checks.
            Ok(ExitCode::from(u8::from(found.failing())))
        }
        Command::Run(args) => {
            init_tracing(args.log_format);
            let namespace = args.namespace.clone();
            let certs = match (args.tls_cert_file, args.tls_key_file) {
                (Some(cert), Some(key)) => CertSource::Files { cert, key },
                _ => {
                    let mut dns_names = vec![
                        format!("{}.{}.svc", args.service, args.namespace),
                        format!("{}.{}.svc.cluster.local", args.service, args.namespace),
                    ];
                    let mut ip_addresses = Vec::new();
                    for h in args.cert_hosts {
                        match h.parse::<std::net::IpAddr>() {
                            Ok(ip) => ip_addresses.push(ip),
                            Err(_) => dns_names.push(h),
                        }
                    }
                    CertSource::SelfManaged(SelfManagedConfig {
                        namespace: args.namespace,
                        secret_name: args.cert_secret,
                        webhook_config_name: Some(args.webhook_config),
                        dns_names,
                        ip_addresses,
                        cert_validity: args.cert_validity,
                        rotate_before: args.cert_rotate_before,
                        check_interval: args.cert_check_interval,
                        ..SelfManagedConfig::default()
                    })
                }
            };
            let controller = (!args.webhook_only).then(|| onus::run::ControllerOptions {
                namespace: namespace.clone(),
                identity: args.identity.clone().unwrap_or_else(|| {
                    let host =
                        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
                    format!("{}-{}", host.trim(), std::process::id())
                }),
                lease_duration: args.lease_duration,
                interval: args.audit_interval,
                posture_ttl: args.posture_ttl,
                concurrency: args.audit_concurrency,
                unused_grace: args.unused_grace,
            });
            let posture_max_age = args.posture_max_age.unwrap_or(args.posture_ttl * 3);
            // Audits are refreshed once per TTL, a pass later at worst: a shorter maximum age
            // would declare every posture stale between two refreshes.
            anyhow::ensure!(
                args.webhook_only || posture_max_age > args.posture_ttl + args.audit_interval,
                "--posture-max-age ({posture_max_age:?}) must be longer than --posture-ttl plus --audit-interval ({:?})",
                args.posture_ttl + args.audit_interval
            );
            // Judging runs on the blocking pool: more threads than cores only adds switching
            // and per-thread allocator heaps (tokio's default allows 512).
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(2 * cores + 2)
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(onus::run::run(onus::run::RunOptions {
                webhook_addr: args.webhook_addr,
                metrics_addr: args.metrics_addr,
                certs,
                rediscover_every: std::time::Duration::from_secs(30),
                posture_max_age,
                shutdown_grace: args.shutdown_grace,
                controller,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::WebhookConfig {
            url,
            service,
            ca_bundle_file,
            name,
            failure_policy,
            timeout_seconds,
            exclude_namespaces,
        } => {
            let service = match service {
                Some(s) => Some(
                    s.split_once('/')
                        .map(|(ns, n)| (ns.to_string(), n.to_string()))
                        .context("--service must be NAMESPACE/NAME")?,
                ),
                None => None,
            };
            anyhow::ensure!(
                url.is_some() || service.is_some(),
                "give --url or --service"
            );
            let ca_bundle = match ca_bundle_file {
                Some(p) => {
                    let pem =
                        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                    Some(base64_encode(&pem))
                }
                None => None,
            };
            let mut excluded = vec!["kube-system".to_string()];
            excluded.extend(exclude_namespaces);
            let vwc = onus::webhook::validating_webhook_configuration(
                &onus::webhook::WebhookConfigOptions {
                    name,
                    url,
                    service,
                    ca_bundle,
                    failure_policy,
                    timeout_seconds,
                    excluded_namespaces: excluded,
                },
            );
            emit(&serde_yaml_ng::to_string(&vwc)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn render_matrix(m: &Matrix, format: MatrixFormat) -> anyhow::Result<String> {
    let cells = m.cells();
    let controls = |c: &onus::model::MatrixCell| {
        c.controls
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(match format {
        MatrixFormat::Json => {
            serde_json::to_string_pretty(&serde_json::json!({
                "provider": m.provider, "serviceModel": m.model, "domains": cells,
            }))? + "\n"
        }
        MatrixFormat::Markdown => {
            let mut s = "| domain | owner | controls | source |\n|---|---|---|---|\n".to_string();
            for c in &cells {
                s += &format!(
                    "| {} | {} | {} | {} |\n",
                    c.domain,
                    c.owner,
                    controls(c),
                    c.source
                );
            }
            s
        }
        MatrixFormat::Text => {
            let mut s = format!(
                "{} {}\n{:<16} {:<9} {:<72} {}\n",
                m.provider, m.model, "DOMAIN", "OWNER", "CONTROLS", "SOURCE"
            );
            for c in &cells {
                s += &format!(
                    "{:<16} {:<9} {:<72} {}\n",
                    c.domain.as_str(),
                    c.owner.as_str(),
                    controls(c),
                    c.source
                );
            }
            s
        }
    })
}

fn init_tracing(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The verdicts in the Reports onus wrote, for `onus compliance --cluster`. Results it cannot
/// read are named on stderr; a Report cut short of its findings is an error.
async fn read_reports(namespace: Option<&str>) -> anyhow::Result<Vec<onus::engine::Verdict>> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the cluster of the current kubeconfig context")?;
    let back = onus::controller::report::read_all(&client, namespace).await?;
    for s in &back.skipped {
        eprintln!("onus: warning: skipped {}", onus::text::printable(s));
    }
    Ok(back.verdicts)
}
