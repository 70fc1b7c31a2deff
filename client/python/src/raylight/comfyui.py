"""ComfyUI's types as the cluster takes them: CONDITIONING, LATENT, and KSampler's input names.

The ComfyUI node pack (client/comfyui) is a thin shell over this module and Client, so that
what it does to a user's workflow is tested here without a ComfyUI. Nothing here imports
ComfyUI: its types are plain Python (a CONDITIONING is a list of [tensor, dict] pairs, a LATENT a
dict with "samples").

What the cluster cannot honour is refused with a message that names the node input, never
dropped: several conditionings (Conditioning Combine / Concat), areas, masks, strengths other
than 1, timestep ranges, ControlNets, GLIGEN, hooks, latent batches, noise masks (so Wan 2.2
TI2V-5B's start image, which ComfyUI carries as the LATENT's noise mask, is not taken yet).

Flux's CONDITIONING carries more than the text: CLIP-L's pooled output, FluxGuidance's strength
and Kontext's reference LATENTs (ReferenceLatent); they go to the job's conditioning as `pooled`,
`guidance` and `reference_latent_<i>` (the cluster checks them against the model's family).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

# A CONDITIONING entry's extras the cluster can take as they are: what ComfyUI's encoders put
# there when nothing else is asked for (Conditioning Set Timestep Range / Set Area Strength at
# their defaults change nothing).
_NEUTRAL_EXTRAS: dict[str, Any] = {
    "strength": 1.0,
    "start_percent": 0.0,
    "end_percent": 1.0,
}

# Extras a Raylight conditioning file adds (RaylightLoadConditioning): image-to-video inputs
# carried by name into the job's conditioning.
CLIP_FEA = "raylight_clip_fea"
Y = "raylight_y"

# ComfyUI's image-to-video inputs (WanImageToVideo): the start image's LATENT and its mask go to
# the cluster as they are (it builds Wan's `y` from them with the latent format's process_in, as
# ComfyUI's WAN21.concat_cond does); CLIP vision's penultimate hidden states are Wan's clip_fea.
_IMAGE_TO_VIDEO = ("concat_latent_image", "concat_mask")

# What other nodes add, with what to tell the user.
_UNSUPPORTED_EXTRAS = {
    "control": "ControlNet is not supported by the cluster",
    "area": "area conditioning is not supported by the cluster",
    "mask": "mask conditioning is not supported by the cluster",
    "gligen": "GLIGEN is not supported by the cluster",
    "hooks": "hooks (LoRA scheduling) are not supported by the cluster",
}

# The job fields a cluster error can name, and the KSampler / KSamplerAdvanced input that sets
# each (the others come from the Raylight Model node).
_FIELD_TO_INPUT = {
    "seed": "seed",
    "seeds": "seed",
    "steps": "steps",
    "cfg": "cfg",
    "sampler": "sampler_name",
    "scheduler": "scheduler",
    "denoise": "denoise",
    "positive": "positive",
    "negative": "negative",
    "latent": "latent_image",
    "width": "latent_image",
    "height": "latent_image",
    "frames": "latent_image",
    "add_noise": "add_noise",
    "start_step": "start_at_step",
    "end_step": "end_at_step",
    "return_with_leftover_noise": "return_with_leftover_noise",
    "model": "model",
    "low_noise_model": "model",
    "loras": "model",
    "low_noise_loras": "model",
    "boundary": "model",
    "dtype": "model",
    "compute": "model",
    "placement": "model",
    "swap_budget": "model",
    "mesh": "model",
    "shift": "model",
}


class NodeInputError(ValueError):
    """A node input the cluster cannot take; `input_name` names it as the node shows it."""

    def __init__(self, input_name: str, message: str) -> None:
        self.input_name = input_name
        super().__init__(f"input '{input_name}': {message}")


# ComfyUI's model_sampling shift for a family when a workflow asks for none: Wan's model configs
# set 8.0; for the others the cluster applies ComfyUI's own default itself when the job's shift
# is 0 (Flux 1.15 for dev, 1.0 for schnell, by the checkpoint; Chroma and Qwen-Image 1.15).
_COMFYUI_SHIFT = {"wan": 8.0}


def comfyui_default_shift(family: str) -> float:
    """The job's shift for ComfyUI's default sampling of a model of `family` (0: the cluster's
    own default for it, which for every family but Wan is ComfyUI's). An unknown family is taken
    as Wan, the family whose default the cluster's differs from ComfyUI's."""
    return _COMFYUI_SHIFT.get(family or "wan", 0.0)


def input_for_field(field: str | None) -> str | None:
    """The node input behind a job field a cluster error names ("mesh.ulysses" -> "model")."""
    if field is None:
        return None
    return _FIELD_TO_INPUT.get(field.split(".")[0].split("[")[0])


def conditioning_to_tensors(conditioning: Any, input_name: str) -> dict[str, torch.Tensor]:
    """A ComfyUI CONDITIONING as the job's conditioning tensors (Wan: `text` [L, 4096]).

    Takes one entry with a batch of one; its token count is kept as ComfyUI hands it over (its
    umT5 pads to 512 rows and never truncates, so the cluster sees what ComfyUI's model sees).
    """
    if not isinstance(conditioning, list | tuple) or not conditioning:
        raise NodeInputError(input_name, "not a CONDITIONING (a list of [tensor, dict] pairs)")
    if len(conditioning) > 1:
        raise NodeInputError(
            input_name,
            f"{len(conditioning)} conditionings (combined, or with areas); the cluster takes "
            "one prompt per input",
        )
    entry = conditioning[0]
    if not isinstance(entry, list | tuple) or len(entry) != 2:
        raise NodeInputError(input_name, "not a CONDITIONING entry ([tensor, dict])")
    text, extras = entry
    if not isinstance(text, torch.Tensor) or text.dim() != 3:
        shape = list(text.shape) if isinstance(text, torch.Tensor) else type(text).__name__
        raise NodeInputError(input_name, f"the prompt must be [1, tokens, width], is {shape}")
    if text.shape[0] != 1:
        raise NodeInputError(
            input_name, f"a batch of {text.shape[0]} prompts; the cluster takes one per job"
        )
    tensors = {"text": text[0]}
    for key, value in dict(extras).items():
        if key in (CLIP_FEA, Y):
            tensors[key.removeprefix("raylight_")] = value
        elif key in _IMAGE_TO_VIDEO and value is not None:
            tensors[key] = _one(value, input_name, key)
        elif key == "pooled_output":  # umT5 gives None; Flux's CLIP-L its pooled vector
            if value is not None:
                tensors["pooled"] = _one(value, input_name, key)
        elif key == "guidance" and value is not None:  # FluxGuidance
            if not isinstance(value, int | float):
                raise NodeInputError(input_name, f"'guidance' must be a number, is {value!r}")
            tensors["guidance"] = torch.tensor([float(value)])
        elif key == "reference_latents" and value is not None:  # Kontext's ReferenceLatent
            for i, reference in enumerate(value):
                tensors[f"reference_latent_{i}"] = _one(reference, input_name, key)
        elif key == "clip_vision_output" and value is not None:
            hidden = getattr(value, "penultimate_hidden_states", None)
            if not isinstance(hidden, torch.Tensor):
                raise NodeInputError(input_name, "clip_vision_output has no penultimate states")
            tensors["clip_fea"] = _one(hidden, input_name, key)
        elif key in _UNSUPPORTED_EXTRAS:
            if value is not None:
                raise NodeInputError(input_name, _UNSUPPORTED_EXTRAS[key])
        elif key in _NEUTRAL_EXTRAS:
            if value != _NEUTRAL_EXTRAS[key]:
                raise NodeInputError(
                    input_name,
                    f"'{key}' {value!r} is not supported by the cluster "
                    f"(only {_NEUTRAL_EXTRAS[key]!r})",
                )
        elif value is not None:
            raise NodeInputError(input_name, f"'{key}' is not supported by the cluster")
    return tensors


def _one(tensor: Any, input_name: str, key: str) -> torch.Tensor:
    """A batch-of-one tensor without its batch dimension."""
    if not isinstance(tensor, torch.Tensor) or tensor.dim() < 2 or tensor.shape[0] != 1:
        shape = list(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
        raise NodeInputError(input_name, f"'{key}' must be one sample (batch 1), is {shape}")
    return tensor[0]


def conditioning_from_tensors(tensors: Mapping[str, torch.Tensor]) -> list[list[Any]]:
    """A conditioning file's tensors (RaylightLoadConditioning) as a ComfyUI CONDITIONING."""
    if "text" not in tensors:
        raise ValueError("no 'text' tensor (a Wan conditioning file has text, clip_fea, y)")
    text = tensors["text"].to(torch.float32)
    if text.dim() == 2:
        text = text.unsqueeze(0)
    extras: dict[str, Any] = {"pooled_output": None}
    for name in ("clip_fea", "y"):
        if name in tensors:
            extras[f"raylight_{name}"] = tensors[name]
    # Flux's: the pooled vector, the guidance, Kontext's references.
    if "pooled" in tensors:
        extras["pooled_output"] = tensors["pooled"].to(torch.float32).reshape(1, -1)
    if "guidance" in tensors:
        extras["guidance"] = float(tensors["guidance"].reshape(-1)[0])
    references = [f"reference_latent_{i}" for i in range(len(tensors))]
    references = [name for name in references if name in tensors]
    if references:
        extras["reference_latents"] = [
            tensors[name].to(torch.float32).reshape(1, *tensors[name].shape[-3:])
            for name in references
        ]
    known = {"text", "clip_fea", "y", "pooled", "guidance", *references}
    unknown = sorted(set(tensors) - known)
    if unknown:
        names = ", ".join(unknown)
        raise ValueError(
            f"unknown tensors {names} (a conditioning has text; Wan's clip_fea, y; Flux's "
            "pooled, guidance, reference_latent_<i>)"
        )
    return [[text, extras]]


def latent_to_tensor(latent: Any, input_name: str) -> torch.Tensor:
    """A ComfyUI LATENT ({"samples": [1, C, F, H, W]} for video models and Qwen-Image, [1, C, H, W]
    for Flux and Chroma) as the job's starting latent (its noise_mask: `noise_mask_of`)."""
    if not isinstance(latent, Mapping) or "samples" not in latent:
        raise NodeInputError(input_name, "not a LATENT (a dict with 'samples')")
    batch_index = latent.get("batch_index")
    if batch_index is not None and list(batch_index) != [0]:
        raise NodeInputError(input_name, f"batch_index {list(batch_index)} is not supported")
    samples = latent["samples"]
    if not isinstance(samples, torch.Tensor) or samples.dim() not in (4, 5):
        shape = list(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise NodeInputError(
            input_name,
            f"must be a LATENT [1, C, frames, H, W] (Wan, Qwen-Image) or [1, C, H, W] (Flux), "
            f"is {shape}",
        )
    if samples.shape[0] != 1:
        raise NodeInputError(
            input_name,
            f"a batch of {samples.shape[0]} latents; the cluster samples one per job "
            "(use the model's dp for several seeds)",
        )
    return samples


def noise_mask_of(latent: Mapping[str, Any], input_name: str) -> torch.Tensor | None:
    """A LATENT's noise mask (SetLatentNoiseMask, Wan22ImageToVideoLatent), or None; the
    cluster prepares it as ComfyUI does (resized to the latent, repeated over channels)."""
    mask = latent.get("noise_mask")
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
        raise NodeInputError(input_name, "its noise_mask is not a floating-point tensor")
    return mask


def latent_from_tensor(
    samples: torch.Tensor, given: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A job's resulting LATENT tensor as ComfyUI's LATENT dict: as ComfyUI's KSampler does,
    the given LATENT's other entries (its noise_mask) go on with it."""
    return {**(given or {}), "samples": samples}
