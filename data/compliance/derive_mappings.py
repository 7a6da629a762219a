#!/usr/bin/env python3
"""Derive mappings.csv and manual.csv from Prowler's compliance JSON files and kube-bench's CIS
EKS/AKS/GKE policy files, read straight out of git snapshots (no work tree, nothing executed).

Usage: derive_mappings.py PROWLER_GIT_DIR KUBE_BENCH_GIT_DIR OUT_DIR

Every row carries the file and commit it was read from. The only hand-made part is the table
ONUS (which onus control/check tests the same thing as which Prowler check) and DIRECT (onus
checks matched to a benchmark requirement by its text, where no Prowler check exists); both are
explained in SOURCES.md.
"""
import csv
import json
import re
import subprocess
import sys

import yaml  # PyYAML

PROWLER, KUBEBENCH, OUT = sys.argv[1:4]
P_REPO = "prowler-cloud/prowler"
K_REPO = "aquasecurity/kube-bench"


def git(gitdir, *args):
    return subprocess.run(["git", "--git-dir", gitdir, *args], check=True,
                          capture_output=True, text=True).stdout


P_COMMIT = git(PROWLER, "rev-parse", "HEAD").strip()
K_COMMIT = git(KUBEBENCH, "rev-parse", "HEAD").strip()


def show(gitdir, path):
    return git(gitdir, "show", f"HEAD:{path}")


def src(repo, path, commit):
    return f"{repo} {path}@{commit}"


# ---------------------------------------------------------------- onus -> Prowler check table
SG = "ec2_securitygroup_allow_ingress_from_internet_to_"
ADMIN = ["iam_aws_attached_policy_no_administrative_privileges",
         "iam_customer_attached_policy_no_administrative_privileges",
         "iam_inline_policy_no_administrative_privileges"]
