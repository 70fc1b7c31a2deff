"""A real ComfyUI 0.3.64 drives the cluster through the node pack (issue #22).

ComfyUI's source (../shared/third_party, unpacked by run_comfyui_test.sh, its requirements
installed by tools/install_deps.sh) runs headless on the CPU as its own process on a loopback
port, with client/comfyui linked into its custom_nodes; a local cluster runs beside it
(`raylightctl up`: head, node, CPU workers as processes). Workflows go in through ComfyUI's HTTP
API (POST /prompt, /history, /view, the websocket for progress). The model is a fresh random
Wan in ComfyUI's key spelling with head size 128 (ComfyUI takes Wan's head count as dim / 128),
stored in the folder that is both ComfyUI's diffusion_models and the cluster's model root, so
ComfyUI's UNETLoader and the cluster load the same file.

Checked: Raylight KSampler's LATENT equals ComfyUI's own KSampler's (f32, relative L2 < 1e-5)
for the samplers and schedulers listed, a prompt longer than 512 tokens included; the chained
KSamplerAdvanced pattern of Wan 2.2 A14B on ComfyUI equals the same chain on the cluster and the
cluster's one-job form; a .latent from `raylightctl sample` loaded by ComfyUI's LoadLatent equals
ComfyUI's result; invalid inputs come back as ComfyUI node errors naming the input, and the
cluster serves the next prompt.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load, save_file

import raylight

BIN = Path(os.environ["RAYLIGHT_BIN_DIR"])
COMFYUI = Path(os.environ["COMFYUI_DIR"])  # the unpacked ComfyUI source
HERE = Path(__file__).resolve().parent
NODE_PACK = HERE.parents[1] / "client" / "comfyui"

# The random Wan: head size 128 (ComfyUI's rule), two blocks, umT5's width.
DIM, FFN, LAYERS, TEXT_DIM, FREQ_DIM, CHANNELS = 256, 512, 2, 4096, 256, 16
# 64x48 pixels, 5 frames: a [1, 16, 2, 6, 8] latent.
WIDTH, HEIGHT, FRAMES = 64, 48, 5
SHIFT = 8.0
CFG = 3.5
TOLERANCE = 1e-5
# EasyCache's reuse threshold in the node test: one that reuses steps of the test model.
EASYCACHE_THRESHOLD = 1.0

SAMPLERS = ["euler", "euler_ancestral", "uni_pc", "dpmpp_2m_sde", "res_multistep"]
SCHEDULES = [("simple", 6), ("beta", 6), ("beta", 7), ("karras", 6)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_wan(path: Path, seed: int, i2v: bool = False, channels: int = CHANNELS) -> None:
    """A random Wan 2.1 T2V (or I2V; or with 48 channels Wan 2.2 TI2V) in ComfyUI's spelling
    (model.diffusion_model.*), f32."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    t: dict[str, torch.Tensor] = {
        "patch_embedding.weight": w(DIM, channels + (20 if i2v else 0), 1, 2, 2),
        "patch_embedding.bias": w(DIM),
        "text_embedding.0.weight": w(DIM, TEXT_DIM, scale=0.02),
        "text_embedding.0.bias": w(DIM),
        "text_embedding.2.weight": w(DIM, DIM),
        "text_embedding.2.bias": w(DIM),
        "time_embedding.0.weight": w(DIM, FREQ_DIM),
        "time_embedding.0.bias": w(DIM),
        "time_embedding.2.weight": w(DIM, DIM),
        "time_embedding.2.bias": w(DIM),
        "time_projection.1.weight": w(6 * DIM, DIM),
        "time_projection.1.bias": w(6 * DIM),
        "head.modulation": w(1, 2, DIM),
        "head.head.weight": w(channels * 4, DIM),
        "head.head.bias": w(channels * 4),
    }
    if i2v:  # CLIP vision's 1280 features -> the model (MLPProj)
        t |= {
            "img_emb.proj.0.weight": 1 + w(1280),
            "img_emb.proj.0.bias": w(1280),
            "img_emb.proj.1.weight": w(1280, 1280, scale=0.03),
            "img_emb.proj.1.bias": w(1280),
            "img_emb.proj.3.weight": w(DIM, 1280, scale=0.03),
            "img_emb.proj.3.bias": w(DIM),
            "img_emb.proj.4.weight": 1 + w(DIM),
            "img_emb.proj.4.bias": w(DIM),
        }
    for i in range(LAYERS):
        b = f"blocks.{i}."
        if i2v:
            for proj in ("k_img", "v_img"):
                t[f"{b}cross_attn.{proj}.weight"] = w(DIM, DIM)
                t[f"{b}cross_attn.{proj}.bias"] = w(DIM)
            t[f"{b}cross_attn.norm_k_img.weight"] = 1 + w(DIM)
        for attn in ("self_attn", "cross_attn"):
            for proj in ("q", "k", "v", "o"):
                t[f"{b}{attn}.{proj}.weight"] = w(DIM, DIM)
                t[f"{b}{attn}.{proj}.bias"] = w(DIM)
            t[f"{b}{attn}.norm_q.weight"] = 1 + w(DIM)
            t[f"{b}{attn}.norm_k.weight"] = 1 + w(DIM)
        t[f"{b}norm3.weight"] = 1 + w(DIM)
        t[f"{b}norm3.bias"] = w(DIM)
        t[f"{b}ffn.0.weight"] = w(FFN, DIM)
        t[f"{b}ffn.0.bias"] = w(FFN)
        t[f"{b}ffn.2.weight"] = w(DIM, FFN)
        t[f"{b}ffn.2.bias"] = w(DIM)
        t[f"{b}modulation"] = w(1, 6, DIM)
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in t.items()}, str(path))


