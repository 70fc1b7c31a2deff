"""ComfyUI's own sampling code as the reference for Raylight's KSample (issue #22's parity points).

    python comfyui_reference.py --comfyui-tarball TGZ --workdir DIR --cases CASES.json \
        --inputs IN.safetensors --out OUT.safetensors

TGZ is ComfyUI's source (../shared/third_party/ComfyUI-0.3.64.tar.gz), unpacked into DIR. Each case runs ComfyUI's
KSampler (comfy.samplers.KSampler: the schedule, discard-penultimate samplers, denoise, the
KSamplerAdvanced cuts start/end/force_full_denoise and the early return, KSAMPLER's noise scaling,
sampler function and inverse noise scaling) on a small rectified-flow model with Wan's latent
format, from ComfyUI's LATENT to ComfyUI's LATENT. Only two pieces of ComfyUI are stood in for,
because they need a loaded checkpoint: the model patcher (a small analytic network, the same one the
C++ test runs; see `network`), and CFGGuider.inner_sample, whose latent handling is reproduced in
`guided_sample` (process_latent_in unless the latent is all zeros, process_latent_out on the result).

Cases (JSON list): name, sampler, scheduler, steps, denoise, seed, latent (a tensor name in the
inputs, "@NAME" for an earlier case's result, or "" for zeros shaped like `shape`), shape, add_noise, start_step, end_step,
return_with_leftover_noise, format ("wan21" | "wan22"), shift, sigmas (optional custom schedule),
the network constants a, b, c, d, and optionally a LATENT noise mask: mask (a tensor name in the
inputs) with inpaint "renoise" (BaseModel.scale_latent_inpaint) or "clean" (WAN22's), prepared as
CFGGuider.outer_sample prepares it and applied by ComfyUI's own KSamplerX0Inpaint. Also `beta_indices`: writes the beta scheduler's sigmas for
every step count listed, on the model's table; and `brownian`: ComfyUI's BrownianTreeNoiseSampler
(torchsde) for a seed, shape and sigma list, at each listed (sigma, sigma_next) query.

Where ComfyUI versions differ, the newest is followed: ComfyUI after 0.3.64 seeds the CPU step
noise generator with seed + 1 (so that it does not replay the initial noise), which is patched in
here and said so in samplers/k_samplers.h.
"""

import argparse
import json
import os
import sys
import tarfile
from typing import Any

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "comfyui"))
import newest_noise_seed  # noqa: E402


def load_comfy(root: str) -> Any:
    sys.path.insert(0, root)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.k_diffusion.sampling as kds
    import comfy.latent_formats
    import comfy.model_sampling
    import comfy.samplers

    newest_noise_seed.install(kds)
    return comfy


def make_sampling(comfy: Any, shift: float) -> Any:
    cls = type(
        "ModelSampling",
        (comfy.model_sampling.ModelSamplingDiscreteFlow, comfy.model_sampling.CONST),
        {},
    )
    sampling = cls()
    sampling.set_parameters(shift=shift, multiplier=1000)
    return sampling


def network(
    x: torch.Tensor, t: torch.Tensor, a: float, b: float, c: float, d: float
) -> torch.Tensor:
    """The model's velocity for input x at timestep t (the same formula as the C++ test's); the
    d term mixes frames, so that what a noise mask keeps reaches what it samples."""
    tt = (t / 1000.0).reshape(-1, *([1] * (x.ndim - 1)))
    return a * x + b * torch.tanh(x) * tt + c + d * torch.roll(x, 1, -3)


class Patcher:
    """What comfy.samplers.KSampler asks of a model patcher: its model_sampling."""

    def __init__(self, sampling: Any) -> None:
        self.sampling = sampling

    def get_model_object(self, name: str) -> Any:
        assert name == "model_sampling", name
        return self.sampling


class Inner:
    def __init__(self, sampling: Any, latent_format: Any) -> None:
        self.model_sampling = sampling
        self.latent_format = latent_format

    def process_latent_in(self, latent: torch.Tensor) -> torch.Tensor:
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent: torch.Tensor) -> torch.Tensor:
        return self.latent_format.process_out(latent)

    def scale_latent_inpaint(self, **kwargs: Any) -> torch.Tensor:
        # The model class's own method, run on this stand-in (it reads self.model_sampling).
        return self.inpaint_model.scale_latent_inpaint(self, **kwargs)  # type: ignore[no-any-return]


class Wrap:
    """The CFG model wrapper at cfg 1: BaseModel.apply_model's input, timestep and denoised."""

    def __init__(self, inner: Inner, constants: tuple[float, float, float, float]) -> None:
        self.inner_model = inner
        self.constants = constants
        # The SDE samplers read the model sampling through the patcher (log-SNR for flow models).
        self.model_patcher = Patcher(inner.model_sampling)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        sampling = self.inner_model.model_sampling
        xc = sampling.calculate_input(sigma, x)
        t = sampling.timestep(sigma).float()
        out = network(xc, t, *self.constants).float()
        return sampling.calculate_denoised(sigma, out, x)


