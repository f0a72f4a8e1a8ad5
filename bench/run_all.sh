#!/usr/bin/env bash
# Runs every benchmark and prints its table: bench/run_all.sh BUILD_DIR OUT_DIR
set -euo pipefail
BUILD_DIR="${1:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}"
OUT_DIR="${2:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}"
mkdir -p "$OUT_DIR"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEFORMA_DATA="${DEFORMA_DATA:-$ROOT/../shared/data}"

echo "== pipeline: the whole deforma pipeline on the Perito Moreno series"
bash "$ROOT/bench/pipeline/time_pipeline.sh" "$BUILD_DIR" "$OUT_DIR" | tee "$OUT_DIR/pipeline_perito.md"
