#!/usr/bin/env bash
# Runs every benchmark and prints its table: bench/run_all.sh BUILD_DIR OUT_DIR
set -euo pipefail
BUILD_DIR="${1:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}"
OUT_DIR="${2:?usage: bench/run_all.sh BUILD_DIR OUT_DIR}"
mkdir -p "$OUT_DIR"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DEFORMA_DATA="${DEFORMA_DATA:-$ROOT/../shared/data}"

echo "== correlate: chip matcher vs matchTemplate baseline"
"$BUILD_DIR/bench/deforma_bench_matcher" | tee "$OUT_DIR/correlate_matcher.md"

echo
echo "== correlate: whole pairs vs matchTemplate, DIS and scikit-image"
"$BUILD_DIR/bench/deforma_bench_pair" "$OUT_DIR/pair" | tee "$OUT_DIR/correlate_pair.md"

echo
echo "== egms: model fitting (1,000,000 points x 300 dates) and Ortho =="
"$BUILD_DIR/bench/egms_fit_bench" --points 1000000 --dates 300 --out "$OUT_DIR" | tee "$OUT_DIR/egms_fit_bench.txt"

echo
echo "== timeseries: inversion of 1M nodes x 200 pairs x 40 dates vs a per-node SciPy lstsq baseline"
PYTHON="${DEFORMA_BENCH_PYTHON:-/usr/bin/python3}"
"$BUILD_DIR/bench/deforma_bench_invert" --nodes 1000000 --pairs 200 --dates 40 --baseline-nodes 20000 \
  --threads 2 --ram 1024 --python "$PYTHON" --work-dir "$OUT_DIR/timeseries" | tee "$OUT_DIR/timeseries_invert.md"

# The same with per-node pair weights (the --weight-band path of deforma invert: no shared factorizations).
"$BUILD_DIR/bench/deforma_bench_invert" --nodes 1000000 --pairs 200 --dates 40 --baseline-nodes 0 --node-weights \
  --threads 2 --ram 1024 --work-dir "$OUT_DIR/timeseries" | tee "$OUT_DIR/timeseries_invert_node_weights.md"

echo
echo "== pipeline: the whole deforma pipeline on the Perito Moreno series"
bash "$ROOT/bench/pipeline/time_pipeline.sh" "$BUILD_DIR" "$OUT_DIR" | tee "$OUT_DIR/pipeline_perito.md"

echo
echo "== slurm: the pipeline local vs on the local one-node Slurm cluster, and the scheduling overhead per unit"
bash "$ROOT/bench/slurm/slurm_bench.sh" "$BUILD_DIR" "$OUT_DIR/slurm" | tee "$OUT_DIR/slurm.md"

echo
echo "== service: 200 keep-alive clients for 30 s on loopback while 4 jobs run, and the job overhead"
"$BUILD_DIR/bench/deforma_bench_service" --clients 200 --seconds 30 | tee "$OUT_DIR/service_load.txt"

echo
echo "== catalog: STAC search over 1,000,000 synthetic items (bbox + datetime + eo:cloud_cover < 20 + limit 100)"
"$BUILD_DIR/bench/deforma_bench_catalog" 1000000 1000 | tee "$OUT_DIR/catalog_search.txt"
echo "== maps: 2,000 random 256 px WebMercator tiles (zooms 8-14) of the Yahtse velocity COG and of a"
echo "   10980 x 10980 COG, 16 clients, deforma serve against MapServer 8 (WMS GetMap behind lighttpd/FastCGI)"
"$BUILD_DIR/bench/deforma_bench_maps" --tiles 2000 --clients 16 | tee "$OUT_DIR/maps_tiles.md"
echo "== maps: EGMS vector tiles of 1,000,000 synthetic points, through the point index against the full scan"
"$BUILD_DIR/bench/deforma_bench_points" --points 1000000 --tiles 500 --scanned 50 | tee "$OUT_DIR/maps_points.md"
