"""The rows of a benchmark that times variants of one job (step_cache_gpu.sh, flux_job_gpu.sh,
family_job_gpu.sh): job_runs.sh's `run` left WORK/NAME.txt (sampling seconds, calls reused,
calls) and raylightctl WORK/NAME.latent for each variant; the `uncached` run is the anchor.

    job_rows.py WORK PREFIX NAME:LABEL[:reuse] ...

For each NAME, `<PREFIX>_<LABEL>_job_ratio` (its seconds over the uncached job's),
`<PREFIX>_<LABEL>_calls_reused` where `:reuse` is given (a step cache's), and
`<PREFIX>_<LABEL>_latent_rel_l2` (its final latent's distance from the uncached one); first
`<PREFIX>_job_s`, the uncached job's seconds. Prints one JSON object in the results schema.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from safetensors.torch import load_file


def read(work: str, name: str) -> tuple[float, int, int, Any]:
    with open(f"{work}/{name}.txt") as f:
        seconds, reused, calls = f.read().split()
    latent = load_file(f"{work}/{name}.latent")["latent_tensor"].float()
    return float(seconds), int(reused), int(calls), latent


def rows(work: str, prefix: str, variants: list[str]) -> list[dict[str, Any]]:
    base_s, _, _, base = read(work, "uncached")
    out: list[dict[str, Any]] = [
        dict(
            name=f"{prefix}_job_s",
            value=base_s,
            unit="s",
            anchor="sampling seconds of the uncached job",
            anchor_value=base_s,
        )
    ]
    for variant in variants:
        name, label, *reuse = variant.split(":")
        seconds, reused, calls, latent = read(work, name)
        out.append(
            dict(
                name=f"{prefix}_{label}_job_ratio",
                value=seconds / base_s,
                unit="ratio",
                anchor="the same job uncached, sampling s",
                anchor_value=base_s,
            )
        )
        if reuse:
            out.append(
                dict(
                    name=f"{prefix}_{label}_calls_reused",
                    value=reused,
                    unit="calls",
                    anchor="model calls of the job",
                    anchor_value=calls,
                )
            )
        out.append(
            dict(
                name=f"{prefix}_{label}_latent_rel_l2",
                value=float((latent - base).norm() / base.norm()),
                unit="ratio",
                anchor="the uncached job's latent",
                anchor_value=0.0,
            )
        )
    return out


def main() -> int:
    work, prefix, *variants = sys.argv[1:]
    print(json.dumps({"results": rows(work, prefix, variants)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
