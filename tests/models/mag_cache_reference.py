"""A transcription of MagCache4Wan2.1's skip decision (magcache_generate.py: nearest_interp, the
interpolation of mag_ratios to the run's steps, and magcache_forward's `skip_forward` branch), the
reference tests/models/mag_cache_test.cc checks models::MagCacheSchedule against.

    mag_cache_reference.py CASES.json OUT.json

Each case gives "ratios" (cond, uncond of each step in turn), "steps", "threshold", "max_skips"
(the authors' K) and "retention_ratio". OUT gets, per case, "authors": the decision of every call
of each branch ([cond per step, uncond per step], True: compute) as the authors' counter `cnt`
walks cond and uncond in turn; "joint": Raylight's rule (a step's two calls reuse only when both
branches' rules reuse; where either computes, both restart); "single": the cond branch's rule
alone (a job without an uncond branch). One reading the authors' code leaves open: the first call
of a branch has no residual to reuse, so it computes even with no retained calls.
"""

import json
import sys

import numpy as np


def nearest_interp(src: np.ndarray, target_length: int) -> np.ndarray:
    if target_length == 1:
        return np.array([src[-1]])
    scale = (len(src) - 1) / (target_length - 1)
    mapped = np.round(np.arange(target_length) * scale).astype(int)
    return src[mapped]


def ratios_for(ratios: list[float], steps: int) -> np.ndarray:
    mag = np.array(ratios)
    if len(mag) != steps * 2:
        cond = nearest_interp(mag[0::2], steps)
        uncond = nearest_interp(mag[1::2], steps)
        mag = np.concatenate([cond.reshape(-1, 1), uncond.reshape(-1, 1)], axis=1).reshape(-1)
    return mag


class Branches:
    """The authors' per-branch accumulators and rule (magcache_forward)."""

    def __init__(self, case: dict, mag: np.ndarray) -> None:
        self.mag = mag
        self.thresh = case["threshold"]
        self.k = case["max_skips"]
        self.retained = int(case["steps"] * 2 * case["retention_ratio"])
        self.accumulated_ratio = [1.0, 1.0]
        self.accumulated_steps = [0, 0]
        self.accumulated_err = [0.0, 0.0]

    def restart(self, side: int) -> None:
        self.accumulated_err[side] = 0
        self.accumulated_steps[side] = 0
        self.accumulated_ratio[side] = 1.0

    def skips(self, cnt: int) -> bool:
        side = cnt % 2
        if cnt < self.retained or cnt < 2:
            return False
        self.accumulated_ratio[side] = self.accumulated_ratio[side] * self.mag[cnt]
        self.accumulated_steps[side] += 1
        self.accumulated_err[side] += np.abs(1 - self.accumulated_ratio[side])
        if self.accumulated_err[side] < self.thresh and self.accumulated_steps[side] <= self.k:
            return True
        self.restart(side)
        return False


def decide(case: dict) -> dict:
    steps = case["steps"]
    mag = ratios_for(case["ratios"], steps)
    authors = Branches(case, mag)
    calls = [[], []]
    for cnt in range(steps * 2):
        calls[cnt % 2].append(not authors.skips(cnt))
    joint_state, single_state = Branches(case, mag), Branches(case, mag)
    joint, single = [], []
    for step in range(steps):
        cond = joint_state.skips(2 * step)
        uncond = joint_state.skips(2 * step + 1)
        if not (cond and uncond):
            joint_state.restart(0)
            joint_state.restart(1)
        joint.append(not (cond and uncond))
        single.append(not single_state.skips(2 * step))
    return {"authors": calls, "joint": joint, "single": single}


def main() -> None:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    with open(sys.argv[2], "w") as f:
        json.dump([decide(case) for case in cases], f)


if __name__ == "__main__":
    main()
