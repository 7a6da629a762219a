#!/usr/bin/env python3
"""Seed moto with a known set of AWS resources and write the manifests onus judges them through.

    seed.py OUT_DIR        (AWS_ENDPOINT_URL etc. point at moto; boto3 must be importable)

Writes OUT_DIR/state.json (every seeded resource: kind, name, id, what it is) and
OUT_DIR/manifests/*.yaml (baselines, Deployments, IRSA ServiceAccounts, a LoadBalancer Service).
Run with the python of hack/moto's venv, which has boto3.
"""

import json
import os
import sys

import boto3

ACCOUNT = "123456789012"
REGION = "us-east-1"
IMAGE = "registry.example.com/app@sha256:" + "0" * 64

s3 = boto3.client("s3", region_name=REGION)
iam = boto3.client("iam", region_name=REGION)
ec2 = boto3.client("ec2", region_name=REGION)
kms = boto3.client("kms", region_name=REGION)
cloudtrail = boto3.client("cloudtrail", region_name=REGION)

state = {"account": ACCOUNT, "buckets": [], "roles": [], "policies": [], "security_groups": [], "trails": []}


# ------------------------------------------------------------------------------------ S3

def statement(sid, action, resource, effect="Allow", principal="*", condition=None):
    st = {"Sid": sid, "Effect": effect, "Principal": principal, "Action": action, "Resource": resource}
    if condition:
        st["Condition"] = condition
    return st


def public_get(bucket, condition=None):
    return {"Version": "2012-10-17", "Statement": [
        statement("Read", "s3:GetObject", f"arn:aws:s3:::{bucket}/*", condition=condition)]}


def deny_insecure(bucket):
    return statement("DenyInsecure", "s3:*", [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                     effect="Deny", condition={"Bool": {"aws:SecureTransport": "false"}})


BPA_ON = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
          "RestrictPublicBuckets": True}

kms_key = kms.create_key(Description="bench customer managed key")["KeyMetadata"]["Arn"]

# name: (description, settings)
BUCKETS = {
    "pb-logs": ("log target: private, BPA on, SSE-S3, owner enforced, policy lets S3 logging write",
                dict(ownership="BucketOwnerEnforced", bpa=True, sse="AES256", policy="log-delivery")),
    "pb-trail-logs": ("CloudTrail log bucket: private, BPA on, SSE-S3, owner enforced, policy lets CloudTrail write",
                      dict(ownership="BucketOwnerEnforced", bpa=True, sse="AES256", policy="cloudtrail")),
    "pb-clean": ("private, BPA on, SSE-KMS (customer key), logging, TLS-only policy, owner enforced",
                 dict(ownership="BucketOwnerEnforced", bpa=True, sse="aws:kms", key=kms_key,
                      logging=True, policy="tls")),
    "pb-public-acl": ("ACL public-read, ACLs enabled, no BPA, no encryption",
                      dict(ownership="ObjectWriter", acl="public-read")),
    "pb-public-write-acl": ("ACL public-read-write, ACLs enabled, no BPA, SSE-S3",
                            dict(ownership="ObjectWriter", acl="public-read-write", sse="AES256")),
    "pb-public-policy": ("policy: Principal * s3:GetObject, no condition; SSE-S3",
                         dict(ownership="BucketOwnerEnforced", policy="public", sse="AES256")),
    "pb-policy-put-star": ("policy: Principal * s3:PutObject (public write); SSE-S3",
                           dict(ownership="BucketOwnerEnforced", policy="put", sse="AES256")),
    "pb-policy-ip-any": ("policy: Principal * GetObject if aws:SourceIp 0.0.0.0/0 (narrows nothing)",
                         dict(ownership="BucketOwnerEnforced", policy="ip:0.0.0.0/0", sse="AES256")),
    "pb-policy-ip-private": ("policy: Principal * GetObject if aws:SourceIp 10.0.0.0/8",
                             dict(ownership="BucketOwnerEnforced", policy="ip:10.0.0.0/8", sse="AES256")),
    "pb-policy-ip-52": ("policy: Principal * GetObject if aws:SourceIp 52.0.0.0/8 (16.7M public addresses)",
                        dict(ownership="BucketOwnerEnforced", policy="ip:52.0.0.0/8", sse="AES256")),
    "pb-policy-referer": ("policy: Principal * GetObject if aws:Referer (requester-controlled header)",
                          dict(ownership="BucketOwnerEnforced", policy="referer", sse="AES256")),
    "pb-policy-account": ("policy: Principal * GetObject if aws:PrincipalAccount = own account",
                          dict(ownership="BucketOwnerEnforced", policy="account", sse="AES256")),
    "pb-policy-bpa-on": ("public policy, but bucket BPA fully on (RestrictPublicBuckets)",
                         dict(ownership="BucketOwnerEnforced", policy="public", bpa=True, sse="AES256")),
    "pb-sse-kms-aws": ("SSE-KMS with the AWS managed key alias/aws/s3; BPA on",
                       dict(ownership="BucketOwnerEnforced", bpa=True, sse="aws:kms", key="alias/aws/s3")),
    "pb-sse-kms-cmk": ("SSE-KMS with a customer managed key; BPA on",
                       dict(ownership="BucketOwnerEnforced", bpa=True, sse="aws:kms", key=kms_key)),
    "pb-no-encryption": ("no default encryption; BPA on; owner enforced",
                         dict(ownership="BucketOwnerEnforced", bpa=True)),
    "pb-acls-enabled": ("private ACL but ACLs enabled (ObjectWriter); BPA on; SSE-S3",
                        dict(ownership="ObjectWriter", bpa=True, sse="AES256")),
}


