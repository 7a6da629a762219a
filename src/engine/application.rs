//! Application domain: images pinned by digest, not `:latest`, from allowed registries.

use serde_json::Value;

use crate::model::ControlId::ApplicationImageProvenance;
use crate::refs::PodTemplate;

use super::{Ctx, Outcome};

/// Registry of an image reference, with Docker Hub's implicit name made explicit.
pub fn registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
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
    for (_, c) in pod.containers() {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let Some(image) = c.get("image").and_then(Value::as_str) else {
            continue;
        };
        let digest = image.contains("@sha256:");
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
        if !allowed.is_empty() {
            let full = if registry(image) == "docker.io" && !image.starts_with("docker.io/") {
                format!("docker.io/{image}")
            } else {
                image.to_string()
            };
            if !allowed.iter().any(|a| full.starts_with(a.as_str())) {
                gaps.push(format!(
                    "container {cname} pulls from {}, not an allowed registry ({})",
                    registry(image),
                    allowed.join(", ")
                ));
            }
        }
    }
    if gaps.is_empty() {
        let what = format!("{} runs pinned images from allowed registries", ctx.obj.id);
        ctx.verdict(
            ApplicationImageProvenance,
            "image-reference",
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
        "image-reference",
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
}
