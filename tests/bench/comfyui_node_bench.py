"""The ComfyUI node's overhead on a GPU cluster (issue #22's GPU proof): the same Wan job through
Raylight KSampler in a real ComfyUI and through `raylightctl sample`, timed alternately on a
warm cluster (the model resident), and their LATENTs compared.

    RAYLIGHT_BIN_DIR=build-gpu/bin COMFYUI_DIR=/tmp/ComfyUI-0.3.64 \
        python3 tests/bench/comfyui_node_bench.py --out OUT_DIR [--steps 30] [--runs 2]

Writes OUT_DIR/comfyui_node.json ({"results": [...]}). ComfyUI runs with --cpu (it only hosts
the node; the cluster's worker has the GPU) and, where its frontend package is not installed,
an empty --front-end-root (the HTTP API needs no frontend).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "comfyui"))
import test_comfyui as harness  # noqa: E402  (ComfyUI's process and API, the graph builder)

SHIFT, CFG, SAMPLER, SCHEDULER, SEED = 8.0, 5.0, "uni_pc", "simple", 11


def run(*args: str | Path) -> None:
    subprocess.run([str(a) for a in args], check=True, capture_output=True, timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--preset", default="wan2.1-t2v-1.3b")
    parser.add_argument("--size", default="832x480x81", help="WIDTHxHEIGHTxFRAMES")
    parser.add_argument("--cpu", action="store_true", help="a CPU smoke run of the bench itself")
    args = parser.parse_args()
    width, height, frames = (int(v) for v in args.size.split("x"))
    cpu = ["--cpu"] if args.cpu else []
    args.out.mkdir(parents=True, exist_ok=True)
    bin_dir = harness.BIN
    base = Path(tempfile.mkdtemp(prefix="comfyui-bench-"))
    models, inputs, state = base / "models" / "diffusion_models", base / "input", base / "state"
    for folder in (models, inputs, base / "custom_nodes", base / "frontend"):
        folder.mkdir(parents=True)
    (base / "custom_nodes" / "raylight").symlink_to(harness.NODE_PACK)
    run(
        bin_dir / "raylight-make-checkpoint",
        f"--preset={args.preset}",
        "--dtype=bf16",
        f"--device={'cpu' if args.cpu else 'cuda'}",
        f"--out={models / 'wan.safetensors'}",
    )
    for name, tokens, seed in (("positive", 512, 1), ("negative", 512, 2)):
        run(
            bin_dir / "raylight-make-conditioning",
            f"--preset={args.preset}",
            f"--tokens={tokens}",
            f"--seed={seed}",
            f"--out={inputs / (name + '.safetensors')}",
        )
    ctl = [str(bin_dir / "raylightctl"), f"--state-dir={state}"]
    workers = ["--num-cpu-workers=1"] if args.cpu else []
    run(*ctl, "up", f"--port={harness._free_port()}", f"--model-root={models}", *workers)
    env = {**os.environ, "RAYLIGHT_STATE_DIR": str(state), "PYTHONUNBUFFERED": "1"}
    comfy = None
    try:
        # The HTTP API needs no frontend: an empty one where its package is not installed.
        has_frontend = importlib.util.find_spec("comfyui_frontend_package") is not None
        extra = [] if has_frontend else [f"--front-end-root={base / 'frontend'}"]
        comfy = harness.ComfyUI(base, harness._free_port(), args.out / "comfyui.log", env, extra)
        comfy.poll_seconds = 0.01  # the timer's resolution, not the node's cost

        def cli(tag: str, seed: int) -> float:
            start = time.monotonic()
            run(
                *ctl,
                "sample",
                "--model=wan.safetensors",
                f"--cond={inputs / 'positive.safetensors'}",
                f"--negative={inputs / 'negative.safetensors'}",
                f"--width={width}",
                f"--height={height}",
                f"--frames={frames}",
                f"--steps={args.steps}",
                f"--cfg={CFG}",
                f"--sampler={SAMPLER}",
                f"--scheduler={SCHEDULER}",
                f"--shift={SHIFT}",
                f"--seed={seed}",
                f"--out={base / tag}",
                *cpu,
            )
            return time.monotonic() - start

        def node(tag: str, seed: int) -> tuple[float, torch.Tensor]:
            g = harness.Graph()
            cluster = g.add("RaylightCluster", address="", token="", token_file="")
            model = harness.raylight_model(
                g, g.out(cluster), "wan.safetensors", dtype="auto", cpu=args.cpu
            )
            latent = g.add(
                "EmptyHunyuanLatentVideo", width=width, height=height, length=frames, batch_size=1
            )
            sampled = g.add(
                "RaylightKSampler",
                model=model,
                seed=seed,
                steps=args.steps,
                cfg=CFG,
                sampler_name=SAMPLER,
                scheduler=SCHEDULER,
                positive=g.out(
                    g.add("RaylightLoadConditioning", conditioning="positive.safetensors")
                ),
                negative=g.out(
                    g.add("RaylightLoadConditioning", conditioning="negative.safetensors")
                ),
                latent_image=g.out(latent),
                denoise=1.0,
            )
            saved = g.add("SaveLatent", samples=g.out(sampled), filename_prefix=f"latents/{tag}")
            start = time.monotonic()
            entry = comfy.run(g.nodes)
            return time.monotonic() - start, comfy.latent(entry, saved)

        cli("warmup", SEED)  # loads the model; every timed run finds it resident
        cli_times, node_times, node_latent = [], [], None
        for i in range(args.runs):
            cli_times.append(cli(f"cli{i}", SEED + i))
            # ComfyUI caches a node whose inputs repeat: each run its own seed, on both sides.
            seconds, node_latent = node(f"node{i}", SEED + i)
            node_times.append(seconds)
        cli_latent = load_file(str(base / f"cli{args.runs - 1}.latent"))["latent_tensor"]
        assert node_latent is not None
        diff = float((node_latent - cli_latent).abs().max())
        cli_mean, node_mean = sum(cli_times) / len(cli_times), sum(node_times) / len(node_times)
        short = args.preset.replace("wan2.1-t2v-1.3b", "wan1_3b")
        name = f"{short}_{width}x{height}x{frames}"
        rows = [
            dict(
                name=f"{name}_comfyui_node_overhead_ratio",
                value=node_mean / cli_mean,
                unit="x",
                anchor="raylightctl sample, same job",
                anchor_value=1.0,
            ),
            dict(
                name=f"{name}_comfyui_node_s",
                value=node_mean,
                unit="s",
                anchor="raylightctl sample, same job",
                anchor_value=cli_mean,
            ),
            dict(
                name=f"{name}_comfyui_node_vs_cli_max_abs_diff",
                value=diff,
                unit="latent units",
                anchor="",
                anchor_value=0,
            ),
        ]
        result = {
            "results": rows,
            "runs": {"cli_s": cli_times, "node_s": node_times},
            "steps": args.steps,
        }
        (args.out / "comfyui_node.json").write_text(json.dumps(result))
        print(json.dumps(result))
    finally:
        if comfy is not None:
            comfy.stop()
        subprocess.run([*ctl, "down"], capture_output=True, timeout=60)
        shutil.copy(state / "logs" / "head.log", args.out / "head.log") if (
            state / "logs" / "head.log"
        ).exists() else None


if __name__ == "__main__":
    main()
