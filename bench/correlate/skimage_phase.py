#!/usr/bin/python3
"""scikit-image peer of the pair benchmark: phase_cross_correlation (upsample_factor=100) per node.

Grid mode, scored against a known field:
  REF.f32 SEC.f32 TRUTH.f64 SIZE MARGIN N CHIP SEARCH STEP OUT.json
  REF/SEC are SIZE x SIZE float32 crops; nodes are at MARGIN + k*STEP (N x N); TRUTH holds (dx, dy) per node.
  At most MAX_NODES nodes are timed (the cost per node does not depend on how many there are).
Node-list mode, for a real pair (the caller scores the displacements):
  --nodes REF.f32 SEC.f32 WIDTH HEIGHT NODES.i32 CHIP SEARCH OUT.f64 OUT.json
  NODES holds (col, row) per node; OUT.f64 receives (dx, dy) per node (NaN where the window leaves the image).
Each node compares windows of CHIP + 2*SEARCH pixels of both images centred on the node (phase correlation
needs equal sizes and finds shifts up to half the window).
"""
import json
import sys
import time

import numpy as np
from skimage.registration import phase_cross_correlation

MAX_NODES = 2000


def node_shift(ref, sec, r, c, half):
    a = ref[r - half:r + half, c - half:c + half]
    b = sec[r - half:r + half, c - half:c + half]
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=100, normalization=None)
    # skimage returns the shift that registers b onto a: b moved by -d.
    return -shift[1], -shift[0]


if sys.argv[1] == "--nodes":
    ref_path, sec_path = sys.argv[2:4]
    width, height = int(sys.argv[4]), int(sys.argv[5])
    node_list = np.fromfile(sys.argv[6], dtype=np.int32).reshape(-1, 2)
    chip, search = int(sys.argv[7]), int(sys.argv[8])
    shifts_path, out_path = sys.argv[9:11]
    ref = np.fromfile(ref_path, dtype=np.float32).reshape(height, width)
    sec = np.fromfile(sec_path, dtype=np.float32).reshape(height, width)
    half = chip // 2 + search
    shifts = np.full((len(node_list), 2), np.nan)
    start = time.perf_counter()
    for k, (c, r) in enumerate(node_list):
        if half <= r <= height - half and half <= c <= width - half:
            shifts[k] = node_shift(ref, sec, r, c, half)
    seconds = time.perf_counter() - start
    shifts.tofile(shifts_path)
    json.dump({"seconds": seconds, "nodes": int(len(node_list))}, open(out_path, "w"))
    sys.exit(0)

ref_path, sec_path, truth_path = sys.argv[1:4]
size, margin, n, chip, search, step = (int(v) for v in sys.argv[4:10])
out_path = sys.argv[10]
ref = np.fromfile(ref_path, dtype=np.float32).reshape(size, size)
sec = np.fromfile(sec_path, dtype=np.float32).reshape(size, size)
truth = np.fromfile(truth_path, dtype=np.float64).reshape(n * n, 2)
half = chip // 2 + search
nodes = [(j, i) for j in range(n) for i in range(n)]
stride = max(1, len(nodes) // MAX_NODES)
nodes = nodes[::stride][:MAX_NODES]
errors = []
start = time.perf_counter()
for j, i in nodes:
    dx, dy = node_shift(ref, sec, margin + j * step, margin + i * step, half)
    t = truth[j * n + i]
    errors.append(float(np.hypot(dx - t[0], dy - t[1])))
seconds = time.perf_counter() - start
e = np.sort(np.array(errors))
json.dump({"seconds": seconds, "nodes": len(nodes), "median": float(np.median(e)),
           "p95": float(e[int(0.95 * (len(e) - 1))]), "rmse": float(np.sqrt(np.mean(e ** 2))), "valid": 1.0},
          open(out_path, "w"))