ONUS = [
    # control, check (rule[/aspect]), provider, Prowler checks testing the same thing
    ("data.public-access", "public-access/s3-acl", "aws",
     ["s3_bucket_public_list_acl", "s3_bucket_public_write_acl"]),
    ("data.public-access", "public-access/s3-policy", "aws",
     ["s3_bucket_public_access", "s3_bucket_policy_public_write_access"]),
    ("data.public-access", "public-access/s3-block-public-access", "aws",
     ["s3_bucket_level_public_access_block", "s3_account_level_public_access_blocks"]),
    ("data.public-access", "public-access/azure-blob", "azure",
     ["storage_blob_public_access_level_is_disabled"]),
    ("data.public-access", "public-access/gcs-all-users", "gcp",
     ["cloudstorage_bucket_public_access"]),
    ("data.public-access", "cross-account", "aws", ["s3_bucket_cross_account_access"]),
    ("data.public-access", "acls-enabled", "aws", ["s3_bucket_acl_prohibited"]),
    ("data.encryption-at-rest", "default-encryption/s3", "aws", ["s3_bucket_default_encryption"]),
    ("data.encryption-at-rest", "default-encryption/s3-cmk", "aws", ["s3_bucket_kms_encryption"]),
    ("data.encryption-at-rest", "default-encryption/azure-storage-cmk", "azure",
     ["storage_ensure_encryption_with_customer_managed_keys"]),
    ("data.encryption-at-rest", "volume-encryption/ebs", "aws",
     ["ec2_ebs_volume_encryption", "ec2_ebs_default_encryption"]),
    ("data.encryption-at-rest", "volume-encryption/azure-disk-cmk", "azure",
     ["vm_ensure_attached_disks_encrypted_with_cmk", "vm_ensure_unattached_disks_encrypted_with_cmk"]),
    ("data.encryption-in-transit", "transport/s3-secure-transport-policy", "aws",
     ["s3_bucket_secure_transport_policy"]),
    ("data.encryption-in-transit", "transport/azure-https-only", "azure",
     ["storage_secure_transfer_required_is_enabled"]),
    ("data.encryption-in-transit", "transport/azure-min-tls-1.2", "azure",
     ["storage_ensure_minimum_tls_version_12"]),
    ("identity.least-privilege", "policy-analysis/full-admin", "aws",
     ADMIN + ["iam_role_administratoraccess_policy"]),
    # Prowler's check_admin_access (iam/lib/policy.py) counts Allow+NotAction on Resource "*"
    # as administrative, so the same three checks cover onus's allow-not-action.
    ("identity.least-privilege", "policy-analysis/allow-not-action", "aws", ADMIN),
    ("identity.least-privilege", "policy-analysis/service-wildcard", "aws",
     ["iam_policy_no_full_access_to_cloudtrail", "iam_inline_policy_no_full_access_to_cloudtrail",
      "iam_policy_no_full_access_to_kms", "iam_inline_policy_no_full_access_to_kms"]),
    ("identity.least-privilege", "policy-analysis/privilege-escalation", "aws",
     ["iam_policy_allows_privilege_escalation", "iam_inline_policy_allows_privilege_escalation"]),
    ("identity.workload-identity", "static-credentials", "kubernetes", ["core_no_secrets_envs"]),
    # One aspect per TCP port a Prowler check names (`tcp-22`): an open rule fails the ports it
    # opens, so Redis open to the internet does not fail CIS AWS 5.3 (administration ports).
] + [
    ("network.exposure", f"ingress-rules/tcp-{port}", "aws", [SG + check])
    for check in ["tcp_port_22", "tcp_port_3389", "tcp_port_telnet_23",
                  "tcp_port_sql_server_1433_1434", "tcp_port_oracle_1521_2483",
                  "tcp_port_mysql_3306", "tcp_port_postgres_5432", "tcp_port_redis_6379",
                  "tcp_port_elasticsearch_kibana_9200_9300_5601",
                  "tcp_port_memcached_11211", "tcp_port_mongodb_27017_27018"]
    for port in re.findall(r"\d+", check)
] + [
    ("network.exposure", "ingress-rules/all-ports", "aws", [SG + "all_ports"]),
    ("network.exposure", "ingress-rules/tcp-22", "azure", ["network_ssh_internet_access_restricted"]),
    ("network.exposure", "ingress-rules/tcp-3389", "azure", ["network_rdp_internet_access_restricted"]),
    ("network.exposure", "storage-network", "azure", ["storage_default_network_access_rule_is_denied"]),
    ("host-os.isolation", "host-access/privileged", "kubernetes", ["core_minimize_privileged_containers"]),
    ("host-os.isolation", "host-access/host-pid", "kubernetes", ["core_minimize_hostPID_containers"]),
    ("host-os.isolation", "host-access/host-ipc", "kubernetes", ["core_minimize_hostIPC_containers"]),
    ("host-os.isolation", "host-access/host-network", "kubernetes", ["core_minimize_hostNetwork_containers"]),
    ("host-os.isolation", "host-access/host-port", "kubernetes", ["core_minimize_admission_hostport_containers"]),
    ("host-os.isolation", "host-access/host-path", "kubernetes", ["core_minimize_hostpath_volume_mounts"]),
    ("host-os.isolation", "host-access/windows-hostprocess", "kubernetes",
     ["core_minimize_admission_windows_hostprocess_containers"]),
    ("host-os.isolation", "host-access/capability-net-raw", "kubernetes",
     ["core_minimize_net_raw_capability_admission"]),
    ("host-os.isolation", "host-access/capabilities-baseline", "kubernetes",
     ["core_minimize_containers_added_capabilities"]),
    ("host-os.isolation", "host-access/restricted-capabilities-drop-all", "kubernetes",
     ["core_minimize_containers_capabilities_assigned"]),
    ("host-os.isolation", "host-access/restricted-allow-privilege-escalation", "kubernetes",
     ["core_minimize_allowPrivilegeEscalation_containers"]),
    ("host-os.isolation", "host-access/restricted-run-as-non-root", "kubernetes",
     ["core_minimize_root_containers_admission"]),
    ("host-os.isolation", "host-access/seccomp", "kubernetes",
     ["core_seccomp_profile_docker_default"]),
    ("application.image-provenance", "image-reference/pinned", "kubernetes",
     ["core_image_tag_fixed"]),
    ("logging.audit-trail", "cloud-trail", "aws",
     ["cloudtrail_multi_region_enabled", "cloudtrail_multi_region_enabled_logging_management_events"]),
    ("logging.audit-trail", "trail-log-validation", "aws", ["cloudtrail_log_file_validation_enabled"]),
    ("logging.audit-trail", "trail-kms-encryption", "aws", ["cloudtrail_kms_encryption_enabled"]),
    ("logging.audit-trail", "access-logging/s3", "aws", ["s3_bucket_server_access_logging_enabled"]),
    ("logging.audit-trail", "access-logging/gcs", "gcp", ["cloudstorage_bucket_logging_enabled"]),
]

