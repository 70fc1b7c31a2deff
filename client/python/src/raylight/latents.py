"""LATENTs and conditioning as the cluster carries them: safetensors bytes.

A LATENT travels as a ComfyUI .latent file (`latent_tensor` plus the empty
`latent_format_version_0` marker, and the LATENT's `noise_mask` when it has one, which ComfyUI's
LoadLatent ignores), in ComfyUI's LATENT convention (the VAE's latent space);
conditioning as the safetensors layout of the model's conditioning (Wan: `text` [L, 4096], and
for I2V `clip_fea` and `y`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from safetensors.torch import load, save

_VERSION_MARKER = "latent_format_version_0"


def latent_to_bytes(latent: torch.Tensor, noise_mask: torch.Tensor | None = None) -> bytes:
    """A LATENT tensor ([B, C, T, H, W] or [C, T, H, W]) as .latent file bytes (float32), with
    the LATENT's `noise_mask` (1 where sampled, 0 where kept) when it has one."""
    tensors = {
        "latent_tensor": latent.detach().to(torch.float32).contiguous().cpu(),
        _VERSION_MARKER: torch.empty(0, dtype=torch.uint8),
    }
    if noise_mask is not None:
        tensors["noise_mask"] = noise_mask.detach().to(torch.float32).contiguous().cpu()
    return save(tensors)


def latent_from_bytes(data: bytes) -> torch.Tensor:
    """.latent file bytes as a float32 tensor (old files without the marker scaled as ComfyUI)."""
    tensors = load(data)
    if "latent_tensor" not in tensors:
        raise ValueError("latent: no 'latent_tensor' (not a ComfyUI .latent file)")
    latent = tensors["latent_tensor"].to(torch.float32)
    return latent if _VERSION_MARKER in tensors else latent * (1.0 / 0.18215)


def conditioning_to_bytes(conditioning: Mapping[str, torch.Tensor] | bytes) -> bytes:
    """Conditioning tensors by name (or safetensors bytes as they are) as safetensors bytes."""
    if isinstance(conditioning, bytes | bytearray):
        return bytes(conditioning)
    return save(
        {name: t.detach().to(torch.float32).contiguous().cpu() for name, t in conditioning.items()}
    )
