#!/usr/bin/env bash
# Runs every benchmark and prints its table: bench/run_all.sh BUILD_DIR OUT_DIR
set -euo pipefail
BUILD="${1:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}"
OUT="${2:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}"
mkdir -p "$OUT"
PYTHON="${DEFORMA_BENCH_PYTHON:-/usr/bin/python3}"

# Time-series inversion: 1M nodes x 200 pairs x 40 dates against a per-node SciPy lstsq baseline.
"$BUILD/bench/deforma_bench_invert" --nodes 1000000 --pairs 200 --dates 40 --baseline-nodes 20000 \
  --threads 2 --ram 1024 --python "$PYTHON" --work-dir "$OUT/timeseries" | tee "$OUT/timeseries_invert.md"

# The same with per-node pair weights (the --weight-band path of deforma invert: no shared factorizations).
"$BUILD/bench/deforma_bench_invert" --nodes 1000000 --pairs 200 --dates 40 --baseline-nodes 0 --node-weights \
  --threads 2 --ram 1024 --work-dir "$OUT/timeseries" | tee "$OUT/timeseries_invert_node_weights.md"
