#!/usr/bin/env bash
# The reliability campaign (RELIABILITY.md) in one command. Builds murmur and
# the campaign's driver (release), installs schemathesis (PyPI, into
# target/schemathesis-venv) if missing, then runs, on SQLite and PostgreSQL:
#   fuzz          bad inputs over every public route (≥ 200,000 requests)
#   signin        500 parallel wrong sign-ins: memory and password checks
#   overload      5× the measured ingest capacity for 30 s, single events
#   overload-batch  the same with batches of 20 events (POST /v1.1/events)
#   schemathesis  the OpenAPI description against the server, all checks
# and then the crash test (kill -9 during ingest, 20 times per backend) and
# the XSS corpus in Debian's chromium. Every part's report is appended to
# bench/results/reliability-<date>.md; the exit status is non-zero if any
# part failed.
#
#   bench/reliability.sh [PART...]      (default: all of the above, then crash, xss)
#
# Run it on a quiet machine: memory and latency figures count the whole
# machine. Settings through the environment: REQUESTS (fuzz, default
# 200000), BACKEND (sqlite, postgres or both: the default), EXAMPLES
# (schemathesis examples per operation, default 100), RESULTS_DIR
# (default bench/results), SKIP_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/install.sh

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(fuzz signin overload overload-batch schemathesis crash xss)
backend="${BACKEND:-both}"
results="${RESULTS_DIR:-bench/results}"
mkdir -p "$results"
out="$results/reliability-$(date -u +%F).md"

ensure_rust
ensure_postgres
export LEPTOS_OUTPUT_NAME=murmur
export RUSTFLAGS="--cfg erase_components"
if [ "${SKIP_BUILD:-}" != "1" ]; then
  say "building murmur and the campaign (release)"
  cargo build --release --features ssr --bin murmur --bin reliability
fi
if [[ " ${parts[*]} " == *" schemathesis "* ]] && [ ! -x target/schemathesis-venv/bin/st ]; then
  say "installing schemathesis into target/schemathesis-venv"
  python3 -m venv target/schemathesis-venv
  target/schemathesis-venv/bin/pip install --quiet "schemathesis==4.32.5"
fi

{
  echo
  echo "# Reliability campaign, $(date -u '+%F %H:%M') UTC, commit $(git rev-parse --short HEAD)"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); release build."
} >> "$out"

failed=()
run_part() {
  local part="$1"
  shift
  say "$part"
  if ! "$@" 2>&1 | tee -a "$out"; then
    failed+=("$part")
  fi
}

for part in "${parts[@]}"; do
  case "$part" in
    fuzz) run_part fuzz target/release/reliability fuzz --backend "$backend" --requests "${REQUESTS:-200000}" ;;
    signin) run_part signin target/release/reliability signin --backend "$backend" ;;
    overload) run_part overload target/release/reliability overload --backend "$backend" ;;
    overload-batch) run_part overload-batch target/release/reliability overload --backend "$backend" --batch 20 ;;
    schemathesis) run_part schemathesis target/release/reliability schemathesis --backend "$backend" --max-examples "${EXAMPLES:-100}" ;;
    crash)
      echo -e "\n## kill -9 during ingest (tests/crash.rs)\n\n\`\`\`" >> "$out"
      run_part crash cargo test --features ssr --test crash -- --nocapture
      echo '```' >> "$out"
      ;;
    xss)
      ensure_cargo_leptos
      ensure_wasm_bindgen
      ensure_chromium
      ensure_e2e_packages
      cargo leptos build
      echo -e "\n## XSS corpus (end2end/tests/xss.spec.ts)\n\n\`\`\`" >> "$out"
      run_part xss bash -c 'cd end2end && npx playwright test xss.spec.ts'
      echo '```' >> "$out"
      ;;
    *) echo "unknown part: $part" >&2; exit 64 ;;
  esac
done

if [ ${#failed[@]} -gt 0 ]; then
  say "FAILED: ${failed[*]} (see $out)"
  exit 1
fi
say "all parts passed; the report is in $out"
