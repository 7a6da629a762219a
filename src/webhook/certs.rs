//! TLS certificates for the webhook server that look after themselves.
//!
//! [`start`] returns the [`RustlsConfig`] to hand to `axum-server` and a future that keeps it
//! fresh. The serving material comes from one of two places ([`CertSource`]):
//!
//! - **Files** (cert-manager, or an existing Secret mounted into the pod): the PEM pair is read
//!   at start and polled every [`FILE_POLL_INTERVAL`]; a changed pair is loaded as soon as it is
//!   complete. A half-written pair (the key does not match the certificate, a truncated PEM
//!   block) never replaces working material: the previous certificate stays and a warning is
//!   logged once per distinct bad pair.
//! - **Self-managed**: onus keeps a CA and a serving certificate in a `kubernetes.io/tls` Secret
//!   in its own namespace and keeps every `webhooks[].clientConfig.caBundle` of its
//!   `ValidatingWebhookConfiguration` current.
//!
//! In both modes the serving certificate's `NotAfter` (unix seconds) is reported through
//! `on_expiry` at start and whenever the served certificate changes; the caller feeds it to the
//! `onus_webhook_certificate_expiry_timestamp_seconds` gauge.
//!
//! # The self-managed Secret
//!
//! | key | content |
//! |---|---|
//! | `tls.crt`, `tls.key` | the serving certificate (leaf only) and its PKCS#8 key |
//! | `ca.crt`, `ca.key` | the current CA and its key |
//! | `ca-bundle.crt` | what clients trust: the current CA and, after a CA rotation, the previous one |
//!
//! The Secret is the only state: several replicas may run the loop at once. Every write is a
//! `create` or a `replace` carrying the `resourceVersion` that was read, so when two replicas
//! race, one write wins and the other re-reads and adopts what the winner wrote. Each replica
//! re-reads the Secret every `check_interval` and serves whatever `tls.crt` holds.
//!
//! # Rotation without failed requests
//!
//! When less than `rotate_before` remains on the serving certificate:
//!
//! - if the CA outlives a fresh serving certificate by `rotate_before` or more, a new serving
//!   certificate is issued by the same CA: clients already trust it, nothing else changes;
//! - otherwise the CA is rotated in two steps. (a) A new CA becomes `ca.crt`, and
//!   `ca-bundle.crt` becomes *previous CA + new CA*, while `tls.crt` stays the one issued by the
//!   previous CA; the bundle is written to every webhook's `caBundle`. (b) After
//!   `propagation_delay`, and only when the `ValidatingWebhookConfiguration` is read back with
//!   that bundle, a serving certificate issued by the new CA replaces `tls.crt` and is loaded.
//!   Both certificates verify against the bundle, so a client holding either the old or the new
//!   bundle, talking to a replica that has or has not reloaded yet, succeeds. (c) At the next CA
//!   rotation the oldest CA leaves the bundle (a CA also leaves it once it has expired).
//!
//! The state between (a) and (b) lives in the Secret (`tls.crt` is not issued by `ca.crt`), so
//! a replica that restarts or a different replica finishes the rotation. For the overlap to
//! hold, rotations must be further apart than `check_interval` (every replica reloads within
//! one interval); the defaults (90-day certificates, rotation 30 days before expiry, checks
//! every minute) leave months.
//!
//! Required RBAC: `get`, `create`, `update` on `secrets` in the namespace (the name may be
//! restricted with `resourceNames`, except for `create`), and `get`, `update` on the
//! `validatingwebhookconfigurations` named `webhook_config_name`. A chart that also renders the
//! webhook configuration should leave `caBundle` out of it (or keep the live value), or every
//! upgrade resets it until the next check.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum_server::tls_rustls::RustlsConfig;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{debug, error, info, warn};
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

/// Secret key of the serving certificate (PEM, leaf only).
pub const TLS_CRT: &str = "tls.crt";
/// Secret key of the serving certificate's private key (PEM, PKCS#8).
pub const TLS_KEY: &str = "tls.key";
/// Secret key of the current CA certificate (PEM).
pub const CA_CRT: &str = "ca.crt";
/// Secret key of the current CA's private key (PEM, PKCS#8).
pub const CA_KEY: &str = "ca.key";
/// Secret key of the CA bundle clients trust: the current CA and, after a rotation, the
/// previous one (PEM, concatenated).
pub const CA_BUNDLE: &str = "ca-bundle.crt";
/// How often [`CertSource::Files`] re-reads the certificate and key.
pub const FILE_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Certificates start this long before they are issued, for clients whose clock lags a little.
const BACKDATE_SECS: i64 = 60;
/// Writes one check may make before it settles (create, CA rotation, finish, conflicts).
const MAX_STEPS: usize = 8;
/// Attempts at updating the webhook configuration when it changes under us.
const WEBHOOK_UPDATE_ATTEMPTS: usize = 3;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum CertSource {
    /// cert-manager or an existing Secret mounted as files: read, and reload when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// onus manages a CA and a serving certificate itself.
    SelfManaged(SelfManagedConfig),
}

/// Settings of [`CertSource::SelfManaged`].
#[derive(Debug, Clone)]
pub struct SelfManagedConfig {
    /// onus's namespace, where the Secret lives.
    pub namespace: String,
    /// Name of the `kubernetes.io/tls` Secret, e.g. `onus-webhook-tls`.
    pub secret_name: String,
    /// `ValidatingWebhookConfiguration` whose every `webhooks[].clientConfig.caBundle` is kept
    /// current. When it does not exist yet, later checks fill it in.
    pub webhook_config_name: Option<String>,
    /// DNS subject alternative names of the serving certificate, e.g.
    /// [`service_dns_names`]`("onus", "onus-system")`.
    pub dns_names: Vec<String>,
    /// IP subject alternative names (e.g. 127.0.0.1 for loopback tests).
    pub ip_addresses: Vec<IpAddr>,
    /// Lifetime of a new CA.
    pub ca_validity: Duration,
    /// Lifetime of a new serving certificate (capped at its CA's expiry).
    pub cert_validity: Duration,
    /// Rotate when less than this remains on the serving certificate. Must exceed
    /// `check_interval + propagation_delay`.
    pub rotate_before: Duration,
    /// How often the Secret and the webhook configuration are re-read.
    pub check_interval: Duration,
    /// How long a new CA bundle is left to reach the API server (and the other replicas'
    /// clients) before a certificate from the new CA is served.
    pub propagation_delay: Duration,
}

const DAY: u64 = 24 * 60 * 60;

