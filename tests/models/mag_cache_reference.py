"""A transcription of MagCache4Wan2.1's skip decision (magcache_generate.py: nearest_interp, the
interpolation of mag_ratios to the run's steps, and magcache_forward's `skip_forward` branch), the
reference tests/models/mag_cache_test.cc checks models::MagCacheSchedule against.

    mag_cache_reference.py CASES.json OUT.json

Each case gives "ratios" (cond, uncond of each step in turn), "steps", "threshold", "max_skips"
(the authors' K) and "retention_ratio", and for Wan 2.2's two experts "switch_step" and
"image_to_video" (MagCache4Wan2.2's split_step and mode: its retention rule), and "rule": "flux"
for MagCache4FLUX's (magcache_flux.py: a counter over steps, int(retention_ratio * num_steps +
0.5) steps retained, error <= threshold, the step mapping to 11 of their 28 computed). OUT gets, per
case, "authors": the decision of every call of each branch ([cond per step, uncond per step],
True: compute) as the authors' counter `cnt` walks cond and uncond in turn; "joint": Raylight's
rule (a step's two calls reuse only when both branches' rules reuse; a branch made to compute so
restarts, as a computing call does); "single": the cond branch's rule alone (a job without an
uncond branch). One reading the authors' code leaves open: the first call of a branch has no
residual to reuse, so it computes even with no retained calls.
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
        self.num_steps = case["steps"] * 2
        self.retention_ratio = case["retention_ratio"]
        # MagCache4Wan2.2's two experts: its split_step (in calls) and mode.
        self.split_step = case.get("switch_step", 0) * 2
        self.mode = "i2v" if case.get("image_to_video", False) else "t2v"
        self.flux = case.get("rule") == "flux"
        self.steps = case["steps"]
        self.accumulated_ratio = [1.0, 1.0]
        self.accumulated_steps = [0, 0]
        self.accumulated_err = [0.0, 0.0]

    def restart(self, side: int) -> None:
        self.accumulated_err[side] = 0
        self.accumulated_steps[side] = 0
        self.accumulated_ratio[side] = 1.0

    def retained(self, cnt: int) -> bool:
        if cnt < 2:
            return True
        if self.flux:  # magcache_flux.py counts steps
            return cnt // 2 < int(self.retention_ratio * self.steps + 0.5)
        if self.split_step:  # magcache_generate.py of MagCache4Wan2.2
            if self.mode == "i2v":
                return cnt < int(
                    self.split_step + (self.num_steps - self.split_step) * self.retention_ratio
                )
            return cnt < int(self.split_step * self.retention_ratio) or (
                cnt <= ((self.num_steps - self.split_step) * self.retention_ratio + self.split_step)
                and cnt >= self.split_step
            )
        return cnt < int(self.num_steps * self.retention_ratio)

    def skips(self, cnt: int) -> bool:
        side = cnt % 2
        if self.retained(cnt):
            return False
        self.accumulated_ratio[side] = self.accumulated_ratio[side] * self.mag[cnt]
        self.accumulated_steps[side] += 1
        self.accumulated_err[side] += np.abs(1 - self.accumulated_ratio[side])
        if self.flux:
            step = cnt // 2
            forced = (
                self.steps > 1 and np.round(step * ((28 - 1) / (self.steps - 1))).astype(int) == 11
            )
            if (
                self.accumulated_err[side] <= self.thresh
                and self.accumulated_steps[side] <= self.k
                and not forced
            ):
                return True
        elif self.accumulated_err[side] < self.thresh and self.accumulated_steps[side] <= self.k:
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
        if not (cond and uncond):  # a branch forced to compute restarts as computing does
            if cond:
                joint_state.restart(0)
            if uncond:
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
