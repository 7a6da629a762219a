//! The Azure auditor against azurite: `onus check --live` reads the public access level of the
//! blob containers workloads use, through the official Azure SDK for Rust, and a storage
//! service it cannot reach is an `error`, never a pass.

mod support;

use std::process::Command;

use azure_storage_blob::models::{
    BlobContainerClientCreateOptions, PublicAccessType, SignedIdentifiers,
};
use serde_json::Value;
use support::azurite::{ACCOUNT, Azurite};

fn manifests() -> String {
    format!(
        r#"
apiVersion: onus.dev/v1alpha1
kind: ResponsibilityBaseline
metadata: {{name: azure, namespace: portal}}
spec: {{provider: azure, serviceModel: paas}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: portal, annotations: {{onus.dev/uses: "azblob://{ACCOUNT}/site, azblob://{ACCOUNT}/downloads, azblob://{ACCOUNT}/private"}}}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: app
        image: registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000
        env: [{{name: EXPORTS, value: "https://{ACCOUNT}.blob.core.windows.net/missing"}}]
"#
    )
}

fn check(azurite: &Azurite, file: &std::path::Path) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_onus"))
        .envs(azurite.env())
        .args(["check", "--output", "json", "--live"])
        .arg(file)
        .output()
        .unwrap();
    let vs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        vs.as_array().cloned().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(result, message)` of the public-access verdict on one container.
fn on(vs: &[Value], container: &str) -> (String, String) {
    let v = vs
        .iter()
        .find(|v| {
            v["control"] == "data.public-access"
                && v["cloudResource"] == format!("azblob://{ACCOUNT}/{container}")
        })
        .unwrap_or_else(|| panic!("no public-access verdict on {container}: {vs:#?}"));
    (
        v["result"].as_str().unwrap().to_string(),
        format!(
            "{} | {}",
            v["message"].as_str().unwrap_or(""),
            v["remediation"].as_str().unwrap_or("")
        ),
    )
}

async fn create(azurite: &Azurite, name: &str, access: Option<PublicAccessType>) {
    azurite
        .container(name)
        .create(Some(BlobContainerClientCreateOptions {
            access,
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|e| panic!("create container {name}: {e}"));
}

#[test]
fn live_check_reads_container_access_levels_from_azurite() {
    let azurite = Azurite::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        create(&azurite, "site", Some(PublicAccessType::Container)).await;
        create(&azurite, "downloads", Some(PublicAccessType::Blob)).await;
        create(&azurite, "private", None).await;
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portal.yaml");
    std::fs::write(&file, manifests()).unwrap();

    let (code, vs, stderr) = check(&azurite, &file);
    assert_eq!(code, 1, "a public container is a Deny finding: {stderr}");
    let (result, message) = on(&vs, "site");
    assert_eq!(result, "fail", "{message}");
    assert!(
        message.contains("access level is container")
            && message.contains("az storage container set-permission"),
        "{message}"
    );
    let (result, message) = on(&vs, "downloads");
    assert_eq!(result, "fail", "{message}");
    assert!(message.contains("access level is blob"), "{message}");
    assert_eq!(on(&vs, "private").0, "pass");
    // A container that does not exist is an error that says so, never a pass.
    let (result, message) = on(&vs, "missing");
    assert_eq!(result, "error", "{message}");
    assert!(message.contains("does not exist"), "{message}");
    // The verdicts come from the live read, which the findings carry.
    let live = vs
        .iter()
        .find(|v| v["cloudResource"] == format!("azblob://{ACCOUNT}/site"))
        .unwrap();
    assert_eq!(live["provider"], "azure");

    // Made private in the emulator: the next check passes it.
    rt.block_on(async {
        azurite
            .container("site")
            .set_access_policy(SignedIdentifiers::default().try_into().unwrap(), None)
            .await
            .unwrap();
    });
    let (_, vs, _) = check(&azurite, &file);
    assert_eq!(on(&vs, "site").0, "pass");

    // The storage service gone: every container is an error, never a pass.
    azurite.stop();
    let (code, vs, _) = check(&azurite, &file);
    assert_eq!(code, 1);
    for c in ["site", "downloads", "private"] {
        let (result, message) = on(&vs, c);
        assert_eq!(result, "error", "{c}: {message}");
        assert!(message.contains("GetContainerACL"), "{message}");
    }
}

/// Bad emulator settings are refused with the variable's name, not silently ignored.
#[test]
fn bad_emulator_settings_are_errors_that_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portal.yaml");
    std::fs::write(&file, manifests()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_onus"))
        .env(
            "ONUS_AZURE_BLOB_ENDPOINT",
            "http://127.0.0.1:1/no-placeholder",
        )
        .env("ONUS_AZURE_STORAGE_KEY", "a2V5")
        .args(["check", "--output", "json", "--live"])
        .arg(&file)
        .output()
        .unwrap();
    let vs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let (result, message) = on(&vs, "site");
    assert_eq!(result, "error");
    assert!(message.contains("ONUS_AZURE_BLOB_ENDPOINT"), "{message}");
}

/// With the baseline naming the subscription and resource group, the management plane (ARM,
/// here the HTTPS stand-in) decides: an account that forbids public blob access neutralises a
/// container's public level; one that allows it, accepts TLS 1.0 and plain HTTP fails on each;
/// an account ARM does not know in that group is an error that says where onus looked.
#[test]
fn the_management_plane_decides_whether_a_public_level_takes_effect() {
    use support::arm::Arm;
    const SUB: &str = "00000000-0000-0000-0000-000000000001";
    let azurite = Azurite::start();
    let arm = Arm::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(create(&azurite, "site", Some(PublicAccessType::Container)));
    arm.set_account(
        SUB,
        "portal-rg",
        ACCOUNT,
        serde_json::json!({"allowBlobPublicAccess": false, "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": true, "networkAcls": {"defaultAction": "Deny"},
            "encryption": {"keySource": "Microsoft.Storage"}}),
    );
    let manifests = manifests().replace(
        "spec: {provider: azure, serviceModel: paas}",
        &format!(
            "spec: {{provider: azure, serviceModel: paas, azure: {{subscriptionId: {SUB}, resourceGroup: portal-rg}}}}"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portal.yaml");
    std::fs::write(&file, &manifests).unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_onus"))
            .envs(azurite.env())
            .envs(arm.env())
            .args(["check", "--output", "json", "--live"])
            .arg(&file)
            .output()
            .unwrap();
        serde_json::from_slice::<Vec<Value>>(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
    };
    let vs = run();
    let (result, message) = on(&vs, "site");
    assert_eq!(
        result, "pass",
        "the account forbids public access: {message}"
    );
    assert!(arm.requests() >= 1);

    arm.set_account(
        SUB,
        "portal-rg",
        ACCOUNT,
        serde_json::json!({"allowBlobPublicAccess": true, "minimumTlsVersion": "TLS1_0",
            "supportsHttpsTrafficOnly": false}),
    );
    let vs = run();
    let site: Vec<&Value> = vs
        .iter()
        .filter(|v| {
            v["cloudResource"] == format!("azure storage account {ACCOUNT}")
                || v["cloudResource"] == format!("azblob://{ACCOUNT}/site")
        })
        .collect();
    let text = serde_json::to_string(&site).unwrap();
    assert_eq!(on(&vs, "site").0, "fail", "{text}");
    assert!(text.contains("allowBlobPublicAccess is true"), "{text}");
    assert!(
        text.contains("accepts TLS 1.0, below 1.2") && text.contains("accepts plain HTTP"),
        "{text}"
    );
    // No networkAcls: Azure's default lets every network in.
    assert!(
        text.contains("accepts connections from every network"),
        "{text}"
    );
    // Each namespace is audited with its own baseline's settings: a second tenant whose
    // resource group does not hold the account gets an error, not the first tenant's pass.
    let second = manifests
        .replace("namespace: portal", "namespace: shop")
        .replace("portal-rg", "shop-rg")
        .replace("name: azure,", "name: azure-shop,");
    std::fs::write(&file, format!("{manifests}\n---\n{second}")).unwrap();
    let vs = run();
    let in_ns = |ns: &str| -> Vec<&Value> {
        vs.iter()
            .filter(|v| v["resource"]["namespace"] == ns && v["control"] == "data.public-access")
            .collect()
    };
    let shop = serde_json::to_string(&in_ns("shop")).unwrap();
    assert!(
        shop.contains("\"error\"") && shop.contains("resource group shop-rg"),
        "{shop}"
    );
    assert!(!in_ns("portal").is_empty());
    // An account the resource group does not hold: an error naming where onus looked.
    let moved = manifests.replace("portal-rg", "other-rg");
    std::fs::write(&file, moved).unwrap();
    let vs = run();
    let (result, message) = on(&vs, "site");
    assert_eq!(result, "error", "{message}");
    assert!(message.contains("resource group other-rg"), "{message}");
}

/// What does not come from Azure Storage is no evidence: a 200 without the service's request
/// id (a proxy or portal) is an error, not "private"; an answer past 1 MiB is cut off, an
/// error, and costs no more memory than that; a container name that would leave the account's
/// path is refused before any request.
#[test]
fn answers_that_are_not_azure_storage_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portal.yaml");
    let manifest = manifests().replace(
        &format!("azblob://{ACCOUNT}/private"),
        &format!("azblob://{ACCOUNT}/.."),
    );
    std::fs::write(&file, manifest).unwrap();
    let run = |port: u16| {
        let out = Command::new(env!("CARGO_BIN_EXE_onus"))
            .env(
                "ONUS_AZURE_BLOB_ENDPOINT",
                format!("http://127.0.0.1:{port}/{{account}}"),
            )
            .env("ONUS_AZURE_STORAGE_KEY", "a2V5")
            .args(["check", "--output", "json", "--live"])
            .arg(&file)
            .output()
            .unwrap();
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
    };
    let portal = support::hostile_server(
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ntransfer-encoding: chunked\r\n\r\n",
        10,
    );
    let vs = run(portal);
    let (result, message) = on(&vs, "site");
    assert_eq!(result, "error", "{message}");
    assert!(
        message.contains("does not come from Azure Storage"),
        "{message}"
    );
    let flood = support::hostile_server(
        "HTTP/1.1 200 OK\r\nx-ms-request-id: 1\r\ncontent-type: application/xml\r\ntransfer-encoding: chunked\r\n\r\n",
        64 * 1024 * 1024,
    );
    let vs = run(flood);
    let (result, message) = on(&vs, "site");
    assert_eq!(result, "error", "{message}");
    assert!(message.contains("larger than 1048576 bytes"), "{message}");
    let (result, message) = on(&vs, "..");
    assert_eq!(result, "error", "{message}");
    assert!(message.contains("is not a container name"), "{message}");
}

/// A network security group named by its ARM id in a workload is read from the management plane
/// (the HTTPS stand-in): SSH open to `Internet` fails with the `az` commands that close it; a
/// deny of higher precedence shuts it and the NSG passes; a group ARM does not know is an error.
#[test]
fn network_security_groups_are_read_from_the_management_plane() {
    use support::arm::Arm;
    const SUB: &str = "00000000-0000-0000-0000-000000000002";
    let arm = Arm::start();
    let nsg = format!(
        "/subscriptions/{SUB}/resourceGroups/web-rg/providers/Microsoft.Network/networkSecurityGroups/web-nsg"
    );
    let manifest = format!(
        r#"
apiVersion: onus.dev/v1alpha1
kind: ResponsibilityBaseline
metadata: {{name: azure, namespace: vms}}
spec: {{provider: azure, serviceModel: iaas}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bastion, namespace: vms, annotations: {{onus.dev/uses: "{nsg}"}}}}
spec:
  selector: {{matchLabels: {{app: bastion}}}}
  template:
    metadata: {{labels: {{app: bastion}}}}
    spec:
      containers:
      - name: app
        image: registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vms.yaml");
    std::fs::write(&file, &manifest).unwrap();
    let run = || -> (String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_onus"))
            .envs(arm.env())
            // Emulator mode: no identity, so no token is asked for.
            .env("ONUS_AZURE_STORAGE_KEY", "a2V5")
            .args(["check", "--output", "json", "--live"])
            .arg(&file)
            .output()
            .unwrap();
        let vs: Vec<Value> = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        let v = vs
            .iter()
            .find(|v| {
                v["control"] == "network.exposure"
                    && v["cloudResource"]
                        .as_str()
                        .is_some_and(|r| r.ends_with("-nsg"))
            })
            .unwrap_or_else(|| panic!("no network.exposure verdict on the NSG: {vs:#?}"));
        (
            v["result"].as_str().unwrap().to_string(),
            format!("{} {}", v["message"], v["remediation"]),
        )
    };
    let ssh = |priority: u32| {
        serde_json::json!({"name": "ssh", "properties": {"protocol": "Tcp", "sourcePortRange": "*",
            "destinationPortRanges": ["22", "443"], "sourceAddressPrefixes": ["10.0.0.0/8", "Internet"],
            "destinationAddressPrefix": "*", "access": "Allow", "priority": priority, "direction": "Inbound"}})
    };
    arm.set_nsg(SUB, "web-rg", "web-nsg", serde_json::json!([ssh(300)]));
    let (result, text) = run();
    assert_eq!(result, "fail", "{text}");
    assert!(text.contains("port 22 open to Internet"), "{text}");
    assert!(
        text.contains("az network nsg rule update --resource-group web-rg --nsg-name web-nsg"),
        "{text}"
    );

    let deny = serde_json::json!({"name": "no-ssh", "properties": {"protocol": "Tcp",
        "destinationPortRange": "22", "sourceAddressPrefix": "Internet", "access": "Deny",
        "priority": 100, "direction": "Inbound"}});
    arm.set_nsg(
        SUB,
        "web-rg",
        "web-nsg",
        serde_json::json!([ssh(300), deny]),
    );
    let (result, text) = run();
    assert_eq!(result, "pass", "{text}");

    std::fs::write(&file, manifest.replace("web-nsg", "gone-nsg")).unwrap();
    let (result, text) = run();
    assert_eq!(result, "error", "{text}");
    assert!(text.contains("gone-nsg does not exist"), "{text}");
}
