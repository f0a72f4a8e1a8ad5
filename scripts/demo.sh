#!/usr/bin/env bash
# The demo run by `./run demo`: deforma on the real sample data. Arguments: the deforma binary and the
# output folder. DEFORMA_DATA names the sample-data folder.
set -euo pipefail
DEFORMA="$1"
OUT="$2"
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
  echo
else
  echo "(skipping Yahtse: $YAHTSE not found)"
fi

echo "Results are in $OUT"
