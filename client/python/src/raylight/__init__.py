"""Raylight's Python client: diffusion sampling jobs on a Raylight cluster.

See raylight.client.Client; LATENTs are ComfyUI's (the VAE's latent space).
"""

from raylight.client import (
    Client,
    Event,
    LoadedModel,
    ModelFile,
    Progress,
    SampleResult,
    SamplingOptions,
    StateChange,
    sample_job,
)
from raylight.errors import JobFailed, RaylightError
from raylight.latents import conditioning_to_bytes, latent_from_bytes, latent_to_bytes

__all__ = [
    "Client",
    "Event",
    "JobFailed",
    "LoadedModel",
    "ModelFile",
    "Progress",
    "RaylightError",
    "SampleResult",
    "SamplingOptions",
    "StateChange",
    "conditioning_to_bytes",
    "latent_from_bytes",
    "latent_to_bytes",
    "sample_job",
]
