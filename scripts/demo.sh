#!/usr/bin/env bash
# The demo run by `./run demo`: deforma on the real sample data. Arguments: the deforma binary, the
# output folder and (optional) the generator of the survey's synthetic series (deforma_survey_series).
# DEFORMA_DATA names the sample-data folder.
set -euo pipefail
DEFORMA="$1"
OUT="$2"
SURVEY_SERIES="${3:-}"
DATA="${DEFORMA_DATA:?DEFORMA_DATA must name the sample-data folder}"
mkdir -p "$OUT"

# --- Yahtse Glacier, Landsat 8 pair (16 days) --------------------------------------------------------
YAHTSE="$DATA/yahtse-l8"
if [[ -d "$YAHTSE" ]]; then
  echo "== deforma correlate: Landsat 8 panchromatic pair over Yahtse Glacier, Alaska (2016-07-18 / 2016-08-03)"
  "$DEFORMA" correlate \
    "$YAHTSE/LC80630182016200LGN00_B8_yahtse.TIF" "$YAHTSE/LC80630182016216LGN00_B8_yahtse.TIF" \
    -o "$OUT/yahtse_velocity.tif" --chip 32 --search 24 --step 8 --velocity \
    --stable "$YAHTSE/StEliasMtn_utm7v_rock.gmt" --quicklook "$OUT/yahtse_velocity.png"
  echo "== deforma decompose: up from the surface-parallel flow assumption with the SRTM DEM"
  "$DEFORMA" decompose --optical "$OUT/yahtse_velocity.tif" --optical-bands east_m_per_yr,north_m_per_yr \
    --optical-sigma 25 --dem "$YAHTSE/yahtse_srtm_dem.tif" -o "$OUT/yahtse_enu.tif"
  echo
else
  echo "(skipping Yahtse: $YAHTSE not found)"
fi

# ---- Survey: two tiles, two relative orbits, one mosaic (synthetic series on the Yahtse texture) --------
if [[ -d "$YAHTSE" && -n "$SURVEY_SERIES" && -x "$SURVEY_SERIES" ]]; then
  echo "== deforma survey: two overlapping tiles seen from two relative orbits, one cloudy scene to drop"
  echo "   (a synthetic series cut from the Yahtse Landsat 8 texture: a glacier moving 1,096 m/yr east and"
  echo "   548 m/yr south across both tiles, over still rock)"
  SERIES="$OUT/survey-series"
  "$SURVEY_SERIES" "$YAHTSE" "$SERIES" --glacier >/dev/null
  "$DEFORMA" survey "$SERIES/scenes.csv" -o "$OUT/survey" --aoi="$(cat "$SERIES/aoi.txt")" --max-cloud 20 \
    --search 8 --max-step 3 --glaciers "$SERIES/outlines.geojson" --glacier-buffer-m 600 --glacier-margin-m 100
  echo "  velocity mosaic: $OUT/survey/velocity.tif (quicklook $OUT/survey/velocity.png)"
  echo "  per-glacier statistics: $OUT/survey/glaciers/glaciers.csv; scenes kept and dropped: $OUT/survey/scenes.csv"
  echo
else
  echo "(skipping the survey: $YAHTSE or the series generator deforma_survey_series not found)"
fi

# ---- Ustica, EGMS Calibrated (L2b) products, ascending + descending ------------------------------------
USTICA="$DATA/egms-ustica"
if [[ -d "$USTICA" ]]; then
  echo "== deforma egms: EGMS L2b bursts over Ustica (ascending 117/0227, descending 022/0845)"
  "$DEFORMA" egms fit "$USTICA/EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip" \
    -o "$OUT/ustica_desc_refit.zip" --gpkg "$OUT/ustica_desc_points.gpkg" \
    --quicklook "$OUT/ustica_desc_velocity.png"
  "$DEFORMA" egms ortho "$USTICA/EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip" \
    "$USTICA/EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip" -o "$OUT/ustica_ortho" --quicklook
  echo "== deforma decompose: the same two bursts, east and up per 100 m cell with north neglected"
  "$DEFORMA" decompose --egms "$USTICA/EGMS_L2b_117_0227_IW2_VV_2020_2024_1.zip" \
    "$USTICA/EGMS_L2b_022_0845_IW2_VV_2020_2024_1.zip" --north-zero --grid "$OUT/ustica_ortho_U.tif" \
    -o "$OUT/ustica_decompose_eu.tif"
  echo
