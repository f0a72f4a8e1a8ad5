#!/usr/bin/python3
"""scikit-image peer of the pair benchmark: phase_cross_correlation (upsample_factor=100) per node.

Arguments: REF.f32 SEC.f32 TRUTH.f64 SIZE MARGIN N CHIP SEARCH STEP OUT.json
REF/SEC are SIZE x SIZE float32 crops; nodes are at MARGIN + k*STEP (N x N); TRUTH holds (dx, dy) per node.
Each node compares windows of CHIP + 2*SEARCH pixels of both images centred on the node (phase correlation
needs equal sizes and finds shifts up to half the window). At most MAX_NODES nodes are timed (the cost per
node does not depend on how many there are).
"""
import json
import sys
import time

import numpy as np
from skimage.registration import phase_cross_correlation

MAX_NODES = 2000

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
    r = margin + j * step
    c = margin + i * step
    a = ref[r - half:r + half, c - half:c + half]
    b = sec[r - half:r + half, c - half:c + half]
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=100, normalization=None)
    # skimage returns the shift that registers b onto a: b moved by -d.
    dy, dx = -shift[0], -shift[1]
    t = truth[j * n + i]
    errors.append(float(np.hypot(dx - t[0], dy - t[1])))
seconds = time.perf_counter() - start
e = np.sort(np.array(errors))
json.dump({"seconds": seconds, "nodes": len(nodes), "median": float(np.median(e)),
           "p95": float(e[int(0.95 * (len(e) - 1))]), "rmse": float(np.sqrt(np.mean(e ** 2))), "valid": 1.0},
          open(out_path, "w"))
