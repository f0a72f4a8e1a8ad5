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
echo "Results are in $OUT"
