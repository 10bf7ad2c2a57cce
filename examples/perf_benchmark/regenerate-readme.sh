#!/usr/bin/env bash
# Runs the benchmark once (release, every mode, both placements, 5
# repetitions) and puts its table into README.md between the
# `<!-- perf-table -->` markers. Extra arguments go to the benchmark.
set -euo pipefail
cd "$(dirname "$0")/../.."
table=$(mktemp)
trap 'rm -f "$table"' EXIT
cargo run --release --example perf_benchmark -- --markdown "$@" >"$table"
awk -v table="$table" '
    /<!-- perf-table:start -->/ { print; while ((getline line < table) > 0) print line; skipping = 1; next }
    /<!-- perf-table:end -->/ { skipping = 0 }
    !skipping { print }
' README.md >README.md.new
mv README.md.new README.md
echo "README.md: table regenerated"
