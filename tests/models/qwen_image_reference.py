"""Outside references for Raylight's Qwen-Image forward and jobs (qwen_image_model_test.cc,
qwen_image_jobs_test.cc): diffusers' QwenImageTransformer2DModel and ComfyUI's own
(comfy/ldm/qwen_image).

    qwen_image_reference.py --config JSON --seed S --inputs I.safetensors --out-dir D
                            [--comfyui-tarball TGZ --workdir W] [--skip-diffusers]
                            [--device cpu|cuda] [--dtype f32|bf16]

Each reference gets its own random weights, saved in its spelling: D/diffusers.safetensors and
D/comfyui.safetensors (the same names under ComfyUI's `model.diffusion_model.`). The forward on I
(x [B, 16, H, W], t [B] sigmas, context [B, L, C]) goes to D/expected.safetensors as `diffusers`
(packed and unpacked with QwenImagePipeline's helpers; H and W even) and `comfyui` (any H and W);
both [B, 16, 1, H, W].

    qwen_image_reference.py --conditioning OUT --config JSON --seed S --tokens N

writes a random conditioning file (text [1, N, context_dim]; --references HxW,... adds
reference_latent_i [1, 16, 1, H, W], Qwen-Image-Edit's).

    qwen_image_reference.py --sample JSON --comfyui-tarball TGZ --workdir W

samples as ComfyUI's KSampler does (comfy.sample.sample with its QwenImage model, ModelSamplingFlux
and Wan21 latent format) and writes the LATENT.

JSON config: {"hidden", "heads", "depth", "context_dim", "axes_dim"}; the MLP ratio is 4.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import torch
from dit_reference import comfyui_sample, randomize
from safetensors.torch import load_file, save_file


def unet_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "image_model": "qwen_image",
        "patch_size": 2,
        "in_channels": 64,
        "out_channels": 16,
        "num_layers": cfg["depth"],
        "attention_head_dim": cfg["hidden"] // cfg["heads"],
        "num_attention_heads": cfg["heads"],
        "joint_attention_dim": cfg["context_dim"],
        "axes_dims_rope": tuple(cfg["axes_dim"]),
    }


def diffusers_forward(
    cfg: dict[str, Any],
    inputs: dict[str, torch.Tensor],
    out_dir: str,
    generator: torch.Generator,
    device: str,
    dtype: torch.dtype,
) -> torch.Tensor:
    from diffusers import QwenImagePipeline, QwenImageTransformer2DModel

    params = unet_config(cfg)
    del params["image_model"]
    model = QwenImageTransformer2DModel(**params)
    randomize(model, generator)
    model = model.to(device, dtype).eval()
    save_file(
        {k: v.contiguous().cpu() for k, v in model.state_dict().items()},
        os.path.join(out_dir, "diffusers.safetensors"),
    )
    x = inputs["x"].to(device, dtype)
    batch, channels, height, width = x.shape
    packed = QwenImagePipeline._pack_latents(x, batch, channels, height, width)
    with torch.no_grad():
        out = model(
            hidden_states=packed,
            encoder_hidden_states=inputs["context"].to(device, dtype),
            timestep=inputs["t"].to(device, dtype),
            img_shapes=[[(1, height // 2, width // 2)]] * batch,
            return_dict=False,
        )[0]
    return QwenImagePipeline._unpack_latents(out, height * 8, width * 8, 8).float().cpu()


def comfyui_model(cfg: dict[str, Any], tarball: str, workdir: str, device: str) -> Any:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = device == "cpu"
    import comfy.ldm.qwen_image.model
    import comfy.ops

    params = unet_config(cfg)
    return comfy.ldm.qwen_image.model.QwenImageTransformer2DModel(
        operations=comfy.ops.disable_weight_init, device=device, **params
    )


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
    model = comfyui_model(cfg, tarball, workdir, device)
    randomize(model, generator)
    model = model.to(device, dtype).eval()
    save_file(
        {"model.diffusion_model." + k: v.contiguous().cpu() for k, v in model.state_dict().items()},
        os.path.join(out_dir, "comfyui.safetensors"),
    )
    if not inputs:  # the checkpoint alone
        return torch.empty(0)
    # Qwen-Image-Edit's reference latents (ref_0, ref_1, ...), already in the model's space.
    refs = [
        inputs[f"ref_{i}"].to(device, dtype).unsqueeze(2)
        for i in range(len(inputs))
        if f"ref_{i}" in inputs
    ]
    with torch.no_grad():
        out = model(
            inputs["x"].to(device, dtype).unsqueeze(2),
            inputs["t"].to(device, dtype),
            inputs["context"].to(device, dtype),
            ref_latents=refs or None,
        )
    return out.float().cpu().contiguous()


def sample(case: dict[str, Any], tarball: str, workdir: str) -> None:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.supported_models

    def conditioning(path: str) -> list[Any]:
        tensors = load_file(path)
        text = tensors["text"]
        extra: dict[str, Any] = {}
        # What ComfyUI's ReferenceLatent node attaches (LATENTs of one frame, the VAE's space).
        refs = [
            tensors[f"reference_latent_{i}"] for i in range(8) if f"reference_latent_{i}" in tensors
        ]
        if refs:
            extra["reference_latents"] = [r.reshape(1, 16, 1, *r.shape[-2:]).float() for r in refs]
        return [[text.reshape(1, -1, text.shape[-1]).float(), extra]]

    # The empty LATENT becomes [1, 16, 1, H, W] there, as for the Wan21 latent format.
    model_config = comfy.supported_models.QwenImage(unet_config(case["config"]))
    comfyui_sample(case, model_config, conditioning)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", help="a ComfyUI sampling run (JSON), instead of forwards")
    parser.add_argument("--conditioning", help="write a random conditioning file here instead")
    parser.add_argument("--tokens", type=int, default=7)
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
        tensors = {"text": torch.randn(1, args.tokens, cfg["context_dim"], generator=generator)}
        for i, size in enumerate(filter(None, args.references.split(","))):
            h, w = (int(v) for v in size.split("x"))
            tensors[f"reference_latent_{i}"] = torch.randn(1, 16, 1, h, w, generator=generator)
        save_file(tensors, args.conditioning)
        return 0
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
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
