"""Raylight's ComfyUI nodes: ComfyUI's KSampler and KSamplerAdvanced, run on a Raylight cluster.

The work is the Python client's (raylight.Client, raylight.comfyui): these classes only map
ComfyUI's node interface onto it, follow a job in ComfyUI's progress bar with the cluster's
previews, turn ComfyUI's cancel into the job's, and raise errors that name the node input.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import comfy.model_management
import comfy.samplers
import comfy.utils
import folder_paths
import grpc
from safetensors.torch import load_file

import raylight
from raylight import comfyui as convert

CLUSTER = "RAYLIGHT_CLUSTER"
MODEL = "RAYLIGHT_MODEL"
_NONE = "(none)"
# /object_info asks for every node's inputs often; the cluster's lists are kept this long.
_DESCRIBE_TTL_SECONDS = 10.0
_PREVIEW_SIDE = 512
# KSampler's own seed and cfg inputs.
_SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True})
_CFG = ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01})


@dataclass(frozen=True)
class ClusterRef:
    """Where the cluster is: what Raylight Cluster hands to Raylight Model."""

    address: str | None
    token: str | None
    token_file: str | None
    tls_ca: str | None = None

    def client(self) -> raylight.Client:
        return raylight.Client(
            self.address, self.token, token_file=self.token_file, tls_ca=self.tls_ca
        )


@dataclass(frozen=True)
class ModelRef:
    """A model on the cluster and how its jobs run: what Raylight Model hands to the samplers."""

    cluster: ClusterRef
    settings: dict[str, Any]


_described: tuple[float, raylight.SamplingOptions | None] = (0.0, None)


def _describe() -> raylight.SamplingOptions | None:
    """The default cluster's options (RAYLIGHT_ADDRESS, else the local one), or None when none
    answers: the node lists then fall back to ComfyUI's own."""
    global _described
    when, options = _described
    if time.monotonic() - when < _DESCRIBE_TTL_SECONDS:
        return options
    try:
        with raylight.Client(timeout=2.0) as client:
            options = client.describe()
    except Exception:  # no cluster is a state, not an error, when listing choices
        options = None
    _described = (time.monotonic(), options)
    return options


def _samplers() -> list[str]:
    options = _describe()
    ours = set(options.samplers) if options else set(comfy.samplers.KSampler.SAMPLERS)
    return [s for s in comfy.samplers.KSampler.SAMPLERS if s in ours]


def _schedulers() -> list[str]:
    options = _describe()
    ours = set(options.schedulers) if options else set(comfy.samplers.KSampler.SCHEDULERS)
    return [s for s in comfy.samplers.KSampler.SCHEDULERS if s in ours]


def _node_error(node: str, error: Exception) -> Exception:
    """An error as ComfyUI shows it: the node and the input that caused it."""
    if isinstance(error, convert.NodeInputError):
        return ValueError(f"{node}: {error}")
    if isinstance(error, raylight.RaylightError):
        name = convert.input_for_field(error.field)
        where = f"input '{name}': " if name else ""
        return RuntimeError(f"{node}: {where}{error.message} ({error.code.name})")
    return error


def _preview(png: bytes) -> tuple[str, Any, int] | None:
    if not png:
        return None
    from PIL import Image

    return ("PNG", Image.open(io.BytesIO(png)).convert("RGB"), _PREVIEW_SIDE)


def _cancel_quietly(client: raylight.Client, job_id: str) -> None:
    try:
        client.cancel(job_id)
    except raylight.RaylightError:
        pass  # it ended meanwhile


