#!/usr/bin/env bash
# Speed of two builds of deforma on the same workloads: bench/compare_versions.sh OLD_BUILD NEW_BUILD OUT
#
# Each workload runs with both CLIs alternating (old, new, old, new ...; ROUNDS rounds, default 3). Per run:
# wall seconds, CPU seconds (user + sys) and peak RSS from /usr/bin/time, and the 1-minute load average
# when it starts. Prints a Markdown table of medians. On a shared machine wall time follows the other jobs'
# load, CPU time much less: compare the CPU seconds.
#
# Inputs are made once, under OUT/inputs, by NEW_BUILD's benchmark programs (both versions then read the
# same files): the N x N pair of bench/correlate/pair_bench.cpp (--generate-only; N = LARGE, default 4096),
# and pair rasters of the time-series benchmark (bench/timeseries/invert_bench.cpp --write-pairs). The
# filter workload reads the new CLI's correlation of the large pair with --step FILTER_STEP (default 8, so
# that there are enough nodes to measure).
#
# Environment: DEFORMA_DATA (sample data, default ../shared/data), ROUNDS, THREADS (default 2), RAM (MB,
# default 1024), LARGE, FILTER_STEP, INVERT_SIZE (nodes per side, default 300), INVERT_PAIRS (default 60),
# INVERT_DATES (default 20), WORKLOADS (names to run, space-separated; default all), KEEP_RUNS=1 (add to the
# runs of an earlier call in OUT/runs.txt instead of starting afresh: the table then pools them).
set -euo pipefail
OLD="$(cd "${1:?usage: bench/compare_versions.sh OLD_BUILD NEW_BUILD OUT}" && pwd)"
NEW="$(cd "${2:?usage: bench/compare_versions.sh OLD_BUILD NEW_BUILD OUT}" && pwd)"
OUT="${3:?usage: bench/compare_versions.sh OLD_BUILD NEW_BUILD OUT}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${DEFORMA_DATA:-$ROOT/../shared/data}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-2}"
RAM="${RAM:-1024}"
LARGE="${LARGE:-4096}"
FILTER_STEP="${FILTER_STEP:-8}"
INVERT_SIZE="${INVERT_SIZE:-300}"
INVERT_PAIRS="${INVERT_PAIRS:-60}"
INVERT_DATES="${INVERT_DATES:-20}"
WORKLOADS="${WORKLOADS:-correlate-yahtse correlate-yahtse-translation correlate-large filter-large cog-large stats-large invert}"

OLD_CLI="$OLD/apps/deforma/deforma"
NEW_CLI="$NEW/apps/deforma/deforma"
for f in "$OLD_CLI" "$NEW_CLI" "$NEW/bench/deforma_bench_pair" "$NEW/bench/deforma_bench_invert" /usr/bin/time; do
  [[ -x "$f" ]] || { echo "error: $f is missing or not executable (build deforma_cli, and the bench targets in NEW_BUILD)" >&2; exit 1; }
done
YAHTSE="$DATA/yahtse-l8"
Y_REF="$YAHTSE/LC80630182016200LGN00_B8_yahtse.TIF"
Y_SEC="$YAHTSE/LC80630182016216LGN00_B8_yahtse.TIF"
[[ -f "$Y_REF" && -f "$Y_SEC" ]] || { echo "error: the Yahtse pair is not in $YAHTSE (set DEFORMA_DATA)" >&2; exit 1; }

mkdir -p "$OUT/inputs" "$OUT/runs"
IN="$(cd "$OUT/inputs" && pwd)"
RUNS="$(cd "$OUT/runs" && pwd)"
log() { printf '[compare] %s\n' "$*" >&2; }

# ---- inputs, made once ----
L_REF="$IN/ref_$LARGE.tif"
L_SEC="$IN/sec_$LARGE.tif"
if [[ ! -f "$L_REF" || ! -f "$L_SEC" ]]; then
  log "generating the $LARGE x $LARGE pair"
  DEFORMA_DATA="$DATA" "$NEW/bench/deforma_bench_pair" "$IN" --size "$LARGE" --generate-only >/dev/null
fi
FILTER_IN="$IN/corr_${LARGE}_step$FILTER_STEP.tif"
if [[ ! -f "$FILTER_IN" ]]; then
  log "correlating the large pair at step $FILTER_STEP (input of the filter workload)"
  "$NEW_CLI" -q --threads "$THREADS" correlate "$L_REF" "$L_SEC" -o "$FILTER_IN" --chip 32 --search 32 \
    --step "$FILTER_STEP" --shape translation
fi
INV="$IN/invert_${INVERT_SIZE}_${INVERT_PAIRS}_$INVERT_DATES"
if [[ ! -f "$INV/pairs.csv" ]]; then
  log "writing $INVERT_PAIRS pair rasters of $INVERT_SIZE x $INVERT_SIZE nodes"
  "$NEW/bench/deforma_bench_invert" --write-pairs "$INV" --width "$INVERT_SIZE" --height "$INVERT_SIZE" \
    --pairs "$INVERT_PAIRS" --dates "$INVERT_DATES" --threads "$THREADS"
fi