# onus checks matched to a benchmark requirement by its text (no Prowler check tests them).
# (control, check, framework, source key, requirement id)
DIRECT = [
    ("network.segmentation", "default-deny", "cis-kubernetes", "k8s-cis", "5.3.2"),
    ("host-os.isolation", "host-access/host-path", "cis-kubernetes", "k8s-cis", "5.2.11"),
    ("host-os.isolation", "host-access", "cis-kubernetes", "k8s-cis", "5.2.1"),
    ("host-os.isolation", "host-access", "cis-kubernetes", "k8s-cis", "5.6.3"),
    ("application.image-provenance", "image-reference/allowed-registries", "cis-kubernetes", "k8s-cis", "5.5.1"),
    # CIS EKS (kube-bench eks-1.8.0)
    ("host-os.isolation", "host-access/privileged", "cis-eks", "eks", "4.2.1"),
    ("host-os.isolation", "host-access/host-pid", "cis-eks", "eks", "4.2.2"),
    ("host-os.isolation", "host-access/host-ipc", "cis-eks", "eks", "4.2.3"),
    ("host-os.isolation", "host-access/host-network", "cis-eks", "eks", "4.2.4"),
    ("host-os.isolation", "host-access/restricted-allow-privilege-escalation", "cis-eks", "eks", "4.2.5"),
    ("network.segmentation", "default-deny", "cis-eks", "eks", "4.3.2"),
    ("identity.workload-identity", "static-credentials", "cis-eks", "eks", "4.4.1"),
    ("identity.workload-identity", "static-credentials", "cis-eks", "eks", "5.2.1"),
    ("application.image-provenance", "image-reference/allowed-registries", "cis-eks", "eks", "5.1.4"),
    ("data.encryption-in-transit", "ingress-tls", "cis-eks", "eks", "5.4.5"),
    # CIS AKS (kube-bench aks-1.8)
    ("host-os.isolation", "host-access/privileged", "cis-aks", "aks", "4.2.1"),
    ("host-os.isolation", "host-access/host-pid", "cis-aks", "aks", "4.2.2"),
    ("host-os.isolation", "host-access/host-ipc", "cis-aks", "aks", "4.2.3"),
    ("host-os.isolation", "host-access/host-network", "cis-aks", "aks", "4.2.4"),
    ("host-os.isolation", "host-access/restricted-allow-privilege-escalation", "cis-aks", "aks", "4.2.5"),
    ("network.segmentation", "default-deny", "cis-aks", "aks", "4.4.2"),
    ("identity.workload-identity", "static-credentials", "cis-aks", "aks", "4.5.1"),
    ("host-os.isolation", "host-access", "cis-aks", "aks", "4.6.2"),
    ("application.image-provenance", "image-reference/allowed-registries", "cis-aks", "aks", "5.1.4"),
    ("data.encryption-in-transit", "ingress-tls", "cis-aks", "aks", "5.4.5"),
    # CIS GKE (kube-bench gke-1.9.0)
    ("host-os.isolation", "host-access", "cis-gke", "gke", "4.2.1"),
    ("network.segmentation", "default-deny", "cis-gke", "gke", "4.3.2"),
    ("identity.workload-identity", "static-credentials", "cis-gke", "gke", "4.4.1"),
    ("identity.workload-identity", "static-credentials", "cis-gke", "gke", "5.2.2"),
    ("host-os.isolation", "host-access/seccomp", "cis-gke", "gke", "4.6.2"),
    ("host-os.isolation", "host-access", "cis-gke", "gke", "4.6.3"),
    ("application.image-provenance", "image-reference/allowed-registries", "cis-gke", "gke", "5.1.4"),
    ("data.encryption-at-rest", "volume-encryption/gce-pd-cmk", "cis-gke", "gke", "5.9.1"),
]

