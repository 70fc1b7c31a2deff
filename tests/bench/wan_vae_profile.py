"""Where a Wan VAE decode spends its GPU time (issue #24's speed item), and what the pieces of
one decoder level cost in other forms: diffusers' AutoencoderKLWan (2.1, real size, random
weights, bf16) decodes a short 720p latent under torch.profiler (kernel time by kind), then the
full-resolution and half-resolution levels' convolution and norm are timed alone:

  - conv3d in NCDHW and in channels-last-3d (what the decode runs today);
  - the same convolution as one conv2d over the frames' three time taps stacked on channels
    (channels-last), and as three conv2ds summed;
  - the RMS norm + SiLU as the unfused chain and as one fused pass (torch.compile, as the
    bandwidth bound a hand-written kernel can reach).

  python3 tests/bench/wan_vae_profile.py --out OUT/wan_vae_profile.json

Writes the results schema (times in ms; the anchor is the conv3d in NCDHW or the unfused norm).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F


def timed(fn: Callable[[], Any], runs: int = 10) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    start.record()
    for _ in range(runs):
        fn()
    end.record()
    torch.cuda.synchronize()
    return float(start.elapsed_time(end)) / runs


def kind(name: str) -> str:
    lowered = name.lower()
    for key, label in (
        ("conv", "conv"),
        ("xmma", "conv"),
        ("cutlass", "conv"),
        ("sm90", "conv"),
        ("implicit", "conv"),
        ("gemm", "gemm"),
        ("norm", "reduce"),
        ("reduce", "reduce"),
        ("cat", "cat/copy"),
        ("copy", "cat/copy"),
        ("silu", "elementwise"),
        ("elementwise", "elementwise"),
        ("upsample", "upsample"),
        ("flash", "attention"),
        ("attention", "attention"),
    ):
        if key in lowered:
            return label
    return "other"


def profile_diffusers(results: list[dict[str, Any]], frames: int) -> None:
    from diffusers import AutoencoderKLWan

    vae: Any = AutoencoderKLWan()  # type: ignore[no-untyped-call]
    vae = vae.to(device="cuda", dtype=torch.bfloat16).eval()
    latent = torch.randn(1, 16, frames, 90, 160, device="cuda", dtype=torch.bfloat16)
    torch.backends.cudnn.benchmark = True
    with torch.no_grad():
        vae.decode(latent)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            vae.decode(latent)
            torch.cuda.synchronize()
    by_kind: dict[str, float] = defaultdict(float)
    top: list[tuple[float, str]] = []
    for event in prof.key_averages():
        cuda_us = float(getattr(event, "device_time_total", 0.0))
        if cuda_us <= 0 or event.key.startswith("aten::") or event.key.startswith("cuda"):
            continue
        by_kind[kind(event.key)] += cuda_us
        top.append((cuda_us, event.key))
    total = sum(by_kind.values())
    for label, us in sorted(by_kind.items(), key=lambda item: -item[1]):
        results.append(
            {
                "name": f"diffusers_decode_720p_{frames}f_{label}_ms",
                "value": us / 1000,
                "unit": "ms",
                "anchor": "total kernel time, ms",
                "anchor_value": total / 1000,
            }
        )
    for us, name in sorted(top, reverse=True)[:25]:
        print(f"{us / 1000:10.1f} ms  {name[:150]}")


def rms_silu(x: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    xf = x.float()
    normalized = (xf / xf.norm(2, dim=1, keepdim=True).clamp_min(1e-12)).to(x.dtype)
    return F.silu(normalized * (x.shape[1] ** 0.5) * gamma)


def level(
    results: list[dict[str, Any]], label: str, channels: int, frames: int, h: int, w: int
) -> None:
    dev, dt = "cuda", torch.bfloat16
    x = torch.randn(1, channels, frames + 2, h, w, device=dev, dtype=dt)
    weight = torch.randn(channels, channels, 3, 3, 3, device=dev, dtype=dt) / (27 * channels) ** 0.5
    bias = torch.randn(channels, device=dev, dtype=dt)
    gamma = torch.randn(channels, 1, 1, 1, device=dev, dtype=dt)
    conv_ncdhw = timed(lambda: F.conv3d(x, weight, bias, padding=(0, 1, 1)))
    x_cl = x.contiguous(memory_format=torch.channels_last_3d)
    w_cl = weight.contiguous(memory_format=torch.channels_last_3d)
    conv_cl = timed(lambda: F.conv3d(x_cl, w_cl, bias, padding=(0, 1, 1)))
    # frames as images [T+2, C, h, w] channels-last; three taps stacked on channels.
    images = x[0].transpose(0, 1).contiguous(memory_format=torch.channels_last)
    w_stacked = weight.permute(0, 2, 1, 3, 4).reshape(channels, 3 * channels, 3, 3)
    w_stacked = w_stacked.contiguous(memory_format=torch.channels_last)

    def stacked() -> torch.Tensor:
        taps = torch.cat([images[k : k + frames] for k in range(3)], dim=1)
        return F.conv2d(taps, w_stacked, bias, padding=1)

    w_taps = [weight[:, :, k].contiguous(memory_format=torch.channels_last) for k in range(3)]

    def summed() -> torch.Tensor:
        out = F.conv2d(images[0:frames], w_taps[0], bias, padding=1)
        out = out + F.conv2d(images[1 : frames + 1], w_taps[1], None, padding=1)
        return out + F.conv2d(images[2 : frames + 2], w_taps[2], None, padding=1)

    conv_stacked = timed(stacked)
    conv_summed = timed(summed)
    reference = F.conv3d(x.float(), weight.float(), bias.float(), padding=(0, 1, 1))[0].transpose(
        0, 1
    )
    for name, out in (("stacked", stacked()), ("summed", summed())):
        err = (out.float() - reference).norm() / reference.norm()
        print(f"{label} {name} relative L2 vs fp32 conv3d: {err.item():.3e}")
    norm_unfused = timed(lambda: rms_silu(x, gamma))
    fused = torch.compile(rms_silu)
    norm_fused = timed(lambda: fused(x, gamma))
    norm_cl = timed(lambda: fused(x_cl, gamma))
    cat_ms = timed(lambda: torch.cat([x[:, :, :2], x[:, :, 2:]], 2))
    for name, value, anchor, anchor_value in (
        ("conv3d_ncdhw", conv_ncdhw, "conv3d ncdhw, ms", conv_ncdhw),
        ("conv3d_channels_last", conv_cl, "conv3d ncdhw, ms", conv_ncdhw),
        ("conv2d_stacked_taps", conv_stacked, "conv3d ncdhw, ms", conv_ncdhw),
        ("conv2d_summed_taps", conv_summed, "conv3d ncdhw, ms", conv_ncdhw),
        ("norm_silu_unfused", norm_unfused, "norm+silu unfused, ms", norm_unfused),
        ("norm_silu_fused", norm_fused, "norm+silu unfused, ms", norm_unfused),
        ("norm_silu_fused_channels_last", norm_cl, "norm+silu unfused, ms", norm_unfused),
        ("cache_cat", cat_ms, "conv3d ncdhw, ms", conv_ncdhw),
    ):
        results.append(
            {
                "name": f"{label}_{name}_ms",
                "value": value,
                "unit": "ms",
                "anchor": anchor,
                "anchor_value": anchor_value,
            }
        )
        print(f"{label} {name}: {value:.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=3)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    profile_diffusers(results, args.frames)
    level(results, "level3_96x720x1280x4", 96, 4, 720, 1280)
    level(results, "level2_192x360x640x4", 192, 4, 360, 640)
    level(results, "level1_384x180x320x2", 384, 2, 180, 320)
    with open(args.out, "w") as f:
        json.dump(
            {
                "device": torch.cuda.get_device_name(),
                "torch": torch.__version__,
                "results": results,
            },
            f,
            indent=1,
        )
    print("wrote", os.path.abspath(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
