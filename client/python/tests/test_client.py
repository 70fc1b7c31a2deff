"""The Python client against a real local cluster (raylightctl up: a head and a node with two
CPU workers, as separate processes on a loopback port), with a fresh tiny random Wan per run.

RAYLIGHT_BIN_DIR names the built binaries (ctest sets it).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from safetensors.torch import load_file

import raylight
from raylight._proto.raylight.v1 import jobs_pb2

BIN = Path(os.environ.get("RAYLIGHT_BIN_DIR", Path(__file__).parents[3] / "build" / "bin"))


@dataclass
class LocalCluster:
    address: str
    token: str
    root: Path
    state: Path
    seed: int

    def client(self, **kwargs: object) -> raylight.Client:
        settings: dict[str, Any] = {"token": self.token, "tls_ca": self.state / "tls" / "ca.pem"}
        return raylight.Client(self.address, **(settings | kwargs))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("cluster")
    root, state = base / "models", base / "state"
    root.mkdir()
    seed = random.randrange(100000)
    _run(
        BIN / "raylight-make-checkpoint",
        "--preset=tiny-t2v",
        "--layers=2",
        "--dtype=bf16",
        f"--seed={seed}",
        f"--out={root / 'tiny.safetensors'}",
    )
    for name, tokens in (("positive", 7), ("negative", 3)):
        _run(
            BIN / "raylight-make-conditioning",
            "--preset=tiny-t2v",
            f"--tokens={tokens}",
            f"--seed={seed + tokens}",
            f"--out={base / (name + '.safetensors')}",
        )
    port = _free_port()
    ctl = [str(BIN / "raylightctl"), f"--state-dir={state}"]
    # Over mutual TLS with the cluster's own CA: every call below is a TLS client's.
    _run(*ctl, "up", f"--port={port}", "--num-cpu-workers=2", f"--model-root={root}", "--tls")
    try:
        yield LocalCluster(
            f"127.0.0.1:{port}", (state / "token").read_text().strip(), base, state, seed
        )
    finally:
        subprocess.run([*ctl, "down"], capture_output=True, timeout=60)


def _conditioning(cluster: LocalCluster, name: str) -> dict[str, torch.Tensor]:
    return load_file(cluster.root / f"{name}.safetensors")


SETTINGS: dict[str, Any] = dict(
    width=80, height=48, frames=9, steps=4, cfg=3.0, sampler="euler_ancestral"
)


def _reference(cluster: LocalCluster, seed: int) -> torch.Tensor:
    out = cluster.root / f"reference-{seed}.latent"
    _run(
        BIN / "raylight-sample-local",
        f"--checkpoint={cluster.root / 'models/tiny.safetensors'}",
        f"--cond={cluster.root / 'positive.safetensors'}",
        f"--negative={cluster.root / 'negative.safetensors'}",
        "--width=80",
        "--height=48",
        "--frames=9",
        "--steps=4",
        "--cfg=3.0",
        "--sampler=euler_ancestral",
        f"--seed={seed}",
        f"--out={out}",
    )
    return raylight.latent_from_bytes(out.read_bytes())


def test_sample_returns_the_single_process_latent_with_progress(cluster: LocalCluster) -> None:
    seed = random.randrange(1 << 31)
    events: list[raylight.Progress] = []
    with cluster.client() as client:
        latent = client.sample(
            "tiny.safetensors",
            _conditioning(cluster, "positive"),
            _conditioning(cluster, "negative"),
            seed=seed,
            ulysses=2,
            preview_every=2,
            on_progress=events.append,
            **SETTINGS,
        )
    assert latent.shape == (1, 16, 3, 6, 10)
    assert (latent - _reference(cluster, seed)).abs().max().item() < 1e-4
    steps = [e.step for e in events if e.step > 0]
    assert steps == [1, 2, 3, 4]
    assert all(e.total == 4 for e in events if e.step > 0)
    assert any(e.preview_png.startswith(b"\x89PNG") for e in events)
    assert any(e.message for e in events)  # the model's load or residency


def test_submit_watch_result_and_a_latent_in(cluster: LocalCluster) -> None:
    """A LATENT tensor in (vid2vid), the job's states and its result through the parts."""
    start = torch.randn(1, 16, 3, 6, 10)
    with cluster.client() as client:
        job = raylight.sample_job(
            "tiny.safetensors",
            _conditioning(cluster, "positive"),
            open(cluster.root / "negative.safetensors", "rb").read(),
            latent=start,
            steps=3,
            cfg=2.0,
            denoise=0.5,
            seed=5,
        )
        info = client.submit(job)
        states = [
            e.info.state for e in client.watch(info.job_id) if isinstance(e, raylight.StateChange)
        ]
        assert states[-1] == jobs_pb2.JOB_SUCCEEDED
        result = client.result(info.job_id)
        assert result.latent.shape == (1, 16, 3, 6, 10)
        assert not torch.equal(result.latent, start)
        assert client.get(info.job_id).state == jobs_pb2.JOB_SUCCEEDED
        assert info.job_id in [j.job_id for j in client.list_jobs(limit=10)]
        assert client.wait(info.job_id).state == jobs_pb2.JOB_SUCCEEDED


