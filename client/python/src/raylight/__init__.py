"""Raylight's Python client: diffusion sampling jobs on a Raylight cluster.

See raylight.client.Client; LATENTs are ComfyUI's (the VAE's latent space).
"""

from raylight.client import (
    Client,
    Event,
    LoadedModel,
    Progress,
    SampleResult,
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
    "Progress",
    "RaylightError",
    "SampleResult",
    "StateChange",
    "conditioning_to_bytes",
    "latent_from_bytes",
    "latent_to_bytes",
    "sample_job",
]
