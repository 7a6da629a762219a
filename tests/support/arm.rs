//! A stand-in for Azure Resource Manager: no ARM emulator exists, so this local HTTPS server
//! (rustls, a certificate made for 127.0.0.1 whose CA onus is told to trust) answers Storage
//! Accounts - Get Properties with the JSON shape of the ARM REST reference, from what the test
//! sets with [`Arm::set_account`], Network Security Groups - Get from [`Arm::set_nsg`], and
//! `404 ResourceNotFound` otherwise. It is the only mock of a cloud API in the tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::repo_root;

type Accounts = Arc<Mutex<HashMap<(String, String, String), Value>>>;

pub struct Arm {
    port: u16,
    ca_file: PathBuf,
    accounts: Accounts,
    requests: Arc<Mutex<u64>>,
}

impl Arm {
    pub fn start() -> Arm {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = repo_root()
            .join("target/tmp/arm")
            .join(format!("{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, cert.cert.pem()).unwrap();
        let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
        let accounts: Accounts = Arc::default();
        let requests = Arc::new(Mutex::new(0u64));
        let app = axum::Router::new()
            .route(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}",
                get(account),
            )
            .route(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}",
                get(account),
            )
            .with_state((accounts.clone(), requests.clone()));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
                    cert_pem.into_bytes(),
                    key_pem.into_bytes(),
                )
                .await
                .unwrap();
                let _ = axum_server::from_tcp_rustls(listener, tls)
                    .unwrap()
                    .serve(app.into_make_service())
                    .await;
            });
        });
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Arm {
            port,
            ca_file,
            accounts,
            requests,
        }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "ONUS_AZURE_ARM_ENDPOINT",
                format!("https://127.0.0.1:{}", self.port),
            ),
            (
                "ONUS_AZURE_ARM_CA_FILE",
                self.ca_file.to_string_lossy().into_owned(),
            ),
        ]
    }

    /// The `properties` of a storage account, as Get Properties returns them.
    pub fn set_account(&self, subscription: &str, group: &str, name: &str, properties: Value) {
        self.accounts.lock().unwrap().insert(
            (subscription.into(), group.into(), name.into()),
            json!({
                "id": format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}"),
                "name": name,
                "type": "Microsoft.Storage/storageAccounts",
                "kind": "StorageV2",
                "location": "westeurope",
                "properties": properties,
            }),
        );
    }

    /// A network security group with these `securityRules` (each `{"name", "properties"}`) and
    /// Azure's three default inbound rules, as Network Security Groups - Get returns it.
    pub fn set_nsg(&self, subscription: &str, group: &str, name: &str, rules: Value) {
        let default = |name: &str, source: &str, access: &str, priority: u32| {
            json!({"name": name, "properties": {"protocol": "*", "sourcePortRange": "*",
                "destinationPortRange": "*", "sourceAddressPrefix": source,
                "destinationAddressPrefix": "*", "access": access, "priority": priority,
                "direction": "Inbound", "provisioningState": "Succeeded"}})
        };
        self.accounts.lock().unwrap().insert(
            (subscription.into(), group.into(), name.into()),
            json!({
                "id": format!("/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Network/networkSecurityGroups/{name}"),
                "name": name,
                "type": "Microsoft.Network/networkSecurityGroups",
                "location": "westeurope",
                "properties": {
                    "provisioningState": "Succeeded",
                    "securityRules": rules,
                    "defaultSecurityRules": [
                        default("AllowVnetInBound", "VirtualNetwork", "Allow", 65000),
                        default("AllowAzureLoadBalancerInBound", "AzureLoadBalancer", "Allow", 65001),
                        default("DenyAllInBound", "*", "Deny", 65500),
                    ],
                },
            }),
        );
    }

    pub fn requests(&self) -> u64 {
        *self.requests.lock().unwrap()
    }
}

async fn account(
    State((accounts, requests)): State<(Accounts, Arc<Mutex<u64>>)>,
    UrlPath((sub, rg, name)): UrlPath<(String, String, String)>,
) -> Response {
    *requests.lock().unwrap() += 1;
    match accounts.lock().unwrap().get(&(sub, rg, name.clone())) {
        Some(v) => axum::Json(v.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": {"code": "ResourceNotFound",
                "message": format!("The Resource 'Microsoft.Storage/storageAccounts/{name}' was not found.")}})),
        )
            .into_response(),
    }
}
