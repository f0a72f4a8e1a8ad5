#!/usr/bin/env python3
"""Per-node network inversion with SciPy's lstsq: the baseline of bench/timeseries/invert_bench.

Equivalent to MintPy's pixel-wise network inversion (ifgram_inversion, weight function "no", time-series
design matrix with the first date as reference): for every node, the rows of the design matrix whose pair is
valid at that node are kept and scipy.linalg.lstsq solves for the displacement at dates 1..N-1, for the east
and north components together (two right-hand sides).

Usage: invert_baseline.py INPUT.bin OUTPUT.bin
INPUT.bin (little-endian): int32 nodes, pairs, dates; int32 ref[pairs], sec[pairs]; float32 east[nodes*pairs],
north[nodes*pairs] (node-major, NaN = invalid). OUTPUT.bin: float32 u[nodes, 2, dates-1].
Prints one JSON line: nodes, seconds, nodes_per_s, peak_rss_mb.
"""
import json
import resource
import sys
import time

import numpy as np
import scipy.linalg


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        nodes, pairs, dates = np.frombuffer(f.read(12), dtype="<i4")
        ref = np.frombuffer(f.read(4 * pairs), dtype="<i4")
        sec = np.frombuffer(f.read(4 * pairs), dtype="<i4")
        east = np.frombuffer(f.read(4 * nodes * pairs), dtype="<f4").reshape(nodes, pairs)
        north = np.frombuffer(f.read(4 * nodes * pairs), dtype="<f4").reshape(nodes, pairs)
    # Design matrix: d = u[sec] - u[ref], u[0] = 0 (reference date), unknowns u[1..dates-1].
    design = np.zeros((pairs, dates - 1), dtype=np.float32)
    for k in range(pairs):
        if sec[k] > 0:
            design[k, sec[k] - 1] += 1.0
        if ref[k] > 0:
            design[k, ref[k] - 1] -= 1.0
    out = np.full((nodes, 2, dates - 1), np.nan, dtype=np.float32)
    start = time.perf_counter()
    for n in range(nodes):
        obs = np.stack((east[n], north[n]), axis=1)
        valid = np.all(np.isfinite(obs), axis=1)
        if not valid.any():
            continue
        solution = scipy.linalg.lstsq(design[valid], obs[valid], cond=1e-5)[0]
        out[n] = solution.T
    seconds = time.perf_counter() - start
    out.tofile(dst)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"nodes": int(nodes), "seconds": seconds, "nodes_per_s": nodes / seconds,
                      "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main()
