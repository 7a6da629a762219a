#!/usr/bin/env bash
# Admission benchmark: the same load of dry-run Deployment creates against ONE real
# kube-apiserver (hack/controlplane) under each setup in turn, several rounds, order rotated:
#   floor    no admission policy
#   vap      a ValidatingAdmissionPolicy (CEL) + binding with the checks onus makes (vap.yaml)
#   kyverno  Kyverno (hack/kyverno), out of cluster, with the same checks (kyverno-policy.yaml)
#   onus     target/release/onus run --webhook-only, AWS IaaS baseline in the namespace
# Load (driver/, Go, standard library): open loop at fixed rates and closed loop saturated;
# 90% passing / 10% failing Deployments. Prints one table at the end. See README.md.
#
#   benches/admission/run.sh            full run (about 15 minutes on 2 cores)
#   QUICK=1 benches/admission/run.sh    one short round (about 3 minutes)
#
# Knobs (env): ROUNDS, DURATION (s, measured, per load), WARMUP (s), RATES ("50 200 500"),
# SAT_WORKERS (closed-loop workers, 16; 0 = no saturated run), OPEN_WORKERS (most requests in
# flight in open loop, 128), FAIL_PCT (10), SETUPS ("floor vap kyverno onus"), H2=1 (HTTP/2
# instead of HTTP/1.1 keep-alive), KYVERNO_V (Kyverno log verbosity, 2 = chart default),
# ONUS_BIN (default target/release/onus; built with cargo when missing), RESULTS (keep the
# JSON lines there), KEEP=1 (keep the work directory with the logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BENCH=$ROOT/benches/admission
NS=shop

if [[ ${QUICK:-0} == 1 ]]; then
  ROUNDS=${ROUNDS:-1} DURATION=${DURATION:-6} WARMUP=${WARMUP:-2}
else
  ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-12} WARMUP=${WARMUP:-3}
fi
RATES=${RATES:-50 200 500}
SAT_WORKERS=${SAT_WORKERS:-16}
OPEN_WORKERS=${OPEN_WORKERS:-128}
FAIL_PCT=${FAIL_PCT:-10}
SETUPS=${SETUPS:-floor vap kyverno onus}
KYVERNO_V=${KYVERNO_V:-2}
H2FLAG=()
[[ ${H2:-0} == 1 ]] && H2FLAG=(-h2)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

for tool in go python3 openssl curl; do command -v "$tool" >/dev/null || die "$tool is needed"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/onus-admission-bench.XXXXXX")
CP=$WORK/cp
RESULTS_FILE=$WORK/results.jsonl
ONUS_PID='' KYVERNO_PID='' OK=''