def _run_job(node: str, model: ModelRef, latent_image: Any, **job: Any) -> tuple[dict[str, Any]]:
    """Submits the job, follows it in ComfyUI's progress bar, returns its LATENT."""
    try:
        positive = convert.conditioning_to_tensors(job.pop("positive"), "positive")
        negative = convert.conditioning_to_tensors(job.pop("negative"), "negative")
        latent = convert.latent_to_tensor(latent_image, "latent_image")
        noise_mask = convert.noise_mask_of(latent_image, "latent_image")
    except convert.NodeInputError as error:
        raise _node_error(node, error) from None
    settings = {**model.settings, **job}
    try:
        client = model.cluster.client()
    except raylight.RaylightError as error:
        raise _node_error(node, error) from None
    with client:
        try:
            info = client.submit(
                raylight.sample_job(
                    settings.pop("model"),
                    positive,
                    negative,
                    latent=latent,
                    noise_mask=noise_mask,
                    **settings,
                )
            )
        except raylight.RaylightError as error:
            raise _node_error(node, error) from None
        job_id = info.job_id
        # ComfyUI's cancel sets a flag that only the running node can see: a watcher turns it
        # into the job's cancel while the events below block.
        done = threading.Event()

        def cancel_on_interrupt() -> None:
            while not done.wait(0.2):
                if comfy.model_management.processing_interrupted():
                    _cancel_quietly(client, job_id)
                    return

        watcher = threading.Thread(target=cancel_on_interrupt, daemon=True)
        watcher.start()
        bar = comfy.utils.ProgressBar(max(1, settings.get("steps", 1)))

        def on_progress(event: raylight.Progress) -> None:
            if event.step > 0:
                bar.update_absolute(event.step, event.total, _preview(event.preview_png))

        try:
            result = client.follow(job_id, on_progress)
        except comfy.model_management.InterruptProcessingException:
            # ComfyUI's progress hook raises this itself when the user cancels.
            _cancel_quietly(client, job_id)
            raise
        except raylight.JobFailed as error:
            if error.code == grpc.StatusCode.CANCELLED:
                # ComfyUI's own cancel: end the prompt as ComfyUI's samplers do.
                comfy.model_management.throw_exception_if_processing_interrupted()
            raise _node_error(node, error) from None
        except raylight.RaylightError as error:
            raise _node_error(node, error) from None
        finally:
            done.set()
            watcher.join()
    return (convert.latent_from_tensor(result.latent, latent_image),)


class RaylightCluster:
    """Where the cluster's head is. Empty address: RAYLIGHT_ADDRESS, else the cluster
    `raylightctl up` started on this machine; empty token: the token file, RAYLIGHT_TOKEN, else
    that cluster's; empty tls_ca: RAYLIGHT_TLS_CA, else the local cluster's CA if it serves TLS,
    else plaintext."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "address": ("STRING", {"default": "", "tooltip": "host:port of the head"}),
                "token": ("STRING", {"default": "", "tooltip": "the cluster token"}),
                "token_file": ("STRING", {"default": "", "tooltip": "a file holding the token"}),
            },
            "optional": {
                "tls_ca": (
                    "STRING",
                    {"default": "", "tooltip": "the cluster's CA certificate (PEM file) for TLS"},
                ),
            },
        }

    RETURN_TYPES = (CLUSTER,)
    FUNCTION = "connect"
    CATEGORY = "raylight"

    def connect(
        self, address: str, token: str, token_file: str, tls_ca: str = ""
    ) -> tuple[ClusterRef]:
        cluster = ClusterRef(address or None, token or None, token_file or None, tls_ca or None)
        try:
            with cluster.client() as client:
                client.status()  # refuses a wrong address or token here, not at the sampler
        except (raylight.RaylightError, OSError) as error:
            raise _node_error("Raylight Cluster", error) from None
        return (cluster,)


class RaylightModel:
    """A model in the cluster's model roots and how its jobs run (mesh, dtype, placement), with
    an optional low-noise expert for Wan 2.2 A14B (one job for both experts)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        options = _describe()
        models = [m.name for m in options.models if not m.lora] if options else []
        dtypes = options.dtypes if options else ["auto", "bf16", "f16", "f32"]
        placements = options.placements if options else ["auto"]
        return {
            "required": {
                "cluster": (CLUSTER,),
                "model": (models, {"tooltip": "a file in the cluster's model roots"}),
                "dtype": (dtypes,),
                "placement": (placements,),
                "ulysses": ("INT", {"default": 1, "min": 1, "max": 64}),
                "ring": ("INT", {"default": 1, "min": 1, "max": 64}),
                "cfg_parallel": ("INT", {"default": 1, "min": 1, "max": 2}),
                "dp": ("INT", {"default": 1, "min": 1, "max": 64}),
                # 0: what ComfyUI's model config sets for the model's family (Wan 8; Flux 1.15
                # for dev, 1.0 for schnell); ModelSamplingSD3 / ModelSamplingFlux set others.
                "shift": (
                    "FLOAT",
                    {
                        "default": 0.0,
                        "min": 0.0,
                        "max": 100.0,
                        "step": 0.01,
                        "tooltip": "0: ComfyUI's default for the model (Wan 8, Flux dev 1.15)",
                    },
                ),
            },
            "optional": {
                "low_noise_model": ([_NONE, *models],),
                "boundary": (
                    "FLOAT",
                    {
                        "default": 0.875,
                        "min": 0.0,
                        "max": 1.0,
                        "step": 0.001,
                        "tooltip": "sigma where the low-noise expert takes over (0.900 for I2V)",
                    },
                ),
                "cpu": ("BOOLEAN", {"default": False, "tooltip": "run on CPU workers"}),
                "compute": (
                    ["default", "fp8"],
                    {"tooltip": "fp8: the linear layers as fp8 GEMMs (any placement)"},
                ),
                "attention": (
                    ["default", "fp8"],
                    {
                        "tooltip": "fp8: the self-attention as cuDNN's fp8 kernel (Hopper or "
                        "newer; lossy; not with ring)"
                    },
                ),
            },
        }

    RETURN_TYPES = (MODEL,)
    FUNCTION = "select"
    CATEGORY = "raylight"

    @classmethod
    def VALIDATE_INPUTS(cls, model: str, low_noise_model: str = _NONE) -> bool | str:
        # The lists come from the default cluster; another cluster's head checks the names
        # itself when the job is submitted, with the input named.
        return True

    def select(
        self,
        cluster: ClusterRef,
        model: str,
        dtype: str,
        placement: str,
        ulysses: int,
        ring: int,
        cfg_parallel: int,
        dp: int,
        shift: float,
        low_noise_model: str = _NONE,
        boundary: float = 0.875,
        cpu: bool = False,
        compute: str = "default",
        attention: str = "default",
    ) -> tuple[ModelRef]:
        settings: dict[str, Any] = dict(
            model=model,
            dtype=dtype,
            compute=compute,
            attention=attention,
            placement=placement,
            ulysses=ulysses,
            ring=ring,
            cfg_parallel=cfg_parallel,
            dp=dp,
            shift=shift,
            cpu=cpu,
            preview_every=1,
        )
        if low_noise_model and low_noise_model != _NONE:
            settings.update(low_noise_model=low_noise_model, boundary=boundary)
        if shift == 0:
            settings["shift"] = convert.comfyui_default_shift(_family_of(cluster, model))
        return (ModelRef(cluster, settings),)