def bucket_policy(name, kind):
    if kind == "public":
        return public_get(name)
    if kind == "put":
        return {"Version": "2012-10-17", "Statement": [
            statement("Write", "s3:PutObject", f"arn:aws:s3:::{name}/*")]}
    if kind.startswith("ip:"):
        return public_get(name, {"IpAddress": {"aws:SourceIp": kind[3:]}})
    if kind == "referer":
        return public_get(name, {"StringLike": {"aws:Referer": ["https://www.example.com/*"]}})
    if kind == "account":
        return public_get(name, {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}})
    if kind in ("log-delivery", "cloudtrail"):
        # A service principal writing, limited to this account: not public.
        service = "logging.s3.amazonaws.com" if kind == "log-delivery" else "cloudtrail.amazonaws.com"
        return {"Version": "2012-10-17", "Statement": [
            statement("ServiceWrite", "s3:PutObject", f"arn:aws:s3:::{name}/*", principal={"Service": service},
                      condition={"StringEquals": {"aws:SourceAccount": ACCOUNT}})]}
    if kind == "tls":
        return {"Version": "2012-10-17", "Statement": [deny_insecure(name)]}
    raise ValueError(kind)


for name, (desc, cfg) in BUCKETS.items():
    s3.create_bucket(Bucket=name, ObjectOwnership=cfg["ownership"])
    if cfg.get("acl") == "public-read-write":
        # Spelled out: AWS's canned ACL grants AllUsers READ and WRITE, moto's only READ.
        owner = s3.get_bucket_acl(Bucket=name)["Owner"]
        all_users = {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}
        s3.put_bucket_acl(Bucket=name, AccessControlPolicy={"Owner": owner, "Grants": [
            {"Grantee": {"Type": "CanonicalUser", "ID": owner["ID"]}, "Permission": "FULL_CONTROL"},
            {"Grantee": all_users, "Permission": "READ"},
            {"Grantee": all_users, "Permission": "WRITE"}]})
    elif "acl" in cfg:
        s3.put_bucket_acl(Bucket=name, ACL=cfg["acl"])
    if "policy" in cfg:
        # (before Block Public Access: AWS refuses a public policy once BlockPublicPolicy is on)
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps(bucket_policy(name, cfg["policy"])))
    if cfg.get("bpa"):
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=BPA_ON)
    if "sse" in cfg:
        rule = {"SSEAlgorithm": cfg["sse"]}
        if "key" in cfg:
            rule["KMSMasterKeyID"] = cfg["key"]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": rule}]})
    if cfg.get("logging"):
        s3.put_bucket_logging(Bucket=name, BucketLoggingStatus={
            "LoggingEnabled": {"TargetBucket": "pb-logs", "TargetPrefix": f"{name}/"}})
    state["buckets"].append({"name": name, "arn": f"arn:aws:s3:::{name}", "description": desc})

# ------------------------------------------------------------------------------------ IAM

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow",
    "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/BENCH"},
    "Action": "sts:AssumeRoleWithWebIdentity"}]})


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*"):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


