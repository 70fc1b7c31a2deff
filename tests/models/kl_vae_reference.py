"""Outside reference for Raylight's image VAE (tests/models/kl_vae_test.cc): diffusers'
AutoencoderKL, the VAE of Stable Diffusion, SDXL, Flux.1 and Chroma, decoding and encoding.

    kl_vae_reference.py --config C.json --seed S --out-dir D

builds an AutoencoderKL at reduced widths (the real structure: resnets, the middle attention,
nearest 2x upsampling) with random weights and writes
  D/diffusers.safetensors  its state dict in diffusers' names;
  D/ldm.safetensors        the same weights in the original LDM names that BFL's and ComfyUI's
                           files use (attention projections as 1x1 convolutions), under PREFIX
                           when the config names one. The names are made here and checked by
                           diffusers' own `convert_ldm_vae_checkpoint`, which must turn them back
                           into the diffusers state exactly;
  D/expected.safetensors   `latent` [B, latent, h, w] (random, odd sizes) and `image`, diffusers'
                           `decode` of it (post_quant_conv included where the config has one);
                           `pixels` [B, 3, f h, f w] (random in [-1, 1]) and `encoded`, the mode
                           of diffusers' `encode` of them (quant_conv included likewise).

C.json: {"latent": Z, "channels": [C0, C1, ...], "layers": N, "post_quant": bool,
"prefix": "first_stage_model." or "", "height": h, "width": w, "batch": B, "flux2": bool}.
With "flux2", the VAE is FLUX.2's (AutoencoderKLFlux2, its batch-norm statistics drawn too) and
`latent` / `encoded` are its pipeline's: [B, 4 Z, h, w], the VAE latent in 2x2 patches normalised
by those statistics (decoded and encoded as Flux2Pipeline does around the VAE).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from typing import Any

import torch
from safetensors.torch import save_file

RESNET = {"conv_shortcut": "nin_shortcut"}
ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def diffusers_config(cfg: dict[str, Any]) -> dict[str, Any]:
    levels = len(cfg["channels"])
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * levels,
        "up_block_types": ["UpDecoderBlock2D"] * levels,
        "block_out_channels": cfg["channels"],
        "layers_per_block": cfg["layers"],
        "latent_channels": cfg["latent"],
        "norm_num_groups": 32,
        "use_quant_conv": cfg["post_quant"],
        "use_post_quant_conv": cfg["post_quant"],
    }


def randomize(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Weights at 1/sqrt(fan-in), norm scales around 1, biases small: no path left at an
    initialiser's zero, and activations that neither explode nor vanish through the levels."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            values = torch.randn(p.shape, generator=generator)
            if p.dim() >= 2:
                values = values / (p[0].numel() ** 0.5)
            elif "norm" in name:
                values = 1 + 0.1 * values
            else:
                values = 0.1 * values
            p.copy_(values)


def ldm_name(name: str, levels: int) -> str:
    """diffusers' name of an AutoencoderKL weight in the LDM spelling."""
    side, rest = name.split(".", 1)
    if side not in ("encoder", "decoder"):
        return name  # quant_conv, post_quant_conv
    rest = rest.replace("conv_norm_out", "norm_out")
    m = re.fullmatch(r"(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(\w+)", rest)
    if m:
        kind, level, block, part, leaf = m.groups()
        index = int(level) if kind == "down" else levels - 1 - int(level)
        return f"{side}.{kind}.{index}.block.{block}.{RESNET.get(part, part)}.{leaf}"
    m = re.fullmatch(r"(down|up)_blocks\.(\d+)\.(downsamplers|upsamplers)\.0\.conv\.(\w+)", rest)
    if m:
        kind, level, sampler, leaf = m.groups()
        index = int(level) if kind == "down" else levels - 1 - int(level)
        return f"{side}.{kind}.{index}.{sampler[:-2]}.conv.{leaf}"
    m = re.fullmatch(r"mid_block\.resnets\.(\d+)\.(\w+)\.(\w+)", rest)
    if m:
        block, part, leaf = m.groups()
        return f"{side}.mid.block_{int(block) + 1}.{RESNET.get(part, part)}.{leaf}"
    m = re.fullmatch(r"mid_block\.attentions\.0\.(.+)\.(\w+)", rest)
    if m:
        part, leaf = m.groups()
        return f"{side}.mid.attn_1.{ATTENTION[part]}.{leaf}"
    return f"{side}.{rest}"


def flux2_statistics(model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch-norm mean and standard deviation FLUX.2's pipeline scales its latents by."""
    mean = model.bn.running_mean.view(1, -1, 1, 1)
    std = torch.sqrt(model.bn.running_var.view(1, -1, 1, 1) + model.config.batch_norm_eps)
    return mean, std


def main() -> int:
    from diffusers import AutoencoderKL, AutoencoderKLFlux2, Flux2Pipeline
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args()
    with open(args.config) as f:
        cfg = json.load(f)
    config = diffusers_config(cfg)
    flux2 = bool(cfg.get("flux2", False))
    model = (AutoencoderKLFlux2 if flux2 else AutoencoderKL)(**config).eval()
    generator = torch.Generator().manual_seed(args.seed)
    randomize(model, generator)
    if flux2:
        with torch.no_grad():
            model.bn.running_mean.copy_(
                0.5 * torch.randn(model.bn.num_features, generator=generator)
            )
            model.bn.running_var.copy_(0.5 + torch.rand(model.bn.num_features, generator=generator))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out_dir, "diffusers.safetensors"))

    levels = len(cfg["channels"])
    ldm = {}
    for name, value in state.items():
        ldm_key = ldm_name(name, levels)
        if ".mid.attn_1." in ldm_key and value.dim() == 2:
            value = value[:, :, None, None]  # LDM's projections are 1x1 convolutions
        ldm[ldm_key] = value.contiguous()
    # diffusers' converter knows AutoencoderKL's names; FLUX.2's statistics pass through as `bn.*`.
    plain = {k: v for k, v in state.items() if not k.startswith("bn.")}
    back = convert_ldm_vae_checkpoint(
        {k: v for k, v in ldm.items() if not k.startswith("bn.")}, config
    )
    if set(back) != set(plain) or any(
        not torch.equal(back[k].reshape(plain[k].shape), plain[k]) for k in plain
    ):
        raise SystemExit("the LDM names made here do not convert back to the diffusers state")
    prefix = cfg.get("prefix", "")
    save_file(
        {prefix + k: v for k, v in ldm.items()}, os.path.join(args.out_dir, "ldm.safetensors")
    )

    patch = 2 if flux2 else 1
    latent = torch.randn(
        cfg["batch"],
        cfg["latent"] * patch * patch,
        cfg["height"],
        cfg["width"],
        generator=generator,
    )
    factor = 2 ** (levels - 1) * patch
    pixels = (
        torch.rand(
            cfg["batch"], 3, factor * cfg["height"], factor * cfg["width"], generator=generator
        )
        * 2
        - 1
    )
    with torch.no_grad():
        if flux2:
            mean, std = flux2_statistics(model)
            unpatched = Flux2Pipeline._unpatchify_latents(latent * std + mean)
            image = model.decode(unpatched).sample.contiguous()
            mode = model.encode(pixels).latent_dist.mode()
            encoded = ((Flux2Pipeline._patchify_latents(mode) - mean) / std).contiguous()
        else:
            image = model.decode(latent).sample.contiguous()
            encoded = model.encode(pixels).latent_dist.mode().contiguous()
    save_file(
        {"latent": latent, "image": image, "pixels": pixels, "encoded": encoded},
        os.path.join(args.out_dir, "expected.safetensors"),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