def _family_of(cluster: ClusterRef, model: str) -> str:
    """The model's family as the cluster's head reads it ("" when it cannot say)."""
    try:
        with cluster.client() as client:
            options = client.describe()
    except raylight.RaylightError:
        return ""
    return next((m.family for m in options.models if m.name == model), "")


def _sampling_inputs() -> dict[str, Any]:
    """The inputs KSampler and KSamplerAdvanced share, in their order."""
    return {
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000}),
        "cfg": _CFG,
        "sampler_name": (_samplers(),),
        "scheduler": (_schedulers(),),
        "positive": ("CONDITIONING",),
        "negative": ("CONDITIONING",),
        "latent_image": ("LATENT",),
    }


class RaylightKSampler:
    """ComfyUI's KSampler on the cluster: the same inputs, the same LATENT."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": (MODEL,),
                "seed": _SEED,
                **_sampling_inputs(),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "raylight"

    def sample(
        self,
        model: ModelRef,
        seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Any,
        negative: Any,
        latent_image: Any,
        denoise: float = 1.0,
    ) -> tuple[dict[str, Any]]:
        return _run_job(
            "Raylight KSampler",
            model,
            latent_image,
            positive=positive,
            negative=negative,
            seed=seed,
            steps=steps,
            cfg=cfg,
            sampler=sampler_name,
            scheduler=scheduler,
            denoise=denoise,
        )


class RaylightKSamplerAdvanced:
    """ComfyUI's KSamplerAdvanced on the cluster (chained high/low-noise runs work as there)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": (MODEL,),
                "add_noise": (["enable", "disable"],),
                "noise_seed": _SEED,
                **_sampling_inputs(),
                "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
                "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
                "return_with_leftover_noise": (["disable", "enable"],),
            }
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "sample"
    CATEGORY = "raylight"

    def sample(
        self,
        model: ModelRef,
        add_noise: str,
        noise_seed: int,
        steps: int,
        cfg: float,
        sampler_name: str,
        scheduler: str,
        positive: Any,
        negative: Any,
        latent_image: Any,
        start_at_step: int,
        end_at_step: int,
        return_with_leftover_noise: str,
    ) -> tuple[dict[str, Any]]:
        return _run_job(
            "Raylight KSampler (Advanced)",
            model,
            latent_image,
            positive=positive,
            negative=negative,
            seed=noise_seed,
            steps=steps,
            cfg=cfg,
            sampler=sampler_name,
            scheduler=scheduler,
            add_noise=add_noise == "enable",
            start_step=start_at_step,
            end_step=end_at_step,
            return_with_leftover_noise=return_with_leftover_noise == "enable",
        )


