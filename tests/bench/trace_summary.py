#!/usr/bin/env python3
"""Where a profiled step's GPU time goes: a Kineto Chrome trace (parallel_rank_main
--profile_trace) summarised by kernel family and by stream, with the time only communication
ran (exposed) and the time it ran beside compute (hidden).

    tests/bench/trace_summary.py TRACE.json[.gz] [TRACE.json[.gz] ...]

Several traces (e.g. one GPU, then rank 0 of a mesh) print side by side, so the families whose
time grew stand out. Standard library only.
"""
import gzip
import json
import re
import sys

# First match wins; names are CUDA kernel names as Kineto records them.
FAMILIES = [
    ("nccl", re.compile(r"nccl", re.I)),
    ("attention", re.compile(r"fmha|flash|cudnn|attention|sdpa", re.I)),
    ("gemm", re.compile(r"gemm|nvjet|cutlass|xmma|cublas", re.I)),
    ("norm", re.compile(r"norm", re.I)),
    ("copy", re.compile(r"copy|memcpy|cat_|CatArray", re.I)),
    ("elementwise", re.compile(r"elementwise|reduce|addcmul|gelu|mul|add", re.I)),
]
GPU_CATEGORIES = {"kernel", "gpu_memcpy", "gpu_memset"}


def family(name):
    for label, pattern in FAMILIES:
        if pattern.search(name):
            return label
    return "other"


def union_length(intervals):
    total, end = 0.0, None
    start = None
    for s, e in sorted(intervals):
        if end is None or s > end:
            if end is not None:
                total += end - start
            start, end = s, e
        else:
            end = max(end, e)
    if end is not None:
        total += end - start
    return total


def intersect_length(a, b):
    """Length of (union of a) intersected with (union of b)."""
    return union_length(a) + union_length(b) - union_length(a + b)


def summarise(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rt") as f:
        events = json.load(f)["traceEvents"]
    gpu = [e for e in events if e.get("ph") == "X" and e.get("cat") in GPU_CATEGORIES]
    if not gpu:
        raise SystemExit(f"{path}: no GPU events (was the trace taken with CUDA activity?)")
    by_family, by_stream = {}, {}
    comm, compute = [], []
    for e in gpu:
        span = (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
        label = family(e["name"])
        by_family[label] = by_family.get(label, 0.0) + span[1] - span[0]
        stream = e.get("args", {}).get("stream", e.get("tid"))
        by_stream[stream] = by_stream.get(stream, 0.0) + span[1] - span[0]
        (comm if label == "nccl" else compute).append(span)
    start = min(s for s, _ in comm + compute)
    end = max(e for _, e in comm + compute)
    busy = union_length(comm + compute)
    hidden = intersect_length(comm, compute)
    rows = {f"kernels {k} ms": v / 1e3 for k, v in by_family.items()}
    rows.update({
        "wall ms": (end - start) / 1e3,
        "gpu busy ms": busy / 1e3,
        "gpu idle ms": (end - start - busy) / 1e3,
        "comm exposed ms": (union_length(comm) - hidden) / 1e3,
        "comm hidden ms": hidden / 1e3,
        "streams": len(by_stream),
    })
    return rows


def main(paths):
    tables = [summarise(p) for p in paths]
    keys = sorted({k for t in tables for k in t}, key=lambda k: (not k.startswith("kernels"), k))
    width = max(len(k) for k in keys)
    print(" " * width + "".join(f"{p.rsplit('/', 1)[-1][-28:]:>30}" for p in paths))
    for k in keys:
        print(f"{k:<{width}}" + "".join(f"{t.get(k, 0):>30.1f}" for t in tables))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
