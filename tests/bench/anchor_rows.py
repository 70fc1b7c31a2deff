"""What the diffusers anchors share (flux_diffusers_anchor.py, qwen_image_diffusers_anchor.py,
chroma_diffusers_anchor.py): rows in the results schema, a median GPU time and random real-size
checkpoints."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import save_file


def emit(name: str, value: float, unit: str, anchor: str = "", anchor_value: float = 0) -> None:
    row: dict[str, Any] = {
        "name": name,
        "value": value,
        "unit": unit,
        "anchor": anchor,
        "anchor_value": anchor_value,
    }
    print(json.dumps(row), flush=True)


def anchor_parser() -> argparse.ArgumentParser:
    """The arguments every anchor takes: --make F (a random checkpoint, where the anchor makes
    one), or the run on flux_bench's --checkpoint, --inputs and --ours prediction with our
    forward's --ours-ms, rows named --name, --runs timed forwards, --compile, --device."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--make")
    parser.add_argument("--checkpoint")
    parser.add_argument("--inputs")
    parser.add_argument("--ours")
    parser.add_argument("--ours-ms", type=float)
    parser.add_argument("--name")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda")
    return parser


def emit_rel_l2(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """`<name>_rel_l2_vs_diffusers`: our prediction's relative L2 from diffusers' (both bf16)."""
    rel_l2 = float((ours - theirs).norm() / theirs.norm())
    emit(f"{name}_rel_l2_vs_diffusers", rel_l2, "ratio", "diffusers' bf16 prediction", 0.0)


def median_ms(run: Callable[[], Any], runs: int, warmups: int) -> float:
    """`run`'s median wall time over `runs` calls after `warmups`, the GPU synchronised."""
    for _ in range(warmups):
        run()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)[len(times) // 2]


def make_random_checkpoint(model: torch.nn.Module, path: str, device: str = "cuda") -> None:
    """`model`'s state (built on the meta device: only names and shapes) as random bf16 weights
    drawn on `device`: matrices at 1/sqrt(fan-in), norm scales around 1, other vectors small."""
    generator = torch.Generator(device).manual_seed(1234)
    tensors = {}
    for name, p in model.state_dict().items():
        values = torch.randn(p.shape, generator=generator, device=device)
        if p.dim() >= 2:
            values = values / (p.shape[-1] ** 0.5)
        elif "norm" in name:
            values = 1 + 0.1 * values
        else:
            values = 0.02 * values
        tensors[name] = values.to(torch.bfloat16).cpu()
    save_file(tensors, path)


def emit_eager_ratio(name: str, forward: Callable[[], Any], ours_ms: float, runs: int) -> float:
    """`<name>_forward_ratio_vs_diffusers`: our forward's ms over diffusers' eager `forward`'s
    median (after two warm-ups); returns diffusers' ms."""
    eager = median_ms(forward, runs, 2)
    emit(
        f"{name}_forward_ratio_vs_diffusers",
        ours_ms / eager,
        "ratio",
        "diffusers eager forward, ms",
        eager,
    )
    return eager


def emit_compiled_ratio(
    name: str, model: Any, forward: Callable[[], Any], ours_ms: float, runs: int
) -> None:
    """`<name>_forward_ratio_vs_diffusers_compile`: the same against `model` compiled as diffusers
    recommends (`compile_repeated_blocks(fullgraph=True)`), its warm-up in the anchor text."""
    start = time.perf_counter()
    model.compile_repeated_blocks(fullgraph=True)
    forward()
    torch.cuda.synchronize()
    warmup = time.perf_counter() - start
    compiled = median_ms(forward, runs, 1)
    emit(
        f"{name}_forward_ratio_vs_diffusers_compile",
        ours_ms / compiled,
        "ratio",
        f"diffusers + compile_repeated_blocks forward, ms ({warmup:.0f} s of warm-up)",
        compiled,
    )


def inference_forward(model: Any, kwargs: dict[str, Any]) -> Callable[[], torch.Tensor]:
    """`model`'s forward on `kwargs` without autograd: its first output."""

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return model(**kwargs)[0]

    return forward


def emit_speed_rows(args: argparse.Namespace, model: Any, forward: Callable[[], Any]) -> None:
    """The eager ratio and, with --compile, the compiled one; none off the GPU (a smoke run's
    times mean nothing)."""
    if args.device != "cuda":
        return
    emit_eager_ratio(args.name, forward, args.ours_ms, args.runs)
    if args.compile:
        emit_compiled_ratio(args.name, model, forward, args.ours_ms, args.runs)


def flux_pipeline_inputs(
    inputs: dict[str, torch.Tensor], device: str, dtype: torch.dtype
) -> tuple[dict[str, Any], int, int]:
    """The Flux-style transformers' (Flux.1's, Chroma's) keyword inputs from flux_bench's file:
    the latent packed into 2x2 patches with its image ids, the text with zero ids, the timestep;
    and the latent's height and width (for unpacking the prediction)."""
    from diffusers import FluxPipeline

    x = inputs["x"].to(device, dtype)
    batch, channels, height, width = x.shape
    context = inputs["context"].to(device, dtype)
    kwargs: dict[str, Any] = dict(
        hidden_states=FluxPipeline._pack_latents(x, batch, channels, height, width),
        encoder_hidden_states=context,
        timestep=inputs["t"].to(device, dtype),
        img_ids=FluxPipeline._prepare_latent_image_ids(
            batch, height // 2, width // 2, device, dtype
        ),
        txt_ids=torch.zeros(context.shape[1], 3, device=device, dtype=dtype),
        return_dict=False,
    )
    return kwargs, height, width
