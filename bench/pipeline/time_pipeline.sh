#!/usr/bin/env bash
# Times the whole `deforma pipeline` on the Perito Moreno series (23 dates, 1731 x 1231 px RGB JPEGs) from
# scratch: image set, pair network, correlation of every pair, filtering, inversion, products, STAC.
# Usage: bench/pipeline/time_pipeline.sh BUILD_DIR OUT_DIR   (DEFORMA_DATA names the sample-data folder)
# Prints a table: stage, seconds, and the headline figures of the run. There is no peer tool that runs the
# same chain on the same input here, so the table reports our figures only (the inversion's own comparison
# with a NumPy/SciPy baseline is in bench/timeseries).
set -euo pipefail
BUILD="${1:?build folder}"
OUT="${2:?output folder}"
DATA="${DEFORMA_DATA:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/shared/data}"
DEFORMA="$BUILD/apps/deforma/deforma"
if [[ ! -d "$DATA/perito-moreno" ]]; then
  echo "pipeline benchmark: sample data perito-moreno not found (set DEFORMA_DATA); skipped"
  exit 0
fi
RUN="$OUT/pipeline-perito"
rm -rf "$RUN"
mkdir -p "$OUT"
start=$(date +%s.%N)
/usr/bin/time -v "$DEFORMA" -q --summary-json pipeline "$DATA"/perito-moreno/2020*.jpg -o "$RUN" \
  --exclude "$DATA/perito-moreno/mask.jpg" --auto-stable --ramp bias --max-step 3 --search 8 --max-velocity 300 \
  >"$OUT/pipeline-perito.json" 2>"$OUT/pipeline-perito.time"
end=$(date +%s.%N)
rerun_start=$(date +%s.%N)
"$DEFORMA" -q pipeline "$DATA"/perito-moreno/2020*.jpg -o "$RUN" \
  --exclude "$DATA/perito-moreno/mask.jpg" --auto-stable --ramp bias --max-step 3 --search 8 --max-velocity 300 >/dev/null
rerun_end=$(date +%s.%N)
python3 - "$OUT/pipeline-perito.json" "$OUT/pipeline-perito.time" "$start" "$end" "$rerun_start" "$rerun_end" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
rss_kb = 0
for line in open(sys.argv[2]):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", line)
    if m:
        rss_kb = int(m.group(1))
wall = float(sys.argv[4]) - float(sys.argv[3])
rerun = float(sys.argv[6]) - float(sys.argv[5])
st = s["details"]["stages"]
h = s["details"]["headline"]
print("## deforma pipeline on Perito Moreno (23 dates, 1731x1231 px)")
print("| stage | seconds |")
print("|---|---|")
print(f"| image set + pair network ({st['pairs']['pairs']} pairs) | {st['pairs']['seconds']:.1f} |")
print(f"| correlation + filtering of all pairs | {st['correlate_and_filter_seconds']:.1f} |")
inv = st.get("invert", st.get("products", {}))
print(f"| inversion + products | {inv.get('seconds', float('nan')):.1f} |")
print(f"| whole pipeline (wall clock, from scratch) | {wall:.1f} |")
print(f"| rerun (every pair reused) | {rerun:.1f} |")
print(f"\npeak memory {rss_kb / 1024:.0f} MB; {s['counts']['pairs']} pairs, {s['counts']['dates']} dates; "
      f"glacier median {h['median_speed_moving']:.1f} {h['unit']}, off-ice median {h['median_speed_stable']:.1f} "
      f"{h['unit']}, median residual RMSE {h.get('median_rmse', float('nan')):.3f} px")
PY
