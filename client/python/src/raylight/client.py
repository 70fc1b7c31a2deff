"""The Raylight client: jobs on a cluster's head over gRPC, with torch tensors in and out.

    with raylight.Client("127.0.0.1:6380", token=...) as cluster:
        latent = cluster.sample(model="wan2.1_t2v_1.3B.safetensors", positive={"text": t5},
                                negative={"text": t5_neg}, width=832, height=480, frames=81,
                                steps=30, cfg=5.0, sampler="uni_pc", on_progress=print)

Mirrors the C++ SDK's JobClient (client/sdk/job_client.h): submit, get, list_jobs (its List),
cancel, watch, wait, result; plus sample() (submit, watch, result in one call), status() and
models(). Every
error is a RaylightError carrying the gRPC status and the field the cluster named.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import torch

from raylight._proto.raylight.v1 import (
    common_pb2,
    diffusion_pb2,
    head_pb2,
    head_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from raylight.errors import JobFailed, RaylightError, from_rpc
from raylight.latents import conditioning_to_bytes, latent_from_bytes, latent_to_bytes

SAMPLE_JOB_KIND = "diffusion.sample"
DIFFUSION_ACTOR = "DiffusionActor"
# Results and conditioning can be large (a 720p video's LATENT, image conditioning).
_MAX_MESSAGE_BYTES = 512 << 20
# A job's decoded frames come back in one response (81 frames of 1280x720 RGB: 224 MB).
_MAX_RESULT_BYTES = 1 << 30
_ENDED = (jobs_pb2.JOB_SUCCEEDED, jobs_pb2.JOB_FAILED, jobs_pb2.JOB_CANCELLED)

Conditioning = Mapping[str, torch.Tensor] | bytes


@dataclass(frozen=True)
class Progress:
    """A step of a running job (step is 1-based), or a log line in `message` (step 0)."""

    job_id: str
    step: int
    total: int
    sigma: float
    elapsed_seconds: float
    preview_png: bytes
    message: str


@dataclass(frozen=True)
class StateChange:
    """The job's state changed (the first event of a watch is its state then)."""

    job_id: str
    info: Any  # raylight.v1.JobInfo


Event = Progress | StateChange


@dataclass(frozen=True)
class SampleResult:
    latent: torch.Tensor  # ComfyUI's LATENT: [dp, C, F, H, W], the VAE's latent space
    preview_png: bytes
    model_was_resident: bool
    load_seconds: float
    sample_seconds: float
    placement: str
    # The decoded output sample_job(output=...) asked for: the file's bytes and its format
    # ("mp4", "png", "webp", "frames": ComfyUI's IMAGE safetensors); empty for output "latent".
    video: bytes = b""
    video_format: str = ""
    decode_seconds: float = 0.0
    # Model calls made (every branch's), and of them those the step cache answered.
    model_calls: int = 0
    calls_reused: int = 0


@dataclass(frozen=True)
class ModelFile:
    name: str  # as sample(model=...) takes it: relative to its model root
    bytes: int
    files: int
    lora: bool = False  # a LoRA file (for sample(loras=...)), not a model
    family: str = ""  # "wan", "flux" (from its header); empty for LoRAs and unknown files


@dataclass(frozen=True)
class SamplingOptions:
    """What the cluster's sample jobs offer (the head's diffusion.sample description)."""

    models: list[ModelFile]
    samplers: list[str]
    schedulers: list[str]
    dtypes: list[str]
    placements: list[str]


@dataclass(frozen=True)
class LoadedModel:
    worker_id: str
    path: str
    variant: str
    dtype: str
    placement: str
    device_bytes: int
    host_bytes: int


def _state_dir() -> Path:
    return Path(os.environ.get("RAYLIGHT_STATE_DIR", Path.home() / ".raylight"))


def _default_address() -> str:
    if address := os.environ.get("RAYLIGHT_ADDRESS"):
        return address
    path = _state_dir() / "address"
    if path.exists():
        return path.read_text().strip()
    raise RaylightError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "address: none given, RAYLIGHT_ADDRESS unset and no local cluster "
        f"({path} missing): `raylightctl up` starts one",
    )


