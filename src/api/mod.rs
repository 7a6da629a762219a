//! Kubernetes API types that onus owns.

mod baseline;
mod cloud_resource;

pub use baseline::*;
pub use cloud_resource::*;

use kube::CustomResourceExt;

/// Every CRD onus owns, in the order `onus crd` prints them.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        ResponsibilityBaseline::crd(),
        ClusterResponsibilityBaseline::crd(),
        CloudResourceObject::crd(),
    ]
}

/// The CRDs as one multi-document YAML stream, exactly what `crds/` holds.
pub fn crds_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(&crd)?);
    }
    Ok(out)
}