MANAGED = {
    "pp-admin": doc(allow("*")),
    "pp-createpolicyversion": doc(allow("iam:CreatePolicyVersion")),
    "pp-cloudtrail-star": doc(allow("cloudtrail:*")),
}
policy_arn = {}
for name, document in MANAGED.items():
    arn = iam.create_policy(PolicyName=name, PolicyDocument=document)["Policy"]["Arn"]
    policy_arn[name] = arn
    state["policies"].append({"name": name, "arn": arn})

READONLY_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pr-readonly"
EC2_ADMIN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/pr-ec2-admin"
EC2_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
# name: (description, inline documents, attached managed policies)
ROLES = {
    "pr-readonly": ("inline s3:GetObject on one bucket", [doc(allow("s3:GetObject", "arn:aws:s3:::pb-clean/*"))], []),
    "pr-admin-inline": ("inline Allow * on *", [doc(allow("*"))], []),
    "pr-admin-managed": ("attached customer managed pp-admin (Allow * on *)", [], ["pp-admin"]),
    "pr-notaction-allow": ("inline Allow NotAction iam:* on * (everything but IAM)",
                           [doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})], []),
    "pr-deny-notaction": ("inline Allow * on *, Deny NotAction s3:GetObject on * (net: only s3:GetObject)",
                          [doc(allow("*"), {"Effect": "Deny", "NotAction": "s3:GetObject", "Resource": "*"})], []),
    "pr-s3-star": ("inline s3:* on *", [doc(allow("s3:*"))], []),
    "pr-kms-star": ("inline kms:* on *", [doc(allow("kms:*"))], []),
    "pr-cloudtrail-star": ("attached customer managed pp-cloudtrail-star (cloudtrail:* on *)", [], ["pp-cloudtrail-star"]),
    "pr-passrole-ec2": ("inline iam:PassRole + ec2:RunInstances on *",
                        [doc(allow(["iam:PassRole", "ec2:RunInstances"]))], []),
    "pr-passrole-named": ("inline iam:PassRole on pr-readonly only (web-identity trust, no instance profile) + ec2:RunInstances on *",
                          [doc(allow("iam:PassRole", READONLY_ROLE), allow("ec2:RunInstances"))], []),
    "pr-ec2-admin": ("EC2 instance role (trusts ec2.amazonaws.com, in instance profile pip-ec2-admin), inline Allow * on *",
                     [doc(allow("*"))], []),
    "pr-passrole-admin": ("inline iam:PassRole on pr-ec2-admin only + ec2:RunInstances on *",
                          [doc(allow("iam:PassRole", EC2_ADMIN_ROLE), allow("ec2:RunInstances"))], []),
    "pr-createpolicyversion": ("attached customer managed pp-createpolicyversion (iam:CreatePolicyVersion on *)",
                               [], ["pp-createpolicyversion"]),
    "pr-lambda-escalation": ("inline iam:PassRole + lambda:CreateFunction + lambda:InvokeFunction on *",
                             [doc(allow(["iam:PassRole", "lambda:CreateFunction", "lambda:InvokeFunction"]))], []),
}
for name, (desc, inline, attached) in ROLES.items():
    trust = EC2_TRUST if name == "pr-ec2-admin" else TRUST
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    if name == "pr-ec2-admin":
        iam.create_instance_profile(InstanceProfileName="pip-ec2-admin")
        iam.add_role_to_instance_profile(InstanceProfileName="pip-ec2-admin", RoleName=name)
    for i, document in enumerate(inline):
        iam.put_role_policy(RoleName=name, PolicyName=f"{name}-inline-{i}", PolicyDocument=document)
    for p in attached:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn[p])
    state["roles"].append({
        "name": name, "arn": arn, "description": desc,
        "inline": [f"{name}-inline-{i}" for i in range(len(inline))],
        "attached": [policy_arn[p] for p in attached],
    })

# ------------------------------------------------------------------------------------ EC2

vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]


def tcp(port_from, port_to, cidr):
    p = {"IpProtocol": "tcp", "FromPort": port_from, "ToPort": port_to}
    if ":" in cidr:
        p["Ipv6Ranges"] = [{"CidrIpv6": cidr}]
    else:
        p["IpRanges"] = [{"CidrIp": cidr}]
    return p