# Every member of a TLS cluster holds one certificate, named for the cluster rather than a host
# (runtime/rpc/certificates.h); a client checks the head against that name and the cluster's CA.
_CLUSTER_SERVER_NAME = "raylight-cluster"


def _default_tls_ca(tls_ca: str | os.PathLike[str] | None, address: str) -> bytes | None:
    """The CA certificate to verify the head with: tls_ca, RAYLIGHT_TLS_CA, else the local
    cluster's (<state>/tls/ca.pem, which `raylightctl up --tls` made) when `address` is the
    local cluster's; None: plaintext."""
    if tls_ca is not None:
        return Path(tls_ca).read_bytes()
    if env := os.environ.get("RAYLIGHT_TLS_CA"):
        return Path(env).read_bytes()
    local = _state_dir() / "tls" / "ca.pem"
    address_file = _state_dir() / "address"
    if local.exists() and address_file.exists() and address_file.read_text().strip() == address:
        return local.read_bytes()
    return None


def _default_token(token: str | None, token_file: str | os.PathLike[str] | None) -> str:
    if token is not None:
        return token
    if token_file is not None:
        return Path(token_file).read_text().strip()
    if env := os.environ.get("RAYLIGHT_TOKEN"):
        return env
    path = _state_dir() / "token"  # what `raylightctl up` made
    return path.read_text().strip() if path.exists() else ""


