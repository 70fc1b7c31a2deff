"""Raylight's Wan forward against its peers on the same GPU and shapes (issue #27, item 5).

wan_bench times our forward and diffusers' eager one; this script times what users compare us
with beyond that, on the same diffusers-spelled checkpoint, in one process after wan_bench:

- diffusers + torch.compile (`compile_repeated_blocks(fullgraph=True)`, as diffusers
  recommends): its forward time (warm-up excluded, reported in the anchor text) and its
  prediction's relative L2 from the eager one;
- cache-dit (PyPI `cache-dit`, DBCache at its defaults: F8B0, residual threshold 0.08, eight
  warm-up steps, then at coarser thresholds, each with the calls it reused) on a STEPS-step job
  of the transformer alone (Euler updates, cond and uncond as two calls a step, as diffusers'
  Wan pipeline makes them): its job time over the same job uncached, the measure our TeaCache
  and MagCache rows report (step_cache_gpu.sh);
- SageAttention (PyPI `sageattention` 1.0.6, the Triton kernels: int8 QK, fp16 PV) as the
  attention anchor: `sageattn` against PyTorch's SDPA (cuDNN / flash, what our attention runs)
  on the model's attention shape, time and relative L2;
- xDiT (PyPI `xfuser`): imported if it installs; on one GPU its Wan path is diffusers' model with
  its own attention, and the row says why it did not run where it does not.

    python wan_peer_anchors.py --checkpoint F --preset wan2.1-t2v-14b --name wan14b_832x480x81
        [--frames 21 --height 60 --width 104] [--ours-ms MS] [--peers compile,cachedit,sage,xdit]
        [--steps 30] [--runs 3] [--device cuda]

Latent sizes as wan_bench takes them. Prints the rows (the results schema) as JSON lines:
`<name>_step_ratio_vs_diffusers_compile` (with --ours-ms), `<name>_cachedit_job_ratio`,
`<name>_attention_ratio_sageattn_vs_sdpa`, and the times behind them. On a CPU (a smoke run of
the script at a tiny preset) times are printed but mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "models"))
from diffusers_wan_reference import load_wan_model  # noqa: E402

PRESETS: dict[str, dict[str, Any]] = {
    "wan2.1-t2v-14b": {"dim": 5120, "num_heads": 40, "ffn_dim": 13824, "num_layers": 40},
    "wan2.1-t2v-1.3b": {"dim": 1536, "num_heads": 12, "ffn_dim": 8960, "num_layers": 30},
    "tiny-t2v": {"dim": 64, "num_heads": 4, "ffn_dim": 128, "num_layers": 2, "text_dim": 48},
}


def config_of(preset: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "family": "t2v",
        "in_channels": 16,
        "out_channels": 16,
        "text_dim": 4096,
        "freq_dim": 256,
        "eps": 1e-6,
        "image_dim": 1280,
        "flf_pos_tokens": 0,
    }
    cfg.update(PRESETS[preset])
    return cfg


def emit(name: str, value: float, unit: str, anchor: str, anchor_value: float) -> None:
    row = {"name": name, "value": value, "unit": unit, "anchor": anchor}
    row["anchor_value"] = anchor_value
    print(json.dumps(row), flush=True)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_ms(fn: Callable[[], Any], runs: int, device: str) -> float:
    """Mean milliseconds of `runs` calls after one warm-up."""
    fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    sync(device)
    return (time.perf_counter() - start) * 1e3 / runs


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


class Job:
    """A STEPS-step Euler job of the transformer alone, cond and uncond as two calls a step (as
    diffusers' WanPipeline calls it), CFG 5: the loop cache-dit's decisions run over."""

    def __init__(self, model: torch.nn.Module, args: argparse.Namespace, cfg: dict[str, Any]):
        generator = torch.Generator().manual_seed(7)
        shape = (1, 16, args.frames, args.height, args.width)
        self.model = model
        self.noise = torch.randn(shape, generator=generator).to(args.device, torch.bfloat16)
        text = (1, 512, cfg["text_dim"])
        self.cond = torch.randn(text, generator=generator).to(args.device, torch.bfloat16)
        self.uncond = torch.randn(text, generator=generator).to(args.device, torch.bfloat16)
        self.sigmas = torch.linspace(1.0, 0.0, args.steps + 1)
        self.device = args.device

    def run(self) -> torch.Tensor:
        x = self.noise
        with torch.no_grad():
            for i in range(len(self.sigmas) - 1):
                t = torch.tensor([self.sigmas[i] * 1000], device=self.device)
                cond = self.model(x, t, self.cond, return_dict=False)[0]
                uncond = self.model(x, t, self.uncond, return_dict=False)[0]
                velocity = uncond + 5.0 * (cond - uncond)
                x = x + (self.sigmas[i + 1] - self.sigmas[i]) * velocity
        return x


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", required=True, help="diffusers spelling")
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--name", required=True)
    parser.add_argument("--frames", type=int, default=21)
    parser.add_argument("--height", type=int, default=60)
    parser.add_argument("--width", type=int, default=104)
    parser.add_argument("--ours-ms", type=float, help="our forward's ms (wan_bench) for ratios")
    parser.add_argument("--peers", default="compile,cachedit,sage,xdit")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    peers = set(args.peers.split(","))
    cfg = config_of(args.preset)
    model = load_wan_model(cfg, args.checkpoint, args.device, torch.bfloat16)
    if model is None:
        return 2
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, args.frames, args.height, args.width, generator=generator)
    x = x.to(args.device, torch.bfloat16)
    t = torch.tensor([500.0], device=args.device)
    context = torch.randn(1, 512, cfg["text_dim"], generator=generator)
    context = context.to(args.device, torch.bfloat16)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            out: torch.Tensor = model(x, t, context, return_dict=False)[0]
            return out

    eager_out = forward()
    eager_ms = timed_ms(forward, args.runs, args.device)
    emit(f"{args.name}_step_ms_1gpu_diffusers_eager", eager_ms, "ms", "diffusers eager", eager_ms)

    if "sage" in peers:
        attention_anchor(args, cfg)
    if "xdit" in peers:
        try:
            import xfuser  # type: ignore[import-not-found]  # noqa: F401

            print(f"xfuser {xfuser.__version__} imports; its one-GPU Wan path is diffusers' model")
        except Exception as error:  # noqa: BLE001  (any failure to import is the finding)
            print(f"xDiT did not run: `import xfuser` failed: {error!r}", file=sys.stderr)
    if "cachedit" in peers:
        cache_dit_job(model, args, cfg)
    if "compile" in peers:  # last: the compiled blocks replace the model's for good
        start = time.perf_counter()
        model.compile_repeated_blocks(fullgraph=True)
        compiled_out = forward()
        sync(args.device)
        warmup = time.perf_counter() - start
        compiled_ms = timed_ms(forward, args.runs, args.device)
        emit(
            f"{args.name}_step_ms_1gpu_diffusers_compile",
            compiled_ms,
            "ms",
            f"diffusers eager forward, ms (compile_repeated_blocks: {warmup:.0f} s of warm-up)",
            eager_ms,
        )
        emit(
            f"{args.name}_diffusers_compile_rel_l2_vs_eager",
            relative_l2(compiled_out, eager_out),
            "ratio",
            "diffusers eager prediction",
            0.0,
        )
        if args.ours_ms:
            emit(
                f"{args.name}_step_ratio_vs_diffusers_compile",
                args.ours_ms / compiled_ms,
                "ratio",
                "diffusers + compile_repeated_blocks forward, ms",
                compiled_ms,
            )
    return 0


def attention_anchor(args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    """sageattn (int8 QK, fp16 PV; Triton) against SDPA on the model's self-attention shape."""
    heads, head_dim = cfg["num_heads"], cfg["dim"] // cfg["num_heads"]
    tokens = args.frames * (args.height // 2) * (args.width // 2)
    generator = torch.Generator().manual_seed(3)
    q, k, v = (
        torch.randn(1, heads, tokens, head_dim, generator=generator).to(args.device, torch.bfloat16)
        for _ in range(3)
    )
    sdpa = torch.nn.functional.scaled_dot_product_attention
    reference = sdpa(q, k, v)
    sdpa_ms = timed_ms(lambda: sdpa(q, k, v), args.runs, args.device)
    emit(f"{args.name}_attention_ms_sdpa", sdpa_ms, "ms", "PyTorch SDPA, bf16", sdpa_ms)
    try:
        from sageattention import sageattn  # type: ignore[import-not-found]

        out = sageattn(q, k, v, tensor_layout="HND", is_causal=False)
        sage_ms = timed_ms(
            lambda: sageattn(q, k, v, tensor_layout="HND", is_causal=False), args.runs, args.device
        )
    except Exception as error:  # noqa: BLE001  (Triton or the wheel failing is the finding)
        print(f"SageAttention did not run: {error!r}", file=sys.stderr)
        return
    emit(f"{args.name}_attention_ms_sageattn", sage_ms, "ms", "PyTorch SDPA, ms", sdpa_ms)
    emit(
        f"{args.name}_attention_ratio_sageattn_vs_sdpa",
        sage_ms / sdpa_ms,
        "ratio",
        "PyTorch SDPA, ms",
        sdpa_ms,
    )
    emit(
        f"{args.name}_attention_sageattn_rel_l2",
        relative_l2(out, reference),
        "ratio",
        "PyTorch SDPA output",
        0.0,
    )


# DBCache's residual thresholds: its default (0.08), then coarser ones. On random weights the
# first blocks' residual changes between steps are not a trained model's, so the default may
# reuse nothing; the ladder shows where it starts to act (each row reports its reuse).
CACHE_DIT_THRESHOLDS = (0.08, 0.24, 0.5, 1.0)


def cache_dit_reuse(model: torch.nn.Module) -> tuple[int, float]:
    """The calls DBCache answered from its cache in the last job, and the median residual
    change it measured (its own statistics, `cache_dit.summary`)."""
    import cache_dit  # type: ignore[import-not-found]

    reused, diffs = 0, []
    for stats in cache_dit.summary(model, logging=False):
        reused = max(reused, len(stats.cached_steps) + len(stats.cfg_cached_steps))
        for values in (stats.residual_diffs, stats.cfg_residual_diffs):
            for value in values.values():
                diffs += [float(v) for v in value] if isinstance(value, list) else [float(value)]
    diffs.sort()
    return reused, diffs[len(diffs) // 2] if diffs else float("nan")


def cache_dit_job(model: torch.nn.Module, args: argparse.Namespace, cfg: dict[str, Any]) -> None:
    """The STEPS-step job uncached, then with cache-dit's DBCache on the transformer at each
    threshold of CACHE_DIT_THRESHOLDS (the default's rows keep the plain names)."""
    job = Job(model, args, cfg)
    sync(args.device)
    start = time.perf_counter()
    uncached = job.run()
    sync(args.device)
    uncached_s = time.perf_counter() - start
    anchor = f"the same {args.steps}-step job uncached (diffusers eager, cfg 5), s"
    for threshold in CACHE_DIT_THRESHOLDS:
        enabled = False
        try:
            import cache_dit  # type: ignore[import-not-found]

            # F8B0 as its defaults; a smoke run's model has fewer blocks than that.
            config = cache_dit.DBCacheConfig(
                num_inference_steps=args.steps,
                enable_separate_cfg=True,
                Fn_compute_blocks=min(8, cfg["num_layers"] - 1),
                residual_diff_threshold=threshold,
            )
            cache_dit.enable_cache(model, cache_config=config)
            enabled = True
            sync(args.device)
            start = time.perf_counter()
            cached = job.run()
            sync(args.device)
            cached_s = time.perf_counter() - start
            reused, median_diff = cache_dit_reuse(model)
        except Exception as error:  # noqa: BLE001  (its failing on this model is the finding)
            print(f"cache-dit did not run: {error!r}", file=sys.stderr)
            return
        finally:
            if enabled:
                cache_dit.disable_cache(model)
        print(
            f"cache-dit R{threshold}: {reused} of {2 * args.steps} calls reused, median "
            f"residual change {median_diff:.3g}, {cached_s:.2f} s (uncached {uncached_s:.2f} s)",
            file=sys.stderr,
        )
        label = "cachedit" if threshold == CACHE_DIT_THRESHOLDS[0] else f"cachedit_r{threshold}"
        emit(f"{args.name}_{label}_job_ratio", cached_s / uncached_s, "ratio", anchor, uncached_s)
        emit(
            f"{args.name}_{label}_calls_reused",
            reused,
            "calls",
            "model calls of the job",
            2 * args.steps,
        )
        emit(
            f"{args.name}_{label}_latent_rel_l2",
            relative_l2(cached, uncached),
            "ratio",
            "the uncached job's latent",
            0.0,
        )


if __name__ == "__main__":
    sys.exit(main())
