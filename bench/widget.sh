#!/usr/bin/env bash
# The widget connection benchmark, in full: builds murmur and wsbench
# (release), then RUNS times (default 1): all three servers (murmur on
# SQLite, socket.io relay only, socket.io + better-sqlite3) at 10,000
# widgets and 1,000 tracks/s for 60 s, then murmur on PostgreSQL the same
# way. Each run's markdown tables are appended to
# bench/results/widget-<date>.md, with its latency plots (SVG) beside it.
#
#   bench/widget.sh [RUNS]
#
# Run it on a quiet machine (no build or test beside it): the CPU figures
# count the whole machine. Settings can be changed through the environment:
# CONNECTIONS, RATE, BENCH_SECONDS (defaults 10000, 1000, 60), PG_ADMIN (default
# postgres://postgres@127.0.0.1:5432/postgres), RESULTS_DIR (default
# bench/results), SKIP_BUILD=1. The Node.js
# baselines' packages are installed by wsbench (npm ci) when missing.
set -euo pipefail

runs="${1:-1}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/widget.sh [RUNS]" >&2; exit 64; }
connections="${CONNECTIONS:-10000}"
rate="${RATE:-1000}"
seconds="${BENCH_SECONDS:-60}"
pg_admin="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export LEPTOS_OUTPUT_NAME=murmur
# The same flags as the project's other builds, so artifacts are shared.
export RUSTFLAGS="${RUSTFLAGS:---cfg erase_components}"

if [[ "${SKIP_BUILD:-}" != 1 ]]; then
  echo "widget.sh: building murmur and wsbench (release)" >&2
  timeout 3600 cargo build --release --features ssr --bin murmur --bin wsbench
fi
wsbench="$CARGO_TARGET_DIR/release/wsbench"
[[ -x "$wsbench" && -x "$CARGO_TARGET_DIR/release/murmur" ]] || { echo "widget.sh: no release build in $CARGO_TARGET_DIR" >&2; exit 1; }

results="${RESULTS_DIR:-bench/results}"
mkdir -p "$results"
date="$(date -u +%Y-%m-%d)"
out="$results/widget-$date.md"
commit="$(git rev-parse --short HEAD)"
# Per server: connect + settle (~20 s), the window and its drain (≤ SECONDS
# + 10 s), the storm (≤ 120 s); plus npm ci (≤ 900 s) on a first run.
timeout_s=$(( 900 + 4 * (seconds + 200) ))

common=(--connections "$connections" --rate "$rate" --seconds "$seconds" --timeout "$timeout_s" --pg-admin "$pg_admin")
for run in $(seq 1 "$runs"); do
  stamp="$(date -u +%H%M%S)"
  {
    echo
    echo "## Run $run of $runs, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
  } >> "$out"
  for db in sqlite postgres; do
    if [[ $db == sqlite ]]; then target=all; else target=murmur; fi
    svg="$results/widget-$date-$stamp-$target-$db.svg"
    echo "widget.sh: run $run of $runs: --target $target --database $db" >&2
    # wsbench bounds itself (--timeout, then a watchdog); this outer
    # timeout is the last resort, and kills its whole process group.
    if ! timeout --kill-after=30 $(( timeout_s + 120 )) \
      "$wsbench" "${common[@]}" --target "$target" --database "$db" --svg "$svg" | tee -a "$out"; then
      status=("${PIPESTATUS[@]}")
      echo "widget.sh: wsbench --target $target --database $db failed (exit ${status[0]})" >&2
      printf '\n**wsbench --target %s --database %s failed (exit %s); see its log.**\n' "$target" "$db" "${status[0]}" >> "$out"
    fi
  done
done
echo "widget.sh: tables appended to $out" >&2
