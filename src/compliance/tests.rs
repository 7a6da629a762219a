use super::*;
use crate::model::{Owner, ServiceModel};

#[test]
fn the_tables_parse_and_every_id_is_written_as_its_framework_writes_it() {
    let t = tables();
    assert!(t.mappings.len() > 900, "{}", t.mappings.len());
    for m in &t.mappings {
        assert!(
            m.framework.well_formed(&m.id),
            "{} {:?} ({})",
            m.framework,
            m.id,
            m.source
        );
        assert!(!m.title.is_empty() && !m.source.is_empty(), "{m:?}");
        assert!(m.source.contains('@'), "a source names its commit: {m:?}");
    }
    for o in &t.outside_reach {
        assert!(o.framework.well_formed(&o.id), "{o:?}");
    }
    // Each framework is represented, and ids of the wrong shape are refused.
    for f in Framework::ALL {
        assert!(
            t.mappings.iter().any(|m| m.framework == *f),
            "{f} has no rows"
        );
    }
    assert!(Framework::Nist80053R5.well_formed("AC-2(1)"));
    assert!(Framework::Nist80053R5.well_formed("AC-3(3)(b)(1)"));
    assert!(
        !Framework::Nist80053R5.well_formed("ac_2_1")
            && !Framework::Nist80053R5.well_formed("AC-2(x1)")
    );
    assert!(Framework::Soc2.well_formed("CC6.1") && !Framework::Soc2.well_formed("cc_6_1"));
    assert!(Framework::Iso27001.well_formed("A.8.24") && !Framework::Iso27001.well_formed("8.24"));
    assert!(Framework::CsaCcm4.well_formed("IAM-09") && !Framework::CsaCcm4.well_formed("IAM9"));
}

/// An aspect in the data is one the engine names when that part of the check fails, so a row
/// keyed on it is reachable; a typo would silently drop the row from every finding.
#[test]
fn every_aspect_in_the_data_is_one_the_engine_names() {
    for m in &tables().mappings {
        if let Some(a) = &m.aspect {
            assert!(
                crate::engine::aspects(&m.rule).contains(a),
                "{}/{a} ({} {}) is not an aspect the engine names",
                m.rule,
                m.framework,
                m.id
            );
        }
    }
}

/// Every check the engine emits (read from its source) gives evidence for some requirement
/// under some provider, or `unmapped.csv` says why it gives none anywhere; every control has
/// rows.
#[test]
fn no_check_is_unmapped_without_a_stated_reason() {
    let sources = [
        include_str!("../engine/application.rs"),
        include_str!("../engine/cloud.rs"),
        include_str!("../engine/data.rs"),
        include_str!("../engine/host.rs"),
        include_str!("../engine/identity.rs"),
        include_str!("../engine/logging.rs"),
        include_str!("../engine/network.rs"),
        include_str!("../engine/mod.rs"),
    ];
    let mut checks: BTreeSet<(String, String)> = BTreeSet::new();
    for src in sources {
        // `verdict(\n    ControlName,\n    "rule",` and the logging table's `("trail-...",`.
        let flat: String = src.split_whitespace().collect::<Vec<_>>().join(" ");
        for part in flat.split("verdict( ").skip(1) {
            let mut it = part.splitn(3, ", ");
            let (Some(control), Some(rule)) = (it.next(), it.next()) else {
                continue;
            };
            if let Some(rule) = rule.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                checks.insert((control.to_string(), rule.to_string()));
            }
        }
        for part in flat.split("Check::new(\"").skip(1) {
            if let Some((rule, _)) = part.split_once('"') {
                checks.insert(("?".into(), rule.to_string()));
            }
        }
        for part in flat.split("( \"trail-").skip(1) {
            if let Some((rest, _)) = part.split_once('"') {
                checks.insert(("LoggingAuditTrail".into(), format!("trail-{rest}")));
            }
        }
    }
    assert!(checks.len() >= 18, "{checks:?}");
    let t = tables();
    for (_, rule) in &checks {
        if WHOLE_CONTROL_RULES.contains(&rule.as_str()) {
            continue;
        }
        let mapped = t.mappings.iter().any(|m| &m.rule == rule);
        let reason = t
            .unmapped
            .iter()
            .any(|u| &u.rule == rule && u.provider.is_none() && !u.reason.is_empty());
        assert!(
            mapped || reason,
            "check {rule:?} has no mapping and no reason in data/compliance/unmapped.csv"
        );
    }
    for c in ControlId::ALL {
        assert!(
            t.mappings.iter().any(|m| m.control == *c),
            "control {c} has no mapping"
        );
    }
    // Each stated gap names a check the engine has.
    for u in &t.unmapped {
        assert!(
            checks.iter().any(|(_, r)| *r == u.rule),
            "unmapped.csv names {:?}, which the engine does not emit",
            u.rule
        );
    }
}

