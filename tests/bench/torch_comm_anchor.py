#!/usr/bin/env python3
"""Anchor for comm_bench: the same measurements through torch.distributed (NCCL), in the same
call on the same GPUs. all_to_all_single and all_gather_into_tensor on bf16 payloads, timed with
CUDA events over the same warmup/iteration counts, bus bandwidth as nccl-tests defines it.

    python3 tests/bench/torch_comm_anchor.py --nprocs 2 --sizes-mib 1,16,64 --json out.jsonl
"""

import argparse
import functools
import json
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def rank_main(rank, args, init_file):
    torch.cuda.set_device(rank)
    dist.init_process_group(
        "nccl",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=args.nprocs,
        device_id=torch.device("cuda", rank),
    )
    world = args.nprocs
    bus = (world - 1) / world
    rows = []
    for mib in [int(s) for s in args.sizes_mib.split(",")]:
        nbytes = mib << 20
        x = torch.randn(nbytes // 2, dtype=torch.bfloat16, device="cuda")
        a2a_out = torch.empty_like(x)
        ag_out = torch.empty(x.numel() * world, dtype=x.dtype, device="cuda")
        ops = [
            # Bound now (partial): each size's buffers, not the loop's last.
            ("all_to_all", nbytes, functools.partial(dist.all_to_all_single, a2a_out, x)),
            (
                "all_gather",
                nbytes * world,
                functools.partial(dist.all_gather_into_tensor, ag_out, x),
            ),
        ]
        for name, algbw_bytes, fn in ops:
            for _ in range(args.warmup):
                fn()
            dist.barrier()
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(args.iters):
                fn()
            stop.record()
            torch.cuda.synchronize()
            seconds = start.elapsed_time(stop) / 1e3 / args.iters
            rows.append(
                {
                    "impl": "torch",
                    "backend": "nccl",
                    "op": name,
                    "size_mib": mib,
                    "ranks": world,
                    "time_us": seconds * 1e6,
                    "busbw_GBps": algbw_bytes / seconds * bus / 1e9,
                }
            )
    if rank == 0:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
                print(
                    f"torch      {row['op']:<12} {row['size_mib']:>10} {row['time_us']:>12.1f} "
                    f"{row['busbw_GBps']:>12.1f}"
                )
    dist.barrier()
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--nprocs", type=int, default=2)
    parser.add_argument("--sizes-mib", dest="sizes_mib", default="1,16,64")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    init_file = os.path.join(tempfile.mkdtemp(), "init")
    mp.spawn(rank_main, args=(args, init_file), nprocs=args.nprocs, join=True)


if __name__ == "__main__":
    main()