else
  echo "(skipping EGMS: $USTICA not found)"
fi

# ---- Izmit 1999 earthquake: offsets across the North Anatolian Fault through Lake Sapanca ----------------
IZMIT="$DATA/izmit-coseismic"
if [[ -d "$IZMIT" ]]; then
  echo "== deforma fault-profile: right-lateral offsets of the 1999 Izmit earthquake along the fault trace"
  # The trace digitised from the grid's offset step (docs/fault-profile.md; the same vertices as the test).
  cat >"$OUT/sapanca_trace.geojson" <<'JSON'
{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "NAF Sapanca"},
"geometry": {"type": "LineString", "coordinates": [[30.06, 40.729], [30.14, 40.728], [30.20, 40.721],
[30.26, 40.716], [30.34, 40.708], [30.44, 40.699], [30.52, 40.692], [30.60, 40.694]]}}]}
JSON
  "$DEFORMA" fault-profile "$IZMIT/EW_Adapazari.tif" --trace "$OUT/sapanca_trace.geojson" \
    -o "$OUT/izmit_offsets.csv" --gpkg "$OUT/izmit_profiles.gpkg" --plot "$OUT/izmit_offsets.png" \
    --spacing 2000 --width 1000 --length 8000 --near-fault 400
  echo
else
  echo "(skipping Izmit: $IZMIT not found)"
fi

# ---- Sentinel-2 L2A over western Ireland: deforma composite (one date, one monthly synthesis) -------------
S2="$(ls -d "$DATA"/s2-l2a-safe/S2*_MSIL2A_*.SAFE 2>/dev/null | head -n 1)"
if [[ -n "$S2" ]]; then
  echo "== deforma composite: the October 2022 cloud-free synthesis of a Sentinel-2 L2A scene (60 m, SCL mask)"
  "$DEFORMA" composite "$S2" -o "$OUT/s2-composite" --resolution 60 --bands B02,B03,B04,B8A,B11
  echo
else
  echo "(skipping the composite: no SAFE folder in $DATA/s2-l2a-safe)"
fi

# ---- Perito Moreno time series: deforma pipeline (23 dates, pixel units) --------------------------------
echo "== deforma pipeline: 23 Sentinel-2 images of Perito Moreno Glacier (2020-01-01 .. 2020-03-28)"
PERITO_OUT="$OUT/perito-moreno"
"$DEFORMA" --summary-json pipeline "$DATA"/perito-moreno/2020*.jpg -o "$PERITO_OUT" \
  --exclude "$DATA/perito-moreno/mask.jpg" --auto-stable --ramp bias --max-step 3 --search 8 --max-velocity 300 \
  >"$OUT/perito-moreno-summary.json"
python3 - "$OUT/perito-moreno-summary.json" <<'PY' || cat "$OUT/perito-moreno-summary.json"
import json, sys
s = json.load(open(sys.argv[1]))
c, d = s["counts"], s["details"]
h = d["headline"]
print(f"  {c['images']} images ({d['first_date']} .. {d['last_date']}), {c['pairs']} pairs, "
      f"{c['pairs_inverted']} inverted over {c['dates']} dates, in {s['seconds']:.0f} s")
print(f"  glacier (mask) median speed {h['median_speed_moving']:.1f} {h['unit']}, "
      f"off-ice median {h['median_speed_stable']:.1f} {h['unit']}, p95 {h['p95_speed']:.1f} {h['unit']}")
print(f"  median residual RMSE of the inversion {h.get('median_rmse', float('nan')):.3f} px")
print(f"  output folder: {d['output_dir']} (STAC catalog.json, products/*.tif *.nc *.png)")
PY
# ---- end of the Perito Moreno section ---------------------------------------------------------------------

echo "Results are in $OUT"
