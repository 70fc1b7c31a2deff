"""Test-only ComfyUI nodes that make image-to-video inputs from fresh random values, so that the
node pack's I2V paths run in ComfyUI without the VAE and CLIP-vision models a real run would load:

- RaylightTestI2VInputs attaches them to a prompt pair the way ComfyUI's WanImageToVideo does
  (concat_latent_image: the start image's LATENT; concat_mask: 0 on the frames it gives;
  clip_vision_output: CLIP vision's penultimate hidden states).
- RaylightTestTI2VLatent runs ComfyUI's own Wan22ImageToVideoLatent (Wan 2.2 TI2V-5B's start
  image: the image's latent in the LATENT's first frames and a noise_mask 0 there) with a stand-in
  VAE whose encoder returns random 48-channel latents.
"""

from typing import Any

import node_helpers
import torch
from comfy_extras.nodes_wan import Wan22ImageToVideoLatent


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
            },
            "optional": {"first_last": ("BOOLEAN", {"default": False})},
        }

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    FUNCTION = "attach"
    CATEGORY = "_for_testing"

    def attach(
        self, positive: Any, negative: Any, latent: Any, seed: int, first_last: bool = False
    ) -> tuple[Any, Any]:
        g = torch.Generator().manual_seed(seed)
        shape = latent["samples"].shape  # [1, 16, frames, h, w]
        if first_last:
            # WanFirstLastFrameToVideo's: a mask per pixel frame (the first latent frame counts
            # four), the first image's four and the last frame given, folded into 4 channels;
            # both images' CLIP tokens joined.
            frames = shape[2]
            mask = torch.ones(1, 1, frames * 4, *shape[3:])
            mask[:, :, :4] = 0.0
            mask[:, :, -1:] = 0.0
            mask = mask.view(1, frames, 4, *shape[3:]).transpose(1, 2)
            clip = torch.randn(1, 514, 1280, generator=g)
        else:
            mask = torch.ones(1, 1, *shape[2:])
            mask[:, :, :1] = 0.0  # the first latent frame is given
            clip = torch.randn(1, 257, 1280, generator=g)
        values = {
            "concat_latent_image": torch.randn(shape, generator=g),
            "concat_mask": mask,
            "clip_vision_output": _VisionOutput(clip),
        }
        return (
            node_helpers.conditioning_set_values(positive, values),
            node_helpers.conditioning_set_values(negative, values),
        )


class _RandomWan22Encoder:
    """What Wan22ImageToVideoLatent asks of a VAE: encode(images [T, H, W, 3]) -> the Wan 2.2
    VAE's latent [1, 48, (T - 1) // 4 + 1, H / 16, W / 16]; here random values of that shape."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator = generator

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        frames, height, width = images.shape[0], images.shape[1], images.shape[2]
        shape = (1, 48, (frames - 1) // 4 + 1, height // 16, width // 16)
        return torch.randn(shape, generator=self.generator)


class RaylightTestTI2VLatent:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "width": ("INT", {"default": 128, "min": 32, "max": 4096, "step": 32}),
                "height": ("INT", {"default": 96, "min": 32, "max": 4096, "step": 32}),
                "length": ("INT", {"default": 9, "min": 1, "max": 4096, "step": 4}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "make"
    CATEGORY = "_for_testing"

    def make(self, width: int, height: int, length: int, seed: int) -> tuple[Any]:
        g = torch.Generator().manual_seed(seed)
        start_image = torch.rand(1, height, width, 3, generator=g)
        output = Wan22ImageToVideoLatent.execute(
            _RandomWan22Encoder(g), width, height, length, 1, start_image
        )
        return (output.result[0],)


NODE_CLASS_MAPPINGS = {
    "RaylightTestI2VInputs": RaylightTestI2VInputs,
    "RaylightTestTI2VLatent": RaylightTestTI2VLatent,
}
