"""Newest ComfyUI's step noise for ComfyUI 0.3.64: the CPU generator of a sampler's step noise
is seeded with seed + 1 (newer ComfyUI; 0.3.64 seeds it with the seed itself, replaying the
initial noise). Raylight follows the newest (samplers/k_samplers.h), so the references do too.

Loaded two ways: as a custom node of the ComfyUI under test (tests/comfyui: ComfyUI imports it
and `install` runs on import), and by tests/samplers/comfyui_reference.py.
"""

import sys
from typing import Any

import torch


def install(sampling: Any) -> None:
    """Replaces comfy.k_diffusion.sampling.default_noise_sampler in `sampling`."""

    def seeded_noise_sampler(x: torch.Tensor, seed: int | None = None) -> Any:
        generator = None
        if seed is not None:
            generator = torch.Generator(device=x.device)
            generator.manual_seed(seed + 1 if x.device == torch.device("cpu") else seed)
        return lambda sigma, sigma_next: torch.randn(
            x.size(),
            dtype=x.dtype,
            layout=x.layout,
            device=x.device,
            generator=generator,
        )

    sampling.default_noise_sampler = seeded_noise_sampler


# Inside ComfyUI (a custom node is imported after ComfyUI's own modules): patch it now.
if "comfy.k_diffusion.sampling" in sys.modules:
    import comfy.k_diffusion.sampling

    install(comfy.k_diffusion.sampling)

NODE_CLASS_MAPPINGS: dict[str, Any] = {}
