"""A test-only ComfyUI node: image-to-video inputs attached to a prompt pair the way ComfyUI's
WanImageToVideo attaches them (concat_latent_image: the start image's LATENT; concat_mask: 0 on
the frames it gives; clip_vision_output: CLIP vision's penultimate hidden states), from fresh
random values, so that the node pack's I2V path runs in ComfyUI without the VAE and CLIP-vision
models a real run would load.
"""

from typing import Any

import node_helpers
import torch


class _VisionOutput:
    def __init__(self, states: torch.Tensor) -> None:
        self.penultimate_hidden_states = states


class RaylightTestI2VInputs:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "positive": ("CONDITIONING",),
                "negative": ("CONDITIONING",),
                "latent": ("LATENT",),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            }
        }

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    FUNCTION = "attach"
    CATEGORY = "_for_testing"

    def attach(self, positive: Any, negative: Any, latent: Any, seed: int) -> tuple[Any, Any]:
        g = torch.Generator().manual_seed(seed)
        shape = latent["samples"].shape  # [1, 16, frames, h, w]
        mask = torch.ones(1, 1, *shape[2:])
        mask[:, :, :1] = 0.0  # the first latent frame is given
        values = {
            "concat_latent_image": torch.randn(shape, generator=g),
            "concat_mask": mask,
            "clip_vision_output": _VisionOutput(torch.randn(1, 257, 1280, generator=g)),
        }
        return (
            node_helpers.conditioning_set_values(positive, values),
            node_helpers.conditioning_set_values(negative, values),
        )


NODE_CLASS_MAPPINGS = {"RaylightTestI2VInputs": RaylightTestI2VInputs}
