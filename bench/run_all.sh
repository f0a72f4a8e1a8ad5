#!/usr/bin/env bash
# Runs every benchmark and prints its table: bench/run_all.sh BUILD_DIR OUT_DIR
set -euo pipefail
build_dir=${1:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}
out_dir=${2:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}
mkdir -p "$out_dir"

echo "== egms: model fitting (1,000,000 points x 300 dates) and Ortho =="
"$build_dir/bench/egms_fit_bench" --points 1000000 --dates 300 --out "$out_dir" | tee "$out_dir/egms_fit_bench.txt"
