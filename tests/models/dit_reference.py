"""What the transformer references share (flux_reference.py, chroma_reference.py,
qwen_image_reference.py): random weights every path of a model uses, and a sampling run as
ComfyUI's KSampler makes it (comfy.sample.sample on ComfyUI's own model of the family)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter drawn afresh: matrices at 1/sqrt(fan-in), norm scales around 1, other
    vectors (biases) small, so that no path of the model is left at an initialiser's zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            values = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if p.dim() >= 2:
                values = values / (p.shape[-1] ** 0.5)
            elif "norm" in name or name.endswith("scale"):
                values = 1 + 0.1 * values
            else:
                values = 0.1 * values
            p.copy_(values.to(p.dtype))


def comfyui_sample(
    case: dict[str, Any],
    model_config: Any,
    conditioning: Callable[[str], list[Any]],
) -> None:
    """ComfyUI's KSampler on the case's checkpoint (ComfyUI's names under
    `model.diffusion_model.`) with `model_config` (a comfy.supported_models class instance; the
    ComfyUI tree already on sys.path): an empty LATENT of the case's size made as ComfyUI's
    sampler makes it for the model's latent format, its seed's noise, the case's steps, cfg,
    sampler and scheduler, `conditioning(path)` of the positive and negative files; the LATENT
    goes to case["out"]."""
    import comfy.model_patcher
    import comfy.sample

    model_config.set_inference_dtype(torch.float32, None)
    prefix = "model.diffusion_model."
    state = {k[len(prefix) :]: v for k, v in load_file(case["checkpoint"]).items()}
    model = model_config.get_model(state, device=torch.device("cpu"))
    model.diffusion_model.load_state_dict(state, strict=True)
    patcher = comfy.model_patcher.ModelPatcher(
        model, load_device=torch.device("cpu"), offload_device=torch.device("cpu")
    )
    latent = torch.zeros(1, 16, case["height"] // 8, case["width"] // 8)
    latent = comfy.sample.fix_empty_latent_channels(patcher, latent)
    noise = comfy.sample.prepare_noise(latent, case["seed"])
    samples = comfy.sample.sample(
        patcher,
        noise,
        case["steps"],
        case["cfg"],
        case["sampler"],
        case["scheduler"],
        conditioning(case["positive"]),
        conditioning(case["negative"]),
        latent,
        denoise=1.0,
        seed=case["seed"],
        disable_pbar=True,
    )
    save_file({"latent_tensor": samples.float().contiguous()}, case["out"])