impl Default for SelfManagedConfig {
    /// `onus-webhook-tls` in `onus-system` for the Service `onus`, plus `localhost` and
    /// 127.0.0.1; no webhook configuration; CA for a year, serving certificates for 90 days,
    /// rotated 30 days before expiry; checks every minute; 10 s for a bundle to propagate.
    fn default() -> Self {
        let mut dns_names = service_dns_names("onus", "onus-system");
        dns_names.push("localhost".to_owned());
        SelfManagedConfig {
            namespace: "onus-system".to_owned(),
            secret_name: "onus-webhook-tls".to_owned(),
            webhook_config_name: None,
            dns_names,
            ip_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            ca_validity: Duration::from_secs(365 * DAY),
            cert_validity: Duration::from_secs(90 * DAY),
            rotate_before: Duration::from_secs(30 * DAY),
            check_interval: Duration::from_secs(60),
            propagation_delay: Duration::from_secs(10),
        }
    }
}

impl SelfManagedConfig {
    /// Refuses settings that cannot work (no names, rotation windows longer than lifetimes,
    /// names that are not valid in a certificate).
    pub fn validate(&self) -> Result<(), CertError> {
        let bad = |m: String| Err(CertError::Config(m));
        if self.namespace.is_empty() || self.secret_name.is_empty() {
            return bad("namespace and secret name must not be empty".into());
        }
        if self.dns_names.is_empty() && self.ip_addresses.is_empty() {
            return bad("the serving certificate needs at least one DNS name or IP address".into());
        }
        for name in &self.dns_names {
            if name.is_empty() || Ia5String::try_from(name.as_str()).is_err() {
                return bad(format!(
                    "{name:?} is not a valid DNS name for a certificate"
                ));
            }
        }
        if secs(self.cert_validity) <= secs(self.rotate_before) {
            return bad(format!(
                "cert validity ({:?}) must be longer than rotate-before ({:?})",
                self.cert_validity, self.rotate_before
            ));
        }
        if secs(self.ca_validity) <= secs(self.rotate_before) {
            return bad(format!(
                "CA validity ({:?}) must be longer than rotate-before ({:?})",
                self.ca_validity, self.rotate_before
            ));
        }
        if self.check_interval.is_zero() {
            return bad("check interval must not be zero".into());
        }
        // A rotation may be noticed up to one check late and then waits for the bundle to
        // propagate; the old certificate must still be valid when the new one is served.
        if self.rotate_before <= self.check_interval + self.propagation_delay {
            return bad(format!(
                "rotate-before ({:?}) must be longer than the check interval ({:?}) plus the propagation delay ({:?})",
                self.rotate_before, self.check_interval, self.propagation_delay
            ));
        }
        Ok(())
    }
}

/// The DNS names a Service is reached by inside the cluster: `svc`, `svc.ns`, `svc.ns.svc`,
/// `svc.ns.svc.cluster.local`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// What can go wrong with webhook certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Parse(String),
    #[error("read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("self-managed webhook certificates need a Kubernetes client")]
    NoClient,
    #[error("invalid webhook certificate settings: {0}")]
    Config(String),
}

impl CertError {
    /// Whether a later attempt may succeed (API, file and parse trouble), as opposed to
    /// settings or generation failures that will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            CertError::Generate(_) | CertError::NoClient | CertError::Config(_)
        )
    }
}

/// The future returned by [`start`]: keeps the certificates fresh until dropped; returns only
/// on unrecoverable trouble.
type Keeper = Pin<Box<dyn Future<Output = Result<(), CertError>> + Send + 'static>>;

/// Start serving material: returns the [`RustlsConfig`] to hand to axum-server, plus a future
/// that keeps it fresh (reloading files on change, or rotating self-managed certificates) and
/// reports the serving certificate's `NotAfter` (unix seconds) through `on_expiry`.
///
/// Fails when there is nothing to serve yet: unreadable or invalid files, invalid settings, no
/// `client` for [`CertSource::SelfManaged`], or a Kubernetes API error while reading or writing
/// the Secret. Trouble with the webhook configuration is only logged (it may be created later).
/// The future logs transient errors and retries at the next check; spawn it next to the server.
///
/// The TLS configuration always uses rustls' aws-lc-rs provider (TLS 1.2 and 1.3, ALPN `h2`
/// and `http/1.1`), whatever the process-wide default provider is.
pub async fn start(
    source: CertSource,
    client: Option<kube::Client>,
    on_expiry: impl Fn(i64) + Send + Sync + 'static,
) -> Result<
    (
        RustlsConfig,
        impl Future<Output = Result<(), CertError>> + Send + 'static,
    ),
    CertError,
> {
    let served = Served::new(Arc::new(on_expiry));
    let (tls, keeper): (RustlsConfig, Keeper) = match source {
        CertSource::Files { cert, key } => {
            let mut served = served;
            let (c, k) = read_pair(&cert, &key).await?;
            let tls = served.serve(&c, &k)?;
            info!(cert = %cert.display(), key = %key.display(), "webhook certificate loaded from files");
            (tls, Box::pin(watch_files(cert, key, served)))
        }
        CertSource::SelfManaged(cfg) => {
            cfg.validate()?;
            let client = client.ok_or(CertError::NoClient)?;
            let mut manager = SelfManaged::new(cfg, client, served);
            let tls = manager.pass(false).await?;
            (tls, Box::pin(manager.run()))
        }
    };
    Ok((tls, keeper))
}

/// Rotates the self-managed CA now, with the same two steps as a scheduled rotation (new CA
/// into the bundle and the webhook configuration, wait for `propagation_delay`, then a serving
/// certificate from the new CA into the Secret). Running [`start`] loops load the new
/// certificate at their next check. When the webhook configuration cannot be confirmed to
/// hold the new bundle, the Secret is left half-way and the running loops finish the rotation.
/// Without a usable CA in the Secret, this creates one (like a first start).
pub async fn rotate_now(client: kube::Client, config: &SelfManagedConfig) -> Result<(), CertError> {
    config.validate()?;
    let mut manager = SelfManaged::new(config.clone(), client, Served::new(Arc::new(|_| {})));
    manager.pass(true).await.map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Certificates: parsing and generation (pure)

/// What one X.509 certificate says, parsed from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    /// Raw DER of the subject name.
    pub subject: Vec<u8>,
    /// Raw DER of the issuer name.
    pub issuer: Vec<u8>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    pub is_ca: bool,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// The subject public key (the BIT STRING's content).
    pub public_key: Vec<u8>,
}

impl CertInfo {
    /// Parses one DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| CertError::Parse(format!("X.509 certificate: {e}")))?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| CertError::Parse(format!("subjectAltName: {e}")))?;
        for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(n) => dns_names.push((*n).to_owned()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
        Ok(CertInfo {
            der: der.to_vec(),
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
            dns_names,
            ip_addresses,
            public_key: cert.public_key().subject_public_key.data.to_vec(),
        })
    }

