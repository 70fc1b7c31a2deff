#!/usr/bin/env python3
"""fp8 GEMMs of Wan 14B's linear layers at the forward's 32,760 rows (issue #27): what each of
`torch._scaled_mm`'s modes gives over the bf16 GEMM, and what it costs in accuracy.

Modes, all e4m3 x e4m3 -> bf16 on the same quantised operands (x per token, W per output channel,
as fp8 compute does; `models/core/fp8_linear.h`):
- `rowwise`: rowwise scales in the epilogue, fp32 accumulation (`use_fast_accum=False`), what
  fp8 compute ran until session 29;
- `rowwise_fast`: the same with Hopper's fast accumulation (the tensor cores' own accumulator,
  ~14 mantissa bits before each promotion, instead of promoting into fp32 registers every few
  k-steps; DeepSeek-V3's report measures ~2% worst-case relative error at K=4096);
- `bf16`: `F.linear` in bf16, the anchor.

Accuracy: the relative L2 of each mode's output from the fp32 product of the same dequantised
operands (the accumulation's own error), and from the bf16 GEMM (what a user sees).

    python3 tests/bench/fp8_gemm_rows.py [--rows 32760] [--iters 20]

Prints one JSON line per row of the results schema (name, value, unit, anchor, anchor_value).
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from gemm_rows import time_ms  # CUDA-event timing after warm-up calls, beside this script

E4M3_MAX = 448.0
# (K, N) of the 14B block's linear layers: attention projections, the FFN's up and down.
SHAPES: dict[str, tuple[int, int]] = {
    "qkvo": (5120, 5120),
    "ffn_up": (5120, 13824),
    "ffn_down": (13824, 5120),
}


def emit(name: str, value: float, unit: str, anchor: str, anchor_value: float) -> None:
    row = {"name": name, "value": round(value, 5), "unit": unit, "anchor": anchor}
    row["anchor_value"] = round(anchor_value, 5)
    print(json.dumps(row), flush=True)


def quantize_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of `t` to e4m3 with its own fp32 scale ([rows, 1])."""
    scale = (t.float().abs().amax(1, keepdim=True) / E4M3_MAX).clamp_min(1e-12)
    return (t.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn), scale


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def measure_shape(prefix: str, m: int, k: int, n: int, iters: int) -> None:
    """The rows of one (K, N) linear layer at m rows."""
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = (torch.randn(n, k, device="cuda") / k**0.5).to(torch.bfloat16)
    bias = torch.randn(n, device="cuda", dtype=torch.bfloat16) * 0.01
    xq, xs = quantize_rows(x)
    wq, ws = quantize_rows(w)
    exact = (xq.float() * xs) @ (wq.float() * ws).t() + bias.float()
    bf16 = F.linear(x, w, bias)
    bf16_ms = time_ms(lambda: F.linear(x, w, bias), iters)
    flops = 2.0 * m * k * n
    emit(f"{prefix}_bf16_ms", bf16_ms, "ms", "bf16 TFLOP/s", flops / bf16_ms / 1e9)
    for mode, fast in (("rowwise", False), ("rowwise_fast", True)):

        def gemm(fast: bool = fast) -> torch.Tensor:
            return torch._scaled_mm(
                xq, wq.t(), xs, ws.t(), bias=bias, out_dtype=torch.bfloat16, use_fast_accum=fast
            )

        out = gemm()
        ms = time_ms(gemm, iters)
        emit(f"{prefix}_fp8_{mode}_over_bf16", ms / bf16_ms, "ratio", "bf16 GEMM, ms", bf16_ms)
        emit(f"{prefix}_fp8_{mode}_tflops", flops / ms / 1e9, "TFLOP/s", "ms", ms)
        emit(
            f"{prefix}_fp8_{mode}_rel_l2_vs_exact",
            rel_l2(out, exact),
            "ratio",
            "fp32 product of the same e4m3 operands",
            0.0,
        )
        vs_bf16 = rel_l2(out, bf16)
        emit(f"{prefix}_fp8_{mode}_rel_l2_vs_bf16", vs_bf16, "ratio", "bf16 GEMM output", 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=32760)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--name", default="wan14b_832x480x81")
    args = parser.parse_args()
    for shape, (k, n) in SHAPES.items():
        measure_shape(f"{args.name}_{shape}", args.rows, k, n, args.iters)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
