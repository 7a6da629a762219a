#!/usr/bin/env bash
# Abuse cases against a running `onus run` (release build) on loopback, with a real control
# plane: a 100 KB wildcard IAM policy in one review, 200 clients trickling 2 MiB bodies, 2,000
# reviews with random kinds. Reports latencies of normal reviews meanwhile, onus's memory, and
# how many metric series the random kinds made. Bounded in count and time; loopback only.
#   benches/abuse/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q
ONUS=$PWD/target/release/onus
WORK=$(mktemp -d)
CP="$WORK/cp"
cleanup() {
  [[ -n ${ONUS_PID:-} ]] && kill "$ONUS_PID" 2>/dev/null || true
  hack/controlplane down "$CP" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

hack/controlplane up "$CP" >/dev/null
eval "$(hack/controlplane env "$CP")"
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/responsibilitybaselines.onus.dev crd/cloudresources.onus.dev >/dev/null
kubectl create namespace onus-system >/dev/null
kubectl create namespace abuse >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: onus.dev/v1alpha1
kind: ResponsibilityBaseline
metadata: {name: aws, namespace: abuse}
spec: {provider: aws, serviceModel: iaas, action: Deny}
YAML
PORT=$(free_port); MPORT=$(free_port)
"$ONUS" run --webhook-addr "127.0.0.1:$PORT" --metrics-addr "127.0.0.1:$MPORT" --namespace onus-system \
  --cert-host 127.0.0.1 --webhook-config none --webhook-only >"$WORK/onus.log" 2>&1 &
ONUS_PID=$!
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$MPORT/readyz" >/dev/null && break; sleep 0.2; done
kubectl get secret onus-webhook-tls -n onus-system -o jsonpath='{.data.ca\.crt}' | base64 -d >"$WORK/ca.pem"
rss() { awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' "/proc/$ONUS_PID/status"; }
hwm() { awk '/VmHWM/ {printf "%.0f MiB", $2/1024}' "/proc/$ONUS_PID/status"; }
series() { curl -s "http://127.0.0.1:$MPORT/metrics" | grep -c '^onus_admission_requests_total' || true; }
echo "== onus RSS at start: $(rss)"
python3 benches/abuse/clients.py "$PORT" "$WORK/ca.pem" wildcard
echo "   onus RSS: $(rss), peak $(hwm)"
python3 benches/abuse/clients.py "$PORT" "$WORK/ca.pem" slow
echo "   onus RSS: $(rss), peak $(hwm) (the chart's limit is 512 MiB)"
before=$(series)
python3 benches/abuse/clients.py "$PORT" "$WORK/ca.pem" kinds
echo "   onus_admission_requests_total series: $before before, $(series) after; RSS $(rss), peak $(hwm)"
