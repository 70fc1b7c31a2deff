"""The Wan VAE decode on one GPU against diffusers' AutoencoderKLWan in the same lease (issue
#24's rows): a real-size VAE with random weights (diffusers' default config for Wan 2.1, the
TI2V-5B config for Wan 2.2; bf16), one random latent per shape, decoded by diffusers (bf16,
no tiling: its default) and by wan_vae_rank_main (bf16); the median of --runs after a first
decode, the peak of allocated device memory during a decode, and the two outputs' relative L2.

  python3 tests/bench/wan_vae_gpu.py --rank-binary build-gpu/bin/wan_vae_rank_main \
      --out OUT/wan_vae.jsonl [--runs 3] [--shapes 21:832x480x81,21:1280x720x81,22:1280x704x121]

Writes one results-schema JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def make_vae(version: int) -> Any:
    from diffusers import AutoencoderKLWan

    vae: Any
    if version == 21:
        vae = AutoencoderKLWan()  # type: ignore[no-untyped-call]
    else:
        vae = AutoencoderKLWan(  # type: ignore[no-untyped-call]
            base_dim=160,
            decoder_base_dim=256,
            z_dim=48,
            is_residual=True,
            in_channels=12,
            out_channels=12,
            patch_size=2,
            scale_factor_spatial=16,
            temperal_downsample=[False, True, True],
        )
    generator = torch.Generator().manual_seed(version)
    with torch.no_grad():
        for name, param in vae.named_parameters():
            if name.endswith("gamma"):
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
            else:
                fan_in = param[0].numel()
                param.copy_(torch.randn(param.shape, generator=generator) / fan_in**0.5)
    return vae.to(device="cuda", dtype=torch.bfloat16).eval()


def time_diffusers(vae: Any, latent: torch.Tensor, runs: int) -> tuple[float, int, torch.Tensor]:
    times = []
    out = None
    with torch.inference_mode():
        out = vae.decode(latent).sample  # first decode: cuDNN and allocator warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        for _ in range(runs):
            start = time.perf_counter()
            out = vae.decode(latent).sample
            torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000)
    peak = torch.cuda.max_memory_allocated()
    return statistics.median(times), peak, out.float().cpu()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank-binary", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--shapes", default="21:832x480x81,21:1280x720x81,22:1280x704x121")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    work = tempfile.mkdtemp(prefix="wan-vae-bench-")
    for spec in args.shapes.split(","):
        version_text, size = spec.split(":")
        version = int(version_text)
        width, height, frames = (int(v) for v in size.split("x"))
        vae = make_vae(version)
        model_path = os.path.join(work, f"vae{version}.safetensors")
        if not os.path.exists(model_path):
            save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, model_path)
        factor = 8 if version == 21 else 16
        z = 16 if version == 21 else 48
        latent = torch.randn(
            1,
            z,
            (frames - 1) // 4 + 1,
            height // factor,
            width // factor,
            generator=torch.Generator().manual_seed(1),
        )
        latent_path = os.path.join(work, f"latent{version}_{size}.safetensors")
        save_file({"latent": latent}, latent_path)
        anchor_ms, anchor_peak, anchor_out = time_diffusers(
            vae, latent.to("cuda", torch.bfloat16), args.runs
        )
        with torch.inference_mode():
            reference = vae.float().decode(latent.to("cuda")).sample.cpu()
        del vae
        torch.cuda.empty_cache()
        anchor_rel = float((anchor_out - reference).norm() / reference.norm())
        out_path = os.path.join(work, "ours.safetensors")
        tag = f"wan{version}_vae_decode_{size}"
        variants: list[tuple[str, list[str]]] = [("", []), ("_ncdhw", ["--channels_last=false"])]
        if version == 21 and size == "1280x720x81":
            # diffusers' default tiles (256 px every 192): the memory-short path.
            variants.append(("_tiled256", ["--tile=256", "--tile_stride=192"]))
        for variant, flags in variants:
            run = subprocess.run(
                [
                    args.rank_binary,
                    f"--vae={model_path}",
                    f"--inputs={latent_path}",
                    f"--out={out_path}",
                    "--device=cuda",
                    "--dtype=bf16",
                    f"--repeat={args.runs}",
                    *flags,
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            ours = json.loads(run.stdout.strip().splitlines()[-1])
            decoded = load_file(out_path)["decoded"]
            rel = float((decoded - reference).norm() / reference.norm())
            rows = [
                dict(
                    name=f"{tag}{variant}_ratio_vs_diffusers",
                    value=ours["decode_ms"] / anchor_ms,
                    unit="ratio",
                    anchor="diffusers AutoencoderKLWan.decode bf16, ms",
                    anchor_value=anchor_ms,
                ),
                dict(
                    name=f"{tag}{variant}_peak_GB",
                    value=ours["peak_allocated_bytes"] / 1e9,
                    unit="GB",
                    anchor="diffusers peak allocated, GB",
                    anchor_value=anchor_peak / 1e9,
                ),
                dict(
                    name=f"{tag}{variant}_relative_l2_vs_fp32",
                    value=rel,
                    unit="ratio",
                    anchor="diffusers bf16 relative L2 vs diffusers fp32",
                    anchor_value=anchor_rel,
                ),
            ]
            results += rows
            print(json.dumps(rows), flush=True)
        os.remove(out_path)
    with open(args.out, "w") as f:
        f.write(json.dumps({"results": results}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
