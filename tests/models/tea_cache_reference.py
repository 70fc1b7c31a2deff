"""A transcription of TeaCache4Wan2.1's skip decision (teacache_generate.py, teacache_forward:
the `enable_teacache` branch), the reference tests/models/tea_cache_test.cc checks
models::TeaCachePolicy against.

    tea_cache_reference.py OUT_DIR SEED

Writes OUT_DIR/modulations.safetensors (call_<k>: the modulated input of call k; calls alternate
cond, uncond as the authors' `cnt` does) and OUT_DIR/cases.json: for several settings
(coefficients, threshold, use_ret_steps, steps) the decision of every call, computed as the
authors compute it.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file


def decisions(
    mods: list[torch.Tensor],
    coefficients: list[float],
    thresh: float,
    use_ret_steps: bool,
    num_steps: int,
) -> list[bool]:
    """Whether each call computes (True) or reuses the residual (False), as the authors decide."""
    if use_ret_steps:
        ret_steps, cutoff_steps = 5 * 2, num_steps * 2
    else:
        ret_steps, cutoff_steps = 1 * 2, num_steps * 2 - 2
    rescale = np.poly1d(coefficients)
    acc = {0: 0.0, 1: 0.0}
    previous: dict[int, torch.Tensor] = {}
    out = []
    for cnt, modulated in enumerate(mods):
        side = cnt % 2  # even: cond, odd: uncond
        if cnt < ret_steps or cnt >= cutoff_steps:
            should_calc = True
            acc[side] = 0.0
        else:
            prev = previous[side]
            acc[side] += rescale(((modulated - prev).abs().mean() / prev.abs().mean()).cpu().item())
            if acc[side] < thresh:
                should_calc = False
            else:
                should_calc = True
                acc[side] = 0.0
        previous[side] = modulated.clone()
        out.append(bool(should_calc))
    return out


def main() -> None:
    out_dir, seed = Path(sys.argv[1]), int(sys.argv[2])
    generator = torch.Generator().manual_seed(seed)
    steps = 30
    # A drifting modulation: consecutive calls of a branch differ by a few percent, more at the
    # start, as a timestep embedding does along a schedule.
    base = [torch.randn(1, 6, 64, generator=generator) for _ in range(2)]
    mods = []
    for step in range(steps):
        for side in range(2):
            drift = 0.2 * (1.0 - step / steps) + 0.01
            base[side] = base[side] + drift * torch.randn(1, 6, 64, generator=generator)
            mods.append(base[side].clone())
    save_file(
        {f"call_{k}": m.contiguous() for k, m in enumerate(mods)},
        str(out_dir / "modulations.safetensors"),
    )
    identity = [1.0, 0.0]
    wan_1_3b = [-5.21862437e04, 9.23041404e03, -5.28275948e02, 1.36987616e01, -4.99875664e-02]
    cases = []
    for coefficients, thresh, use_ret in [
        (identity, 0.3, True),
        (identity, 0.3, False),
        (identity, 0.8, True),
        (wan_1_3b, 0.05, True),
        (wan_1_3b, 0.08, False),
        (identity, 0.0, True),
    ]:
        cases.append(
            {
                "coefficients": coefficients,
                "threshold": thresh,
                "use_ret_steps": use_ret,
                "steps": steps,
                "compute": decisions(mods, coefficients, thresh, use_ret, steps),
            }
        )
    (out_dir / "cases.json").write_text(json.dumps(cases))


if __name__ == "__main__":
    main()
