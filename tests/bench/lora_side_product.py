#!/usr/bin/env python3
"""LoRA on a quantised base, two ways (issue #25: "applied on the fly per block, or as a side
product x A B, whichever measures faster"), timed on Wan 14B's linears at 832x480x81:

  merge  what Raylight does: the block's weight dequantised to float32, the rank-r update added
         (W += s * up @ down), cast to bf16, one GEMM. Bit-equal to a merged checkpoint.
  side   the weight dequantised to bf16, the GEMM, plus the side product s * (x @ down^T) @ up^T
         added to its output (two thin GEMMs over every token).

Both against the plain GEMM after a bf16 dequantisation. Q8_0's dequantisation is stood in by an
int8 tensor times one scale per 32 values (the same memory traffic). A block's linears: self
q/k/v/o, cross q/o and the FFN over the video tokens, cross k/v over the 512 text tokens; a step
is 40 blocks x 2 forwards (cond and uncond). Prints one results-schema JSON object.

    python3 tests/bench/lora_side_product.py [--tokens 32760] [--rank 64]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import torch

DIM, FFN, TEXT = 5120, 13824, 512
BF16 = torch.bfloat16


# (out, in, tokens the linear sees): the ten LoRA'd linears of a Wan 14B block.
def block_linears(tokens: int) -> list[tuple[int, int, int]]:
    square = [(DIM, DIM, tokens)] * 6 + [(DIM, DIM, TEXT)] * 2
    return square + [(FFN, DIM, tokens), (DIM, FFN, tokens)]


def time_ms(fn: Callable[[], object], iters: int = 10) -> float:
    for _ in range(3):
        fn()
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) / iters


class Linear:
    """One LoRA'd linear: Q8_0-like blocks (int8, one scale per 32), its input, a rank-r LoRA."""

    def __init__(self, out_dim: int, in_dim: int, rows: int, rank: int, strength: float) -> None:
        cuda = torch.device("cuda")
        self.shape = (out_dim, in_dim)
        self.quantised = torch.randint(-127, 128, (out_dim, in_dim // 32, 32), device=cuda)
        self.quantised = self.quantised.to(torch.int8)
        self.scales = torch.rand(out_dim, in_dim // 32, 1, device=cuda, dtype=torch.float16)
        self.x = torch.randn(rows, in_dim, device=cuda, dtype=BF16)
        self.up = torch.randn(out_dim, rank, device=cuda) * 0.01
        self.down = torch.randn(rank, in_dim, device=cuda) * 0.01
        self.up16, self.down16 = self.up.to(BF16), self.down.to(BF16)
        self.strength = strength

    def dequantise(self, dtype: torch.dtype) -> torch.Tensor:
        return (self.quantised.to(dtype) * self.scales.to(dtype)).view(self.shape)

    def plain(self) -> torch.Tensor:
        return self.x @ self.dequantise(BF16).t()

    def merge(self) -> torch.Tensor:
        weight = self.dequantise(torch.float32)
        weight.addmm_(self.up, self.down, alpha=self.strength)
        return self.x @ weight.to(BF16).t()

    def side(self) -> torch.Tensor:
        y = self.x @ self.dequantise(BF16).t()
        return y.addmm_(self.x @ self.down16.t(), self.up16.t(), alpha=self.strength)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=32760)
    parser.add_argument("--rank", type=int, default=64)
    args = parser.parse_args()
    totals = {"plain": 0.0, "merge": 0.0, "side": 0.0}
    for out_dim, in_dim, rows in block_linears(args.tokens):
        linear = Linear(out_dim, in_dim, rows, args.rank, strength=0.8)
        for name, fn in (("plain", linear.plain), ("merge", linear.merge), ("side", linear.side)):
            totals[name] += time_ms(fn)
        del linear
    step = {name: ms * 40 * 2 for name, ms in totals.items()}
    anchors = {
        "plain": "plain GEMMs after a bf16 dequantisation, ms per step",
        "merge": "merge per block, ms per step",
    }
    tag = f"wan14b_832x480x81_lora{args.rank}"
    results = [
        dict(
            name=f"{tag}_{label}_over_{base}",
            value=step[ours] / step[base],
            unit="ratio",
            anchor=anchors[base],
            anchor_value=step[base],
        )
        for label, ours, base in (
            ("merge", "merge", "plain"),
            ("side_product", "side", "plain"),
            ("side_product", "side", "merge"),
        )
    ]
    print(json.dumps({"results": results, "ms_per_step": step}))


if __name__ == "__main__":
    main()