# Wan's module names in diffusers' spelling (the test's own table: what a PEFT-trained LoRA
# names), for the modules the random LoRAs patch.
DIFFUSERS_NAMES = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
}


def random_loras(loras: Path, seed: int) -> None:
    """Three random LoRAs of the test's Wan: kohya names with alpha and diffs of a bias and of a
    norm (as distillation LoRAs carry them); ComfyUI's native names; and the native one's
    tensors again in diffusers / PEFT names (which ComfyUI 0.3.64 does not map for Wan: its
    reference is the native file)."""
    g = torch.Generator().manual_seed(seed)
    rank = 4

    def w(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    kohya: dict[str, torch.Tensor] = {}
    native: dict[str, torch.Tensor] = {}
    peft: dict[str, torch.Tensor] = {}
    for i in range(LAYERS):
        for module, diffusers in DIFFUSERS_NAMES.items():
            out_dim = FFN if module == "ffn.0" else DIM
            in_dim = FFN if module == "ffn.2" else DIM
            key = f"lora_unet_blocks_{i}_{module.replace('.', '_')}"
            kohya[f"{key}.lora_up.weight"] = w(out_dim, rank)
            kohya[f"{key}.lora_down.weight"] = w(rank, in_dim)
            kohya[f"{key}.alpha"] = torch.tensor(3.0)
            down, up = w(rank, in_dim), w(out_dim, rank)
            native[f"diffusion_model.blocks.{i}.{module}.lora_A.weight"] = down
            native[f"diffusion_model.blocks.{i}.{module}.lora_B.weight"] = up
            peft[f"transformer.blocks.{i}.{diffusers}.lora_A.weight"] = down
            peft[f"transformer.blocks.{i}.{diffusers}.lora_B.weight"] = up
    kohya["lora_unet_blocks_0_ffn_2.diff_b"] = w(DIM)
    kohya["lora_unet_blocks_1_norm3.diff"] = w(DIM)
    # No diff of a modulation table here: ComfyUI 0.3.64 maps it but leaves it unapplied (its
    # patcher patches a module's parameters only on some load paths); the cluster applies it,
    # which lora_test checks against the arithmetic.
    loras.mkdir(parents=True, exist_ok=True)
    for name, tensors in (("kohya", kohya), ("native", native), ("peft", peft)):
        save_file(tensors, str(loras / f"lora_{name}.safetensors"))


def umt5_like(path: Path, tokens: int, rows: int, seed: int) -> None:
    """A prompt as ComfyUI's umT5 hands it over: `tokens` rows of features, zeros up to `rows`
    (at least 512: it pads, and never truncates)."""
    g = torch.Generator().manual_seed(seed)
    text = torch.zeros(rows, TEXT_DIM)
    text[:tokens] = torch.randn(tokens, TEXT_DIM, generator=g) * 0.3
    save_file({"text": text}, str(path))


class ComfyUI:
    """A ComfyUI server process and its HTTP API."""

    def __init__(
        self, base: Path, port: int, log: Path, env: dict[str, str], extra: Sequence[str] = ()
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.base = base
        self.client_id = uuid.uuid4().hex
        self.poll_seconds = 0.2  # how often wait() asks /history
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            [
                str(Path(os.environ["PYTHON"])),
                str(COMFYUI / "main.py"),
                "--cpu",
                "--listen",
                "127.0.0.1",
                f"--port={port}",
                f"--base-directory={base}",
                "--database-url=sqlite:///:memory:",
                "--disable-auto-launch",
                *extra,
            ],
            cwd=COMFYUI,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while True:
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ComfyUI did not start; see {log}") from None
                time.sleep(0.5)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as response:
            body = response.read()
        is_json = response.headers.get_content_type() == "application/json"
        return json.loads(body) if is_json else body

    def submit(self, graph: dict[str, Any]) -> str:
        """POST /prompt; returns the prompt id (a validation failure raises with ComfyUI's body)."""
        request = urllib.request.Request(
            self.url + "/prompt",
            data=json.dumps({"prompt": graph, "client_id": self.client_id}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return str(json.loads(response.read())["prompt_id"])
        except urllib.error.HTTPError as error:
            raise PromptRefused(json.loads(error.read())) from None

    def wait(self, prompt_id: str, timeout: float = 900) -> dict[str, Any]:
        """The prompt's /history entry once it finished (successfully or not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id]["status"].get("completed") is not None:
                entry: dict[str, Any] = history[prompt_id]
                if entry["status"]["status_str"] in ("success", "error"):
                    return entry
            time.sleep(self.poll_seconds)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def run(self, graph: dict[str, Any]) -> dict[str, Any]:
        entry = self.wait(self.submit(graph))
        if entry["status"]["status_str"] != "success":
            raise PromptFailed(entry)
        return entry

    def latent(self, entry: dict[str, Any], node: str) -> torch.Tensor:
        """The LATENT a SaveLatent node wrote, fetched through /view."""
        saved = entry["outputs"][node]["latents"][0]
        query = urllib.parse.urlencode(
            {
                "filename": saved["filename"],
                "subfolder": saved["subfolder"],
                "type": saved["type"],
            }
        )
        tensors = load(self.get(f"/view?{query}"))
        return tensors["latent_tensor"].to(torch.float32)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class PromptRefused(Exception):
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        super().__init__(json.dumps(body)[:2000])


class PromptFailed(Exception):
    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry
        errors = [m for m in entry["status"]["messages"] if m[0] == "execution_error"]
        self.error: dict[str, Any] = errors[0][1] if errors else {}
        super().__init__(json.dumps(self.error)[:2000])


@dataclass
class Setup:
    comfy: ComfyUI
    base: Path
    models: Path
    state: Path
    address: str
    token_file: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("comfyui")
    models = base / "models" / "diffusion_models"
    models.mkdir(parents=True)
    (base / "custom_nodes").mkdir()
    (base / "input").mkdir()
    (base / "custom_nodes" / "raylight").symlink_to(NODE_PACK)
    for test_node in ("newest_noise_seed.py", "raylight_test_i2v.py"):
        shutil.copy(HERE / test_node, base / "custom_nodes" / test_node)
    seed = random.randrange(1 << 30)
    print(f"random weights and prompts: seed {seed}")
    random_wan(models / "wan_high.safetensors", seed)
    random_wan(models / "wan_low.safetensors", seed + 1)
    random_wan(models / "wan_i2v.safetensors", seed + 5, i2v=True)
    random_wan(models / "wan_ti2v.safetensors", seed + 6, channels=48)
    random_loras(base / "models" / "loras", seed + 7)
    umt5_like(base / "input" / "positive.safetensors", 11, 512, seed + 2)
    umt5_like(base / "input" / "negative.safetensors", 4, 512, seed + 3)
    umt5_like(base / "input" / "long.safetensors", 600, 600, seed + 4)

    state = base / "state"
    port = _free_port()
    ctl = [str(BIN / "raylightctl"), f"--state-dir={state}"]
    subprocess.run(
        [
            *ctl,
            "up",
            f"--port={port}",
            "--num-cpu-workers=2",
            f"--model-root={models}",
            f"--model-root={base / 'models' / 'loras'}",
            "--tls",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {**os.environ, "RAYLIGHT_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
    env.pop("RAYLIGHT_ADDRESS", None)
    env.pop("RAYLIGHT_TOKEN", None)
    comfy = ComfyUI(base, _free_port(), base / "comfyui.log", env)
    try:
        yield Setup(comfy, base, models, state, f"127.0.0.1:{port}", state / "token")
    finally:
        comfy.stop()
        subprocess.run([*ctl, "down"], capture_output=True, timeout=60)


class Graph:
    """A ComfyUI API-format prompt under construction: add() returns the node's id."""

    def __init__(self) -> None:
        self.nodes: dict[str, Any] = {}

    def add(self, class_type: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {"class_type": class_type, "inputs": inputs}
        return node_id

    @staticmethod
    def out(node_id: str, slot: int = 0) -> list[Any]:
        return [node_id, slot]


def raylight_model(g: Graph, cluster: list[Any], model: str, **inputs: Any) -> list[Any]:
    """A Raylight Model node (one rank, the test's shift; f32 on a CPU worker unless `inputs`
    say otherwise); its output."""
    defaults = dict(
        dtype="f32",
        placement="auto",
        ulysses=1,
        ring=1,
        cfg_parallel=1,
        dp=1,
        shift=SHIFT,
        cpu=True,
    )
    return g.out(g.add("RaylightModel", cluster=cluster, model=model, **(defaults | inputs)))


def common_nodes(g: Graph, setup: Setup, model: str = "wan_high.safetensors") -> dict[str, Any]:
    """Both sides' models, the prompts and the empty latent."""
    unet = g.add("UNETLoader", unet_name=model, weight_dtype="default")
    shifted = g.add("ModelSamplingSD3", model=g.out(unet), shift=SHIFT)
    cluster = g.add(
        "RaylightCluster",
        address=setup.address,
        token="",
        token_file=str(setup.token_file),
    )
    return {
        "comfy_model": g.out(shifted),
        "raylight_model": raylight_model(g, g.out(cluster), model),
        "cluster": g.out(cluster),
        "positive": g.out(g.add("RaylightLoadConditioning", conditioning="positive.safetensors")),
        "negative": g.out(g.add("RaylightLoadConditioning", conditioning="negative.safetensors")),
        "latent": g.out(
            g.add(
                "EmptyHunyuanLatentVideo",
                width=WIDTH,
                height=HEIGHT,
                length=FRAMES,
                batch_size=1,
            )
        ),
    }


def save(g: Graph, latent: list[Any], name: str) -> str:
    return g.add("SaveLatent", samples=latent, filename_prefix=f"latents/{name}")


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def expect_comfyuis_latent(
    setup: Setup, g: Graph, c: dict[str, Any], inputs: dict[str, Any], what: str
) -> None:
    """Raylight KSampler on c's cluster model and ComfyUI's KSampler on c's ComfyUI model, the
    same inputs, one prompt: their LATENTs agree."""
    ours = save(g, g.out(g.add("RaylightKSampler", model=c["raylight_model"], **inputs)), "r")
    theirs = save(g, g.out(g.add("KSampler", model=c["comfy_model"], **inputs)), "c")
    entry = setup.comfy.run(g.nodes)
    error = rel_l2(setup.comfy.latent(entry, ours), setup.comfy.latent(entry, theirs))
    print(f"{what}: relative L2 {error:.2e}")
    assert error < TOLERANCE


def ksampler_inputs(c: dict[str, Any], sampler: str, scheduler: str, steps: int, seed: int) -> Any:
    return dict(
        seed=seed,
        steps=steps,
        cfg=CFG,
        sampler_name=sampler,
        scheduler=scheduler,
        positive=c["positive"],
        negative=c["negative"],
        latent_image=c["latent"],
        denoise=1.0,
    )


def test_raylight_ksampler_equals_comfyui_ksampler(setup: Setup) -> None:
    g = Graph()
    c = common_nodes(g, setup)
    seed = random.randrange(1 << 48)
    pairs = {}
    for sampler in SAMPLERS:
        for scheduler, steps in SCHEDULES:
            name = f"{sampler}_{scheduler}_{steps}"
            inputs = ksampler_inputs(c, sampler, scheduler, steps, seed)
            ours = g.add("RaylightKSampler", model=c["raylight_model"], **inputs)
            theirs = g.add("KSampler", model=c["comfy_model"], **inputs)
            pairs[name] = (
                save(g, g.out(ours), f"r_{name}"),
                save(g, g.out(theirs), f"c_{name}"),
            )
    entry = setup.comfy.run(g.nodes)
    errors = {}
    for name, (ours, theirs) in pairs.items():
        a, b = setup.comfy.latent(entry, ours), setup.comfy.latent(entry, theirs)
        assert a.shape == b.shape == (1, CHANNELS, 2, HEIGHT // 8, WIDTH // 8), name
        errors[name] = rel_l2(a, b)
        print(f"{name}: relative L2 {errors[name]:.2e}")
    print(f"worst relative L2 over {len(pairs)} cases: {max(errors.values()):.2e}")
    assert {name: e for name, e in errors.items() if not e < TOLERANCE} == {}


def test_a_prompt_longer_than_512_tokens_is_taken_whole(setup: Setup) -> None:
    g = Graph()
    c = common_nodes(g, setup)
    c["positive"] = g.out(g.add("RaylightLoadConditioning", conditioning="long.safetensors"))
    inputs = ksampler_inputs(c, "euler", "simple", 4, random.randrange(1 << 48))
    ours = save(
        g,
        g.out(g.add("RaylightKSampler", model=c["raylight_model"], **inputs)),
        "r_long",
    )
    theirs = save(g, g.out(g.add("KSampler", model=c["comfy_model"], **inputs)), "c_long")
    entry = setup.comfy.run(g.nodes)
    error = rel_l2(setup.comfy.latent(entry, ours), setup.comfy.latent(entry, theirs))
    print(f"600-token prompt: relative L2 {error:.2e}")
    assert error < TOLERANCE


def boundary_between_steps(steps: int, switch: int) -> float:
    """A sigma boundary that falls between the schedule's sigmas `switch - 1` and `switch`
    (the simple schedule on Wan's shifted flow table: sigma(t) = s t / (1 + (s - 1) t))."""

    def sigma(i: int) -> float:
        t = (999 - int(i * 1000 / steps) + 1) / 1000
        return SHIFT * t / (1 + (SHIFT - 1) * t)

    return (sigma(switch - 1) + sigma(switch)) / 2


def test_wan22_chained_advanced_samplers_and_one_job_agree(setup: Setup) -> None:
    steps, switch, seed = 6, 4, random.randrange(1 << 48)
    g = Graph()
    c = common_nodes(g, setup, "wan_high.safetensors")
    unet_low = g.add("UNETLoader", unet_name="wan_low.safetensors", weight_dtype="default")
    comfy_low = g.out(g.add("ModelSamplingSD3", model=g.out(unet_low), shift=SHIFT))
    common = dict(
        noise_seed=seed,
        steps=steps,
        cfg=CFG,
        sampler_name="euler",
        scheduler="simple",
        positive=c["positive"],
        negative=c["negative"],
    )
    high = dict(add_noise="enable", start_at_step=0, end_at_step=switch)
    low = dict(add_noise="disable", start_at_step=switch, end_at_step=10000)
    raylight_low = raylight_model(g, c["cluster"], "wan_low.safetensors")
    outputs = {}
    for side, kind, model_high, model_low in (
        ("c", "KSamplerAdvanced", c["comfy_model"], comfy_low),
        ("r", "RaylightKSamplerAdvanced", c["raylight_model"], raylight_low),
    ):
        first = g.add(
            kind,
            model=model_high,
            latent_image=c["latent"],
            return_with_leftover_noise="enable",
            **high,
            **common,
        )
        second = g.add(
            kind,
            model=model_low,
            latent_image=g.out(first),
            return_with_leftover_noise="disable",
            **low,
            **common,
        )
        outputs[side] = save(g, g.out(second), f"{side}_chain")
    both = raylight_model(
        g,
        c["cluster"],
        "wan_high.safetensors",
        low_noise_model="wan_low.safetensors",
        boundary=boundary_between_steps(steps, switch),
    )
    one_job = g.add(
        "RaylightKSampler",
        model=both,
        **ksampler_inputs(c, "euler", "simple", steps, seed),
    )
    outputs["one_job"] = save(g, g.out(one_job), "one_job")
    entry = setup.comfy.run(g.nodes)
    comfy_chain = setup.comfy.latent(entry, outputs["c"])
    for side in ("r", "one_job"):
        error = rel_l2(setup.comfy.latent(entry, outputs[side]), comfy_chain)
        print(f"A14B pattern, {side} against ComfyUI's chain: relative L2 {error:.2e}")
        assert error < TOLERANCE, side


def test_image_to_video_conditioning_gives_comfyuis_latent(setup: Setup) -> None:
    """WanImageToVideo's outputs (start image LATENT, mask, CLIP vision) on a Wan I2V model."""
    g = Graph()
    c = common_nodes(g, setup, "wan_i2v.safetensors")
    i2v = g.add(
        "RaylightTestI2VInputs",
        positive=c["positive"],
        negative=c["negative"],
        latent=c["latent"],
        seed=random.randrange(1 << 30),
    )
    c["positive"], c["negative"] = g.out(i2v, 0), g.out(i2v, 1)
    inputs = ksampler_inputs(c, "euler", "simple", 4, random.randrange(1 << 48))
    expect_comfyuis_latent(setup, g, c, inputs, "image-to-video")


def test_first_last_frame_conditioning_gives_comfyuis_latent(setup: Setup) -> None:
    """WanFirstLastFrameToVideo's outputs (4-channel mask, both images' 514 CLIP tokens) on a
    Wan I2V model, as ComfyUI lets FLF2V conditioning drive one."""
    g = Graph()
    c = common_nodes(g, setup, "wan_i2v.safetensors")
    flf = g.add(
        "RaylightTestI2VInputs",
        positive=c["positive"],
        negative=c["negative"],
        latent=c["latent"],
        seed=random.randrange(1 << 30),
        first_last=True,
    )
    c["positive"], c["negative"] = g.out(flf, 0), g.out(flf, 1)
    inputs = ksampler_inputs(c, "euler", "simple", 4, random.randrange(1 << 48))
    expect_comfyuis_latent(setup, g, c, inputs, "first-last-frame")


def test_wan22_ti2v_start_image_gives_comfyuis_latent(setup: Setup) -> None:
    """Wan22ImageToVideoLatent's LATENT (start image in the first frame, noise_mask 0 there) on
    a 48-channel Wan 2.2 TI2V: ComfyUI keeps that frame clean at every model call and gives each
    frame its own timestep (WAN22.process_timestep)."""
    g = Graph()
    c = common_nodes(g, setup, "wan_ti2v.safetensors")
    start = g.add(
        "RaylightTestTI2VLatent", width=128, height=96, length=9, seed=random.randrange(1 << 30)
    )
    c["latent"] = g.out(start)
    given = save(g, c["latent"], "ti2v_start")
    pairs = []
    for sampler in ("euler", "dpmpp_2m_sde"):
        inputs = ksampler_inputs(c, sampler, "simple", 4, random.randrange(1 << 48))
        ksampler = g.add("RaylightKSampler", model=c["raylight_model"], **inputs)
        ours = save(g, g.out(ksampler), f"r_ti2v_{sampler}")
        theirs = save(g, g.out(g.add("KSampler", model=c["comfy_model"], **inputs)), f"c_{sampler}")
        pairs.append((sampler, ours, theirs))
        if sampler == "euler":  # the per-frame timesteps split with the tokens under Ulysses
            ulysses = raylight_model(g, c["cluster"], "wan_ti2v.safetensors", ulysses=2)
            split = g.add("RaylightKSampler", model=ulysses, **inputs)
            pairs.append(("euler, ulysses 2", save(g, g.out(split), "r_ti2v_u2"), theirs))
    entry = setup.comfy.run(g.nodes)
    start_latent = setup.comfy.latent(entry, given)
    for sampler, ours, theirs in pairs:
        ours_latent = setup.comfy.latent(entry, ours)
        error = rel_l2(ours_latent, setup.comfy.latent(entry, theirs))
        kept = rel_l2(ours_latent[:, :, :1], start_latent[:, :, :1])
        print(f"TI2V start image, {sampler}: relative L2 {error:.2e}; first frame kept {kept:.1e}")
        assert error < TOLERANCE
        assert kept < 1e-5  # the start image's frame comes back as given


def test_an_inpainting_noise_mask_gives_comfyuis_latent(setup: Setup) -> None:
    """SetLatentNoiseMask on a Wan 2.1 LATENT: a pixel-size mask (the left half 0.25, the rest
    1) resized to the latent, the kept part re-noised to each call's sigma."""
    g = Graph()
    c = common_nodes(g, setup)
    first = ksampler_inputs(c, "euler", "simple", 3, random.randrange(1 << 48))
    c["latent"] = g.out(g.add("RaylightKSampler", model=c["raylight_model"], **first))
    whole = g.add("SolidMask", value=1.0, width=WIDTH, height=HEIGHT)
    left = g.add("SolidMask", value=0.25, width=WIDTH // 2, height=HEIGHT)
    mask = g.add(
        "MaskComposite",
        destination=g.out(whole),
        source=g.out(left),
        x=0,
        y=0,
        operation="multiply",
    )
    c["latent"] = g.out(g.add("SetLatentNoiseMask", samples=c["latent"], mask=g.out(mask)))
    inputs = ksampler_inputs(c, "dpmpp_2m", "simple", 5, random.randrange(1 << 48)) | {
        "denoise": 0.8
    }
    expect_comfyuis_latent(setup, g, c, inputs, "inpainting noise mask")


def test_loras_give_comfyuis_latent(setup: Setup) -> None:
    """Two LoRAs chained on each side (ComfyUI's LoraLoaderModelOnly, Raylight LoRA): kohya
    names with alpha and diffs at one strength, then native names at a negative one; ours takes
    the second in diffusers / PEFT names. The merged weights differ from the base's, so the
    latents agree only if every key landed where ComfyUI puts it, scaled as ComfyUI scales it."""
    g = Graph()
    c = common_nodes(g, setup)
    strong, negative = random.uniform(0.5, 1.2), random.uniform(-0.8, -0.3)
    unet = g.add("UNETLoader", unet_name="wan_high.safetensors", weight_dtype="default")
    theirs_model = g.out(unet)
    ours_model = c["raylight_model"]
    for comfy_lora, our_lora, strength in (
        ("lora_kohya.safetensors", "lora_kohya.safetensors", strong),
        ("lora_native.safetensors", "lora_peft.safetensors", negative),
    ):
        theirs_model = g.out(
            g.add(
                "LoraLoaderModelOnly",
                model=theirs_model,
                lora_name=comfy_lora,
                strength_model=strength,
            )
        )
        ours_model = g.out(
            g.add(
                "RaylightLoraLoader", model=ours_model, lora_name=our_lora, strength_model=strength
            )
        )
    shifted = g.out(g.add("ModelSamplingSD3", model=theirs_model, shift=SHIFT))
    inputs = ksampler_inputs(c, "euler", "simple", 4, random.randrange(1 << 48))
    ours = save(g, g.out(g.add("RaylightKSampler", model=ours_model, **inputs)), "r_lora")
    theirs = save(g, g.out(g.add("KSampler", model=shifted, **inputs)), "c_lora")
    plain = save(g, g.out(g.add("KSampler", model=c["comfy_model"], **inputs)), "c_plain")
    entry = setup.comfy.run(g.nodes)
    ours_latent, theirs_latent = setup.comfy.latent(entry, ours), setup.comfy.latent(entry, theirs)
    error = rel_l2(ours_latent, theirs_latent)
    effect = rel_l2(setup.comfy.latent(entry, plain), theirs_latent)
    print(f"LoRAs: relative L2 {error:.2e} (the LoRAs moved the latent by {effect:.2e})")
    assert effect > 100 * TOLERANCE  # the LoRAs matter, so agreeing means they merged alike
    assert error < TOLERANCE


def last_results(setup: Setup, count: int) -> list[Any]:
    """The results of the cluster's last `count` jobs, read with the Python client."""
    with raylight.Client(
        address=setup.address,
        token_file=str(setup.token_file),
        tls_ca=str(setup.state / "tls" / "ca.pem"),  # the cluster serves TLS
    ) as client:
        return [client.result(job.job_id) for job in client.list_jobs(limit=count)]


def test_teacache_node_reuses_steps_on_the_cluster(setup: Setup) -> None:
    """Raylight TeaCache before a Raylight KSampler: the job caches (the head's result counts the
    reused calls) and its latent differs from the uncached one's. The test model has no published
    coefficients: the identity, and a threshold that reuses most calls past the retained five."""
    g = Graph()
    c = common_nodes(g, setup)
    cached_model = g.out(
        g.add("RaylightTeaCache", model=c["raylight_model"], threshold=9.5, coefficients="1,0")
    )
    inputs = ksampler_inputs(c, "euler", "simple", 10, random.randrange(1 << 48))
    cached = save(g, g.out(g.add("RaylightKSampler", model=cached_model, **inputs)), "r_tea")
    plain = save(g, g.out(g.add("RaylightKSampler", model=c["raylight_model"], **inputs)), "r_raw")
    entry = setup.comfy.run(g.nodes)
    effect = rel_l2(setup.comfy.latent(entry, cached), setup.comfy.latent(entry, plain))
    reused = [r.calls_reused for r in last_results(setup, 2)]
    print(f"TeaCache: calls reused by the last two jobs {reused}, latent moved by {effect:.2e}")
    assert sorted(reused)[0] == 0 and sorted(reused)[1] > 0
    assert effect > TOLERANCE


def test_magcache_node_reuses_steps_on_the_cluster(setup: Setup) -> None:
    """Raylight MagCache before a Raylight KSampler: the job follows the schedule of the ratios it
    gives (the test model has no published ones: 0.99 a step reuses two steps in every three past
    the retained fifth) and the result counts the reused calls."""
    g = Graph()
    c = common_nodes(g, setup)
    cached_model = g.out(
        g.add(
            "RaylightMagCache",
            model=c["raylight_model"],
            threshold=0.0,
            max_skips=0,
            retention_ratio=0.2,
            mag_ratios=",".join(["0.99"] * 20),
        )
    )
    inputs = ksampler_inputs(c, "euler", "simple", 10, random.randrange(1 << 48))
    cached = save(g, g.out(g.add("RaylightKSampler", model=cached_model, **inputs)), "r_mag")
    plain = save(g, g.out(g.add("RaylightKSampler", model=c["raylight_model"], **inputs)), "r_raw")
    entry = setup.comfy.run(g.nodes)
    effect = rel_l2(setup.comfy.latent(entry, cached), setup.comfy.latent(entry, plain))
    reused = sorted((r.calls_reused, r.model_calls) for r in last_results(setup, 2))
    print(f"MagCache: (reused, calls) of the last two jobs {reused}, latent moved by {effect:.2e}")
    # 10 steps, 4 retained calls (steps 0, 1), then reuse, reuse, compute: steps 2, 3, 5, 6, 8, 9
    # reused, with every call of each (cond and uncond, batched or not).
    assert reused[0][0] == 0
    assert reused[1][0] * 10 == 6 * reused[1][1]
    assert effect > TOLERANCE


def test_easycache_node_reuses_steps_on_the_cluster(setup: Setup) -> None:
    """Raylight EasyCache (the inputs of ComfyUI's EasyCache node) before a Raylight KSampler: the
    job answers steps from the cache (the head's result counts them) and its latent differs from
    the uncached one's. ComfyUI's own node is not the reference here: on a float32 model (this
    test's, on the CPU) its answer is added in place to the model's input, which is also the
    tensor it returns, so ComfyUI computes a skipped step's denoised estimate from the altered
    input (with a bf16 or fp16 model the input is a copy and the arithmetic is the algorithm's).
    The algorithm is compared with ComfyUI's own wrappers in tests/jobs/flux_jobs_test.cc."""
    g = Graph()
    c = common_nodes(g, setup)
    settings = dict(reuse_threshold=EASYCACHE_THRESHOLD, start_percent=0.15, end_percent=0.95)
    ours_model = g.out(g.add("RaylightEasyCache", model=c["raylight_model"], **settings))
    inputs = ksampler_inputs(c, "euler", "simple", 12, random.randrange(1 << 48))
    cached = save(g, g.out(g.add("RaylightKSampler", model=ours_model, **inputs)), "r_easy")
    plain = save(g, g.out(g.add("RaylightKSampler", model=c["raylight_model"], **inputs)), "r_raw")
    entry = setup.comfy.run(g.nodes)
    effect = rel_l2(setup.comfy.latent(entry, cached), setup.comfy.latent(entry, plain))
    reused = sorted((r.calls_reused, r.model_calls) for r in last_results(setup, 2))
    print(f"EasyCache: (reused, calls) of the last two jobs {reused}, latent moved by {effect:.2e}")
    assert reused[0][0] == 0 and reused[1][0] > 0
    assert reused[1][1] >= 12  # every step's calls counted, answered or made
    assert effect > TOLERANCE


def test_a_raylightctl_latent_loads_in_comfyui(setup: Setup) -> None:
    seed, steps = random.randrange(1 << 48), 5
    prefix = setup.base / "cli"
    subprocess.run(
        [
            str(BIN / "raylightctl"),
            f"--state-dir={setup.state}",
            "sample",
            "--model=wan_high.safetensors",
            f"--cond={setup.base / 'input' / 'positive.safetensors'}",
            f"--negative={setup.base / 'input' / 'negative.safetensors'}",
            f"--width={WIDTH}",
            f"--height={HEIGHT}",
            f"--frames={FRAMES}",
            f"--steps={steps}",
            f"--cfg={CFG}",
            "--sampler=dpmpp_2m",
            "--scheduler=karras",
            f"--shift={SHIFT}",
            f"--seed={seed}",
            "--dtype=f32",
            "--cpu",
            f"--out={prefix}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    shutil.copy(f"{prefix}.latent", setup.base / "input" / "from_cli.latent")
    g = Graph()
    c = common_nodes(g, setup)
    loaded = save(g, g.out(g.add("LoadLatent", latent="from_cli.latent")), "loaded")
    inputs = ksampler_inputs(c, "dpmpp_2m", "karras", steps, seed)
    theirs = save(g, g.out(g.add("KSampler", model=c["comfy_model"], **inputs)), "c_cli")
    entry = setup.comfy.run(g.nodes)
    error = rel_l2(setup.comfy.latent(entry, loaded), setup.comfy.latent(entry, theirs))
    print(f"raylightctl .latent through LoadLatent: relative L2 {error:.2e}")
    assert error < TOLERANCE


def test_progress_reaches_comfyui_with_previews(setup: Setup) -> None:
    import asyncio

    import aiohttp

    g = Graph()
    c = common_nodes(g, setup)
    steps = 4
    sampler = g.add(
        "RaylightKSampler",
        model=c["raylight_model"],
        **ksampler_inputs(c, "euler", "simple", steps, random.randrange(1 << 48)),
    )
    save(g, g.out(sampler), "progress")

    async def follow() -> tuple[list[dict[str, Any]], int]:
        events: list[dict[str, Any]] = []
        previews = 0
        client_id = uuid.uuid4().hex
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{setup.comfy.url}/ws?clientId={client_id}") as ws:
                body = {"prompt": g.nodes, "client_id": client_id}
                async with session.post(f"{setup.comfy.url}/prompt", json=body) as response:
                    prompt_id = (await response.json())["prompt_id"]
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        previews += 1  # a preview image (ComfyUI's binary event)
                        continue
                    event = json.loads(message.data)
                    data = event.get("data", {})
                    if data.get("prompt_id") not in (None, prompt_id):
                        continue
                    if event["type"] == "progress" and data.get("node") == sampler:
                        events.append(data)
                    if event["type"] in ("execution_success", "execution_error"):
                        assert event["type"] == "execution_success", event
                        break
        return events, previews

    events, previews = asyncio.run(asyncio.wait_for(follow(), 600))
    assert [e["value"] for e in events] == list(range(1, steps + 1)), events
    assert all(e["max"] == steps for e in events)
    assert previews >= steps, f"{previews} previews for {steps} steps"


def expect_node_error(setup: Setup, g: Graph, inputs: dict[str, Any], input_name: str) -> None:
    """A Raylight KSampler with `inputs` fails as a node error naming `input_name`."""
    model = inputs.pop("model")
    save(g, g.out(g.add("RaylightKSampler", model=model, **inputs)), "refused")
    with pytest.raises(PromptFailed) as failed:
        setup.comfy.run(g.nodes)
    assert failed.value.error["node_type"] == "RaylightKSampler"
    assert f"input '{input_name}'" in failed.value.error["exception_message"], failed.value.error


def test_invalid_inputs_are_node_errors_that_name_the_input(setup: Setup) -> None:
    g = Graph()
    c = common_nodes(g, setup)
    inputs = ksampler_inputs(c, "euler", "simple", 2000, 1)  # the cluster's bound is 1000 steps
    expect_node_error(setup, g, {"model": c["raylight_model"], **inputs}, "steps")

    g = Graph()
    c = common_nodes(g, setup)
    both = g.add("ConditioningCombine", conditioning_1=c["positive"], conditioning_2=c["negative"])
    inputs = ksampler_inputs(c, "euler", "simple", 2, 1) | {"positive": g.out(both)}
    expect_node_error(setup, g, {"model": c["raylight_model"], **inputs}, "positive")

    g = Graph()
    c = common_nodes(g, setup)
    g.nodes[c["raylight_model"][0]]["inputs"]["model"] = "../escape.safetensors"
    inputs = ksampler_inputs(c, "euler", "simple", 2, 1)
    expect_node_error(setup, g, {"model": c["raylight_model"], **inputs}, "model")

    # The cluster keeps serving: the next prompt runs.
    g = Graph()
    c = common_nodes(g, setup)
    inputs = ksampler_inputs(c, "euler", "simple", 2, 1)
    node = save(
        g,
        g.out(g.add("RaylightKSampler", model=c["raylight_model"], **inputs)),
        "after",
    )
    entry = setup.comfy.run(g.nodes)
    assert torch.isfinite(setup.comfy.latent(entry, node)).all()


def test_the_model_list_comes_from_the_cluster(setup: Setup) -> None:
    info = setup.comfy.get("/object_info/RaylightModel")["RaylightModel"]
    listed = info["input"]["required"]["model"][0]
    assert listed == [
        "wan_high.safetensors",
        "wan_i2v.safetensors",
        "wan_low.safetensors",
        "wan_ti2v.safetensors",
    ]
    # LoRA files go to Raylight LoRA's list, not to the models'.
    lora_info = setup.comfy.get("/object_info/RaylightLoraLoader")["RaylightLoraLoader"]
    assert lora_info["input"]["required"]["lora_name"][0] == [
        "lora_kohya.safetensors",
        "lora_native.safetensors",
        "lora_peft.safetensors",
    ]
    samplers = setup.comfy.get("/object_info/RaylightKSampler")["RaylightKSampler"]
    names = samplers["input"]["required"]["sampler_name"][0]
    assert "euler" in names and "uni_pc" in names
    assert "euler_cfg_pp" not in names  # ComfyUI has it, the cluster does not
