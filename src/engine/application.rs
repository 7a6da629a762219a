//! Application domain: images pinned by digest, not `:latest`, from allowed registries.

use serde_json::Value;

use crate::model::ControlId::ApplicationImageProvenance;
use crate::refs::PodTemplate;

use super::{Check, Ctx, Outcome};

/// Registry of an image reference, with Docker Hub's implicit name made explicit.
pub fn registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

/// The digest of an image reference (after `@`), checked against the OCI image spec's grammar
/// (`algorithm ":" encoded`) and the registered algorithms: `sha256` (64 lower-case hex
/// digits), `sha384` (96) and `sha512` (128). `Ok(None)` when there is no digest.
pub fn digest(image: &str) -> Result<Option<&str>, String> {
    let Some((_, digest)) = image.split_once('@') else {
        return Ok(None);
    };
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Err(format!(
            "digest {digest:?} has no algorithm (expected sha256:HEX)"
        ));
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !algorithm.split(['+', '.', '_', '-']).all(component_ok) {
        return Err(format!("digest algorithm {algorithm:?} is not valid"));
    }
    let hex_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => {
            return Err(format!(
                "digest algorithm {other:?} is not one the OCI spec registers (sha256, sha384, sha512)"
            ));
        }
    };
    let hex = encoded
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if encoded.len() != hex_len || !hex {
        return Err(format!(
            "{algorithm} digest must be {hex_len} lower-case hex digits, got {:?}",
            encoded.chars().take(80).collect::<String>()
        ));
    }
    Ok(Some(digest))
}

/// The repository an image comes from, as registries name it: host (lower-case, Docker Hub's
/// implicit `docker.io` and `library/` made explicit) and path, without tag or digest.
pub fn repository(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    // A tag follows the last `/`; a `:` before it is a registry port.
    let name = match name.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((repo, _)) => format!("{head}/{repo}"),
            None => name.to_string(),
        },
        None => name.split(':').next().unwrap_or(name).to_string(),
    };
    let host = registry(&name).to_ascii_lowercase();
    let explicit = host != "docker.io" || name.starts_with("docker.io/");
    let path = if explicit {
        name.split_once('/').map_or("", |(_, p)| p).to_string()
    } else {
        name
    };
    let host = match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => host,
    };
    let path = if host == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    format!("{host}/{path}")
}

/// Is `image` from `allowed` (a registry host, or host and path)? On component boundaries:
/// `registry.example.com` admits `registry.example.com/x`, never
/// `registry.example.com.evil.io/x`; `ghcr.io/acme` never admits `ghcr.io/acme-evil/x`.
pub fn from_registry(image: &str, allowed: &str) -> bool {
    let repo = repository(image);
    let allowed = allowed.trim().trim_end_matches('/');
    let (host, path) = allowed.split_once('/').unwrap_or((allowed, ""));
    let host = match host.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    };
    let prefix = if path.is_empty() {
        host
    } else {
        format!("{host}/{path}")
    };
    repo == prefix || repo.starts_with(&format!("{prefix}/"))
}

/// The tag of an image reference, if any (`None` for digest-only or untagged references).
fn tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split_once(':').map(|(_, t)| t)
}