def run_case(comfy: Any, case: dict[str, Any], inputs: dict[str, torch.Tensor],
             outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    sampling = make_sampling(comfy, case["shift"])
    latent_format = {"wan21": comfy.latent_formats.Wan21, "wan22": comfy.latent_formats.Wan22}[
        case["format"]
    ]()
    inner = Inner(sampling, latent_format)
    import comfy.model_base

    inner.inpaint_model = (  # type: ignore[attr-defined]
        comfy.model_base.WAN22 if case.get("inpaint") == "clean" else comfy.model_base.BaseModel
    )
    mask = inputs[case["mask"]] if case.get("mask") else None
    wrap = Wrap(inner, (case["a"], case["b"], case["c"], case["d"]))
    if case["latent"].startswith("@"):  # an earlier case's LATENT, as a chained node gets it
        latent = outputs[case["latent"][1:]]
    else:
        latent = inputs[case["latent"]] if case["latent"] else torch.zeros(case["shape"])

    def guided_sample(model: Any, noise: torch.Tensor, positive: Any, negative: Any, cfg: float,
                      device: Any, sampler: Any, sigmas: torch.Tensor, model_options: Any = {},
                      latent_image: torch.Tensor | None = None, denoise_mask: Any = None,
                      callback: Any = None, disable_pbar: bool = False,
                      seed: int | None = None) -> torch.Tensor:
        # CFGGuider.inner_sample's latent handling around ComfyUI's own KSAMPLER.sample.
        if latent_image is not None and torch.count_nonzero(latent_image) > 0:
            latent_image = inner.process_latent_in(latent_image)
        if denoise_mask is not None:  # CFGGuider.outer_sample's
            denoise_mask = comfy.sampler_helpers.prepare_mask(denoise_mask, noise.shape, "cpu")
        extra_args = {"model_options": {}, "seed": seed}
        samples = sampler.sample(
            wrap, sigmas, extra_args, None, noise, latent_image, denoise_mask, True
        )
        return inner.process_latent_out(samples.to(torch.float32))

    comfy.samplers.sample = guided_sample
    if case["add_noise"]:
        noise = comfy.sample.prepare_noise(latent, case["seed"])
    else:
        noise = torch.zeros(latent.size(), dtype=latent.dtype, layout=latent.layout)
    ksampler = comfy.samplers.KSampler(
        Patcher(sampling), steps=case["steps"], device="cpu", sampler=case["sampler"],
        scheduler=case["scheduler"], denoise=case["denoise"])
    custom = torch.tensor(case["sigmas"], dtype=torch.float32) if case.get("sigmas") else None
    return ksampler.sample(
        noise, None, None, 1.0, latent_image=latent, start_step=case["start_step"],
        last_step=case["end_step"], force_full_denoise=not case["return_with_leftover_noise"],
        denoise_mask=mask, sigmas=custom, disable_pbar=True, seed=case["seed"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--comfyui-tarball", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with tarfile.open(args.comfyui_tarball) as tar:
        top = tar.getnames()[0].split("/")[0]
        tar.extractall(args.workdir, filter="data")
    comfy = load_comfy(os.path.join(args.workdir, top))
    import comfy.sample  # noqa: F401  (prepare_noise)
    import comfy.sampler_helpers  # noqa: F401  (prepare_mask)

    spec = json.load(open(args.cases))
    inputs = load_file(args.inputs)
    outputs: dict[str, torch.Tensor] = {}
    for case in spec.get("cases", []):
        outputs[case["name"]] = run_case(comfy, case, inputs, outputs).contiguous()
    for tree in spec.get("brownian", []):
        # ComfyUI's SDE noise: BrownianTreeNoiseSampler over the run's float32 sigmas, queried
        # at (sigma, sigma_next) pairs as the samplers query it.
        import comfy.k_diffusion.sampling as kds

        x = torch.zeros(tree["shape"])
        sigmas = torch.tensor(tree["sigmas"], dtype=torch.float32)
        sampler = kds.BrownianTreeNoiseSampler(
            x, sigmas[sigmas > 0].min(), sigmas.max(), seed=tree["seed"], cpu=True
        )
        for i, (a, b) in enumerate(tree["queries"]):
            query = torch.tensor([a, b], dtype=torch.float32)
            outputs[f"{tree['name']}_{i}"] = sampler(query[0], query[1]).contiguous()
    for steps in spec.get("beta_indices", []):
        sampling = make_sampling(comfy, 5.0)
        outputs[f"beta_{steps}"] = comfy.samplers.beta_scheduler(sampling, steps).contiguous()
    for name in ("wan21", "wan22"):
        if f"format_{name}" in inputs:
            fmt = {"wan21": comfy.latent_formats.Wan21, "wan22": comfy.latent_formats.Wan22}[name]()
            x = inputs[f"format_{name}"]
            outputs[f"in_{name}"] = fmt.process_in(x).contiguous()
            outputs[f"out_{name}"] = fmt.process_out(x).contiguous()
    save_file(outputs, args.out)


if __name__ == "__main__":
    main()
