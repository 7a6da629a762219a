#!/usr/bin/env bash
# Audit scale benchmark: 1,000 S3 buckets in moto and 10,000 Deployments referencing them
# (10 namespaces x 1,000), one full reconcile pass of `onus run` (release build).
# Reports: AWS calls made (vs distinct resources x calls per audit), wall time of the pass,
# CloudResource writes in the first and the second pass, bytes stored per CloudResource, and the
# resident memory of the leader and of a follower (a second `onus run` that only watches).
#   benches/audit/run.sh [BUCKETS] [WORKLOADS] [IMAGE]
# IMAGE defaults to one pinned by digest (every workload passes); an unpinned one (nginx:1.27)
# makes every workload fail application.image-provenance: one GapOpened Event each.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUCKETS=${1:-1000}
WORKLOADS=${2:-10000}
IMAGE=${3:-registry.example.com/app@sha256:4b7e1c9d2a3f5e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b}
NS_COUNT=10
cargo build --release -q
ONUS=$PWD/target/release/onus
WORK=$(mktemp -d)
CP="$WORK/cp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cleanup() {
  [[ -n ${ONUS_PID:-} ]] && kill "$ONUS_PID" 2>/dev/null || true
  [[ -n ${FOLLOWER_PID:-} ]] && kill "$FOLLOWER_PID" 2>/dev/null || true
  [[ -n ${MOTO_PID:-} ]] && kill "$MOTO_PID" 2>/dev/null || true
  hack/controlplane down "$CP" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

MOTO_PORT=$(free_port)
MOTO=$(hack/moto path)
"$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 100); do curl -sf "$AWS_ENDPOINT_URL/moto-api/" >/dev/null && break; sleep 0.2; done

echo "== seeding $BUCKETS buckets in moto"
"$(dirname "$MOTO")/python" - "$BUCKETS" <<'PY'
import sys, boto3
s3 = boto3.client("s3")
for i in range(int(sys.argv[1])):
    b = f"bench-{i:04d}"
    s3.create_bucket(Bucket=b)
    s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
PY

hack/controlplane up "$CP" >/dev/null
eval "$(hack/controlplane env "$CP")"
kubectl apply -f crds/ >/dev/null
kubectl apply --server-side -f ../shared/thirdparty-crds/openreports.io_reports.yaml >/dev/null
kubectl wait --for=condition=Established crd/responsibilitybaselines.onus.dev crd/cloudresources.onus.dev crd/reports.openreports.io >/dev/null
kubectl create namespace onus-system >/dev/null
echo "== creating $WORKLOADS Deployments in $NS_COUNT namespaces"
python3 - "$BUCKETS" "$WORKLOADS" "$NS_COUNT" "$IMAGE" >"$WORK/objects.yaml" <<'PY'
import sys
buckets, workloads, nss = map(int, sys.argv[1:4])
image = sys.argv[4]
for n in range(nss):
    print(f"---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: bench-{n}}}")
    print(f"---\napiVersion: onus.dev/v1alpha1\nkind: ResponsibilityBaseline\nmetadata: {{name: aws, namespace: bench-{n}}}\nspec: {{provider: aws, serviceModel: iaas, aws: {{region: us-east-1}}}}")
for i in range(workloads):
    ns, b = i % nss, i % buckets
    print(f"""---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: app-{i}, namespace: bench-{ns}}}
spec:
  selector: {{matchLabels: {{app: app-{i}}}}}
  template:
    metadata: {{labels: {{app: app-{i}}}}}
    spec:
      containers:
      - name: app
        image: {image}
        env: [{{name: DATA, value: "s3://bench-{b:04d}/in"}}]""")
PY
start=$(date +%s)
kubectl apply --server-side -f "$WORK/objects.yaml" >/dev/null
echo "   created in $(( $(date +%s) - start ))s"

PORT=$(free_port); MPORT=$(free_port)
# A second pass starts a minute after the first one began (or when it ends): nothing changed in
# the cloud, so it should write nothing.
RUST_LOG=info "$ONUS" run --webhook-addr "127.0.0.1:$PORT" --metrics-addr "127.0.0.1:$MPORT" \
  --namespace onus-system --cert-host 127.0.0.1 --audit-interval 60s --posture-ttl 10m \
  --identity leader >"$WORK/onus.log" 2>&1 &
ONUS_PID=$!
for _ in $(seq 100); do kubectl get lease onus-controller -n onus-system >/dev/null 2>&1 && break; sleep 0.2; done
FPORT=$(free_port); FMPORT=$(free_port)
RUST_LOG=info "$ONUS" run --webhook-addr "127.0.0.1:$FPORT" --metrics-addr "127.0.0.1:$FMPORT" \
  --namespace onus-system --cert-host 127.0.0.1 --identity follower >"$WORK/follower.log" 2>&1 &
FOLLOWER_PID=$!
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v re="$2" '$0 ~ re {s += $NF} END {print s+0}'; }
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
passes() { grep -c "reconcile pass done" "$WORK/onus.log" || true; }
for _ in $(seq 1200); do [[ $(passes) -ge 1 ]] && break; sleep 0.5; done
grep "reconcile pass done" "$WORK/onus.log" | head -1 | sed 's/\x1b\[[0-9;]*m//g'
calls=$(metric "$MPORT" '^onus_cloud_requests_total')
errors=$(metric "$MPORT" '^onus_cloud_requests_total.*outcome="(error|throttled)"')
echo "== AWS calls in the pass: $calls (errors/throttled: $errors)"
first=$(metric "$MPORT" '^onus_cloud_resource_writes_total')
echo "== CloudResource writes in the first pass: $first ($(metric "$MPORT" '^onus_cloud_resource_writes_total.*operation="create"') creates)"
echo "== leader RSS after the pass: $(rss $ONUS_PID), peak: $(hwm $ONUS_PID)"
curl -s "http://127.0.0.1:$MPORT/metrics" | grep -E '^onus_cloud_resources|^onus_reconcile_total'
echo "== GapOpened Events: $(kubectl get events -A --field-selector reason=GapOpened --no-headers 2>/dev/null | wc -l)"
kubectl get cloudresources -o json | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
sizes = [len(json.dumps(i, separators=(",", ":"))) for i in items]
print(f"== CloudResource objects: {len(items)}, JSON bytes each: mean {sum(sizes)//max(len(sizes),1)}, max {max(sizes, default=0)}")'
for _ in $(seq 600); do [[ $(passes) -ge 2 ]] && break; sleep 0.5; done
grep "reconcile pass done" "$WORK/onus.log" | sed -n 2p | sed 's/\x1b\[[0-9;]*m//g'
echo "== CloudResource writes in the second pass: $(( $(metric "$MPORT" '^onus_cloud_resource_writes_total') - first ))"
echo "== leader RSS after two passes: $(rss $ONUS_PID), peak: $(hwm $ONUS_PID)"
echo "== follower RSS: $(rss $FOLLOWER_PID), peak: $(hwm $FOLLOWER_PID); oldest posture it judges from: $(metric "$FMPORT" '^onus_posture_oldest_age_seconds') s; AWS calls it made: $(metric "$FMPORT" '^onus_cloud_requests_total')"