stop_pid() { # pid name: TERM, then KILL after 15 s
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "$2 ($pid) ignored TERM; KILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$ONUS_PID" onus
  stop_pid "$KYVERNO_PID" kyverno
  [[ -d $CP ]] && { "$ROOT/hack/controlplane" down "$CP" >/dev/null 2>&1 || true; }
  [[ -n ${RESULTS:-} && -f $RESULTS_FILE ]] && cp "$RESULTS_FILE" "$RESULTS"
  if [[ -z $OK || ${KEEP:-0} == 1 ]]; then
    log "logs and results kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ------------------------------------------------------------------------------ builds

CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/onus/admission-bench
mkdir -p "$CACHE"
log "building the load driver"
(cd "$BENCH/driver" && CGO_ENABLED=0 go build -o "$CACHE/driver" .) || die "go build of the driver failed"
DRIVER=$CACHE/driver

want() { [[ " $SETUPS " == *" $1 "* ]]; }

if want onus; then
  ONUS_SRC=${ONUS_BIN:-$ROOT/target/release/onus}
  if [[ ! -x $ONUS_SRC ]]; then
    [[ -n ${ONUS_BIN:-} ]] && die "ONUS_BIN=$ONUS_BIN is not an executable"
    log "no $ONUS_SRC: cargo build --release"
    cargo build --release -q || die "cargo build --release failed"
  fi
  # A copy: a rebuild during the run does not change what is measured.
  cp "$ONUS_SRC" "$WORK/onus"
  ONUS=$WORK/onus
fi

if want kyverno; then
  log "kyverno: $("$ROOT/hack/kyverno" version) (hack/kyverno install builds it when missing)"
  KYVERNO=$("$ROOT/hack/kyverno" path) || die "hack/kyverno path failed"
  KYVERNO_VERSION=$("$ROOT/hack/kyverno" version)
  # Its CRDs come from the module source (Go module cache; read-only, only read here).
  KYVERNO_SRC=$(cd "$WORK" && GOFLAGS=-mod=mod go mod download -json "github.com/kyverno/kyverno@$KYVERNO_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || die "go mod download of kyverno failed"
  [[ -d $KYVERNO_SRC/config/crds ]] || die "no config/crds in $KYVERNO_SRC"
fi

# ------------------------------------------------------------------------------ cluster

log "starting the control plane"
"$ROOT/hack/controlplane" up "$CP" >/dev/null
eval "$("$ROOT/hack/controlplane" env "$CP")"
export KUBECONFIG
kubectl create namespace "$NS" >/dev/null
NS_CREATED=$(date +%s)
if want onus; then
  kubectl apply -f "$ROOT/crds/" >/dev/null
  kubectl wait --for=condition=Established crd/responsibilitybaselines.onus.dev >/dev/null
  # The AWS IaaS baseline for namespace shop (action Deny); inert while onus is not running.
  kubectl apply -f "$ROOT/manifests/examples/aws-shop/00-baseline.yaml" >/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
fi
if want kyverno; then
  kubectl apply --server-side -R -f "$KYVERNO_SRC/config/crds/" >/dev/null
  kubectl wait --for=condition=Established crd/clusterpolicies.kyverno.io >/dev/null
  kubectl create namespace kyverno >/dev/null
fi

# ------------------------------------------------------------------------------ setups

up_floor() { :; }
down_floor() { :; }

up_vap() { kubectl apply -f "$BENCH/vap.yaml" >/dev/null; }
down_vap() { kubectl delete -f "$BENCH/vap.yaml" --wait >/dev/null; }

up_onus() {
  local port mport i
  port=$(free_port) mport=$(free_port)
  RUST_LOG=warn "$ONUS" run --webhook-only --shutdown-grace 1s \
    --webhook-addr "127.0.0.1:$port" --metrics-addr "127.0.0.1:$mport" \
    --tls-cert-file "$WORK/tls.crt" --tls-key-file "$WORK/tls.key" >>"$WORK/onus.log" 2>&1 &
  ONUS_PID=$!
  for ((i = 0; i < 200; i++)); do
    curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null && break
    kill -0 "$ONUS_PID" 2>/dev/null || { tail -n 20 "$WORK/onus.log" >&2; die "onus exited"; }
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null || { tail -n 20 "$WORK/onus.log" >&2; die "onus not ready"; }
  "$ONUS" webhook-config --url "https://127.0.0.1:$port/validate" --ca-bundle-file "$WORK/tls.crt" \
    --name onus-bench | kubectl apply -f - >/dev/null
}
down_onus() {
  kubectl delete validatingwebhookconfiguration onus-bench --ignore-not-found >/dev/null
  stop_pid "$ONUS_PID" onus
  ONUS_PID=''
}

# Kyverno's admission controller out of cluster: -serverIP makes it register its webhooks with
# url https://127.0.0.1:PORT/... and put that address in its self-signed serving certificate;
# it also switches off its checks of its own Deployment (debug mode). The env vars name the
# namespace, service account, deployment, pod and config maps it would have in a cluster
# (cmd/internal/check.go insists that they are set; the config maps may be absent: defaults).
# Turned off because they are not admission: admission reports (-admissionReports=false),
# background scans (background: false in the policy), events (-omitEvents, all four kinds),
# generation of ValidatingAdmissionPolicies from policies, controller-runtime metrics.
up_kyverno() {
  local port mport i
  port=$(free_port) mport=$(free_port)
  KYVERNO_NAMESPACE=kyverno KYVERNO_SERVICEACCOUNT_NAME=kyverno-admission-controller \
    KYVERNO_DEPLOYMENT=kyverno-admission-controller KYVERNO_POD_NAME=kyverno-bench \
    KYVERNO_SVC=kyverno-svc INIT_CONFIG=kyverno METRICS_CONFIG=kyverno-metrics \
    "$KYVERNO" -kubeconfig "$KUBECONFIG" -serverIP "127.0.0.1:$port" \
    -webhookServerHost 127.0.0.1 -webhookServerPort "$port" \
    -caSecretName kyverno-svc.kyverno.svc.kyverno-tls-ca -tlsSecretName kyverno-svc.kyverno.svc.kyverno-tls-pair \
    -admissionReports=false -omitEvents=PolicyApplied,PolicyViolation,PolicyError,PolicySkipped \
    -generateValidatingAdmissionPolicy=false -controllerRuntimeMetricsAddress 0 \
    -metricsHost 127.0.0.1 -metricsPort "$mport" -autoMemLimitEnabled=false \
    -disableLogColor -v "$KYVERNO_V" >>"$WORK/kyverno.log" 2>&1 &
  KYVERNO_PID=$!
  for ((i = 0; i < 1200; i++)); do
    curl -skf "https://127.0.0.1:$port/health/readiness" >/dev/null && break
    kill -0 "$KYVERNO_PID" 2>/dev/null || { tail -n 20 "$WORK/kyverno.log" >&2; die "kyverno exited"; }
    sleep 0.1
  done
  curl -skf "https://127.0.0.1:$port/health/readiness" >/dev/null || { tail -n 20 "$WORK/kyverno.log" >&2; die "kyverno not ready after 120 s"; }
  # Its policy webhook must be up before the ClusterPolicy is accepted.
  for ((i = 0; i < 60; i++)); do
    kubectl apply -f "$BENCH/kyverno-policy.yaml" >/dev/null 2>"$WORK/kyverno-apply.err" && break
    sleep 1
  done
  kubectl get clusterpolicy bench-aws-iaas >/dev/null 2>&1 || { cat "$WORK/kyverno-apply.err" >&2; die "the ClusterPolicy was not accepted"; }
  kubectl wait --for=condition=Ready clusterpolicy/bench-aws-iaas --timeout=120s >/dev/null
}
down_kyverno() {
  kubectl delete -f "$BENCH/kyverno-policy.yaml" --ignore-not-found --wait >/dev/null 2>&1 || true
  stop_pid "$KYVERNO_PID" kyverno
  KYVERNO_PID=''
  # Kyverno leaves its webhook configurations behind when it stops (out of cluster).
  kubectl delete validatingwebhookconfigurations,mutatingwebhookconfigurations \
    -l webhook.kyverno.io/managed-by=kyverno --ignore-not-found >/dev/null
}

rss_of() { # setup -> RSS of its process in MiB (empty for floor / vap)
  local pid=''
  case $1 in onus) pid=$ONUS_PID ;; kyverno) pid=$KYVERNO_PID ;; esac
  [[ -z $pid ]] || ps -o rss= -p "$pid" | awk '{printf "%.0f", $1/1024}'
}