# Customer-owned requirements a cluster cannot see, each marked manual in the cited Prowler file
# (CIS: AssessmentStatus "Manual"; ISO/PCI: no check on any row, which Prowler reports as MANUAL).
_A7 = "prowler/compliance/aws/cis_7.0_aws.json"
_AZ = "prowler/compliance/azure/cis_6.0_azure.json"
_G5 = "prowler/compliance/gcp/cis_5.0_gcp.json"
_ISO = "prowler/compliance/aws/iso27001_2022_aws.json"
_PA = "prowler/compliance/aws/pci_4.0_aws.json"
_PG = "prowler/compliance/gcp/pci_4.0_gcp.json"
MANUAL = (
    [("cis-aws", _A7, i) for i in ["2.2", "2.3", "2.6", "2.7", "2.19"]]
    + [("cis-azure", _AZ, i) for i in ["3.1.1", "5.1.2", "5.1.4", "5.3.1", "5.3.2", "5.3.4", "5.3.7"]]
    + [("cis-gcp", _G5, i) for i in ["1.1.1", "1.1.2", "1.2", "1.3", "1.4"]]
    + [("iso-27001-2022", _ISO, i) for i in ["A.5.10", "A.5.20", "A.5.24", "A.6.1", "A.6.2", "A.6.3",
                                              "A.6.4", "A.6.5", "A.6.6", "A.6.7", "A.6.8", "A.7.7"]]
    + [("pci-dss-4", _PA, i) for i in ["6.5.5", "6.5.6"]]
    + [("pci-dss-4", _PG, i) for i in ["8.4.1", "8.4.2", "8.4.3", "12.4.2.1"]]
)

# ---------------------------------------------------------------- framework files
# framework, provider, path, version label, parser kind
PFILES = [
    ("nist-800-53-r5", "aws", "prowler/compliance/aws/nist_800_53_revision_5_aws.json", "rev5", "named"),
    ("cis-aws", "aws", "prowler/compliance/aws/cis_5.0_aws.json", "5.0.0", "cis"),
    ("cis-aws", "aws", "prowler/compliance/aws/cis_7.0_aws.json", "7.0.0", "cis"),
    ("cis-azure", "azure", "prowler/compliance/azure/cis_6.0_azure.json", "6.0.0", "cis"),
    ("cis-gcp", "gcp", "prowler/compliance/gcp/cis_5.0_gcp.json", "5.0.0", "cis"),
    ("cis-kubernetes", "kubernetes", "prowler/compliance/kubernetes/cis_2.0.1_kubernetes.json", "2.0.1", "cis"),
    ("pci-dss-4", "aws", "prowler/compliance/aws/pci_4.0_aws.json", "4.0", "pci"),
    ("pci-dss-4", "azure", "prowler/compliance/azure/pci_4.0_azure.json", "4.0", "pci"),
    ("pci-dss-4", "gcp", "prowler/compliance/gcp/pci_4.0_gcp.json", "4.0", "pci"),
    ("pci-dss-4", "kubernetes", "prowler/compliance/kubernetes/pci_4.0_kubernetes.json", "4.0", "pci"),
    ("iso-27001-2022", "aws", "prowler/compliance/aws/iso27001_2022_aws.json", "2022", "iso"),
    ("iso-27001-2022", "azure", "prowler/compliance/azure/iso27001_2022_azure.json", "2022", "iso"),
    ("iso-27001-2022", "gcp", "prowler/compliance/gcp/iso27001_2022_gcp.json", "2022", "iso"),
    ("iso-27001-2022", "kubernetes", "prowler/compliance/kubernetes/iso27001_2022_kubernetes.json", "2022", "iso"),
    ("soc2", "aws", "prowler/compliance/aws/soc2_aws.json", "unspecified", "named"),
    ("soc2", "azure", "prowler/compliance/azure/soc2_azure.json", "unspecified", "named"),
    ("soc2", "gcp", "prowler/compliance/gcp/soc2_gcp.json", "unspecified", "named"),
]
CCM = "prowler/compliance/csa_ccm_4.0.json"
KB = {"eks": ("cis-eks", "1.8.0", ["cfg/eks-1.8.0/policies.yaml", "cfg/eks-1.8.0/managedservices.yaml"]),
      "aks": ("cis-aks", "1.8", ["cfg/aks-1.8/policies.yaml", "cfg/aks-1.8/managedservices.yaml"]),
      "gke": ("cis-gke", "1.9.0", ["cfg/gke-1.9.0/policies.yaml", "cfg/gke-1.9.0/managedservices.yaml"])}

