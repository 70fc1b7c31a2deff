"""Outside references for Raylight's Flux.1 forward (tests/models/flux_model_test.cc): Hugging Face
diffusers' FluxTransformer2DModel and ComfyUI's own Flux (comfy/ldm/flux, Black Forest Labs' code).

    flux_reference.py --config JSON --seed S --inputs I.safetensors --out-dir D
                      [--comfyui-tarball TGZ --workdir W] [--device cpu|cuda] [--dtype f32|bf16]

Each reference gets its own random weights (every parameter drawn, norms around 1), written in its
own spelling: D/diffusers.safetensors (diffusers' names) and, with a ComfyUI tarball,
D/comfyui.safetensors (BFL's names under ComfyUI's `model.diffusion_model.` prefix). The
forward on I (x [B, 16, H, W], t [B] sigmas, context [B, L, C], pooled [B, V], guidance [B]) goes
to D/expected.safetensors as `diffusers` (the latent packed and unpacked with FluxPipeline's own
helpers; H and W even) and `comfyui` ([B, 16, H, W], any H and W).

    flux_reference.py --conditioning OUT --config JSON --seed S --tokens N [--guidance G]

writes a random Flux conditioning file (text [1, N, context_dim], pooled [1, vec_dim], the
guidance when given, and --references HxW,... as reference_latent_i [1, 16, H, W]).

JSON: {"hidden", "heads", "depth", "depth_single", "context_dim", "vec_dim", "guidance_embed",
"axes_dim"}; the MLP ratio is 4 (diffusers fixes it).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import torch
from dit_reference import comfyui_sample, randomize
from safetensors.torch import load_file, save_file


def diffusers_forward(
    cfg: dict[str, Any],
    inputs: dict[str, torch.Tensor],
    out_dir: str,
    generator: torch.Generator,
    device: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    from diffusers import FluxPipeline, FluxTransformer2DModel

    model = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=cfg["depth"],
        num_single_layers=cfg["depth_single"],
        attention_head_dim=cfg["hidden"] // cfg["heads"],
        num_attention_heads=cfg["heads"],
        joint_attention_dim=cfg["context_dim"],
        pooled_projection_dim=cfg["vec_dim"],
        guidance_embeds=cfg["guidance_embed"],
        axes_dims_rope=tuple(cfg["axes_dim"]),
    )
    randomize(model, generator)
    model = model.to(device, dtype).eval()
    save_file(
        {k: v.contiguous().cpu() for k, v in model.state_dict().items()},
        os.path.join(out_dir, "diffusers.safetensors"),
    )
    x = inputs["x"].to(device, dtype)
    batch, channels, height, width = x.shape
    packed = FluxPipeline._pack_latents(x, batch, channels, height, width)
    img_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, device, dtype)
    context = inputs["context"].to(device, dtype)
    txt_ids = torch.zeros(context.shape[1], 3, device=device, dtype=dtype)
    with torch.no_grad():
        out = model(
            hidden_states=packed,
            encoder_hidden_states=context,
            pooled_projections=inputs["pooled"].to(device, dtype),
            timestep=inputs["t"].to(device, dtype),
            img_ids=img_ids,
            txt_ids=txt_ids,
            guidance=inputs["guidance"].to(device, dtype) if cfg["guidance_embed"] else None,
            return_dict=False,
        )[0]
    # _unpack_latents takes pixel sizes and the VAE's factor of 8.
    return FluxPipeline._unpack_latents(out, height * 8, width * 8, 8).float().cpu()


def comfyui_forward(
    cfg: dict[str, Any],
    inputs: dict[str, torch.Tensor],
    out_dir: str,
    generator: torch.Generator,
    tarball: str,
    workdir: str,
    device: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = device == "cpu"
    import comfy.ldm.flux.model
    import comfy.ops

    model = comfy.ldm.flux.model.Flux(
        dtype=dtype,
        device=device,
        operations=comfy.ops.disable_weight_init,
        in_channels=16,
        out_channels=16,
        vec_in_dim=cfg["vec_dim"],
        context_in_dim=cfg["context_dim"],
        hidden_size=cfg["hidden"],
        mlp_ratio=4.0,
        num_heads=cfg["heads"],
        depth=cfg["depth"],
        depth_single_blocks=cfg["depth_single"],
        axes_dim=list(cfg["axes_dim"]),
        theta=10000,
        patch_size=2,
        qkv_bias=True,
        guidance_embed=cfg["guidance_embed"],
    )
    randomize(model, generator)
    model = model.eval()
    save_file(
        {"model.diffusion_model." + k: v.contiguous().cpu() for k, v in model.state_dict().items()},
        os.path.join(out_dir, "comfyui.safetensors"),
    )
    if not inputs:  # the checkpoint alone
        return torch.empty(0)
    # Kontext's reference latents (ref_0, ref_1, ...), already in the model's space.
    refs = [
        inputs[f"ref_{i}"].to(device, dtype) for i in range(len(inputs)) if f"ref_{i}" in inputs
    ]
    with torch.no_grad():
        out = model(
            inputs["x"].to(device, dtype),
            inputs["t"].to(device, dtype),
            inputs["context"].to(device, dtype),
            y=inputs["pooled"].to(device, dtype),
            guidance=inputs["guidance"].to(device, dtype) if cfg["guidance_embed"] else None,
            ref_latents=refs or None,
        )
    return out.float().cpu().contiguous()


def comfy_flux_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "image_model": "flux",
        "in_channels": 16,
        "out_channels": 16,
        "vec_in_dim": cfg["vec_dim"],
        "context_in_dim": cfg["context_dim"],
        "hidden_size": cfg["hidden"],
        "mlp_ratio": 4.0,
        "num_heads": cfg["heads"],
        "depth": cfg["depth"],
        "depth_single_blocks": cfg["depth_single"],
        "axes_dim": list(cfg["axes_dim"]),
        "theta": 10000,
        "patch_size": 2,
        "qkv_bias": True,
        "guidance_embed": cfg["guidance_embed"],
    }


def sample(case: dict[str, Any], tarball: str, workdir: str) -> None:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.supported_models

    cfg = case["config"]
    # ComfyUI's detection assumes Flux's real widths; the tiny model's config is given as its
    # loader would have made it for a real one (dev: Flux, schnell: FluxSchnell).
    config_class = (
        comfy.supported_models.Flux if cfg["guidance_embed"] else comfy.supported_models.FluxSchnell
    )

    def conditioning(path: str) -> list[Any]:
        tensors = load_file(path)
        extra: dict[str, Any] = {"pooled_output": tensors["pooled"].reshape(1, -1).float()}
        # What ComfyUI's ReferenceLatent node attaches (LATENTs, the VAE's space).
        refs = [
            tensors[f"reference_latent_{i}"] for i in range(8) if f"reference_latent_{i}" in tensors
        ]
        if refs:
            extra["reference_latents"] = [r.reshape(1, *r.shape[-3:]).float() for r in refs]
        if "guidance" in tensors:
            extra["guidance"] = float(tensors["guidance"].reshape(-1)[0])
        return [[tensors["text"].reshape(1, -1, tensors["text"].shape[-1]).float(), extra]]

    comfyui_sample(case, config_class(comfy_flux_params(cfg)), conditioning)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", help="a ComfyUI sampling run (JSON), instead of forwards")
    parser.add_argument("--conditioning", help="write a random conditioning file here instead")
    parser.add_argument("--tokens", type=int, default=7)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--references", default="", help="HxW,HxW: reference latents to add")
    parser.add_argument("--config")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--inputs")
    parser.add_argument("--out-dir")
    parser.add_argument("--comfyui-tarball")
    parser.add_argument("--workdir")
    parser.add_argument("--skip-diffusers", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    args = parser.parse_args()
    if args.sample:
        sample(json.loads(args.sample), args.comfyui_tarball, args.workdir)
        return 0
    cfg = json.loads(args.config)
    if args.conditioning:
        generator = torch.Generator().manual_seed(args.seed)
        tensors = {
            "text": torch.randn(1, args.tokens, cfg["context_dim"], generator=generator),
            "pooled": torch.randn(1, cfg["vec_dim"], generator=generator),
        }
        if args.guidance is not None:
            tensors["guidance"] = torch.tensor([args.guidance])
        for i, size in enumerate(filter(None, args.references.split(","))):
            h, w = (int(v) for v in size.split("x"))
            tensors[f"reference_latent_{i}"] = torch.randn(1, 16, h, w, generator=generator)
        save_file(tensors, args.conditioning)
        return 0
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
    # Without inputs: the checkpoints alone (ComfyUI's, for jobs), no forward.
    inputs = load_file(args.inputs) if args.inputs else {}
    generator = torch.Generator().manual_seed(args.seed)
    expected: dict[str, torch.Tensor] = {}
    if not args.skip_diffusers:
        expected["diffusers"] = diffusers_forward(
            cfg, inputs, args.out_dir, generator, args.device, dtype
        )
    if args.comfyui_tarball:
        expected["comfyui"] = comfyui_forward(
            cfg,
            inputs,
            args.out_dir,
            generator,
            args.comfyui_tarball,
            args.workdir,
            args.device,
            dtype,
        )
    if inputs:
        save_file(expected, os.path.join(args.out_dir, "expected.safetensors"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
