#!/usr/bin/env bash
# `onus check` against Checkov on the same generated corpus (benches/check/gen.py: FILES files of
# OBJECTS Kubernetes objects each, one namespace per file, with its baseline): wall time and
# peak RSS of each, and the ratio.
#
#   benches/check/run.sh [FILES] [OBJECTS]     default 100 files of 100 objects (10,000 objects)
#
# Checkov (PyPI `checkov`, pinned) is installed into a venv under
# ${ONUS_CHECKOV_CACHE:-~/.cache/onus/checkov}/<version> on first use and run offline
# (--skip-download; no API key, so nothing is uploaded), Kubernetes framework only.
set -euo pipefail
cd "$(dirname "$0")/../.."
FILES=${1:-100}
PER=${2:-100}
CHECKOV_VERSION=3.3.30
VENV=${ONUS_CHECKOV_CACHE:-$HOME/.cache/onus/checkov}/$CHECKOV_VERSION

if [[ ! -x $VENV/bin/checkov ]]; then
  echo "== installing checkov $CHECKOV_VERSION into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "checkov==$CHECKOV_VERSION" || { rm -rf "$VENV"; exit 1; }
fi
cargo build --release -q
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 benches/check/gen.py "$WORK/corpus" "$FILES" "$PER"
OBJECTS=$(cat "$WORK"/corpus/*.yaml | grep -c '^kind:')
BYTES=$(cat "$WORK"/corpus/*.yaml | wc -c)

# measure NAME CMD...: wall seconds and peak RSS (MiB) of one run; the exit code is not judged
# (both tools exit non-zero when they find something).
measure() {
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || true
  tail -n 1 "$WORK/time"
}
median3() { sort -n | sed -n 2p; }

echo "== corpus: $OBJECTS objects in $FILES files, $((BYTES / 1024 / 1024)) MiB of YAML; $(nproc) cores"
runs=()
for _ in 1 2 3; do runs+=("$(measure onus target/release/onus check --output json "$WORK/corpus")"); done
onus_s=$(printf '%s\n' "${runs[@]}" | awk '{print $1}' | median3)
onus_kb=$(printf '%s\n' "${runs[@]}" | awk '{print $2}' | median3)
onus_findings=$(python3 -c 'import json,sys; print(sum(1 for v in json.load(open(sys.argv[1])) if v["result"] != "pass"))' "$WORK/onus.out")

read -r ck_s ck_kb < <(BC_SKIP_MAPPING=TRUE measure checkov "$VENV/bin/checkov" -d "$WORK/corpus" \
  --framework kubernetes --skip-download --quiet --compact -o json)
ck_findings=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d if isinstance(d, list) else [d]
print(sum(r.get("summary", {}).get("failed", 0) for r in d))' "$WORK/checkov.out" 2>/dev/null || echo "?")

python3 - "$onus_s" "$onus_kb" "$onus_findings" "$ck_s" "$ck_kb" "$ck_findings" <<'PY'
import sys
os_, okb, of, cs, ckb, cf = sys.argv[1:]
print(f"\n{'tool':<8} {'wall (s)':>10} {'peak RSS (MiB)':>15} {'findings':>9}")
print(f"{'onus':<8} {float(os_):>10.2f} {int(okb) / 1024:>15.0f} {of:>9}")
print(f"{'checkov':<8} {float(cs):>10.2f} {int(ckb) / 1024:>15.0f} {cf:>9}")
print(f"\nCheckov / onus: {float(cs) / float(os_):.0f}x the time, {int(ckb) / int(okb):.1f}x the memory"
      " (onus: median of 3 runs; Checkov: one run)")
PY