/// Rows checked by hand against the files they cite (Prowler 3e000faa, kube-bench a73ce378).
#[test]
fn a_sample_of_rows_matches_the_cited_sources() {
    let aws = |c, r| for_check(c, r, Provider::Aws);
    // prowler/compliance/aws/cis_7.0_aws.json: 4.2 lists cloudtrail_log_file_validation_enabled,
    // 4.5 cloudtrail_kms_encryption_enabled.
    assert!(
        aws(ControlId::LoggingAuditTrail, "trail-log-validation").0[&Framework::CisAws]
            .contains(&"4.2".to_string())
    );
    assert!(
        aws(ControlId::LoggingAuditTrail, "trail-kms-encryption").0[&Framework::CisAws]
            .contains(&"4.5".to_string())
    );
    // prowler/compliance/aws/nist_800_53_revision_5_aws.json: SC-28(1) lists s3_bucket_default_encryption.
    assert!(
        aws(ControlId::DataEncryptionAtRest, "default-encryption").0[&Framework::Nist80053R5]
            .contains(&"SC-28(1)".to_string())
    );
    // prowler/compliance/kubernetes/cis_2.0.1_kubernetes.json: 5.2.2 lists core_minimize_privileged_containers.
    let host = for_check(ControlId::HostOsIsolation, "host-access", Provider::Gcp);
    assert!(
        host.0[&Framework::CisKubernetes].contains(&"5.2.2".to_string()),
        "{host:?}"
    );
    // kube-bench cfg/gke-1.9.0/policies.yaml 4.3.2: all namespaces have NetworkPolicies.
    let seg = for_check(
        ControlId::NetworkSegmentation,
        "default-deny",
        Provider::Gcp,
    );
    assert_eq!(seg.0[&Framework::CisGke], vec!["4.3.2".to_string()]);
    // The EKS benchmark is AWS's: it never shows up under Azure.
    let az = for_check(
        ControlId::NetworkSegmentation,
        "default-deny",
        Provider::Azure,
    );
    assert!(!az.0.contains_key(&Framework::CisEks) && az.0.contains_key(&Framework::CisAks));
    // A failed audit stands for its whole control.
    let whole = &aws(ControlId::LoggingAuditTrail, "posture").0[&Framework::CisAws];
    for rule in [
        "cloud-trail",
        "trail-log-validation",
        "trail-kms-encryption",
    ] {
        for id in &aws(ControlId::LoggingAuditTrail, rule).0[&Framework::CisAws] {
            assert!(whole.contains(id), "{rule} {id} {whole:?}");
        }
    }
    assert!(for_check(ControlId::NetworkExposure, "load-balancer", Provider::Aws).is_empty());
}

/// Reports hold the ids as one string bounded at 1,024 characters: every check's ids fit.
#[test]
fn every_checks_ids_fit_in_a_report_property() {
    for ids in tables().by_check.values().flat_map(|rules| rules.values()) {
        assert!(ids.compact().len() <= 1024, "{}", ids.compact());
    }
}

/// The owner column is the matrix cell of the domain each requirement's checks guard.
#[test]
fn ownership_equals_the_matrix_cell_for_every_provider_model_and_framework() {
    for p in Provider::ALL {
        for m in ServiceModel::ALL {
            let matrix = Matrix::resolve(*p, *m, &[]);
            for f in Framework::ALL {
                let rows = match requirements(*f, *p, *m, None) {
                    Ok(r) => r,
                    Err(e) => {
                        assert!(f.provider().is_some_and(|only| only != *p), "{e}");
                        continue;
                    }
                };
                for r in rows {
                    if r.status == Some(RequirementStatus::OutsideReach) {
                        assert_eq!(r.owner, Owner::Customer);
                        continue;
                    }
                    assert!(!r.controls.is_empty(), "{f} {}", r.id);
                    let owners: BTreeSet<Owner> = r
                        .controls
                        .iter()
                        .map(|c| c.split('/').next().unwrap().parse::<ControlId>().unwrap())
                        .map(|c| matrix.owner(c.domain()))
                        .collect();
                    let expected = if owners.len() == 1 {
                        *owners.iter().next().unwrap()
                    } else {
                        Owner::Shared
                    };
                    assert_eq!(r.owner, expected, "{p} {m} {f} {}", r.id);
                    for cell in &r.responsibility {
                        assert_eq!(cell.owner, matrix.owner(cell.domain));
                        assert!(!cell.source.is_empty());
                    }
                }
            }
        }
    }
}

use crate::model::Matrix;
use std::collections::BTreeSet;
