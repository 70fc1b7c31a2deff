#!/usr/bin/env python3
"""The kernels of a Ulysses-2 step of Wan 14B at 832x480x81 against the same kernels of one GPU,
on one GPU: whether attention over half the heads, the self-attention projections over half the
rows and the own-heads copy cost more per unit of work than the whole. One JSON line each.

    python3 tests/bench/ulysses_kernels.py            # cuBLAS's heuristic choice
    python3 tests/bench/ulysses_kernels.py --tunable  # PyTorch TunableOp picks per shape
    python3 tests/bench/ulysses_kernels.py --what attention --iters 150  # one GPU busy, or both:
    for g in 0 1; do CUDA_VISIBLE_DEVICES=$g python3 tests/bench/ulysses_kernels.py \
        --what attention --iters 150 & done; wait
"""
import argparse
import json

import torch
import torch.nn.functional as F

from gemm_rows import time_ms  # same directory

TOKENS, HEADS, HEAD_DIM = 32760, 40, 128
DIM = HEADS * HEAD_DIM


ITERS = 10


def timed(fn):
    return time_ms(fn, iters=ITERS)


def emit(kind, label, ms, **extra):
    print(json.dumps({"kind": kind, "label": label, "ms": round(ms, 4), **extra}), flush=True)


def attention(batch, heads):
    # [B, H, L, D] views of [B, L, H, D] tensors, as the model hands them to cuDNN.
    q, k, v = (torch.randn(batch, TOKENS, heads, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
               .transpose(1, 2) for _ in range(3))
    ms = timed(lambda: torch.ops.aten._scaled_dot_product_cudnn_attention(
        q, k, v, None, False, 0.0, False, False))
    flops = 4 * batch * heads * TOKENS * TOKENS * HEAD_DIM
    emit("attention", f"b{batch}_h{heads}", ms, tflops=round(flops / ms / 1e9, 1),
         ms_per_head=round(ms / (batch * heads), 4))


def gemm(rows, n=DIM, batches=1):
    w = torch.randn(n, DIM, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(batches, rows, DIM, device="cuda", dtype=torch.bfloat16)
    ms = timed(lambda: F.linear(x, w, b))
    emit("gemm", f"{batches}x{rows}x{DIM}x{n}", ms,
         tflops=round(2 * batches * rows * DIM * n / ms / 1e9, 1))


def own_heads_copy(rows):
    # copy_'s strided kernel costs per element: the same rows read as wider words (a bitwise
    # view of the bf16 pairs, quads, octets) move more bytes per element.
    src = torch.randn(rows, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty(rows, HEADS // 2, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    for word in (torch.bfloat16, torch.int32, torch.int64, torch.complex128):
        d, s = dst.view(word), src[:, :HEADS // 2].view(word)
        ms = timed(lambda: d.copy_(s))
        assert torch.equal(dst, src[:, :HEADS // 2])
        emit("copy", f"own_heads_copy_{rows}_{str(word).split('.')[-1]}", ms,
             gbps=round(2 * dst.nbytes / ms / 1e6, 1))


def rope_cast(rows, split):
    # RoPE's last kernel: fp32 -> bf16, whole (then the own heads copied) or written in two halves
    # straight where they go.
    rotated = torch.randn(rows, HEADS, HEAD_DIM, device="cuda", dtype=torch.float32)
    whole = torch.empty(rows, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    own = torch.empty(rows, HEADS // 2, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
    half = HEADS // 2
    if split:
        def run():
            own.copy_(rotated[:, :half])
            whole[:, half:].copy_(rotated[:, half:])
    else:
        def run():
            whole.copy_(rotated)
            own.copy_(whole[:, :half])
    emit("copy", f"rope_cast_{'split' if split else 'whole_then_copy'}_{rows}", timed(run))


def residual_add():
    # x.addcmul_(branch, gate) over a batch of two samples with a per-sample gate [B, 1, dim]:
    # the broadcast keeps the iteration three-dimensional; per sample it is two-dimensional.
    x = torch.randn(2, TOKENS // 2, DIM, device="cuda")
    branch = torch.randn(2, TOKENS // 2, DIM, device="cuda", dtype=torch.bfloat16)
    gate = torch.randn(2, 1, DIM, device="cuda")
    emit("elementwise", "residual_batch_of_2", timed(lambda: x.addcmul_(branch, gate)))

    def per_sample():
        for b in range(2):
            x[b].addcmul_(branch[b], gate[b])
    emit("elementwise", "residual_per_sample", timed(per_sample))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tunable", action="store_true")
    parser.add_argument("--what", choices=("all", "attention", "memory", "gemm"), default="all")
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args()
    global ITERS
    ITERS = args.iters
    if args.tunable:
        torch.cuda.tunable.enable(True)
        torch.cuda.tunable.tuning_enable(True)
        torch.cuda.tunable.set_filename("/tmp/tunableop_results.csv")
    torch.manual_seed(0)
    if args.what in ("all", "attention") and not args.tunable:
        for batch, heads in ((1, 40), (1, 20), (2, 20)):
            attention(batch, heads)
    if args.what in ("all", "memory") and not args.tunable:
        for rows in (16380, 32760):
            own_heads_copy(rows)
            rope_cast(rows, split=False)
            rope_cast(rows, split=True)
        residual_add()
    if args.what in ("all", "gemm"):
        for rows in (16380, 32760):
            gemm(rows)
        gemm(16380, batches=2)
        gemm(16380, n=DIM // 2)
        gemm(16380, n=3 * DIM)
        gemm(32760, n=3 * DIM)


if __name__ == "__main__":
    main()
