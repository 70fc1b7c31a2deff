#!/usr/bin/env python3
"""cuBLAS throughput of Wan 14B's linear layers against the number of rows (tokens per rank):
whether a sequence split leaves the GEMMs as efficient per token as the whole sequence, and
whether rounding the rows (padding tokens) would help. One JSON line per (rows, shape).

    python3 tests/bench/gemm_rows.py [ROWS ...]
"""
import json
import sys

import torch
import torch.nn.functional as F

SHAPES = {"qkvo": (5120, 5120), "ffn_up": (5120, 13824), "ffn_down": (13824, 5120)}


def time_ms(fn, iters=20):
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def main(rows):
    for name, (k, n) in SHAPES.items():
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        b = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        for m in rows:
            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            ms = time_ms(lambda: F.linear(x, w, b))
            print(json.dumps({"shape": name, "rows": m, "ms": round(ms, 4),
                              "tflops": round(2 * m * k * n / ms / 1e9, 1)}))


if __name__ == "__main__":
    main([int(r) for r in sys.argv[1:]] or [32760, 16380, 16384, 16512, 16640, 8190, 8192])
