"""Outside references for Raylight's Wan VAE (tests/models/wan_vae_test.cc).

  wan_vae_reference.py make --impl comfy|diffusers --version 21|22 --config C.json --seed S
      --latents L.safetensors --out-model M.safetensors --out-expected E.safetensors
      [--comfyui-tarball TGZ --workdir DIR]

  builds a Wan VAE at reduced widths (real structure) with random weights in one outside
  implementation -- ComfyUI's own comfy/ldm/wan/vae.py or vae2_2.py (the official spelling), or
  diffusers' AutoencoderKLWan -- writes its state dict as M in that implementation's names, and
  runs it on the inputs of L: every `latent_<i>` [1, z, T, h, w] decoded (E's `decoded_<i>`,
  and with --tile S,T every `tile_<i>` decoded by diffusers' tiled decode with S-pixel tiles
  every T pixels: E's `tiled_<i>`),
  frame-at-a-time as each implementation does it, unclamped for ComfyUI, clamped to [-1, 1] by
  diffusers) and every `video_<i>` [1, 3, T, H, W] encoded to the posterior's mean (E's
  `encoded_<i>`). No weight conversion between spellings happens here: each spelling is tested
  against the implementation that defines it.

C.json: {"dim": D, "decoder_dim": DD, "z_dim": Z, "num_res_blocks": N}.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import torch
from safetensors.torch import load_file, save_file

TEMPORAL_DOWNSAMPLE = [False, True, True]


def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Weights drawn for a forward that neither explodes nor saturates: conv weights with
    variance 1 / fan-in, biases and RMS-norm gains around their usual values, the last
    convolution scaled down so the pixels stay mostly inside [-1, 1]."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                param.copy_(1.0 + 0.2 * torch.randn(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
            else:
                fan_in = math.prod(param.shape[1:])
                param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
            if name.startswith("decoder") and (".head.2." in name or "conv_out" in name):
                param.mul_(0.3)


def comfy_model(args: argparse.Namespace, config: dict[str, int]) -> Any:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(args.comfyui_tarball, args.workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    if args.version == 21:
        import comfy.ldm.wan.vae as vae21

        return vae21.WanVAE(
            dim=config["dim"],
            z_dim=config["z_dim"],
            num_res_blocks=config["num_res_blocks"],
            temperal_downsample=TEMPORAL_DOWNSAMPLE,
        )
    import comfy.ldm.wan.vae2_2 as vae22

    return vae22.WanVAE(
        dim=config["dim"],
        dec_dim=config["decoder_dim"],
        z_dim=config["z_dim"],
        num_res_blocks=config["num_res_blocks"],
        temperal_downsample=TEMPORAL_DOWNSAMPLE,
    )


def diffusers_model(args: argparse.Namespace, config: dict[str, int]) -> Any:
    from diffusers import AutoencoderKLWan

    residual = args.version == 22
    return AutoencoderKLWan(  # type: ignore[no-untyped-call]
        base_dim=config["dim"],
        decoder_base_dim=config["decoder_dim"],
        z_dim=config["z_dim"],
        num_res_blocks=config["num_res_blocks"],
        temperal_downsample=TEMPORAL_DOWNSAMPLE,
        is_residual=residual,
        in_channels=12 if residual else 3,
        out_channels=12 if residual else 3,
        patch_size=2 if residual else None,
        scale_factor_spatial=16 if residual else 8,
    )


def make(args: argparse.Namespace) -> None:
    with open(args.config) as f:
        config = json.load(f)
    model = comfy_model(args, config) if args.impl == "comfy" else diffusers_model(args, config)
    model = model.float().eval()
    randomize(model, torch.Generator().manual_seed(args.seed))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out_model)
    inputs = load_file(args.latents)
    expected: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, value in inputs.items():
            kind, index = name.split("_")
            if kind == "latent":
                if args.impl == "comfy":
                    out = model.decode(value)
                else:
                    out = model.decode(value).sample
                expected[f"decoded_{index}"] = out.contiguous()
            elif kind == "tile":
                size, stride = (int(v) for v in args.tile.split(","))
                model.enable_tiling(
                    tile_sample_min_height=size,
                    tile_sample_min_width=size,
                    tile_sample_stride_height=stride,
                    tile_sample_stride_width=stride,
                )
                expected[f"tiled_{index}"] = model.decode(value).sample.contiguous()
                model.disable_tiling()
            elif kind == "video":
                if args.impl == "comfy":
                    mean = model.encode(value)
                else:
                    mean = model.encode(value).latent_dist.mode()
                expected[f"encoded_{index}"] = mean.contiguous()
    save_file(expected, args.out_expected)


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--impl", choices=("comfy", "diffusers"), required=True)
    mk.add_argument("--version", type=int, choices=(21, 22), required=True)
    mk.add_argument("--seed", type=int, required=True)
    for name in ("--config", "--latents", "--out-model", "--out-expected"):
        mk.add_argument(name, required=True)
    mk.add_argument("--comfyui-tarball", default="")
    mk.add_argument("--tile", default="", help="diffusers: tile size,stride in pixels")
    mk.add_argument("--workdir", default="")
    args = parser.parse_args()
    torch.set_num_threads(2)
    make(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
