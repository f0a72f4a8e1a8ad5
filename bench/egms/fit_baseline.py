#!/usr/bin/env python3
"""NumPy peer of bench/egms/fit_bench.cpp: the EGMS time-series models fitted with vectorised
numpy.linalg.lstsq on the same design matrices and the same synthetic data (generated identically from
the point and date indices), chunk by chunk. Prints one JSON line with the timings."""
import argparse
import json
import resource
import time

import numpy as np

MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix(x):
    # The same 64-bit mixer as the C++ generator; numpy's uint64 arithmetic wraps like C++'s.
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def generate(first, count, dates, t):
    p = np.arange(first, first + count, dtype=np.uint64)
    velocity = ((p * np.uint64(7919)) % np.uint64(2001)).astype(np.float64) / 100.0 - 10.0
    amplitude = ((p * np.uint64(104729)) % np.uint64(301)).astype(np.float64) / 100.0
    index = p[None, :] * np.uint64(dates) + np.arange(dates, dtype=np.uint64)[:, None]
    noise = (splitmix(index) * 2.0 - 1.0) * 1.5
    d = velocity[None, :] * t[:, None] + amplitude[None, :] * np.sin(2 * np.pi * t)[:, None] + noise
    return d.astype(np.float32).astype(np.float64)  # the C++ side stores float32


def fit(d, t, wavelength_mm=55.46576):
    n = t.size
    one = np.ones_like(t)
    c, s = np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)
    g1 = np.stack([t, one, c, s], 1)
    g2 = np.stack([t * t / 2, t, one, c, s], 1)
    g3 = np.stack([t ** 3, t * t, t, one, c, s], 1)
    out = {}
    x1, _, _, _ = np.linalg.lstsq(g1, d, rcond=None)
    r1 = d - g1 @ x1
    q1 = np.linalg.inv(g1.T @ g1)
    out["mean_velocity"] = x1[0]
    out["mean_velocity_std"] = np.sqrt(q1[0, 0]) * r1.std(0)
    x2, _, _, _ = np.linalg.lstsq(g2, d, rcond=None)
    r2 = d - g2 @ x2
    q2 = np.linalg.inv(g2.T @ g2)
    out["acceleration"] = x2[0]
    out["acceleration_std"] = np.sqrt(q2[0, 0]) * r2.std(0)
    x3, _, _, _ = np.linalg.lstsq(g3, d, rcond=None)
    r3 = d - g3 @ x3
    q3 = np.linalg.inv(g3.T @ g3)
    rmse = np.sqrt((r3 ** 2).mean(0))
    out["seasonality"] = np.hypot(x3[4], x3[5])
    out["rmse"] = rmse
    out["seasonality_std"] = np.sqrt((4 - np.pi) / 2 * (q3[4, 4] + q3[5, 5]) / 2) * rmse
    linear = np.outer(t, x1[0]) + (x1[1] + x1[2])[None, :]
    phase = 4 * np.pi / wavelength_mm * (d - linear)
    out["temporal_coherence"] = np.abs(np.exp(1j * phase).mean(0))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1000000)
    ap.add_argument("--dates", type=int, default=300)
    ap.add_argument("--chunk", type=int, default=20000)
    a = ap.parse_args()
    t = np.arange(a.dates) * 6.0 / 365.0
    generate_s = fit_s = 0.0
    checksum = 0.0
    for first in range(0, a.points, a.chunk):
        count = min(a.chunk, a.points - first)
        t0 = time.perf_counter()
        d = generate(first, count, a.dates, t)
        t1 = time.perf_counter()
        out = fit(d, t)
        t2 = time.perf_counter()
        generate_s += t1 - t0
        fit_s += t2 - t1
        checksum += float(out["mean_velocity"].sum())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"points": a.points, "dates": a.dates, "generate_s": generate_s, "fit_s": fit_s,
                      "peak_rss_mb": rss_mb, "velocity_checksum": checksum,
                      "numpy": np.__version__}))


if __name__ == "__main__":
    main()