class RaylightLoraLoader:
    """ComfyUI's LoraLoaderModelOnly for a cluster model: the LoRA (a file in the cluster's model
    roots) is merged into the model, or into the low-noise expert, when its job loads it; chain
    several, they merge in order."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        options = _describe()
        files = [m.name for m in options.models if m.lora] if options else []
        return {
            "required": {
                "model": (MODEL,),
                "lora_name": (files, {"tooltip": "a LoRA file in the cluster's model roots"}),
                "strength_model": (
                    "FLOAT",
                    {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01},
                ),
            },
            "optional": {
                "expert": (["model", "low_noise_model"], {"tooltip": "which model it patches"}),
            },
        }

    RETURN_TYPES = (MODEL,)
    FUNCTION = "load_lora"
    CATEGORY = "raylight"

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name: str) -> bool | str:
        return True  # the head checks the name against its roots, naming the input

    def load_lora(
        self, model: ModelRef, lora_name: str, strength_model: float, expert: str = "model"
    ) -> tuple[ModelRef]:
        key = "loras" if expert == "model" else "low_noise_loras"
        if key == "low_noise_loras" and "low_noise_model" not in model.settings:
            raise ValueError("Raylight LoRA: input 'expert': the model has no low-noise expert")
        settings = dict(model.settings)
        settings[key] = [*settings.get(key, []), (lora_name, strength_model)]
        return (ModelRef(model.cluster, settings),)


class RaylightTeaCache:
    """Step caching for a cluster model's jobs, as ComfyUI-TeaCache patches a MODEL: TeaCache as
    its authors run Wan 2.1 (a call reuses the blocks' residual while the timestep modulation
    changes little) and Flux (the first block's modulated image input). Threshold 0: the
    authors' threshold for the model; coefficients empty: theirs (Wan 2.1 t2v 1.3B / 14B,
    i2v 14B, Flux.1-dev; other models need them). Retention steps: Wan's only."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": (MODEL,),
                "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            },
            "optional": {
                "coefficients": (
                    "STRING",
                    {"default": "", "tooltip": "rescaling polynomial, highest power first: a,b,c"},
                ),
                "retention_steps": ("BOOLEAN", {"default": True}),
            },
        }

    RETURN_TYPES = (MODEL,)
    FUNCTION = "cache"
    CATEGORY = "raylight"

    def cache(
        self,
        model: ModelRef,
        threshold: float,
        coefficients: str = "",
        retention_steps: bool = True,
    ) -> tuple[ModelRef]:
        try:
            values = [float(c) for c in coefficients.split(",") if c.strip()]
        except ValueError:
            raise ValueError(
                f"Raylight TeaCache: input 'coefficients': '{coefficients}' is not numbers"
            ) from None
        settings = dict(model.settings)
        settings.update(
            cache="teacache",
            cache_threshold=threshold,
            cache_coefficients=values,
            # Sent only when unticked: the head's default is the authors', and the families
            # other than Wan refuse the field.
            cache_retention_steps=None if retention_steps else False,
        )
        return (ModelRef(model.cluster, settings),)


