//! Preset responsibility matrices per provider and service model.
//!
//! Sources, cited per cell below:
//! - [AWS-SRM] AWS Shared Responsibility Model: AWS secures "the cloud" (physical facilities,
//!   hardware, network and virtualization layer); the customer secures what it runs "in the cloud"
//!   (guest OS, applications, security-group/firewall configuration, identity, data, encryption).
//!   For abstracted services (the seed's PaaS/SaaS) AWS "operates the infrastructure layer, the
//!   operating system, and platforms" and customers manage data, access and configuration.
//! - [AZ-SRM] Microsoft, "Shared responsibility in the cloud": information and data, devices and
//!   accounts/identities are always the customer's; identity infrastructure, applications and
//!   network controls move from customer (IaaS) to shared (PaaS) to provider (SaaS); the operating
//!   system is the customer's only in IaaS; physical hosts, network and datacenter are Microsoft's.
//! - [GCP-SRM] Google Cloud, "Shared responsibilities and shared fate": Google owns hardware,
//!   boot and storage/network infrastructure; IaaS customers own guest OS, network rules, identity,
//!   data, logging configuration; in PaaS Google also runs the OS and runtime; in SaaS the customer
//!   keeps content, access policy and usage.
//! - [SEED] The seed article's IaaS/PaaS/SaaS sections: IaaS leaves OS, network configuration,
//!   applications, identity and data to the customer; PaaS leaves applications, identity and data;
//!   SaaS leaves identity, data and how the service is configured (including audit logging).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ControlId, Domain, Owner, Provider, ServiceModel};
use crate::api::ResponsibilityOverride;

use Domain::*;
use Owner::{Customer as C, Provider as P, Shared as S};

/// One row of a resolved matrix.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct MatrixCell {
    pub domain: Domain,
    pub owner: Owner,
    /// True when a baseline overrode the preset.
    pub overridden: bool,
    /// Where the preset comes from.
    pub source: &'static str,
    pub controls: Vec<ControlId>,
}

/// Owner of every domain for one provider and service model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix {
    pub provider: Provider,
    pub model: ServiceModel,
    owners: BTreeMap<Domain, (Owner, bool, &'static str)>,
}