    /// Whether every name and address is among the subject alternative names (DNS names
    /// compared without regard to case; no wildcards are issued, none are honoured).
    pub fn covers(&self, dns_names: &[String], ip_addresses: &[IpAddr]) -> bool {
        dns_names
            .iter()
            .all(|n| self.dns_names.iter().any(|d| d.eq_ignore_ascii_case(n)))
            && ip_addresses.iter().all(|ip| self.ip_addresses.contains(ip))
    }

    /// Whether `issuer` (a CA) issued this certificate, judged by names (onus's CAs have
    /// unique subjects; signatures are checked by the clients).
    fn issued_by(&self, issuer: &CertInfo) -> bool {
        self.issuer == issuer.subject
    }
}

/// Parses every `CERTIFICATE` block of a PEM text; at least one is required.
pub fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertInfo>, CertError> {
    let ders = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Parse(format!("certificate PEM: {e}")))?;
    if ders.is_empty() {
        return Err(CertError::Parse("no CERTIFICATE block in PEM".into()));
    }
    ders.iter().map(|d| CertInfo::from_der(d)).collect()
}

/// One PEM block (`-----BEGIN {label}-----`, base64 in lines of 64, LF line endings).
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedPem {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for CertifiedPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertifiedPem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn asn1_time(secs: i64) -> Result<ASN1Time, CertError> {
    ASN1Time::from_timestamp(secs)
        .map_err(|e| CertError::Parse(format!("time {secs} out of range: {e}")))
}

/// A new self-signed CA valid from `now` for `validity` (unix seconds; a minute of back-dating
/// for clock skew), ECDSA P-256, basic constraints CA without path length limit, key usages
/// certificate and CRL signing. Its subject is unique (`onus-webhook-ca-<time>-<key id>`), so
/// that certificates can be matched to their CA by name.
pub fn generate_ca(validity: Duration, now: i64) -> Result<CertifiedPem, CertError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let key_id = params.key_identifier(&key);
    let tag: String = key_id.iter().take(4).map(|b| format!("{b:02x}")).collect();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("onus-webhook-ca-{now}-{tag}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "onus");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = asn1_time(now - BACKDATE_SECS)?.to_datetime();
    params.not_after = asn1_time(now.saturating_add(secs(validity)))?.to_datetime();
    let cert = params.self_signed(&key)?;
    Ok(CertifiedPem {
        cert_pem: pem_encode("CERTIFICATE", cert.der()),
        key_pem: key.serialize_pem(),
    })
}

/// A serving certificate issued by `ca`: the DNS and IP subject alternative names, server-auth
/// extended key usage, digital-signature key usage, valid from `now` for `validity` but never
/// past the CA's own expiry.
pub fn issue_serving_cert(
    ca: &CertifiedPem,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
    validity: Duration,
    now: i64,
) -> Result<CertifiedPem, CertError> {
    let ca_info = parse_pem_certs(ca.cert_pem.as_bytes())?.remove(0);
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let common_name = dns_names
        .first()
        .cloned()
        .unwrap_or_else(|| "onus-webhook".to_owned());
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "onus");
    params.subject_alt_names = dns_names
        .iter()
        .map(|n| Ok(SanType::DnsName(Ia5String::try_from(n.as_str())?)))
        .chain(ip_addresses.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let not_after = now.saturating_add(secs(validity)).min(ca_info.not_after);
    if not_after <= now {
        return Err(CertError::Parse(format!(
            "the CA expires at {} (unix), before a certificate issued now could be used",
            ca_info.not_after
        )));
    }
    params.not_before = asn1_time(now - BACKDATE_SECS)?.to_datetime();
    params.not_after = asn1_time(not_after)?.to_datetime();
    let cert = params.signed_by(&key, &issuer)?;
    Ok(CertifiedPem {
        cert_pem: pem_encode("CERTIFICATE", cert.der()),
        key_pem: key.serialize_pem(),
    })
}

/// A rustls server configuration for a PEM chain (leaf first) and key, with the aws-lc-rs
/// provider, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`; plus the leaf's facts. Fails when
/// either does not parse or the key does not belong to the leaf.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(ServerConfig, CertInfo), CertError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Parse(format!("certificate PEM: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::Parse("no CERTIFICATE block in PEM".into()));
    };
    let leaf = CertInfo::from_der(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| CertError::Parse(format!("private key PEM: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, leaf))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(secs)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Self-managed: what the Secret holds, and what to do about it (pure)

/// The five entries of the self-managed Secret as stored (missing ones empty).
#[derive(Clone, Default, PartialEq, Eq)]
struct Stored {
    tls_crt: String,
    tls_key: String,
    ca_crt: String,
    ca_key: String,
    ca_bundle: String,
}

impl Stored {
    fn from_secret(secret: Option<&Secret>) -> Self {
        let data = secret.and_then(|s| s.data.as_ref());
        let get = |k: &str| {
            data.and_then(|d| d.get(k))
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                .unwrap_or_default()
        };
        Stored {
            tls_crt: get(TLS_CRT),
            tls_key: get(TLS_KEY),
            ca_crt: get(CA_CRT),
            ca_key: get(CA_KEY),
            ca_bundle: get(CA_BUNDLE),
        }
    }

    fn fill(&self, data: &mut BTreeMap<String, ByteString>) {
        for (k, v) in [
            (TLS_CRT, &self.tls_crt),
            (TLS_KEY, &self.tls_key),
            (CA_CRT, &self.ca_crt),
            (CA_KEY, &self.ca_key),
            (CA_BUNDLE, &self.ca_bundle),
        ] {
            data.insert(k.to_owned(), ByteString(v.as_bytes().to_vec()));
        }
    }

    fn ca(&self) -> CertifiedPem {
        CertifiedPem {
            cert_pem: self.ca_crt.clone(),
            key_pem: self.ca_key.clone(),
        }
    }
}

/// The usable parts of a [`Stored`].
struct Assessment {
    /// The CA, when it parses, is a CA and `ca.key` belongs to it.
    ca: Option<CertInfo>,
    /// The serving certificate, when it parses and `tls.key` belongs to it.
    serving: Option<CertInfo>,
    /// The bundle's certificates, in order (empty when it does not parse).
    bundle: Vec<CertInfo>,
}

fn assess(s: &Stored) -> Assessment {
    let ca = parse_pem_certs(s.ca_crt.as_bytes())
        .ok()
        .and_then(|c| c.into_iter().next())
        .filter(|c| c.is_ca)
        .filter(|c| {
            // The key belongs to the certificate, and rcgen can issue from the pair.
            KeyPair::from_pem(&s.ca_key)
                .ok()
                .filter(|k| k.public_key_raw() == c.public_key.as_slice())
                .is_some_and(|k| Issuer::from_ca_cert_pem(&s.ca_crt, k).is_ok())
        });
    let serving = server_config(s.tls_crt.as_bytes(), s.tls_key.as_bytes())
        .ok()
        .map(|(_, leaf)| leaf);
    let bundle = parse_pem_certs(s.ca_bundle.as_bytes()).unwrap_or_default();
    Assessment {
        ca,
        serving,
        bundle,
    }
}

/// The bundle clients should trust: the stored bundle's unexpired certificates, plus the
/// current CA when it is not among them.
fn desired_bundle(a: &Assessment, now: i64) -> Vec<CertInfo> {
    let mut out: Vec<CertInfo> = Vec::new();
    for c in a.bundle.iter().chain(a.ca.as_ref()) {
        if c.not_after > now && !out.iter().any(|o| o.der == c.der) {
            out.push(c.clone());
        }
    }
    out
}

fn bundle_pem(certs: &[CertInfo]) -> String {
    certs
        .iter()
        .map(|c| pem_encode("CERTIFICATE", &c.der))
        .collect()
}

/// What a check does about the Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Everything is current.
    Keep,
    /// Only `ca-bundle.crt` changes: the current CA joins it, expired CAs leave it.
    UpdateBundle,
    /// No usable CA: a new CA and serving certificate replace everything at once (nothing a
    /// client trusts could be kept).
    Regenerate,
    /// A new serving certificate from the current CA, served at once: the current one is
    /// unusable, expired, misses a name, or nears expiry while the CA comfortably outlives a
    /// new one. Clients already trust the CA.
    Reissue,
    /// First step of a CA rotation: a new CA joins the bundle; the serving certificate stays.
    RotateCa,
    /// Second step: once clients have the bundle, serve a certificate from the new CA.
    FinishRotation,
}

fn decide(stored: &Stored, a: &Assessment, cfg: &SelfManagedConfig, now: i64) -> Action {
    let Some(ca) = &a.ca else {
        return Action::Regenerate;
    };
    if ca.not_after <= now {
        return Action::Regenerate;
    }
    let Some(serving) = &a.serving else {
        return Action::Reissue;
    };
    if serving.not_after <= now {
        return Action::Reissue;
    }
    let trusted = |c: &CertInfo| a.bundle.iter().any(|b| b.der == c.der);
    if !serving.issued_by(ca) {
        // A CA rotation is half-way, or the certificate comes from elsewhere.
        let issuer_trusted = a
            .bundle
            .iter()
            .any(|b| serving.issued_by(b) && b.not_after > now);
        if !issuer_trusted {
            return Action::Reissue;
        }
        if !trusted(ca) {
            return Action::UpdateBundle;
        }
        return Action::FinishRotation;
    }
    if !serving.covers(&cfg.dns_names, &cfg.ip_addresses) {
        return Action::Reissue;
    }
    let rotate_before = secs(cfg.rotate_before);
    if serving.not_after - now < rotate_before {
        if ca.not_after - now < secs(cfg.cert_validity).saturating_add(rotate_before) {
            return Action::RotateCa;
        }
        return Action::Reissue;
    }
    if stored.ca_bundle != bundle_pem(&desired_bundle(a, now)) {
        return Action::UpdateBundle;
    }
    Action::Keep
}

// ---------------------------------------------------------------------------------------------
// Serving

/// The material currently loaded into the [`RustlsConfig`].
struct Served {
    tls: Option<RustlsConfig>,
    current: Option<(Vec<u8>, Vec<u8>)>,
    on_expiry: Arc<dyn Fn(i64) + Send + Sync>,
}

impl Served {
    fn new(on_expiry: Arc<dyn Fn(i64) + Send + Sync>) -> Self {
        Served {
            tls: None,
            current: None,
            on_expiry,
        }
    }

    fn is_current(&self, cert: &[u8], key: &[u8]) -> bool {
        self.current
            .as_ref()
            .is_some_and(|(c, k)| c == cert && k == key)
    }

    /// Loads the pair unless it is the one already served; on error nothing changes.
    fn serve(&mut self, cert: &[u8], key: &[u8]) -> Result<RustlsConfig, CertError> {
        if let (true, Some(tls)) = (self.is_current(cert, key), &self.tls) {
            return Ok(tls.clone());
        }
        let (config, leaf) = server_config(cert, key)?;
        let config = Arc::new(config);
        let tls = match &self.tls {
            Some(tls) => {
                tls.reload_from_config(config);
                tls.clone()
            }
            None => RustlsConfig::from_config(config),
        };
        self.tls = Some(tls.clone());
        self.current = Some((cert.to_vec(), key.to_vec()));
        info!(
            not_after = leaf.not_after,
            dns_names = ?leaf.dns_names,
            "serving webhook certificate"
        );
        (self.on_expiry)(leaf.not_after);
        Ok(tls)
    }
}

// ---------------------------------------------------------------------------------------------
// Files

async fn read_file(path: &Path) -> Result<Vec<u8>, CertError> {
    tokio::fs::read(path).await.map_err(|source| CertError::Io {
        path: path.to_owned(),
        source,
    })
}

async fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    Ok((read_file(cert).await?, read_file(key).await?))
}

async fn watch_files(cert: PathBuf, key: PathBuf, mut served: Served) -> Result<(), CertError> {
    let mut ticker = tokio::time::interval(FILE_POLL_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    // The last pair that failed to load, and the last read error, so each is logged once.
    let mut rejected: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut read_error: Option<String> = None;
    loop {
        ticker.tick().await;
        let (c, k) = match read_pair(&cert, &key).await {
            Ok(pair) => {
                read_error = None;
                pair
            }
            Err(e) => {
                let msg = e.to_string();
                if read_error.as_deref() != Some(msg.as_str()) {
                    warn!(error = %msg, "cannot read the webhook certificate files; keeping the loaded certificate");
                    read_error = Some(msg);
                }
                continue;
            }
        };
        if served.is_current(&c, &k)
            || rejected
                .as_ref()
                .is_some_and(|(rc, rk)| *rc == c && *rk == k)
        {
            continue;
        }
        match served.serve(&c, &k) {
            Ok(_) => {
                rejected = None;
                info!(cert = %cert.display(), "webhook certificate files changed; reloaded");
            }
            Err(e) => {
                warn!(
                    error = %e,
                    cert = %cert.display(),
                    key = %key.display(),
                    "the webhook certificate files changed but do not make a usable pair (yet); keeping the loaded certificate"
                );
                rejected = Some((c, k));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Self-managed: the loop

/// What the webhook configuration looked like when its `caBundle` was synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WebhookState {
    NotConfigured,
    Missing,
    Current,
    Updated,
}

struct SelfManaged {
    cfg: SelfManagedConfig,
    secrets: Api<Secret>,
    webhooks: Api<ValidatingWebhookConfiguration>,
    served: Served,
    webhook_missing_logged: bool,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl SelfManaged {
    fn new(cfg: SelfManagedConfig, client: kube::Client, served: Served) -> Self {
        SelfManaged {
            secrets: Api::namespaced(client.clone(), &cfg.namespace),
            webhooks: Api::all(client),
            cfg,
            served,
            webhook_missing_logged: false,
        }
    }

    async fn run(mut self) -> Result<(), CertError> {
        let mut ticker = tokio::time::interval(self.cfg.check_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            if let Err(e) = self.pass(false).await {
                if !e.is_transient() {
                    error!(error = %e, "webhook certificates cannot be managed; giving up");
                    return Err(e);
                }
                warn!(
                    error = %e,
                    namespace = %self.cfg.namespace,
                    secret = %self.cfg.secret_name,
                    "webhook certificate check failed; retrying at the next check"
                );
            }
        }
    }

    /// One check: bring the Secret up to date (writing at most [`MAX_STEPS`] times), serve its
    /// certificate, and sync the webhook configuration's `caBundle`. With `force_rotation`, a
    /// CA rotation starts even when nothing is due.
    async fn pass(&mut self, force_rotation: bool) -> Result<RustlsConfig, CertError> {
        let name = self.cfg.secret_name.clone();
        let mut secret = self.secrets.get_opt(&name).await?;
        let mut force = force_rotation;
        for _ in 0..MAX_STEPS {
            let stored = Stored::from_secret(secret.as_ref());
            let now = unix_now();
            let a = assess(&stored);
            let mut action = decide(&stored, &a, &self.cfg, now);
            if force
                && matches!(
                    action,
                    Action::Keep | Action::UpdateBundle | Action::Reissue
                )
            {
                action = Action::RotateCa;
            }
            debug!(?action, secret = %name, "webhook certificate check");
            let next = match action {
                Action::Keep => break,
                Action::UpdateBundle => {
                    info!(secret = %name, "updating the webhook CA bundle");
                    Stored {
                        ca_bundle: bundle_pem(&desired_bundle(&a, now)),
                        ..stored.clone()
                    }
                }
                Action::Regenerate => {
                    let ca = generate_ca(self.cfg.ca_validity, now)?;
                    let leaf = self.issue(&ca, now)?;
                    info!(
                        namespace = %self.cfg.namespace,
                        secret = %name,
                        existed = secret.is_some(),
                        "creating a webhook CA and serving certificate"
                    );
                    Stored {
                        tls_crt: leaf.cert_pem,
                        tls_key: leaf.key_pem,
                        ca_bundle: ca.cert_pem.clone(),
                        ca_crt: ca.cert_pem,
                        ca_key: ca.key_pem,
                    }
                }
                Action::Reissue => {
                    let leaf = self.issue(&stored.ca(), now)?;
                    info!(secret = %name, "issuing a new webhook serving certificate from the current CA");
                    Stored {
                        tls_crt: leaf.cert_pem,
                        tls_key: leaf.key_pem,
                        ca_bundle: bundle_pem(&desired_bundle(&a, now)),
                        ..stored.clone()
                    }
                }
                Action::RotateCa => {
                    let Some(old) = a.ca.as_ref() else {
                        return Err(CertError::Parse("no usable CA to rotate from".into()));
                    };
                    let ca = generate_ca(self.cfg.ca_validity, now)?;
                    let new = parse_pem_certs(ca.cert_pem.as_bytes())?.remove(0);
                    info!(
                        secret = %name,
                        old_ca_not_after = old.not_after,
                        new_ca_not_after = new.not_after,
                        "rotating the webhook CA: the new CA joins the bundle first"
                    );
                    Stored {
                        ca_crt: ca.cert_pem,
                        ca_key: ca.key_pem,
                        ca_bundle: bundle_pem(&[old.clone(), new]),
                        ..stored.clone()
                    }
                }
                Action::FinishRotation => {
                    if !self.bundle_propagated(&stored.ca_bundle).await {
                        break;
                    }
                    let leaf = self.issue(&stored.ca(), now)?;
                    info!(secret = %name, "webhook CA rotation: serving a certificate from the new CA");
                    Stored {
                        tls_crt: leaf.cert_pem,
                        tls_key: leaf.key_pem,
                        ..stored.clone()
                    }
                }
            };
            match self.write(secret.as_ref(), &next).await {
                Ok(s) => {
                    secret = Some(s);
                    if action == Action::RotateCa {
                        force = false;
                    }
                }
                Err(CertError::Kube(e)) if is_conflict(&e) => {
                    debug!(secret = %name, "the Secret changed meanwhile (another replica?); re-reading it");
                    secret = self.secrets.get_opt(&name).await?;
                }
                Err(e) => return Err(e),
            }
        }
        let stored = Stored::from_secret(secret.as_ref());
        let tls = self
            .served
            .serve(stored.tls_crt.as_bytes(), stored.tls_key.as_bytes())?;
        if let Err(e) = self.sync_webhook_config(&stored.ca_bundle).await {
            warn!(error = %e, "cannot update the webhook configuration's caBundle; retrying at the next check");
        }
        Ok(tls)
    }

    fn issue(&self, ca: &CertifiedPem, now: i64) -> Result<CertifiedPem, CertError> {
        issue_serving_cert(
            ca,
            &self.cfg.dns_names,
            &self.cfg.ip_addresses,
            self.cfg.cert_validity,
            now,
        )
    }

    /// Creates the Secret, or replaces it at the `resourceVersion` that was read (a conflict
    /// means another writer came first).
    async fn write(&self, existing: Option<&Secret>, next: &Stored) -> Result<Secret, CertError> {
        let name = &self.cfg.secret_name;
        match existing {
            Some(old) => {
                let mut new = old.clone();
                new.metadata.managed_fields = None;
                new.string_data = None;
                next.fill(new.data.get_or_insert_with(BTreeMap::new));
                Ok(self
                    .secrets
                    .replace(name, &PostParams::default(), &new)
                    .await?)
            }
            None => {
                let mut data = BTreeMap::new();
                next.fill(&mut data);
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        labels: Some(BTreeMap::from([
                            ("app.kubernetes.io/managed-by".to_owned(), "onus".to_owned()),
                            (
                                "app.kubernetes.io/component".to_owned(),
                                "webhook-certificates".to_owned(),
                            ),
                        ])),
                        ..ObjectMeta::default()
                    },
                    type_: Some("kubernetes.io/tls".to_owned()),
                    data: Some(data),
                    ..Secret::default()
                };
                Ok(self.secrets.create(&PostParams::default(), &secret).await?)
            }
        }
    }

    /// Sets every webhook's `caBundle` to `bundle` (when the configuration exists).
    async fn sync_webhook_config(&mut self, bundle: &str) -> Result<WebhookState, CertError> {
        let Some(name) = self.cfg.webhook_config_name.clone() else {
            return Ok(WebhookState::NotConfigured);
        };
        let want = ByteString(bundle.as_bytes().to_vec());
        for attempt in 1..=WEBHOOK_UPDATE_ATTEMPTS {
            let Some(mut vwc) = self.webhooks.get_opt(&name).await? else {
                if !self.webhook_missing_logged {
                    info!(webhook_config = %name, "the ValidatingWebhookConfiguration does not exist (yet); its caBundle is set once it does");
                    self.webhook_missing_logged = true;
                }
                return Ok(WebhookState::Missing);
            };
            self.webhook_missing_logged = false;
            let mut changed = false;
            for webhook in vwc.webhooks.iter_mut().flatten() {
                if webhook.client_config.ca_bundle.as_ref() != Some(&want) {
                    webhook.client_config.ca_bundle = Some(want.clone());
                    changed = true;
                }
            }
            if !changed {
                return Ok(WebhookState::Current);
            }
            vwc.metadata.managed_fields = None;
            match self
                .webhooks
                .replace(&name, &PostParams::default(), &vwc)
                .await
            {
                Ok(_) => {
                    info!(webhook_config = %name, "webhook caBundle updated");
                    return Ok(WebhookState::Updated);
                }
                Err(e) if is_conflict(&e) && attempt < WEBHOOK_UPDATE_ATTEMPTS => {
                    debug!(webhook_config = %name, "webhook configuration changed meanwhile; retrying");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(WebhookState::Current)
    }

    /// Whether clients can be expected to trust `bundle`: it is in the webhook configuration
    /// (written now if needed), `propagation_delay` has passed, and it is still there.
    async fn bundle_propagated(&mut self, bundle: &str) -> bool {
        let state = match self.sync_webhook_config(bundle).await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "webhook CA rotation waits: cannot write the new bundle to the webhook configuration");
                return false;
            }
        };
        tokio::time::sleep(self.cfg.propagation_delay).await;
        if matches!(state, WebhookState::NotConfigured | WebhookState::Missing) {
            return true;
        }
        let Some(name) = self.cfg.webhook_config_name.as_deref() else {
            return true;
        };
        match self.webhooks.get_opt(name).await {
            Ok(None) => true,
            Ok(Some(vwc)) => {
                let want = ByteString(bundle.as_bytes().to_vec());
                let ok = vwc
                    .webhooks
                    .iter()
                    .flatten()
                    .all(|w| w.client_config.ca_bundle.as_ref() == Some(&want));
                if !ok {
                    warn!(webhook_config = %name, "webhook CA rotation waits: the webhook configuration's caBundle changed meanwhile");
                }
                ok
            }
            Err(e) => {
                warn!(error = %e, "webhook CA rotation waits: cannot read the webhook configuration back");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    const NOW: i64 = 1_800_000_000;
    const H: Duration = Duration::from_secs(3600);

    fn names() -> Vec<String> {
        vec!["onus.onus-system.svc".into(), "localhost".into()]
    }
    fn ips() -> Vec<IpAddr> {
        vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().unwrap()]
    }
    fn first(pem: &str) -> CertInfo {
        parse_pem_certs(pem.as_bytes()).unwrap().remove(0)
    }

    /// Verifies `leaf` for `name` at `at` against `roots` as a TLS client would (signature
    /// chain, validity, server-auth usage, name).
    fn verify(roots: &[&str], leaf: &str, name: &str, at: i64) -> Result<(), rustls::Error> {
        let mut store = rustls::RootCertStore::empty();
        for r in roots {
            for c in CertificateDer::pem_slice_iter(r.as_bytes()) {
                store.add(c.unwrap()).unwrap();
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(leaf.as_bytes()).unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let at = UnixTime::since_unix_epoch(Duration::from_secs(at as u64));
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], at)
            .map(|_| ())
    }

    fn config() -> SelfManagedConfig {
        SelfManagedConfig {
            dns_names: names(),
            ip_addresses: ips(),
            ca_validity: 100 * H,
            cert_validity: 10 * H,
            rotate_before: 3 * H,
            ..SelfManagedConfig::default()
        }
    }

    fn stored(ca: &CertifiedPem, leaf: &CertifiedPem, bundle: &[&CertifiedPem]) -> Stored {
        Stored {
            tls_crt: leaf.cert_pem.clone(),
            tls_key: leaf.key_pem.clone(),
            ca_crt: ca.cert_pem.clone(),
            ca_key: ca.key_pem.clone(),
            ca_bundle: bundle
                .iter()
                .map(|c| pem_encode("CERTIFICATE", &first(&c.cert_pem).der))
                .collect(),
        }
    }

    fn decide_at(s: &Stored, cfg: &SelfManagedConfig, now: i64) -> Action {
        decide(s, &assess(s), cfg, now)
    }

    #[test]
    fn ca_is_a_self_signed_signing_ca_with_a_unique_name() {
        let ca = generate_ca(100 * H, NOW).unwrap();
        let info = first(&ca.cert_pem);
        assert!(info.is_ca);
        assert_eq!(info.subject, info.issuer, "self-signed");
        assert_eq!(info.not_after, NOW + 100 * 3600);
        assert_eq!(info.not_before, NOW - BACKDATE_SECS);
        let (_, x) = x509_parser::parse_x509_certificate(&info.der).unwrap();
        let bc = x.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca && bc.path_len_constraint.is_none(), "{bc:?}");
        let ku = x.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign(), "{ku:?}");
        let other = generate_ca(100 * H, NOW).unwrap();
        assert_ne!(info.subject, first(&other.cert_pem).subject);
    }

    #[test]
    fn serving_cert_has_the_names_and_is_signed_by_the_ca() {
        let ca = generate_ca(100 * H, NOW).unwrap();
        let leaf = issue_serving_cert(&ca, &names(), &ips(), 10 * H, NOW).unwrap();
        let info = first(&leaf.cert_pem);
        let ca_info = first(&ca.cert_pem);
        assert!(!info.is_ca);
        assert_eq!(info.dns_names, names());
        assert_eq!(info.ip_addresses, ips());
        assert!(info.covers(&names(), &ips()));
        assert!(info.covers(&["LOCALHOST".into()], &[]));
        assert!(!info.covers(&["other.svc".into()], &[]));
        assert!(!info.covers(&[], &[IpAddr::from([10, 0, 0, 1])]));
        assert!(info.issued_by(&ca_info));

        let (_, x) = x509_parser::parse_x509_certificate(&info.der).unwrap();
        let (_, xca) = x509_parser::parse_x509_certificate(&ca_info.der).unwrap();
        assert_eq!(x.issuer().as_raw(), xca.subject().as_raw());
        assert!(x.extended_key_usage().unwrap().unwrap().value.server_auth);
        // Authority key id of the leaf = subject key id of the CA.
        let aki = x
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                    a.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            })
            .expect("authority key identifier");
        let ski = xca
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => {
                    Some(k.0.to_vec())
                }
                _ => None,
            })
            .expect("subject key identifier");
        assert_eq!(aki, ski);

        // The signature chain, as a TLS client checks it.
        verify(
            &[&ca.cert_pem],
            &leaf.cert_pem,
            "onus.onus-system.svc",
            NOW + 60,
        )
        .unwrap();
        verify(&[&ca.cert_pem], &leaf.cert_pem, "127.0.0.1", NOW + 60).unwrap();
        verify(&[&ca.cert_pem], &leaf.cert_pem, "evil.example", NOW + 60).unwrap_err();
        let other = generate_ca(100 * H, NOW).unwrap();
        verify(&[&other.cert_pem], &leaf.cert_pem, "localhost", NOW + 60).unwrap_err();
        // A bundle with both CAs trusts it; after expiry nobody does.
        verify(
            &[&other.cert_pem, &ca.cert_pem],
            &leaf.cert_pem,
            "localhost",
            NOW + 60,
        )
        .unwrap();
        verify(
            &[&ca.cert_pem],
            &leaf.cert_pem,
            "localhost",
            NOW + 11 * 3600,
        )
        .unwrap_err();
    }

    #[test]
    fn serving_cert_expiry_is_capped_at_the_ca() {
        let ca = generate_ca(100 * H, NOW).unwrap();
        let leaf = issue_serving_cert(&ca, &names(), &[], 10 * H, NOW).unwrap();
        assert_eq!(first(&leaf.cert_pem).not_after, NOW + 10 * 3600);
        let late = issue_serving_cert(&ca, &names(), &[], 10 * H, NOW + 95 * 3600).unwrap();
        assert_eq!(first(&late.cert_pem).not_after, NOW + 100 * 3600);
        assert!(issue_serving_cert(&ca, &names(), &[], 10 * H, NOW + 100 * 3600).is_err());
    }

    #[test]
    fn server_config_refuses_a_key_of_another_certificate_and_garbage() {
        let ca = generate_ca(100 * H, NOW).unwrap();
        let a = issue_serving_cert(&ca, &names(), &[], 10 * H, NOW).unwrap();
        let b = issue_serving_cert(&ca, &names(), &[], 10 * H, NOW).unwrap();
        let (cfg, leaf) = server_config(a.cert_pem.as_bytes(), a.key_pem.as_bytes()).unwrap();
        assert_eq!(leaf.not_after, NOW + 10 * 3600);
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(matches!(
            server_config(a.cert_pem.as_bytes(), b.key_pem.as_bytes()),
            Err(CertError::Tls(_))
        ));
        let half = &a.cert_pem[..a.cert_pem.len() / 2];
        assert!(server_config(half.as_bytes(), a.key_pem.as_bytes()).is_err());
        assert!(server_config(b"", a.key_pem.as_bytes()).is_err());
        assert!(server_config(a.cert_pem.as_bytes(), b"").is_err());
    }

    #[test]
    fn pem_encoding_round_trips() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 300] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let pem = pem_encode("CERTIFICATE", &data);
            if len > 0 {
                let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
                assert_eq!(back.as_ref(), data.as_slice(), "len {len}");
            }
            assert!(pem.lines().all(|l| l.len() <= 64), "{pem}");
        }
        assert_eq!(
            pem_encode("X", b"Man"),
            "-----BEGIN X-----\nTWFu\n-----END X-----\n"
        );
        assert_eq!(
            pem_encode("X", b"Ma"),
            "-----BEGIN X-----\nTWE=\n-----END X-----\n"
        );
        assert_eq!(
            pem_encode("X", b"M"),
            "-----BEGIN X-----\nTQ==\n-----END X-----\n"
        );
    }

    #[test]
    fn decisions_for_a_fresh_secret_and_broken_ones() {
        let cfg = config();
        let ca = generate_ca(cfg.ca_validity, NOW).unwrap();
        let leaf = issue_serving_cert(&ca, &names(), &ips(), cfg.cert_validity, NOW).unwrap();
        let good = stored(&ca, &leaf, &[&ca]);
        assert_eq!(decide_at(&good, &cfg, NOW), Action::Keep);
        assert_eq!(decide_at(&Stored::default(), &cfg, NOW), Action::Regenerate);

        // CA key missing or of another CA: regenerate.
        let other = generate_ca(cfg.ca_validity, NOW).unwrap();
        let s = Stored {
            ca_key: other.key_pem.clone(),
            ..good.clone()
        };
        assert_eq!(decide_at(&s, &cfg, NOW), Action::Regenerate);
        // A serving certificate in ca.crt is no CA.
        let s = Stored {
            ca_crt: leaf.cert_pem.clone(),
            ca_key: leaf.key_pem.clone(),
            ..good.clone()
        };
        assert_eq!(decide_at(&s, &cfg, NOW), Action::Regenerate);
        // CA expired.
        assert_eq!(decide_at(&good, &cfg, NOW + 100 * 3600), Action::Regenerate);

        // Serving pair broken, or expired: reissue from the CA.
        let s = Stored {
            tls_key: other.key_pem.clone(),
            ..good.clone()
        };
        assert_eq!(decide_at(&s, &cfg, NOW), Action::Reissue);
        assert_eq!(decide_at(&good, &cfg, NOW + 10 * 3600), Action::Reissue);

        // Names changed.
        let mut more = cfg.clone();
        more.dns_names
            .push("onus.onus-system.svc.cluster.local".into());
        assert_eq!(decide_at(&good, &more, NOW), Action::Reissue);
        let mut fewer = cfg.clone();
        fewer.ip_addresses.clear();
        assert_eq!(decide_at(&good, &fewer, NOW), Action::Keep);

        // Bundle missing the CA, or in another format: rewritten.
        let s = Stored {
            ca_bundle: String::new(),
            ..good.clone()
        };
        assert_eq!(decide_at(&s, &cfg, NOW), Action::UpdateBundle);
        let s = Stored {
            ca_bundle: good.ca_bundle.replace('\n', "\r\n"),
            ..good.clone()
        };
        assert_eq!(decide_at(&s, &cfg, NOW), Action::UpdateBundle);
        // An expired previous CA leaves the bundle.
        let old = generate_ca(2 * H, NOW - 3600).unwrap();
        let s = stored(&ca, &leaf, &[&old, &ca]);
        assert_eq!(decide_at(&s, &cfg, NOW), Action::Keep);
        assert_eq!(decide_at(&s, &cfg, NOW + 3600), Action::UpdateBundle);
        let a = assess(&s);
        assert_eq!(desired_bundle(&a, NOW + 3600), vec![first(&ca.cert_pem)]);
    }

    #[test]
    fn decisions_near_expiry_reissue_or_rotate_the_ca() {
        let cfg = config(); // CA 100 h, cert 10 h, rotate 3 h before.
        let ca = generate_ca(cfg.ca_validity, NOW).unwrap();
        let leaf = issue_serving_cert(&ca, &names(), &ips(), cfg.cert_validity, NOW).unwrap();
        let s = stored(&ca, &leaf, &[&ca]);
        // 7 h in, exactly 3 h remain: not less than rotate_before yet.
        assert_eq!(decide_at(&s, &cfg, NOW + 7 * 3600), Action::Keep);
        // Less than 3 h remain and the CA has 92 h left: a new leaf from the same CA.
        assert_eq!(decide_at(&s, &cfg, NOW + 7 * 3600 + 1), Action::Reissue);

        // Late in the CA's life: less than cert_validity + rotate_before (13 h) left on the CA.
        let late =
            issue_serving_cert(&ca, &names(), &ips(), cfg.cert_validity, NOW + 85 * 3600).unwrap();
        let s = stored(&ca, &late, &[&ca]);
        assert_eq!(decide_at(&s, &cfg, NOW + 86 * 3600), Action::Keep);
        assert_eq!(decide_at(&s, &cfg, NOW + 92 * 3600 + 1), Action::RotateCa);
    }

    #[test]
    fn decisions_during_a_ca_rotation() {
        let cfg = config();
        let old = generate_ca(cfg.ca_validity, NOW).unwrap();
        let leaf = issue_serving_cert(&old, &names(), &ips(), cfg.cert_validity, NOW).unwrap();
        let new = generate_ca(cfg.ca_validity, NOW + 3600).unwrap();
        // Step (a) written: new CA current, bundle old + new, leaf still from the old CA.
        let half = stored(&new, &leaf, &[&old, &new]);
        assert_eq!(decide_at(&half, &cfg, NOW + 3600), Action::FinishRotation);
        // The bundle lost the new CA: put it back before finishing.
        let s = stored(&new, &leaf, &[&old]);
        assert_eq!(decide_at(&s, &cfg, NOW + 3600), Action::UpdateBundle);
        // The leaf's issuer is not trusted at all: nothing to protect, reissue at once.
        let s = stored(&new, &leaf, &[&new]);
        assert_eq!(decide_at(&s, &cfg, NOW + 3600), Action::Reissue);
        // The leaf expired meanwhile: reissue at once.
        assert_eq!(decide_at(&half, &cfg, NOW + 10 * 3600), Action::Reissue);
        // Step (b) written: settled, both CAs stay in the bundle until the next rotation.
        let next =
            issue_serving_cert(&new, &names(), &ips(), cfg.cert_validity, NOW + 3600).unwrap();
        let done = stored(&new, &next, &[&old, &new]);
        assert_eq!(decide_at(&done, &cfg, NOW + 3600), Action::Keep);
        let a = assess(&done);
        assert_eq!(
            desired_bundle(&a, NOW + 3600),
            vec![first(&old.cert_pem), first(&new.cert_pem)]
        );
    }

    #[test]
    fn settings_are_validated() {
        assert!(SelfManagedConfig::default().validate().is_ok());
        let mut c = SelfManagedConfig::default();
        c.rotate_before = c.cert_validity;
        assert!(matches!(c.validate(), Err(CertError::Config(_))));
        let c = SelfManagedConfig {
            dns_names: vec!["bad name é".into()],
            ..SelfManagedConfig::default()
        };
        assert!(c.validate().is_err());
        let c = SelfManagedConfig {
            dns_names: vec![],
            ip_addresses: vec![],
            ..SelfManagedConfig::default()
        };
        assert!(c.validate().is_err());
        let c = SelfManagedConfig {
            check_interval: Duration::ZERO,
            ..SelfManagedConfig::default()
        };
        assert!(c.validate().is_err());
        let c = SelfManagedConfig {
            cert_validity: Duration::from_secs(20),
            ca_validity: Duration::from_secs(60),
            rotate_before: Duration::from_secs(5),
            check_interval: Duration::from_secs(3),
            propagation_delay: Duration::from_secs(2),
            ..SelfManagedConfig::default()
        };
        assert!(c.validate().is_err());
        let c = SelfManagedConfig {
            rotate_before: Duration::from_secs(6),
            ..c
        };
        assert!(c.validate().is_ok());
        assert_eq!(
            service_dns_names("onus", "ns"),
            [
                "onus",
                "onus.ns",
                "onus.ns.svc",
                "onus.ns.svc.cluster.local"
            ]
        );
    }

    #[tokio::test]
    async fn files_source_reloads_a_complete_pair_and_keeps_the_old_one_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let ca = generate_ca(100 * H, unix_now()).unwrap();
        let a = issue_serving_cert(&ca, &names(), &[], 10 * H, unix_now()).unwrap();
        std::fs::write(&cert, &a.cert_pem).unwrap();
        std::fs::write(&key, &a.key_pem).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let (tls, keeper) = start(
            CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            None,
            move |t| s2.lock().unwrap().push(t),
        )
        .await
        .unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![first(&a.cert_pem).not_after]);
        let handle = tokio::spawn(keeper);
        let served_leaf = |tls: &RustlsConfig| {
            // The resolver's certificate, through a ServerConfig we can't introspect directly:
            // compare the whole config pointer instead.
            Arc::as_ptr(&tls.get_inner()) as usize
        };
        let before = served_leaf(&tls);

        // Half-written: new certificate, old key. Nothing changes.
        let b = issue_serving_cert(&ca, &names(), &[], 20 * H, unix_now()).unwrap();
        std::fs::write(&cert, &b.cert_pem).unwrap();
        tokio::time::sleep(FILE_POLL_INTERVAL * 2).await;
        assert_eq!(served_leaf(&tls), before);
        assert_eq!(seen.lock().unwrap().len(), 1);

        // Complete: reloaded, expiry reported.
        std::fs::write(&key, &b.key_pem).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.lock().unwrap().len() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            *seen.lock().unwrap(),
            vec![first(&a.cert_pem).not_after, first(&b.cert_pem).not_after]
        );
        assert_ne!(served_leaf(&tls), before);
        handle.abort();
    }

    #[tokio::test]
    async fn self_managed_needs_a_client_and_valid_settings() {
        let err = start(
            CertSource::SelfManaged(SelfManagedConfig::default()),
            None,
            |_| {},
        )
        .await
        .err()
        .unwrap();
        assert!(matches!(err, CertError::NoClient), "{err}");
        let bad = SelfManagedConfig {
            rotate_before: Duration::from_secs(365 * DAY),
            ..SelfManagedConfig::default()
        };
        let err = start(CertSource::SelfManaged(bad), None, |_| {})
            .await
            .err()
            .unwrap();
        assert!(matches!(err, CertError::Config(_)), "{err}");
        assert!(!err.is_transient());
    }
}