class RaylightMagCache:
    """Step caching for a cluster model's jobs, as ComfyUI-MagCache patches a MODEL: MagCache as
    its authors run Wan 2.1 (calls reuse the blocks' residual while the accumulated error of the
    model's calibrated magnitude ratios stays under the threshold, at most max_skips in a row).
    0 takes the authors' numbers (threshold 0.12, max_skips 2); mag_ratios empty: theirs (Wan 2.1
    t2v 1.3B / 14B, i2v 14B; other models need them: cond, uncond of each step in turn)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": (MODEL,),
                "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.01}),
                "max_skips": ("INT", {"default": 0, "min": 0, "max": 1000}),
                "retention_ratio": (
                    "FLOAT",
                    {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.05},
                ),
            },
            "optional": {
                "mag_ratios": (
                    "STRING",
                    {"default": "", "tooltip": "calibrated ratios, cond and uncond in turn: a,b,c"},
                ),
            },
        }

    RETURN_TYPES = (MODEL,)
    FUNCTION = "cache"
    CATEGORY = "raylight"

    def cache(
        self,
        model: ModelRef,
        threshold: float,
        max_skips: int,
        retention_ratio: float,
        mag_ratios: str = "",
    ) -> tuple[ModelRef]:
        try:
            values = [float(c) for c in mag_ratios.split(",") if c.strip()]
        except ValueError:
            raise ValueError(
                f"Raylight MagCache: input 'mag_ratios': '{mag_ratios}' is not numbers"
            ) from None
        settings = dict(model.settings)
        settings.update(
            cache="magcache",
            cache_threshold=threshold,
            cache_coefficients=[],
            cache_max_skips=max_skips,
            cache_retention_ratio=retention_ratio,
            cache_mag_ratios=values,
        )
        return (ModelRef(model.cluster, settings),)


class RaylightEasyCache:
    """Step caching for a cluster model's jobs, as ComfyUI's EasyCache node patches a MODEL:
    whole sampler steps answered from the last computed one while the output change predicted
    from the input's change stays under reuse_threshold, between start_percent and end_percent
    of the schedule (every family; the same inputs and defaults as ComfyUI's node)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "model": (MODEL,),
                "reuse_threshold": (
                    "FLOAT",
                    {"default": 0.2, "min": 0.0, "max": 3.0, "step": 0.01},
                ),
                "start_percent": ("FLOAT", {"default": 0.15, "min": 0.0, "max": 1.0, "step": 0.01}),
                "end_percent": ("FLOAT", {"default": 0.95, "min": 0.0, "max": 1.0, "step": 0.01}),
            }
        }

    RETURN_TYPES = (MODEL,)
    FUNCTION = "cache"
    CATEGORY = "raylight"

    def cache(
        self, model: ModelRef, reuse_threshold: float, start_percent: float, end_percent: float
    ) -> tuple[ModelRef]:
        settings = dict(model.settings)
        settings.update(
            cache="easycache",
            cache_threshold=reuse_threshold,
            cache_coefficients=[],
            cache_max_skips=0,
            cache_retention_ratio=None,
            cache_mag_ratios=[],
            cache_start_percent=start_percent,
            cache_end_percent=end_percent,
        )
        return (ModelRef(model.cluster, settings),)


class RaylightLoadConditioning:
    """A conditioning file (a prompt encoded elsewhere: `text` [L, 4096], for I2V `clip_fea` and
    `y`) from ComfyUI's input folder, as a CONDITIONING."""

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        folder = folder_paths.get_input_directory()
        files = sorted(
            f
            for f in os.listdir(folder)
            if f.endswith(".safetensors") and os.path.isfile(os.path.join(folder, f))
        )
        return {"required": {"conditioning": (files,)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "load"
    CATEGORY = "raylight"

    def load(self, conditioning: str) -> tuple[list[list[Any]]]:
        path = folder_paths.get_annotated_filepath(conditioning)
        try:
            return (convert.conditioning_from_tensors(load_file(path)),)
        except ValueError as error:
            raise ValueError(f"Raylight Load Conditioning: input 'conditioning': {error}") from None


NODE_CLASS_MAPPINGS = {
    "RaylightCluster": RaylightCluster,
    "RaylightModel": RaylightModel,
    "RaylightKSampler": RaylightKSampler,
    "RaylightKSamplerAdvanced": RaylightKSamplerAdvanced,
    "RaylightLoadConditioning": RaylightLoadConditioning,
    "RaylightLoraLoader": RaylightLoraLoader,
    "RaylightTeaCache": RaylightTeaCache,
    "RaylightMagCache": RaylightMagCache,
    "RaylightEasyCache": RaylightEasyCache,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "RaylightCluster": "Raylight Cluster",
    "RaylightModel": "Raylight Model",
    "RaylightKSampler": "Raylight KSampler",
    "RaylightKSamplerAdvanced": "Raylight KSampler (Advanced)",
    "RaylightLoadConditioning": "Raylight Load Conditioning",
    "RaylightLoraLoader": "Raylight LoRA",
    "RaylightTeaCache": "Raylight TeaCache",
    "RaylightMagCache": "Raylight MagCache",
    "RaylightEasyCache": "Raylight EasyCache",
}
