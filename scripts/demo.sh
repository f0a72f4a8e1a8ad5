#!/usr/bin/env bash
# The demo run by `./run demo`: deforma on the real sample data. Arguments: the deforma binary and the
# output folder. DEFORMA_DATA names the sample-data folder.
set -euo pipefail
DEFORMA="$1"
OUT="$2"
DATA="${DEFORMA_DATA:?DEFORMA_DATA must name the sample-data folder}"
mkdir -p "$OUT"

echo "== deforma info: the Landsat 8 pair over Yahtse Glacier"
for scene in "$DATA"/yahtse-l8/*_B8_yahtse.TIF; do
  "$DEFORMA" info "$scene"
  echo
done

# ---- Perito Moreno time series: deforma pipeline (23 dates, pixel units) --------------------------------
echo "== deforma pipeline: 23 Sentinel-2 images of Perito Moreno Glacier (2020-01-01 .. 2020-03-28)"
PERITO_OUT="$OUT/perito-moreno"
"$DEFORMA" --summary-json pipeline "$DATA"/perito-moreno/2020*.jpg -o "$PERITO_OUT" \
  --exclude "$DATA/perito-moreno/mask.jpg" --auto-stable --ramp bias --max-step 3 \
  >"$OUT/perito-moreno-summary.json"
python3 - "$OUT/perito-moreno-summary.json" <<'PY' || cat "$OUT/perito-moreno-summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
h = s["details"]["headline"]
print(s["report"], end="")
print(f"  headline: glacier (mask) median speed {h['median_speed_moving']:.1f} {h['unit']}, "
      f"off-ice median {h['median_speed_stable']:.1f} {h['unit']}, p95 {h['p95_speed']:.1f} {h['unit']}, "
      f"median residual RMSE {h.get('median_rmse', float('nan')):.3f} px")
print(f"  output folder: {s['details']['output_dir']} (open catalog.json, products/*.png)")
PY
# ---- end of the Perito Moreno section ---------------------------------------------------------------------

echo "Results are in $OUT"
