//! The one Kubernetes read allowed on the request path: the baselines of a namespace the
//! snapshot has not seen yet, or saw created moments ago. A namespace, its baseline and a
//! workload applied together reach onus faster than its watches: judging from the snapshot
//! alone would let the workload in unjudged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::api::{ClusterResponsibilityBaseline, ResponsibilityBaseline};
use crate::baseline::{BaselineSet, EffectiveBaseline};

/// How long the read may take; the webhook answers within its own deadline either way.
pub const DEADLINE: Duration = Duration::from_millis(1500);

/// The baselines that apply to `namespace`, read from the API server now.
pub async fn baselines(
    client: &Client,
    namespace: &str,
) -> Result<Vec<Arc<EffectiveBaseline>>, String> {
    let read = async {
        let ns: Api<Namespace> = Api::all(client.clone());
        let labels: BTreeMap<String, String> = ns
            .get_opt(namespace)
            .await
            .map_err(|e| e.to_string())?
            .and_then(|n| n.metadata.labels)
            .unwrap_or_default();
        let rbs: Api<ResponsibilityBaseline> = Api::namespaced(client.clone(), namespace);
        let crbs: Api<ClusterResponsibilityBaseline> = Api::all(client.clone());
        let lp = ListParams::default();
        let (rbs, crbs) =
            tokio::try_join!(rbs.list(&lp), crbs.list(&lp)).map_err(|e| e.to_string())?;
        let mut set = BaselineSet::default();
        for rb in &rbs.items {
            // One that does not compile guards nothing here; the snapshot reports it.
            if let Err(e) = set.add_namespaced(rb, namespace) {
                tracing::warn!(error = %e, "baseline read on the request path does not compile");
            }
        }
        for crb in &crbs.items {
            if let Err(e) = set.add_cluster(crb) {
                tracing::warn!(error = %e, "baseline read on the request path does not compile");
            }
        }
        Ok::<_, String>(set.for_namespace(namespace, &labels))
    };
    match tokio::time::timeout(DEADLINE, read).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer from the API server within {DEADLINE:?}")),
    }
}