NAMED_ID = re.compile(r"^([A-Z]{1,3}\d*(?:\.\d+)?(?:-\d+)?(?:\((?:\d+|[a-z])\))*)(?:\s+(.*))?$", re.S)


# a few NIST names put the id last: "Access Enforcement (AC-3)"
TRAILING_ID = re.compile(r"^(?P<t>.*\S)\s+\((?P<i>[A-Z]{2}-\d+(?:\((?:\d+|[a-z])\))*)\)$")


def named(m):
    if "i" in m.groupdict():
        return m.group("i"), m.group("t")
    return m.group(1), m.group(2)


def requirements(kind, doc):
    """Yield (requirement_id, title, checks, manual) in the framework's own numbering."""
    for r in doc["Requirements"]:
        checks = r.get("Checks") or []
        if kind == "cis":
            a = r["Attributes"][0]
            yield r["Id"], r["Description"], checks, a.get("AssessmentStatus") == "Manual", a
        elif kind == "iso":
            yield r["Id"], r.get("Name") or r["Description"], checks, not checks, r["Attributes"][0]
        elif kind == "named":  # NIST / SOC2: the official id leads Name ("AC-2(1) ...", "CC6.1 ...")
            m = NAMED_ID.match(r["Name"].strip()) or TRAILING_ID.match(r["Name"].strip())
            if not m:
                raise SystemExit(f"unparsed requirement name {r['Name']!r}")
            rid, title = named(m)
            title = (title or "").strip() or r.get("Description", "").strip()
            yield rid, title, checks, not checks, r["Attributes"][0]
        elif kind == "pci":  # Id is "<PCI requirement>.<n>"; the requirement leads Section
            sec = r["Attributes"][0]["Section"]
            req, _, title = sec.partition(":")
            req = req.strip()
            if not (r["Id"] == req or r["Id"].startswith(req + ".")):
                print(f"warning: PCI row {r['Id']} sits in section {sec.strip()!r}; using the section",
                      file=sys.stderr)
            yield req, title.strip(), checks, not checks, r["Attributes"][0]