impl Matrix {
    /// The preset matrix, with `overrides` applied on top.
    pub fn resolve(
        provider: Provider,
        model: ServiceModel,
        overrides: &[ResponsibilityOverride],
    ) -> Matrix {
        let mut owners: BTreeMap<Domain, (Owner, bool, &'static str)> = preset(provider, model)
            .iter()
            .map(|&(domain, owner, source)| (domain, (owner, false, source)))
            .collect();
        for o in overrides {
            owners.insert(o.domain, (o.owner, true, "baseline override"));
        }
        Matrix {
            provider,
            model,
            owners,
        }
    }

    pub fn owner(&self, domain: Domain) -> Owner {
        // Every preset names every domain; an absent one would be a bug, and the customer is the safe answer.
        self.owners
            .get(&domain)
            .map(|c| c.0)
            .unwrap_or(Owner::Customer)
    }

    pub fn cells(&self) -> Vec<MatrixCell> {
        Domain::ALL
            .iter()
            .map(|&domain| {
                let (owner, overridden, source) = self.owners.get(&domain).copied().unwrap_or((
                    Owner::Customer,
                    false,
                    "default",
                ));
                MatrixCell {
                    domain,
                    owner,
                    overridden,
                    source,
                    controls: ControlId::ALL
                        .iter()
                        .copied()
                        .filter(|c| c.domain() == domain)
                        .collect(),
                }
            })
            .collect()
    }
}

type Row = (Domain, Owner, &'static str);

/// The preset for one provider and model. Each cell names its source.
pub fn preset(provider: Provider, model: ServiceModel) -> &'static [Row] {
    match (provider, model) {
        (Provider::Aws, ServiceModel::Iaas) => &[
            (
                Physical,
                P,
                "AWS-SRM: security of the cloud, physical facilities",
            ),
            (
                Infrastructure,
                P,
                "AWS-SRM: hardware, network and virtualization layer",
            ),
            (
                HostOs,
                C,
                "AWS-SRM: guest OS updates and patches are the customer's on EC2",
            ),
            (
                Platform,
                C,
                "AWS-SRM/SEED: runtime and middleware on customer instances",
            ),
            (
                Network,
                C,
                "AWS-SRM: security group and network ACL configuration",
            ),
            (Application, C, "AWS-SRM: customer applications"),
            (Identity, C, "AWS-SRM: IAM users, roles and policies"),
            (
                Data,
                C,
                "AWS-SRM: customer data, classification and encryption",
            ),
            (
                Logging,
                C,
                "AWS-SRM: enabling CloudTrail and access logs is the customer's",
            ),
        ],
        (Provider::Aws, ServiceModel::Paas) => &[
            (Physical, P, "AWS-SRM: security of the cloud"),
            (
                Infrastructure,
                P,
                "AWS-SRM: abstracted services, AWS runs the infrastructure layer",
            ),
            (
                HostOs,
                P,
                "AWS-SRM: AWS operates the OS for abstracted services (Fargate, Beanstalk, RDS)",
            ),
            (
                Platform,
                S,
                "AWS-SRM: AWS runs the platform, the customer configures it",
            ),
            (
                Network,
                S,
                "AWS-SRM: AWS runs the network, the customer opens endpoints and security groups",
            ),
            (Application, C, "SEED PaaS: the customer's code and images"),
            (
                Identity,
                C,
                "AWS-SRM: access management stays with the customer",
            ),
            (
                Data,
                C,
                "AWS-SRM: data and its encryption stay with the customer",
            ),
            (
                Logging,
                S,
                "AWS-SRM: AWS logs the platform, the customer turns on trails and access logs",
            ),
        ],
        (Provider::Aws, ServiceModel::Saas) => &[
            (Physical, P, "AWS-SRM: security of the cloud"),
            (Infrastructure, P, "AWS-SRM: security of the cloud"),
            (HostOs, P, "SEED SaaS: the provider runs the whole stack"),
            (Platform, P, "SEED SaaS: the provider runs the whole stack"),
            (Network, P, "SEED SaaS: the provider runs the network"),
            (
                Application,
                P,
                "SEED SaaS: the provider runs the application",
            ),
            (
                Identity,
                C,
                "SEED SaaS: who gets access stays with the customer",
            ),
            (
                Data,
                C,
                "SEED SaaS: the customer's data and its sharing settings",
            ),
            (
                Logging,
                S,
                "SEED SaaS: the customer must turn on and keep the service's audit logs",
            ),
        ],
        (Provider::Azure, ServiceModel::Iaas) => &[
            (
                Physical,
                P,
                "AZ-SRM: physical hosts, network and datacenter are Microsoft's",
            ),
            (
                Infrastructure,
                P,
                "AZ-SRM: physical network and hosts are Microsoft's",
            ),
            (
                HostOs,
                C,
                "AZ-SRM: operating system is the customer's in IaaS",
            ),
            (Platform, C, "AZ-SRM: middleware on customer VMs"),
            (
                Network,
                C,
                "AZ-SRM: network controls are the customer's in IaaS",
            ),
            (
                Application,
                C,
                "AZ-SRM: applications are the customer's in IaaS",
            ),
            (
                Identity,
                C,
                "AZ-SRM: accounts and identities, and identity infrastructure in IaaS",
            ),
            (
                Data,
                C,
                "AZ-SRM: information and data are always the customer's",
            ),
            (
                Logging,
                C,
                "AZ-SRM: diagnostic settings and activity log export are configured by the customer",
            ),
        ],
        (Provider::Azure, ServiceModel::Paas) => &[
            (
                Physical,
                P,
                "AZ-SRM: physical hosts, network and datacenter are Microsoft's",
            ),
            (
                Infrastructure,
                P,
                "AZ-SRM: physical network and hosts are Microsoft's",
            ),
            (HostOs, P, "AZ-SRM: operating system is Microsoft's in PaaS"),
            (
                Platform,
                S,
                "AZ-SRM: identity and directory infrastructure is shared in PaaS",
            ),
            (Network, S, "AZ-SRM: network controls are shared in PaaS"),
            (Application, S, "AZ-SRM: applications are shared in PaaS"),
            (
                Identity,
                C,
                "AZ-SRM: accounts and identities are always the customer's",
            ),
            (
                Data,
                C,
                "AZ-SRM: information and data are always the customer's",
            ),
            (
                Logging,
                S,
                "AZ-SRM: Microsoft logs the platform, the customer exports and keeps logs",
            ),
        ],
        (Provider::Azure, ServiceModel::Saas) => &[
            (
                Physical,
                P,
                "AZ-SRM: physical hosts, network and datacenter are Microsoft's",
            ),
            (
                Infrastructure,
                P,
                "AZ-SRM: physical network and hosts are Microsoft's",
            ),
            (HostOs, P, "AZ-SRM: operating system is Microsoft's in SaaS"),
            (Platform, P, "AZ-SRM: the service is Microsoft's in SaaS"),
            (
                Network,
                P,
                "AZ-SRM: network controls are Microsoft's in SaaS",
            ),
            (
                Application,
                P,
                "AZ-SRM: applications are Microsoft's in SaaS",
            ),
            (
                Identity,
                C,
                "AZ-SRM: accounts and identities are always the customer's",
            ),
            (
                Data,
                C,
                "AZ-SRM: information and data are always the customer's",
            ),
            (
                Logging,
                S,
                "AZ-SRM: the customer keeps and reviews the service's audit logs",
            ),
        ],
        (Provider::Gcp, ServiceModel::Iaas) => &[
            (
                Physical,
                P,
                "GCP-SRM: hardware and data centers are Google's",
            ),
            (
                Infrastructure,
                P,
                "GCP-SRM: boot, storage and network infrastructure are Google's",
            ),
            (
                HostOs,
                C,
                "GCP-SRM: guest OS on Compute Engine is the customer's",
            ),
            (Platform, C, "GCP-SRM: runtime on customer VMs"),
            (Network, C, "GCP-SRM: VPC firewall rules are the customer's"),
            (Application, C, "GCP-SRM: customer applications"),
            (Identity, C, "GCP-SRM: IAM policy is the customer's"),
            (
                Data,
                C,
                "GCP-SRM: content, access policy and keys are the customer's",
            ),
            (
                Logging,
                C,
                "GCP-SRM: Data Access audit logs must be enabled by the customer",
            ),
        ],
        (Provider::Gcp, ServiceModel::Paas) => &[
            (
                Physical,
                P,
                "GCP-SRM: hardware and data centers are Google's",
            ),
            (Infrastructure, P, "GCP-SRM: infrastructure is Google's"),
            (HostOs, P, "GCP-SRM: in PaaS Google runs the OS"),
            (
                Platform,
                S,
                "GCP-SRM: Google runs the runtime, the customer configures it",
            ),
            (
                Network,
                S,
                "GCP-SRM: Google runs the network, the customer sets ingress and firewall",
            ),
            (
                Application,
                C,
                "GCP-SRM: application code and dependencies are the customer's",
            ),
            (Identity, C, "GCP-SRM: IAM policy is the customer's"),
            (
                Data,
                C,
                "GCP-SRM: content and access policy are the customer's",
            ),
            (
                Logging,
                S,
                "GCP-SRM: Admin Activity logs are Google's, Data Access logs the customer's",
            ),
        ],
        (Provider::Gcp, ServiceModel::Saas) => &[
            (
                Physical,
                P,
                "GCP-SRM: hardware and data centers are Google's",
            ),
            (Infrastructure, P, "GCP-SRM: infrastructure is Google's"),
            (HostOs, P, "GCP-SRM: in SaaS Google runs the stack"),
            (Platform, P, "GCP-SRM: in SaaS Google runs the stack"),
            (Network, P, "GCP-SRM: in SaaS Google runs the network"),
            (
                Application,
                P,
                "GCP-SRM: in SaaS Google runs the application",
            ),
            (
                Identity,
                C,
                "GCP-SRM: access policy stays with the customer",
            ),
            (Data, C, "GCP-SRM: content stays with the customer"),
            (
                Logging,
                S,
                "GCP-SRM: the customer reviews and keeps audit logs",
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_names_every_domain_once() {
        for &p in Provider::ALL {
            for &m in ServiceModel::ALL {
                let rows = preset(p, m);
                let domains: Vec<Domain> = rows.iter().map(|r| r.0).collect();
                assert_eq!(domains, Domain::ALL, "{p}/{m}");
                assert!(
                    rows.iter().all(|r| !r.2.is_empty()),
                    "{p}/{m} cites a source per cell"
                );
            }
        }
    }

    #[test]
    fn physical_is_always_the_providers_and_data_always_the_customers() {
        for &p in Provider::ALL {
            for &m in ServiceModel::ALL {
                let mx = Matrix::resolve(p, m, &[]);
                assert_eq!(mx.owner(Physical), P, "{p}/{m}");
                assert_eq!(mx.owner(Infrastructure), P, "{p}/{m}");
                assert_eq!(mx.owner(Data), C, "{p}/{m}");
                assert_eq!(mx.owner(Identity), C, "{p}/{m}");
            }
        }
    }

    #[test]
    fn customer_duty_shrinks_from_iaas_to_saas() {
        for &p in Provider::ALL {
            let duty = |m| {
                let mx = Matrix::resolve(p, m, &[]);
                Domain::ALL.iter().filter(|&&d| mx.owner(d) == C).count()
            };
            assert!(duty(ServiceModel::Iaas) > duty(ServiceModel::Paas), "{p}");
            assert!(duty(ServiceModel::Paas) >= duty(ServiceModel::Saas), "{p}");
            let iaas = Matrix::resolve(p, ServiceModel::Iaas, &[]);
            assert_eq!(
                iaas.owner(HostOs),
                C,
                "{p}: guest OS is the customer's in IaaS"
            );
            let saas = Matrix::resolve(p, ServiceModel::Saas, &[]);
            assert_eq!(
                saas.owner(Network),
                P,
                "{p}: network is the provider's in SaaS"
            );
            assert_eq!(saas.owner(Application), P, "{p}");
        }
    }

    #[test]
    fn azure_paas_shares_network_and_applications() {
        let mx = Matrix::resolve(Provider::Azure, ServiceModel::Paas, &[]);
        assert_eq!(mx.owner(Network), S);
        assert_eq!(mx.owner(Application), S);
        assert_eq!(mx.owner(HostOs), P);
    }

    #[test]
    fn overrides_replace_cells_and_are_marked() {
        let mx = Matrix::resolve(
            Provider::Aws,
            ServiceModel::Saas,
            &[ResponsibilityOverride {
                domain: Network,
                owner: C,
            }],
        );
        assert_eq!(mx.owner(Network), C);
        let cell = mx
            .cells()
            .into_iter()
            .find(|c| c.domain == Network)
            .unwrap();
        assert!(cell.overridden);
        assert_eq!(
            cell.controls,
            vec![ControlId::NetworkExposure, ControlId::NetworkSegmentation]
        );
    }
}
