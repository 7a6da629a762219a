#!/usr/bin/env bash
# Webhook load benchmark: wrk over HTTPS on loopback (keep-alive, 64 connections, saturated)
# against `onus run` judging a realistic Deployment review, then fixed rates (RATES, default
# 2000 5000 10000 reviews/s) with benches/webhook/load (open loop), then the latency the webhook
# adds to `kubectl apply --dry-run=server` against the real API server.
#   benches/webhook/run.sh [DURATION_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-20}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
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
hack/controlplane up "$CP" >/dev/null
eval "$(hack/controlplane env "$CP")"
kubectl apply -f crds/ >/dev/null
kubectl wait --for=condition=Established crd/responsibilitybaselines.onus.dev >/dev/null
kubectl create namespace shop >/dev/null
NS_CREATED=$(date +%s)
kubectl apply -f manifests/examples/aws-shop/00-baseline.yaml >/dev/null

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$ONUS" run --webhook-only --webhook-addr "127.0.0.1:$PORT" --metrics-addr "127.0.0.1:$MPORT" \
  --tls-cert-file "$WORK/tls.crt" --tls-key-file "$WORK/tls.key" >"$WORK/onus.log" 2>&1 &
ONUS_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$MPORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$MPORT/readyz" >/dev/null || { cat "$WORK/onus.log"; exit 1; }

# For 30 s after a namespace is created onus reads its baselines from the API server on each
# review (the watch may not have them yet): measure the steady state after that.
while (( $(date +%s) - NS_CREATED < 31 )); do sleep 1; done
echo "== wrk: 2 threads, 64 connections, ${DURATION}s, POST /validate (Deployment review)"
REVIEW=benches/webhook/review.json wrk -t2 -c64 -d"${DURATION}s" --latency -s benches/webhook/review.lua "https://127.0.0.1:$PORT/validate"
# Fixed rates, open loop (latency from each request's scheduled time): benches/webhook/load.
(cd benches/webhook/load && GOFLAGS=-mod=mod go build -o "$WORK/load" .)
for rate in ${RATES:-2000 5000 10000}; do
  echo "== load: $rate reviews/s offered, 64 connections, ${DURATION}s"
  "$WORK/load" -url "https://127.0.0.1:$PORT/validate" -ca "$WORK/tls.crt" -body benches/webhook/review.json \
    -rate "$rate" -conns 64 -duration "${DURATION}s"
done
echo "== onus RSS after load: $(ps -o rss= -p "$ONUS_PID" | awk '{printf "%.1f MiB", $1/1024}')"

deploy() {
  cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders, namespace: shop}
spec:
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders}}
    spec:
      containers:
      - name: orders
        image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders@sha256:4b7e1c9d2a3f5e6b8c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b
YAML
}
measure() {
  local n=40 start end
  deploy | kubectl apply --dry-run=server -f - >/dev/null
  start=$(date +%s%N)
  for _ in $(seq $n); do deploy | kubectl apply --dry-run=server -f - >/dev/null; done
  end=$(date +%s%N)
  echo $(( (end - start) / n / 1000000 ))
}
without=$(measure)
"$ONUS" webhook-config --url "https://127.0.0.1:$PORT/validate" --ca-bundle-file "$WORK/tls.crt" --name onus-bench | kubectl apply -f - >/dev/null
sleep 1
with=$(measure)
echo "== kubectl apply --dry-run=server, mean of 40: without webhook ${without} ms, with webhook ${with} ms (adds $((with - without)) ms)"