SGS = {
    "ps-ssh-world": ("tcp 22 from 0.0.0.0/0", [tcp(22, 22, "0.0.0.0/0")]),
    "ps-ssh-v6": ("tcp 22 from ::/0", [tcp(22, 22, "::/0")]),
    "ps-ssh-52": ("tcp 22 from 52.0.0.0/8 (public, AWS-owned addresses)", [tcp(22, 22, "52.0.0.0/8")]),
    "ps-ssh-private": ("tcp 22 from 10.0.0.0/8", [tcp(22, 22, "10.0.0.0/8")]),
    "ps-https-world": ("tcp 443 from 0.0.0.0/0", [tcp(443, 443, "0.0.0.0/0")]),
    "ps-range-world": ("tcp 20-30 from 0.0.0.0/0 (covers 22)", [tcp(20, 30, "0.0.0.0/0")]),
    "ps-all-world": ("all traffic (-1) from 0.0.0.0/0",
                     [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]),
}
for name, (desc, perms) in SGS.items():
    gid = ec2.create_security_group(GroupName=name, Description=desc, VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=perms)
    state["security_groups"].append({"name": name, "id": gid, "description": desc})

# ------------------------------------------------------------------------------ CloudTrail

cloudtrail.create_trail(Name="pt-main", S3BucketName="pb-trail-logs", IsMultiRegionTrail=True,
                        EnableLogFileValidation=False)
cloudtrail.start_logging(Name="pt-main")
# What AWS's GetEventSelectors returns for a trail made without selectors (moto returns none).
cloudtrail.put_event_selectors(TrailName="pt-main", EventSelectors=[
    {"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": []}])
state["trails"].append({"name": "pt-main", "description":
                        "multi-region, logging, all management events, no log file validation, no KMS"})

# ----------------------------------------------------------------------------- manifests

out = sys.argv[1]
os.makedirs(os.path.join(out, "manifests"), exist_ok=True)
with open(os.path.join(out, "state.json"), "w") as f:
    json.dump(state, f, indent=2)


def deployment(name, ns, uses=None, sa=None):
    ann = f", annotations: {{onus.dev/uses: \"{uses}\"}}" if uses else ""
    sa_line = f"\n      serviceAccountName: {sa}" if sa else ""
    return f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {ns}{ann}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:{sa_line}
      containers:
      - name: app
        image: {IMAGE}
"""


docs = []
# `bench`: the default AWS IaaS baseline. `bench-strict`: the same, plus a customer managed key,
# a TLS-only bucket policy and server access logging (the questions Prowler asks of every bucket).
docs.append("""---
apiVersion: onus.dev/v1alpha1
kind: ResponsibilityBaseline
metadata: {name: aws, namespace: bench}
spec: {provider: aws, serviceModel: iaas, aws: {region: us-east-1}}
---
apiVersion: onus.dev/v1alpha1
kind: ResponsibilityBaseline
metadata: {name: aws, namespace: bench-strict}
spec:
  provider: aws
  serviceModel: iaas
  aws: {region: us-east-1}
  controls:
  - {id: data.encryption-at-rest, parameters: {requireCustomerManagedKey: true}}
  - {id: data.encryption-in-transit, parameters: {requireSecureTransportPolicy: true}}
  - {id: logging.audit-trail, parameters: {requireAccessLogging: true}}
""")
uses = ", ".join(f"s3://{b['name']}" for b in state["buckets"])
docs.append(deployment("buckets", "bench", uses=uses))
docs.append(deployment("buckets", "bench-strict", uses=uses))
for r in state["roles"]:
    docs.append(f"""---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {r['name']}, namespace: bench, annotations: {{eks.amazonaws.com/role-arn: "{r['arn']}"}}}}
""")
    docs.append(deployment(r["name"], "bench", sa=r["name"]))
sgs = ",".join(g["id"] for g in state["security_groups"])
docs.append(f"""---
apiVersion: v1
kind: Service
metadata:
  name: edge
  namespace: bench
  annotations: {{service.beta.kubernetes.io/aws-load-balancer-security-groups: "{sgs}"}}
spec:
  type: LoadBalancer
  selector: {{app: buckets}}
  ports: [{{port: 443, targetPort: 8443}}]
""")
with open(os.path.join(out, "manifests", "bench.yaml"), "w") as f:
    f.write("".join(docs))

n = sum(len(state[k]) for k in ("buckets", "roles", "policies", "security_groups", "trails"))
print(f"seeded {n} resources: {len(state['buckets'])} buckets, {len(state['roles'])} roles, "
      f"{len(state['policies'])} managed policies, {len(state['security_groups'])} security groups, "
      f"{len(state['trails'])} trail (+1 KMS key)")