pub(super) fn image_provenance(ctx: &mut Ctx<'_>, pod: &PodTemplate<'_>) {
    if !ctx.applies(ApplicationImageProvenance) {
        return;
    }
    let require_digest = ctx.b.params.require_digest;
    let allowed = ctx.b.params.allowed_registries.clone();
    let mut gaps = Vec::new();
    let mut check = Check::new("image-reference");
    for (_, c) in pod.containers() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let Some(image) = c.get("image").and_then(Value::as_str) else {
            continue;
        };
        // A malformed digest is its own gap; the registry is still checked below.
        let digest = match digest(image) {
            Ok(d) => d.is_some(),
            Err(why) => {
                check.aspect("pinned");
                gaps.push(format!("container {cname} uses {image}: {why}"));
                true
            }
        };
        let before = gaps.len();
        match tag(image) {
            Some("latest") if !digest => {
                gaps.push(format!("container {cname} uses {image} (:latest moves)"))
            }
            None if !digest => gaps.push(format!(
                "container {cname} uses {image} without a tag or digest (implies :latest)"
            )),
            _ if require_digest && !digest => gaps.push(format!(
                "container {cname} uses {image}, not pinned by digest"
            )),
            _ => {}
        }
        if gaps.len() > before {
            check.aspect("pinned");
        }
        if !allowed.is_empty() && !allowed.iter().any(|a| from_registry(image, a)) {
            check.aspect("allowed-registries");
            gaps.push(format!(
                "container {cname} pulls from {}, not an allowed registry ({})",
                repository(image),
                allowed.join(", ")
            ));
        }
    }
    if gaps.is_empty() {
        let what = format!("{} runs pinned images from allowed registries", ctx.obj.id);
        // With no allowed registries there was nothing to hold the registry to.
        let met: &[&str] = if allowed.is_empty() {
            &["pinned"]
        } else {
            &["pinned", "allowed-registries"]
        };
        ctx.verdict(
            ApplicationImageProvenance,
            Check::new("image-reference").with(met),
            Outcome::Pass,
            None,
            what,
            None,
        );
        return;
    }
    let what = format!("{}: {}", ctx.obj.id, gaps.join("; "));
    let fix = "pin each image by digest (IMAGE@sha256:...; `crane digest IMAGE:TAG` or `docker buildx imagetools inspect` prints it) and pull only from the registries the baseline allows".to_string();
    ctx.verdict(
        ApplicationImageProvenance,
        check,
        Outcome::Fail,
        None,
        what,
        Some(fix),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_and_tags() {
        assert_eq!(registry("nginx:1.27"), "docker.io");
        assert_eq!(registry("library/nginx"), "docker.io");
        assert_eq!(registry("ghcr.io/org/app:v1"), "ghcr.io");
        assert_eq!(registry("localhost:5000/app"), "localhost:5000");
        assert_eq!(tag("nginx"), None);
        assert_eq!(tag("localhost:5000/app"), None);
        assert_eq!(tag("localhost:5000/app:v2"), Some("v2"));
        assert_eq!(tag("nginx@sha256:abc"), None);
    }

    #[test]
    fn digests_follow_the_oci_grammar() {
        let sha256 = "a".repeat(64);
        let sha512 = "0123456789abcdef".repeat(8);
        assert_eq!(
            digest(&format!("app@sha256:{sha256}")).unwrap(),
            Some(format!("sha256:{sha256}").as_str())
        );
        assert!(
            digest(&format!("r.io/app:1.0@sha512:{sha512}"))
                .unwrap()
                .is_some()
        );
        assert!(
            digest(&format!("app@sha384:{}", "b".repeat(96)))
                .unwrap()
                .is_some()
        );
        assert_eq!(digest("app:1.0").unwrap(), None);
        for bad in [
            "app@sha256:abc".to_string(),
            format!("app@sha256:{}", "A".repeat(64)),
            format!("app@sha256:{}", "g".repeat(64)),
            format!("app@sha256:{sha256}0"),
            format!("app@sha256:{sha256}/../x"),
            "app@sha256:".to_string(),
            "app@latest".to_string(),
            format!("app@md5:{}", "a".repeat(32)),
            format!("app@SHA256:{sha256}"),
            format!("app@sha512:{sha256}"),
        ] {
            assert!(digest(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn registries_match_on_component_boundaries() {
        assert!(from_registry(
            "registry.example.com/team/app:1",
            "registry.example.com"
        ));
        assert!(from_registry(
            "REGISTRY.example.com/app",
            "registry.example.com/"
        ));
        assert!(!from_registry(
            "registry.example.com.evil.io/x",
            "registry.example.com"
        ));
        assert!(!from_registry(
            "registry.example.community/x",
            "registry.example.com"
        ));
        assert!(from_registry("ghcr.io/acme/app@sha256:0", "ghcr.io/acme"));
        assert!(!from_registry("ghcr.io/acme-evil/app", "ghcr.io/acme"));
        assert!(from_registry("ghcr.io/acme", "ghcr.io/acme"));
        assert!(from_registry(
            "registry.example.com:5000/app:2",
            "registry.example.com:5000"
        ));
        assert!(!from_registry(
            "registry.example.com:5000/app",
            "registry.example.com"
        ));
        // Docker Hub, however spelled.
        assert!(from_registry("nginx:1.27", "docker.io"));
        assert!(from_registry("nginx", "docker.io/library"));
        assert!(from_registry(
            "index.docker.io/library/nginx",
            "docker.io/library/nginx"
        ));
        assert!(!from_registry("evil/nginx", "docker.io/library"));
        assert_eq!(repository("localhost:5000/app:v2"), "localhost:5000/app");
        assert_eq!(repository("nginx@sha256:00"), "docker.io/library/nginx");
    }
}