def sample_job(
    model: str,
    positive: Conditioning | str,
    negative: Conditioning | str | None = None,
    *,
    text_encoder: str = "",
    latent: torch.Tensor | None = None,
    noise_mask: torch.Tensor | None = None,
    width: int = 832,
    height: int = 480,
    frames: int = 0,
    steps: int = 20,
    cfg: float = 5.0,
    sampler: str = "euler",
    scheduler: str = "simple",
    shift: float = 0.0,
    seed: int = 0,
    denoise: float = 1.0,
    add_noise: bool = True,
    start_step: int = 0,
    end_step: int = 10000,
    return_with_leftover_noise: bool = False,
    sigmas: Sequence[float] | None = None,
    low_noise_model: str = "",
    boundary: float = 0.0,
    loras: Sequence[tuple[str, float]] = (),
    low_noise_loras: Sequence[tuple[str, float]] = (),
    dtype: str = "auto",
    compute: str = "default",
    attention: str = "default",
    placement: str = "auto",
    swap_budget: float = 0.0,
    ulysses: int = 1,
    ring: int = 1,
    cfg_parallel: int = 1,
    dp: int = 1,
    preview_every: int = 0,
    cpu: bool = False,
    output: str = "latent",
    vae: str = "",
    fps: float = 0.0,
    crf: int | None = None,
    image: bytes = b"",
    clip_vision: str = "",
    end_image: bytes = b"",
    cache: str = "",
    cache_threshold: float = 0.0,
    cache_coefficients: Sequence[float] = (),
    cache_retention_steps: bool | None = None,
    cache_max_skips: int = 0,
    cache_retention_ratio: float | None = None,
    cache_mag_ratios: Sequence[float] = (),
    cache_start_percent: float | None = None,
    cache_end_percent: float | None = None,
) -> Any:
    """A raylight.v1.SampleJob from ComfyUI-style arguments (KSampler and KSamplerAdvanced).

    `latent` is a ComfyUI LATENT (the VAE's space); without one the job starts from zeros of
    width x height x frames (frames 0: the model's default, 81 for Wan, one image for Flux and
    Qwen-Image). `noise_mask` is the LATENT's noise mask (1 where sampled, 0 where
    the latent is kept: inpainting, Wan 2.2 TI2V's start image). Conditioning is a dict of
    tensors or safetensors bytes. `loras`: (file under the model roots, strength) pairs merged
    into the model at load, in order; `low_noise_loras` into the low-noise expert. A `str`
    positive or negative is a prompt the cluster encodes (with `text_encoder`, a umT5 file under
    the model roots; empty: the one in a root's text_encoders/); with a prompt and no negative,
    Wan's default negative prompt is used. `output` decodes the result on the cluster besides
    the latent: "video" (MP4; one frame: PNG), "webp", "frames" (ComfyUI's IMAGE safetensors),
    by `vae` (a file under the model roots; empty: the Wan VAE in a root's vae/), at `fps` (0: the
    model's) and H.264 quality `crf` (None: 19). With a prompt, `image` is the start image (PNG
    or JPEG bytes), encoded on the cluster by the VAE: for I2V models with `clip_vision` (empty:
    the CLIP vision tower in a root's clip_vision/), and `end_image` for FLF2V; for Wan 2.2
    TI2V-5B as the starting latent's first frame (then no `latent`). `cache="teacache"` reuses the
    blocks' work across steps (TeaCache as its authors run Wan 2.1 and Flux.1-dev:
    `cache_threshold` 0 takes their threshold for the model, empty `cache_coefficients` their
    polynomial; `cache_retention_steps` Wan's use_ret_steps, None their default, True);
    `cache="magcache"` by MagCache's calibrated
    schedule (its authors' Wan 2.1 ratios: `cache_threshold` 0 takes their 0.12,
    `cache_max_skips` 0 their 2, `cache_retention_ratio` None their 0.2, empty
    `cache_mag_ratios` their curve for the model); `cache="easycache"` reuses whole steps as
    ComfyUI's EasyCache node does (`cache_threshold` 0 takes its 0.2, `cache_start_percent` and
    `cache_end_percent` None its 0.15 and 0.95; every family). `compute="fp8"` runs the model's
    linear layers as fp8 e4m3 GEMMs (weights quantised per output channel at load and kept
    resident, activations per token); `attention="fp8"` the self-attention as cuDNN's fp8 kernel
    (Hopper or newer GPUs, one process or Ulysses; lossy).
    """
    if noise_mask is not None and latent is None:
        raise ValueError("noise_mask: given without a latent")
    job = diffusion_pb2.SampleJob(
        model=model,
        dtype=dtype,
        compute=compute,
        attention=attention,
        placement=placement,
        swap_budget=swap_budget,
        steps=steps,
        cfg=cfg,
        sampler=sampler,
        scheduler=scheduler,
        shift=shift,
        seed=seed,
        denoise=denoise,
        start_step=start_step,
        end_step=end_step,
        return_with_leftover_noise=return_with_leftover_noise,
        add_noise=add_noise,
        low_noise_model=low_noise_model,
        boundary=boundary,
        preview_every=preview_every,
        cpu=cpu,
        mesh=diffusion_pb2.MeshSpec(dp=dp, cfg=cfg_parallel, ring=ring, ulysses=ulysses),
    )
    if isinstance(positive, str):
        job.prompt = positive
    else:
        job.positive = conditioning_to_bytes(positive)
    if isinstance(negative, str):
        job.negative_prompt = negative
    elif negative is not None:
        job.negative = conditioning_to_bytes(negative)
    job.text_encoder = text_encoder
    job.output, job.vae, job.fps = output, vae, fps
    job.image, job.end_image, job.clip_vision = image, end_image, clip_vision
    if crf is not None:
        job.crf = crf
    if latent is not None:
        job.latent = latent_to_bytes(latent, noise_mask)
    else:
        job.width, job.height, job.frames = width, height, frames
    if sigmas:
        job.sigmas.extend(float(s) for s in sigmas)
    for name, strength in loras:
        job.loras.add(name=name, strength=strength)
    for name, strength in low_noise_loras:
        job.low_noise_loras.add(name=name, strength=strength)
    if cache:
        job.cache.kind = cache
        job.cache.threshold = cache_threshold
        job.cache.coefficients.extend(float(c) for c in cache_coefficients)
        if cache == "teacache" and cache_retention_steps is not None:
            job.cache.retention_steps = cache_retention_steps
        job.cache.max_skips = cache_max_skips
        job.cache.mag_ratios.extend(float(r) for r in cache_mag_ratios)
        if cache_retention_ratio is not None:
            job.cache.retention_ratio = cache_retention_ratio
        if cache_start_percent is not None:
            job.cache.start_percent = cache_start_percent
        if cache_end_percent is not None:
            job.cache.end_percent = cache_end_percent
    return job