# ------------------------------------------------------------------------------ rounds

# For 30 s after a namespace is created onus reads its baselines from the API server on each
# review (its watch may not have them yet): measure the steady state after that.
while (($(date +%s) - NS_CREATED < 31)); do sleep 1; done
read -r -a setups <<<"$SETUPS"
read -r -a rates <<<"$RATES"
loads=()
for r in "${rates[@]}"; do loads+=("$r"); done
((SAT_WORKERS > 0)) && loads+=(0)
declare -A RSS=()
log "setups: ${setups[*]}; rounds $ROUNDS; loads: rates ${rates[*]}/s$( ((SAT_WORKERS > 0)) && echo ", saturated with $SAT_WORKERS workers"); ${DURATION}s each after ${WARMUP}s warm-up; ${FAIL_PCT}% failing"
for ((round = 1; round <= ROUNDS; round++)); do
  n=${#setups[@]}
  for ((k = 0; k < n; k++)); do
    setup=${setups[$(((k + round - 1) % n))]}
    expect=deny
    [[ $setup == floor ]] && expect=allow
    log "round $round/$ROUNDS: $setup"
    "up_$setup"
    # Every failing variant must be denied (allowed under floor) and the passing one allowed.
    "$DRIVER" verify -q -ns "$NS" -expect "$expect" -timeout 120s || die "$setup does not answer as it should (see above)"
    for rate in "${loads[@]}"; do
      "$DRIVER" run -ns "$NS" -setup "$setup" -round "$round" -rate "$rate" \
        -workers "$( ((rate > 0)) && echo "$OPEN_WORKERS" || echo "$SAT_WORKERS")" \
        -duration "${DURATION}s" -warmup "${WARMUP}s" -fail-pct "$FAIL_PCT" -expect "$expect" \
        "${H2FLAG[@]}" -out "$RESULTS_FILE" || die "$setup: wrong answers under load (see above)"
    done
    rss=$(rss_of "$setup")
    [[ -n $rss ]] && RSS[$setup]="${RSS[$setup]:-}${RSS[$setup]:+, }$rss"
    "down_$setup"
  done
done

# ------------------------------------------------------------------------------ report

echo
echo "== Admission benchmark: $(nproc) cores, kube-apiserver $(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])' 2>/dev/null || echo '?')," \
  "rounds $ROUNDS, ${DURATION}s per load after ${WARMUP}s warm-up, ${FAIL_PCT}% failing Deployments, dry-run creates"
"$DRIVER" report "$RESULTS_FILE"
if ((${#RSS[@]})); then
  echo
  for s in "${!RSS[@]}"; do echo "RSS after load (MiB, per round): $s ${RSS[$s]}"; done | sort
fi
OK=1