def main():
    known = set()
    for line in git(PROWLER, "ls-tree", "-r", "--name-only", "HEAD", "prowler/providers").splitlines():
        if line.endswith(".metadata.json"):
            known.add(line.rsplit("/", 2)[-2])
    for _, _, _, checks in ONUS:
        for c in checks:
            if c not in known:
                raise SystemExit(f"no such Prowler check: {c}")

    by_check = {}  # (provider, check) -> [(control, onus_check)]
    for control, check, prov, checks in ONUS:
        for c in checks:
            by_check.setdefault((prov, c), []).append((control, check))

    rows = []
    cis_k8s = {}
    status = {}  # (path, requirement id) -> [title, manual?]
    for fw, prov, path, ver, kind in PFILES:
        doc = json.loads(show(PROWLER, path))
        s = src(P_REPO, path, P_COMMIT)
        for rid, title, checks, is_manual, attrs in requirements(kind, doc):
            if fw == "cis-kubernetes":
                cis_k8s[rid] = (title, s, ver)
            for c in checks:
                for control, check in by_check.get((prov, c), []):
                    rows.append((control, check, prov, fw, ver, rid, title, c, s))
            st = status.setdefault((path, rid), [title, True])
            st[1] = st[1] and is_manual  # a requirement split over rows is manual only if every row is
    ccm = json.loads(show(PROWLER, CCM))
    s = src(P_REPO, CCM, P_COMMIT)
    for r in ccm["requirements"]:
        for prov, checks in r.get("checks", {}).items():
            for c in checks:
                for control, check in by_check.get((prov, c), []):
                    rows.append((control, check, prov, "csa-ccm-4", ccm["name"].split("(CCM) ")[-1].lstrip("v"),
                                 r["id"], r["name"], c, s))
        status[(CCM, r["id"])] = [r["name"], not r.get("checks")]

    kb = {}
    for key, (fw, ver, paths) in KB.items():
        for path in paths:
            for group in yaml.safe_load(show(KUBEBENCH, path))["groups"]:
                for chk in group.get("checks") or []:
                    kb[(key, str(chk["id"]))] = (fw, ver, chk["text"], src(K_REPO, path, K_COMMIT))
    for control, check, fw, key, rid in DIRECT:
        if key == "k8s-cis":
            title, s, ver = cis_k8s[rid]
        else:
            fw2, ver, title, s = kb[(key, rid)]
            assert fw2 == fw
        prov = {"k8s-cis": "kubernetes", "eks": "aws", "aks": "azure", "gke": "gcp"}[key]
        rows.append((control, check, prov, fw, ver, rid, title, "", s))

    # A requirement every per-port security-group check maps to is about network exposure as
    # a whole (ISO 27001 A.8.20 "Networks security"), not about one port: any forbidden port
    # open to the internet fails it, so it also gets a row every ingress-rules finding carries.
    port_checks = {c for control, check, prov, checks in ONUS
                   if check.startswith("ingress-rules/tcp-") and prov == "aws" for c in checks}
    by_req = {}
    for r in rows:
        if r[1].startswith("ingress-rules/tcp-") and r[2] == "aws":
            by_req.setdefault((r[3], r[4], r[5]), (r, set()))[1].add(r[7])
    for (fw, ver, rid), (r, checks) in sorted(by_req.items()):
        if checks >= port_checks:
            rows.append((r[0], "ingress-rules", "aws", fw, ver, rid, r[6],
                         SG + "tcp_port_*", r[8]))

    seen, out = set(), []
    for r in rows:
        k = r[:6] + (r[7],)
        if k not in seen:
            seen.add(k)
            out.append(r)
    out.sort(key=lambda r: (r[0], r[1], r[3], r[4], r[5], r[7], r[2]))
    with open(f"{OUT}/mappings.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["onus_control", "onus_check", "provider", "framework", "framework_version",
                    "requirement_id",
                    "requirement_title", "via_prowler_check", "source"])
        for r in out:
            w.writerow([" ".join(str(x).split()) for x in r])
    with open(f"{OUT}/manual.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["framework", "requirement_id", "title", "source"])
        for fw, path, rid in MANUAL:
            title, is_manual = status[(path, rid)]
            if not is_manual:
                raise SystemExit(f"{path} {rid} is not marked manual")
            w.writerow([fw, rid, " ".join(title.split()), src(P_REPO, path, P_COMMIT)])
    print(len(out), "mapping rows;", len(MANUAL), "manual rows")


main()
