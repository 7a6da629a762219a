//! The one Kubernetes read allowed on the request path: the baselines of a namespace the
//! snapshot has not seen yet, or saw created moments ago. A namespace, its baseline and a
//! workload applied together reach onus faster than its watches: judging from the snapshot
//! alone would let the workload in unjudged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};

use crate::api::{ClusterResponsibilityBaseline, ResponsibilityBaseline};
use crate::baseline::{BaselineSet, EffectiveBaseline};
use crate::index::{BrokenBaseline, add_stored};

/// How long the read may take; the webhook answers within its own deadline either way.
pub const DEADLINE: Duration = Duration::from_millis(1500);

/// What the API server says applies to a namespace right now.
#[derive(Debug, Default)]
pub struct Confirmed {
    pub baselines: Vec<Arc<EffectiveBaseline>>,
    /// Baselines there that cannot be compiled: they guard by refusing, as in the snapshot.
    pub broken: Vec<BrokenBaseline>,
}

/// The baselines that apply to `namespace`, read from the API server now.
pub async fn baselines(client: &Client, namespace: &str) -> Result<Confirmed, String> {
    let read = async {
        let ns: Api<Namespace> = Api::all(client.clone());
        let labels: BTreeMap<String, String> = ns
            .get_opt(namespace)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|n| n.metadata.labels)
            .unwrap_or_default();
        let rbs: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            namespace,
            &ApiResource::erase::<ResponsibilityBaseline>(&()),
        );
        let crbs: Api<DynamicObject> = Api::all_with(
            client.clone(),
            &ApiResource::erase::<ClusterResponsibilityBaseline>(&()),
        );
        let lp = ListParams::default();
        let (rbs, crbs) =
            tokio::try_join!(rbs.list(&lp), crbs.list(&lp)).map_err(|e| e.to_string())?;
        let mut set = BaselineSet::default();
        let mut broken = Vec::new();
        let mut add = |kind: &str, name: &str, ns: Option<&str>, body: serde_json::Value| {
            broken.extend(add_stored(&mut set, kind, name, ns, &body, namespace));
        };
        // Read as JSON: a stored baseline that no longer parses must still be seen.
        let whole = |o: &DynamicObject| serde_json::to_value(o).unwrap_or_default();
        for rb in &rbs.items {
            add(
                "ResponsibilityBaseline",
                &rb.name_any(),
                Some(namespace),
                whole(rb),
            );
        }
        for crb in &crbs.items {
            add(
                "ClusterResponsibilityBaseline",
                &crb.name_any(),
                None,
                whole(crb),
            );
        }
        Ok::<_, String>(Confirmed {
            baselines: set.for_namespace(namespace, &labels),
            broken,
        })
    };
    match tokio::time::timeout(DEADLINE, read).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from the API server within {DEADLINE:?}")),
    }
}