class Client:
    """A connection to a cluster's head. Thread-safe; close() (or `with`) releases it.

    address: host:port (default: RAYLIGHT_ADDRESS, else the local cluster `raylightctl up`
    started); token: the cluster token (default: token_file, RAYLIGHT_TOKEN, else the local
    cluster's); tls_ca: the cluster's CA certificate (PEM) for a head that serves TLS (default:
    RAYLIGHT_TLS_CA, else the local cluster's when address is the local one); timeout: seconds
    for each unary call.
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        *,
        token_file: str | os.PathLike[str] | None = None,
        tls_ca: str | os.PathLike[str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.address = address or _default_address()
        self._token = _default_token(token, token_file)
        self._timeout = timeout
        self._options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", _MAX_RESULT_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ]
        self._credentials: grpc.ChannelCredentials | None = None
        if (ca := _default_tls_ca(tls_ca, self.address)) is not None:
            self._options.append(("grpc.ssl_target_name_override", _CLUSTER_SERVER_NAME))
            self._credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        self._channel = self._new_channel(self.address)
        self._jobs = jobs_pb2_grpc.JobsStub(self._channel)  # type: ignore[no-untyped-call]
        self._head = head_pb2_grpc.HeadStub(self._channel)  # type: ignore[no-untyped-call]
        self._metadata = [("authorization", f"Bearer {self._token}")] if self._token else []

    def _new_channel(self, address: str) -> grpc.Channel:
        """A channel to the head or a worker, over TLS when the cluster serves it."""
        if self._credentials is None:
            return grpc.insecure_channel(address, options=self._options)
        return grpc.secure_channel(address, self._credentials, options=self._options)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _unary(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            # wait_for_ready: a head that is restarting is waited for, up to the timeout.
            return method(
                request, timeout=self._timeout, metadata=self._metadata, wait_for_ready=True
            )
        except grpc.RpcError as error:
            raise from_rpc(error) from None

    # ---- jobs ----

    def submit(
        self, job: Any, *, priority: int = 0, max_retries: int = 0, request_id: str | None = None
    ) -> Any:
        """Queues a SampleJob (see sample_job); returns its JobInfo. Bad input raises with the
        field named, and nothing is queued. A retried submit with the same request_id (one is
        made when none is given) never queues twice."""
        spec = jobs_pb2.JobSpec(
            kind=SAMPLE_JOB_KIND,
            payload=job.SerializeToString(),
            priority=priority,
            max_retries=max_retries,
        )
        request = jobs_pb2.SubmitJobRequest(spec=spec, request_id=request_id or uuid.uuid4().hex)
        return self._unary(self._jobs.SubmitJob, request)

    def get(self, job_id: str) -> Any:
        return self._unary(self._jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id))

    def list_jobs(self, states: Sequence[Any] = (), limit: int = 0) -> list[Any]:
        """Jobs, newest first; `states` (raylight.v1.JobState values) empty: all."""
        response = self._unary(
            self._jobs.ListJobs, jobs_pb2.ListJobsRequest(states=list(states), limit=limit)
        )
        return list(response.jobs)

    def cancel(self, job_id: str) -> Any:
        return self._unary(self._jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=job_id))

    def watch(self, job_id: str, timeout: float | None = None) -> Iterator[Event]:
        """The job's events until it ends: its state first, then progress and state changes."""
        try:
            stream = self._jobs.WatchJob(
                jobs_pb2.WatchJobRequest(job_id=job_id),
                timeout=timeout,
                metadata=self._metadata,
                wait_for_ready=True,
            )
            for event in stream:
                if event.HasField("info"):
                    yield StateChange(job_id, event.info)
                    if event.info.state in _ENDED:
                        stream.cancel()
                        return
                elif event.HasField("progress"):
                    p = diffusion_pb2.SampleProgress.FromString(event.progress)
                    yield Progress(
                        job_id,
                        p.step,
                        p.total,
                        p.sigma,
                        p.elapsed_seconds,
                        p.preview_png,
                        p.message,
                    )
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED:
                return
            raise from_rpc(error) from None

    def wait(self, job_id: str, timeout: float | None = None) -> Any:
        """Blocks until the job ends; returns its final JobInfo."""
        info = None
        for event in self.watch(job_id, timeout):
            if isinstance(event, StateChange):
                info = event.info
        return info if info is not None and info.state in _ENDED else self.get(job_id)

    def result(self, job_id: str) -> SampleResult:
        """A finished sample job's LATENT and preview (FAILED_PRECONDITION until it succeeded)."""
        response = self._unary(self._jobs.GetJobResult, jobs_pb2.GetJobResultRequest(job_id=job_id))
        r = diffusion_pb2.SampleResult.FromString(response.result)
        return SampleResult(
            latent_from_bytes(r.latent),
            r.preview_png,
            r.model_was_resident,
            r.load_seconds,
            r.sample_seconds,
            r.placement,
            r.video,
            r.video_format,
            r.decode_seconds,
            r.model_calls,
            r.calls_reused,
        )

    def sample(
        self,
        model: str,
        positive: Conditioning,
        negative: Conditioning | None = None,
        *,
        on_progress: Callable[[Progress], None] | None = None,
        priority: int = 0,
        timeout: float | None = None,
        **settings: Any,
    ) -> torch.Tensor:
        """Submits a sample job (sample_job's arguments), follows it and returns its LATENT.

        A failed or cancelled job raises JobFailed with its error."""
        info = self.submit(sample_job(model, positive, negative, **settings), priority=priority)
        return self.follow(info.job_id, on_progress, timeout).latent

    def follow(
        self,
        job_id: str,
        on_progress: Callable[[Progress], None] | None = None,
        timeout: float | None = None,
    ) -> SampleResult:
        """Follows a submitted sample job to its end and returns its result; a failed or
        cancelled job raises JobFailed (code ABORTED or CANCELLED) with its error."""
        final = None
        for event in self.watch(job_id, timeout):
            if isinstance(event, Progress) and on_progress is not None:
                on_progress(event)
            elif isinstance(event, StateChange):
                final = event.info
        if final is None or final.state not in _ENDED:
            final = self.get(job_id)
        if final.state == jobs_pb2.JOB_CANCELLED:
            raise JobFailed(job_id, grpc.StatusCode.CANCELLED, final.error or "cancelled")
        if final.state != jobs_pb2.JOB_SUCCEEDED:
            raise JobFailed(job_id, grpc.StatusCode.ABORTED, final.error)
        return self.result(job_id)

    # ---- the cluster ----

    def status(self) -> Any:
        """The head's ClusterState: nodes, GPUs, workers, actors, groups."""
        return self._unary(self._head.GetClusterState, head_pb2.GetClusterStateRequest())

    def describe(self) -> SamplingOptions:
        """The models in the head's model roots, and the samplers, schedulers, dtypes and
        placements a sample job takes (as `raylightctl models available` lists them)."""
        response = self._unary(
            self._jobs.DescribeJobKind, jobs_pb2.DescribeJobKindRequest(kind=SAMPLE_JOB_KIND)
        )
        d = diffusion_pb2.SampleKindDescription.FromString(response.description)
        return SamplingOptions(
            [ModelFile(m.name, m.bytes, m.files, m.lora, m.family) for m in d.models],
            list(d.samplers),
            list(d.schedulers),
            list(d.dtypes),
            list(d.placements),
        )

    def models(self) -> list[LoadedModel]:
        """The models every live DiffusionActor holds (as `raylightctl models list`)."""
        out: list[LoadedModel] = []
        for actor in self.status().actors:
            if actor.state != common_pb2.ALIVE or actor.spec.class_name != DIFFUSION_ACTOR:
                continue
            with self._new_channel(actor.address) as channel:
                worker = worker_pb2_grpc.WorkerStub(channel)  # type: ignore[no-untyped-call]
                header = common_pb2.CallHeader(
                    actor_id=actor.spec.actor_id,
                    method="list_models",
                    caller_id=f"python-{uuid.uuid4().hex[:8]}",
                )
                request = worker_pb2.CallRequest(
                    header=header, args=diffusion_pb2.ListModelsRequest().SerializeToString()
                )
                response = self._unary(worker.Call, request)
            listed = diffusion_pb2.ListModelsResponse.FromString(response.result)
            out += [
                LoadedModel(
                    actor.worker_id,
                    m.path,
                    m.variant,
                    m.dtype,
                    m.placement,
                    m.device_bytes,
                    m.host_bytes,
                )
                for m in listed.models
            ]
        return out
