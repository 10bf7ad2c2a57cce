#!/usr/bin/env bash
# Runs the benchmark once (release, `--mode readme`: every mode, the
# fan-out, payload and mesh sweeps, both placements, 5 repetitions, and
# with the zenoh feature lahja over zenoh against raw zenoh), puts its
# table into README.md between the `<!-- perf-table -->` markers, and
# its plots into docs/bench/. Extra arguments go to the benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
table=$(mktemp)
trap 'rm -f "$table"' EXIT
cargo run --release --all-features --example perf_benchmark -- \
    --mode readme --markdown --plots docs/bench "$@" >"$table"
awk -v table="$table" '
    /<!-- perf-table:start -->/ { print; while ((getline line < table) > 0) print line; skipping = 1; next }
    /<!-- perf-table:end -->/ { skipping = 0 }
    !skipping { print }
' README.md >README.md.new
mv README.md.new README.md
echo "README.md: table regenerated; plots in docs/bench/"
