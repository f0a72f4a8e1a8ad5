#!/usr/bin/env bash
# Cluster execution on the local one-node Slurm cluster (scripts/slurm-local.sh; started here when it does
# not run, and stopped again after):
#   1. the Perito Moreno pipeline's wall time with --executor local and with --executor slurm (same
#      options, same products; on Slurm the pairs, their filtering and the inversion's row blocks are three
#      arrays), and the Slurm rerun that finds every unit complete (submits nothing);
#   2. the scheduling overhead per unit: one 1,000-task array of trivial units (filtering a 6 x 5-node
#      correlation result, a few ms of work each), from sbatch to the last task's completion record,
#      against the same 1,000 units run one after the other with `deforma unit run` and no scheduler.
# Usage: bench/slurm/slurm_bench.sh BUILD_DIR OUT_DIR [DATES]   (DEFORMA_DATA names the sample-data folder;
# DATES: how many Perito Moreno dates, default 8). Prints one Markdown table.
set -euo pipefail
BUILD="$(cd "${1:?build folder}" && pwd)"
OUT="${2:?output folder}"
DATES="${3:-8}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA="${DEFORMA_DATA:-$ROOT/../shared/data}"
DEFORMA="$BUILD/apps/deforma/deforma"
UNITS="${DEFORMA_BENCH_UNITS:-1000}"
if [[ ! -d "$DATA/perito-moreno" ]]; then
  echo "slurm benchmark: sample data perito-moreno not found (set DEFORMA_DATA); skipped"
  exit 0
fi
if ! command -v sbatch >/dev/null; then
  echo "slurm benchmark: Slurm is not installed (slurm-wlm); skipped"
  exit 0
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
started_here=0
if ! "$ROOT/scripts/slurm-local.sh" status >/dev/null 2>&1; then
  "$ROOT/scripts/slurm-local.sh" start >/dev/null
  started_here=1
fi
eval "$("$ROOT/scripts/slurm-local.sh" env)"
cleanup() { if [[ $started_here -eq 1 ]]; then "$ROOT/scripts/slurm-local.sh" stop >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT
export DEFORMA_SLURM_POLL_SECONDS="${DEFORMA_SLURM_POLL_SECONDS:-0.5}"

mapfile -t IMAGES < <(ls "$DATA"/perito-moreno/2020*.jpg | head -n "$DATES")
ARGS=(--step 32 --search 8 --max-step 2 --no-quicklooks --auto-stable --max-velocity 300
      --exclude "$DATA/perito-moreno/mask.jpg")
now() { date +%s.%N; }
rm -rf "$OUT/local" "$OUT/slurm" "$OUT/trivial"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(now); "$DEFORMA" -q pipeline "${IMAGES[@]}" "${ARGS[@]}" -o "$OUT/local" >/dev/null; t1=$(now)
"$DEFORMA" -q pipeline "${IMAGES[@]}" "${ARGS[@]}" -o "$OUT/slurm" --executor slurm >/dev/null; t2=$(now)
"$DEFORMA" -q pipeline "${IMAGES[@]}" "${ARGS[@]}" -o "$OUT/slurm" --executor slurm >/dev/null; t3=$(now)
pairs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["pairs"])' "$OUT/slurm/pipeline.json")

# The trivial units: copies of one filter unit of the run above on a tiny crop of its result.
mkdir -p "$OUT/trivial/units" "$OUT/trivial/logs"
python3 - "$OUT/slurm/filtered/units.json" "$OUT/trivial" "$UNITS" <<'PY'
import json, sys
template, folder, count = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
unit = template["units"][0]
units = []
for i in range(count):
    u = json.loads(json.dumps(unit))
    u["id"] = f"u{i:05d}"
    u["inputs"] = [f"{folder}/tiny.tif"]
    u["parameters"]["filter"]["stable"] = "none"
    u["parameters"]["filter"]["ramp"] = "none"
    u["parameters"]["filter"]["exclude_path"] = ""
    u["output"] = f"{folder}/u{i:05d}.tif"
    units.append(u)
template.update({"stage": "trivial", "dir": folder, "units": units})
json.dump(template, open(f"{folder}/units.json", "w"))
PY
gdal_translate -q -srcwin 0 0 6 5 "$OUT/slurm/correlation/$(ls "$OUT/slurm/correlation" | grep -m1 '\.tif$')" "$OUT/trivial/tiny.tif"
cat >"$OUT/trivial/task.sh" <<SH
#!/bin/sh
exec "$DEFORMA" --threads 1 unit run "$OUT/trivial/units.json" "\$SLURM_ARRAY_TASK_ID"
SH
chmod +x "$OUT/trivial/task.sh"
# Without a scheduler: the same units one after the other (process start, list read, work, record).
t4=$(now)
for i in $(seq 0 99); do "$DEFORMA" -q --threads 1 unit run "$OUT/trivial/units.json" "$i" >/dev/null; done
t5=$(now)
rm -f "$OUT"/trivial/units/*.json "$OUT"/trivial/u*.tif
t6=$(now)
job=$(sbatch --parsable --array="0-$((UNITS - 1))" --output="$OUT/trivial/logs/%A_%a.log" --cpus-per-task=1 "$OUT/trivial/task.sh")
t7=$(now)
while [[ -n "$(squeue --noheader --array --jobs="$job" --format=%i 2>/dev/null)" ]]; do sleep 0.5; done
t8=$(now)
done_count=$(ls "$OUT/trivial/units" | grep -c '^u[0-9]*\.json$' || true)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
blocks=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["details"]["stages"]["invert"]["details"]["blocks"]["blocks"])' "$OUT/slurm/pipeline.json")
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$t7" "$t8" "$UNITS" "$done_count" "$pairs" "$DATES" "$(nproc)" "$blocks" "$load_before" "$load_after" <<'PY'
import sys
t = [float(x) for x in sys.argv[1:10]]
units, done, pairs, dates, cpus, blocks = (int(x) for x in sys.argv[10:16])
load_before, load_after = sys.argv[16], sys.argv[17]
local, slurm, rerun = t[1] - t[0], t[2] - t[1], t[3] - t[2]
direct = (t[5] - t[4]) / 100
submit, array = t[7] - t[6], t[8] - t[6]
print(f"| measure ({cpus} CPUs, one node) | value |")
print("|---|---|")
print(f"| Perito Moreno, {dates} dates, {pairs} pairs: `--executor local` | {local:.1f} s |")
print(f"| same with `--executor slurm` (3 arrays, afterok: pairs, filter, {blocks} inversion block(s)) | {slurm:.1f} s |")
print(f"| `--executor slurm` rerun, every unit complete (nothing submitted) | {rerun:.1f} s |")
print(f"| trivial unit run directly (`deforma unit run`, no scheduler) | {direct * 1000:.0f} ms |")
print(f"| sbatch of a {units}-task array | {submit * 1000:.0f} ms |")
print(f"| {units}-task array, sbatch to last task done ({done} records) | {array:.1f} s |")
print(f"| scheduling overhead per unit (array time x CPUs / units - direct run) | {array * cpus / units * 1000 - direct * 1000:.0f} ms |")
print(f"| machine load (1, 5, 15 min averages) before / after | {load_before} / {load_after} |")
PY
