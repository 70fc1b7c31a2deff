"""What the diffusers anchors share (flux_diffusers_anchor.py, qwen_image_diffusers_anchor.py):
rows in the results schema and a median GPU time."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import torch


def emit(name: str, value: float, unit: str, anchor: str = "", anchor_value: float = 0) -> None:
    row: dict[str, Any] = {
        "name": name,
        "value": value,
        "unit": unit,
        "anchor": anchor,
        "anchor_value": anchor_value,
    }
    print(json.dumps(row), flush=True)


def median_ms(run: Callable[[], Any], runs: int, warmups: int) -> float:
    """`run`'s median wall time over `runs` calls after `warmups`, the GPU synchronised."""
    for _ in range(warmups):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]