def test_cancel_stops_a_running_job(cluster: LocalCluster) -> None:
    with cluster.client() as client:
        job = raylight.sample_job(
            "tiny.safetensors",
            _conditioning(cluster, "positive"),
            _conditioning(cluster, "negative"),
            width=160,
            height=96,
            frames=17,
            steps=1000,
            cfg=3.0,
        )
        info = client.submit(job)
        running = threading.Event()

        def follow() -> None:
            for event in client.watch(info.job_id):
                if isinstance(event, raylight.Progress) and event.step > 0:
                    running.set()

        watcher = threading.Thread(target=follow)
        watcher.start()
        assert running.wait(60)
        client.cancel(info.job_id)
        watcher.join(60)
        assert client.wait(info.job_id, timeout=60).state == jobs_pb2.JOB_CANCELLED
        with pytest.raises(raylight.RaylightError) as error:
            client.result(info.job_id)
        assert error.value.code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("settings", "field", "code"),
    [
        ({"steps": 0}, "steps", grpc.StatusCode.INVALID_ARGUMENT),
        ({"sampler": "nope"}, "sampler", grpc.StatusCode.INVALID_ARGUMENT),
        ({"frames": 8}, "frames", grpc.StatusCode.INVALID_ARGUMENT),
        ({"end_step": 20000}, "end_step", grpc.StatusCode.INVALID_ARGUMENT),
        ({"sigmas": [0.5, 0.9, 0.0]}, "sigmas[1]", grpc.StatusCode.INVALID_ARGUMENT),
        ({"model": "nope.safetensors"}, "model", grpc.StatusCode.NOT_FOUND),
    ],
)
def test_bad_input_raises_naming_the_field(
    cluster: LocalCluster, settings: dict[str, Any], field: str, code: grpc.StatusCode
) -> None:
    arguments: dict[str, Any] = {**SETTINGS, **settings}
    model = str(arguments.pop("model", "tiny.safetensors"))
    with cluster.client() as client:
        before = len(client.list_jobs())
        with pytest.raises(raylight.RaylightError) as error:
            client.sample(
                model,
                _conditioning(cluster, "positive"),
                _conditioning(cluster, "negative"),
                **arguments,
            )
        assert error.value.code == code
        assert error.value.field == field, error.value.message
        assert len(client.list_jobs()) == before  # nothing queued


