"""Outside references for Raylight's Chroma forward and jobs (chroma_model_test.cc,
chroma_jobs_test.cc): diffusers' ChromaTransformer2DModel and ComfyUI's own Chroma
(comfy/ldm/chroma).

    chroma_reference.py --config JSON --seed S --inputs I.safetensors --out-dir D
                        [--comfyui-tarball TGZ --workdir W] [--skip-diffusers]

Each reference gets its own random weights, saved in its spelling: D/diffusers.safetensors and
D/comfyui.safetensors (BFL's names under ComfyUI's `model.diffusion_model.`). The forward on I
(x [B, 16, H, W], t [B] sigmas, context [B, L, C], guidance [B]: ComfyUI's only; diffusers takes
none, which is 0) goes to D/expected.safetensors as `diffusers` (H and W even) and `comfyui`.

    chroma_reference.py --conditioning OUT --config JSON --seed S --tokens N [--guidance G]
                        [--references HxW,...]
    chroma_reference.py --sample JSON --comfyui-tarball TGZ --workdir W

as flux_reference.py's. JSON config: {"hidden", "heads", "depth", "depth_single", "context_dim",
"axes_dim", "approximator_hidden", "approximator_layers"}; the MLP ratio is 4.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import torch
from dit_reference import comfyui_sample, randomize
from safetensors.torch import load_file, save_file


def comfy_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        "image_model": "chroma",
        "in_channels": 64,
        "out_channels": 64,
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
        "in_dim": 64,
        "out_dim": cfg["hidden"],
        "hidden_dim": cfg["approximator_hidden"],
        "n_layers": cfg["approximator_layers"],
    }


def diffusers_forward(
    cfg: dict[str, Any], inputs: dict[str, torch.Tensor], out_dir: str, generator: torch.Generator
) -> torch.Tensor:
    from diffusers import ChromaTransformer2DModel, FluxPipeline

    model = ChromaTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=cfg["depth"],
        num_single_layers=cfg["depth_single"],
        attention_head_dim=cfg["hidden"] // cfg["heads"],
        num_attention_heads=cfg["heads"],
        joint_attention_dim=cfg["context_dim"],
        axes_dims_rope=tuple(cfg["axes_dim"]),
        approximator_hidden_dim=cfg["approximator_hidden"],
        approximator_layers=cfg["approximator_layers"],
    )
    randomize(model, generator)
    model = model.eval()
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        os.path.join(out_dir, "diffusers.safetensors"),
    )
    x = inputs["x"]
    batch, channels, height, width = x.shape
    packed = FluxPipeline._pack_latents(x, batch, channels, height, width)
    img_ids = FluxPipeline._prepare_latent_image_ids(batch, height // 2, width // 2, "cpu", x.dtype)
    context = inputs["context"]
    txt_ids = torch.zeros(context.shape[1], 3)
    with torch.no_grad():
        out = model(
            hidden_states=packed,
            encoder_hidden_states=context,
            timestep=inputs["t"],
            img_ids=img_ids,
            txt_ids=txt_ids,
            return_dict=False,
        )[0]
    return FluxPipeline._unpack_latents(out, height * 8, width * 8, 8).float()


def comfyui_model(cfg: dict[str, Any], tarball: str, workdir: str) -> Any:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.ldm.chroma.model
    import comfy.ops

    return comfy.ldm.chroma.model.Chroma(
        operations=comfy.ops.disable_weight_init, device="cpu", **comfy_params(cfg)
    )


def comfyui_forward(
    cfg: dict[str, Any],
    inputs: dict[str, torch.Tensor],
    out_dir: str,
    generator: torch.Generator,
    tarball: str,
    workdir: str,
) -> torch.Tensor:
    model = comfyui_model(cfg, tarball, workdir)
    randomize(model, generator)
    model = model.eval()
    save_file(
        {"model.diffusion_model." + k: v.contiguous() for k, v in model.state_dict().items()},
        os.path.join(out_dir, "comfyui.safetensors"),
    )
    if not inputs:  # the checkpoint alone
        return torch.empty(0)
    with torch.no_grad():
        out = model(inputs["x"], inputs["t"], inputs["context"], inputs["guidance"])
    return out.float().contiguous()


def sample(case: dict[str, Any], tarball: str, workdir: str) -> None:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.supported_models

    def conditioning(path: str) -> list[Any]:
        tensors = load_file(path)
        # What ComfyUI's Chroma text encoder attaches: no pooled vector.
        extra: dict[str, Any] = {"pooled_output": None}
        if "guidance" in tensors:
            extra["guidance"] = float(tensors["guidance"].reshape(-1)[0])
        return [[tensors["text"].reshape(1, -1, tensors["text"].shape[-1]).float(), extra]]

    model_config = comfy.supported_models.Chroma(comfy_params(case["config"]))
    comfyui_sample(case, model_config, conditioning)


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
    args = parser.parse_args()
    if args.sample:
        sample(json.loads(args.sample), args.comfyui_tarball, args.workdir)
        return 0
    cfg = json.loads(args.config)
    if args.conditioning:
        generator = torch.Generator().manual_seed(args.seed)
        tensors = {"text": torch.randn(1, args.tokens, cfg["context_dim"], generator=generator)}
        if args.guidance is not None:
            tensors["guidance"] = torch.tensor([args.guidance])
        # Reference latents (which Chroma does not take: for the tests of its refusal).
        for i, size in enumerate(filter(None, args.references.split(","))):
            h, w = (int(v) for v in size.split("x"))
            tensors[f"reference_latent_{i}"] = torch.randn(1, 16, h, w, generator=generator)
        save_file(tensors, args.conditioning)
        return 0
    inputs = load_file(args.inputs) if args.inputs else {}
    generator = torch.Generator().manual_seed(args.seed)
    expected: dict[str, torch.Tensor] = {}
    if not args.skip_diffusers:
        expected["diffusers"] = diffusers_forward(cfg, inputs, args.out_dir, generator)
    if args.comfyui_tarball:
        expected["comfyui"] = comfyui_forward(
            cfg, inputs, args.out_dir, generator, args.comfyui_tarball, args.workdir
        )
    if inputs:
        save_file(expected, os.path.join(args.out_dir, "expected.safetensors"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