# The command line of a workload for one CLI, writing under $2; options both versions know. The old CLI had
# no affine default and the new one may: --shape translation is given explicitly where the shape matters.
workload_args() {
  local name="$1" dir="$2"
  case "$name" in
    correlate-yahtse) echo correlate "$Y_REF" "$Y_SEC" -o "$dir/out.tif" ;;
    correlate-yahtse-translation) echo correlate "$Y_REF" "$Y_SEC" -o "$dir/out.tif" --shape translation ;;
    correlate-large)
      echo correlate "$L_REF" "$L_SEC" -o "$dir/out.tif" --chip 32 --step 16 --search 32 --shape translation ;;
    filter-large)
      echo filter "$FILTER_IN" -o "$dir/out.tif" --min-corr 0.3 --max-displacement 40 --auto-stable --ramp plane ;;
    cog-large) echo cog "$L_REF" -o "$dir/out.tif" ;;
    stats-large) echo stats "$L_REF" --json ;;
    invert) echo invert "$INV/pairs.csv" -o "$dir/series" --no-quicklooks ;;
    *) echo "error: unknown workload $name" >&2; return 1 ;;
  esac
}

# Band checksums of a run's main output, to tell whether both versions computed the same thing.
checksums() {
  local dir="$1" f
  for f in "$dir/out.tif" "$dir/series/velocity.tif"; do
    if [[ -f "$f" ]]; then gdalinfo -checksum "$f" 2>/dev/null | grep -o 'Checksum=[0-9]*' | tr '\n' ' '; return; fi
  done
  [[ -f "$dir/stdout" ]] && md5sum <"$dir/stdout" | cut -c1-12
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# run VERSION CLI WORKLOAD ROUND: one measured run; appends "workload version wall cpu rss_mb load" to the log.
run_one() {
  local version="$1" cli="$2" name="$3" round="$4"
  local dir="$RUNS/$name/$version"
  rm -rf "$dir"
  mkdir -p "$dir"
  local load
  load="$(cut -d' ' -f1 /proc/loadavg)"
  # shellcheck disable=SC2046  # the workload's words are paths without spaces
  if ! /usr/bin/time -f '%e %U %S %M' -o "$dir/time" "$cli" -q --threads "$THREADS" --ram "$RAM" \
      $(workload_args "$name" "$dir") >"$dir/stdout" 2>"$dir/stderr"; then
    log "$name ($version, round $round) failed: $(tail -n 1 "$dir/stderr")"
    echo "$name $version nan nan nan $load" >>"$OUT/runs.txt"
    return
  fi
  local wall user sys rss_kb
  read -r wall user sys rss_kb <"$dir/time"
  echo "$name $version $wall $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') $((rss_kb / 1024)) $load" \
    >>"$OUT/runs.txt"
  checksums "$dir" >"$RUNS/$name.$version.sum"
}

[[ "${KEEP_RUNS:-0}" == 1 && -f "$OUT/runs.txt" ]] || : >"$OUT/runs.txt"
for name in $WORKLOADS; do
  workload_args "$name" /dev/null >/dev/null
  for ((round = 1; round <= ROUNDS; ++round)); do
    log "$name: round $round of $ROUNDS"
    run_one old "$OLD_CLI" "$name" "$round"
    run_one new "$NEW_CLI" "$name" "$round"
  done
done

col() { awk -v n="$1" -v v="$2" -v c="$3" '$1 == n && $2 == v {print $c}' "$OUT/runs.txt" | median; }
{
  echo "| workload | runs | old CPU s | new CPU s | new/old CPU | old wall s | new wall s | old peak RSS MB | new peak RSS MB | same output | load avg |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for name in $(awk '!seen[$1]++ {print $1}' "$OUT/runs.txt"); do
    oc="$(col "$name" old 4)"
    nc="$(col "$name" new 4)"
    same=no
    cmp -s "$RUNS/$name.old.sum" "$RUNS/$name.new.sum" 2>/dev/null && same=yes
    load="$(awk -v n="$name" '$1 == n {s += $6; k++} END {if (k) printf "%.1f", s / k}' "$OUT/runs.txt")"
    runs="$(awk -v n="$name" '$1 == n && $2 == "new" {k++} END {print k + 0}' "$OUT/runs.txt")"
    printf '| %s | %s | %.2f | %.2f | %s | %.2f | %.2f | %s | %s | %s | %s |\n' "$name" "$runs" "$oc" "$nc" \
      "$(awk -v a="$oc" -v b="$nc" 'BEGIN {if (a > 0) printf "%.3f", b / a; else print "-"}')" \
      "$(col "$name" old 3)" "$(col "$name" new 3)" "$(col "$name" old 5)" "$(col "$name" new 5)" "$same" "$load"
  done
  echo
  echo "Medians of the runs of each version (alternating: old, new, old, new ...), --threads $THREADS" \
    "--ram $RAM, $(nproc) cores; CPU s = user + sys. load avg: the mean 1-minute load average at the start" \
    "of the runs (this script's own run included)."
  echo "Compare the CPU seconds: wall time also measures the other jobs on the machine."
} | tee "$OUT/table.md"