def test_a_plaintext_client_gets_nothing_from_a_tls_cluster(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAYLIGHT_TLS_CA", raising=False)
    monkeypatch.setenv("RAYLIGHT_STATE_DIR", str(cluster.root / "elsewhere"))
    with raylight.Client(cluster.address, token=cluster.token, timeout=3) as client:
        with pytest.raises(raylight.RaylightError) as error:
            client.status()
        assert error.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_a_wrong_token_is_refused(cluster: LocalCluster) -> None:
    with cluster.client(token="wrong", timeout=10) as client:
        with pytest.raises(raylight.RaylightError) as error:
            client.status()
        assert error.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_status_models_and_the_local_cluster_defaults(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without an address or token the client finds the local cluster `raylightctl up` started.
    monkeypatch.setenv("RAYLIGHT_STATE_DIR", str(cluster.state))
    monkeypatch.delenv("RAYLIGHT_ADDRESS", raising=False)
    monkeypatch.delenv("RAYLIGHT_TOKEN", raising=False)
    with raylight.Client() as client:
        assert len(client.status().workers) == 2
        client.sample(
            "tiny.safetensors", _conditioning(cluster, "positive"), None, **{**SETTINGS, "cfg": 1.0}
        )
        models = client.models()
        assert {Path(m.path).name for m in models} == {"tiny.safetensors"}
        assert all(m.variant == "tiny-t2v" for m in models)


def test_latents_round_trip_as_comfyui_files() -> None:
    latent = torch.randn(2, 16, 3, 4, 5)
    assert torch.equal(raylight.latent_from_bytes(raylight.latent_to_bytes(latent)), latent)
    from safetensors.torch import save

    old = save({"latent_tensor": latent})  # ComfyUI's old format: scaled on load
    assert torch.allclose(raylight.latent_from_bytes(old), latent / 0.18215)
    with pytest.raises(ValueError, match="latent_tensor"):
        raylight.latent_from_bytes(save({"x": latent}))
    from safetensors.torch import load

    mask = torch.rand(1, 1, 3, 4, 5)
    masked = load(raylight.latent_to_bytes(latent, mask))
    assert torch.equal(masked["noise_mask"], mask)
    assert torch.equal(masked["latent_tensor"], latent)
    with pytest.raises(ValueError, match="noise_mask"):
        raylight.sample_job("m", {"text": torch.zeros(2, 4)}, noise_mask=mask)


def test_decoded_outputs_travel_in_the_job() -> None:
    job = raylight.sample_job(
        "m", "a fox", output="video", vae="vae/wan.safetensors", fps=24, crf=0
    )
    assert (job.output, job.vae, job.fps, job.crf) == ("video", "vae/wan.safetensors", 24.0, 0)
    assert job.HasField("crf")
    plain = raylight.sample_job("m", "a fox")
    assert plain.output == "latent" and not plain.HasField("crf")
    i2v = raylight.sample_job(
        "m",
        "a fox",
        image=b"\x89PNG",
        end_image=b"\xff\xd8\xff",
        clip_vision="clip_vision/h.safetensors",
    )
    assert (i2v.image, i2v.clip_vision) == (b"\x89PNG", "clip_vision/h.safetensors")
    assert i2v.end_image == b"\xff\xd8\xff"


def test_step_caching_travels_in_the_job() -> None:
    job = raylight.sample_job(
        "m", "a fox", cache="teacache", cache_threshold=0.2, cache_coefficients=[1.0, 0.0]
    )
    assert (job.cache.kind, job.cache.threshold) == ("teacache", 0.2)
    # Wan's retention steps unset unless given (the head's default is theirs; other families
    # refuse them).
    assert list(job.cache.coefficients) == [1.0, 0.0] and not job.cache.HasField("retention_steps")
    plain = raylight.sample_job("m", "a fox", cache="teacache", cache_retention_steps=False)
    assert plain.cache.HasField("retention_steps") and not plain.cache.retention_steps
    assert not raylight.sample_job("m", "a fox").HasField("cache")
    mag = raylight.sample_job(
        "m", "a fox", cache="magcache", cache_max_skips=4, cache_mag_ratios=[1.0, 0.99]
    )
    assert (mag.cache.kind, mag.cache.max_skips, list(mag.cache.mag_ratios)) == (
        "magcache",
        4,
        [1.0, 0.99],
    )
    # TeaCache's retention steps stay unset (the head refuses them on MagCache), and so does an
    # unset retention ratio (the authors' 0.2).
    assert not mag.cache.HasField("retention_steps") and not mag.cache.HasField("retention_ratio")


def test_easycache_travels_in_the_job() -> None:
    easy = raylight.sample_job(
        "m", "a fox", cache="easycache", cache_threshold=0.1, cache_start_percent=0.3
    )
    assert (easy.cache.kind, easy.cache.threshold, easy.cache.start_percent) == (
        "easycache",
        0.1,
        0.3,
    )
    assert not easy.cache.HasField("end_percent")  # unset: the node's 0.95


def test_fp8_compute_travels_in_the_job() -> None:
    assert raylight.sample_job("m", "a fox", compute="fp8").compute == "fp8"
    assert raylight.sample_job("m", "a fox").compute == "default"


def test_fp8_attention_travels_in_the_job() -> None:
    assert raylight.sample_job("m", "a fox", attention="fp8").attention == "fp8"
    assert raylight.sample_job("m", "a fox").attention == "default"


def test_prompts_travel_as_text() -> None:
    job = raylight.sample_job("m", "a red fox", "blurry", text_encoder="umt5.safetensors")
    assert (job.prompt, job.negative_prompt, job.text_encoder) == (
        "a red fox",
        "blurry",
        "umt5.safetensors",
    )
    assert not job.positive and not job.negative
    default_negative = raylight.sample_job("m", "a red fox")
    assert not default_negative.HasField("negative_prompt")
    mixed = raylight.sample_job("m", {"text": torch.zeros(2, 4)}, "blurry")
    assert mixed.positive and not mixed.prompt and mixed.negative_prompt == "blurry"


def test_errors_name_their_field() -> None:
    assert raylight.errors.field_of("steps: 0 is outside [1, 10000]") == "steps"
    assert raylight.errors.field_of("sigmas[1]: 0.9 does not descend") == "sigmas[1]"
    assert raylight.errors.field_of("job job-1 cancelled") is None


def test_a_request_id_names_one_submission(cluster: LocalCluster) -> None:
    """Issue #23: a retried submit is answered with its job; the same id for another job, or an
    id past 256 bytes, is refused naming request_id."""
    settings: dict[str, Any] = {**SETTINGS, "steps": 1}
    positive, negative = _conditioning(cluster, "positive"), _conditioning(cluster, "negative")
    job = raylight.sample_job("tiny.safetensors", positive, negative, **settings)
    other = raylight.sample_job("tiny.safetensors", positive, negative, **{**settings, "seed": 9})
    request_id = f"python-test-{random.randrange(1 << 40)}"
    with cluster.client() as client:
        first = client.submit(job, request_id=request_id)
        assert client.submit(job, request_id=request_id).job_id == first.job_id
        with pytest.raises(raylight.RaylightError) as reused:
            client.submit(other, request_id=request_id)
        assert reused.value.code == grpc.StatusCode.ALREADY_EXISTS
        assert reused.value.field == "request_id"
        with pytest.raises(raylight.RaylightError) as long_id:
            client.submit(job, request_id="x" * 10000)
        assert long_id.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert long_id.value.field == "request_id"
        assert client.wait(first.job_id, timeout=60).state == jobs_pb2.JOB_SUCCEEDED


def test_describe_lists_the_models_in_the_roots_and_the_samplers(cluster: LocalCluster) -> None:
    models = cluster.root / "models"
    sharded = models / "sharded"
    sharded.mkdir()
    for i in (1, 2):
        (sharded / f"model-0000{i}-of-00002.safetensors").write_bytes(b"x" * (10 * i))
    (models / "notes.txt").write_text("not a model")
    (models / "escape.safetensors").symlink_to(cluster.root / "positive.safetensors")
    try:
        with cluster.client() as client:
            options = client.describe()
    finally:
        shutil.rmtree(sharded)
        (models / "notes.txt").unlink()
        (models / "escape.safetensors").unlink()
    by_name = {m.name: m for m in options.models}
    assert sorted(by_name) == ["sharded", "tiny.safetensors"]  # the symlink leaves the root
    assert (by_name["sharded"].files, by_name["sharded"].bytes) == (2, 30)
    assert by_name["tiny.safetensors"].bytes == (models / "tiny.safetensors").stat().st_size
    assert by_name["tiny.safetensors"].family == "wan"  # read from its header by the head
    assert by_name["sharded"].family == ""  # directories of shards are not inspected
    assert options.samplers[:3] == ["euler", "euler_ancestral", "heun"]
    assert "uni_pc" in options.samplers and "beta" in options.schedulers
    assert "f32" in options.dtypes and "fsdp" in options.placements
