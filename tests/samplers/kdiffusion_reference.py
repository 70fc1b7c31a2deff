"""The outside reference for Raylight's samplers: crowsonkb's k-diffusion (PyPI), the library
ComfyUI's samplers descend from. Runs one of its samplers on the analytic Gaussian denoiser with
the given sigmas and a fixed sequence of noise draws, and writes the result.

    python kdiffusion_reference.py --inputs F --out F --sampler NAME

Inputs (safetensors): x [shape], sigmas [n], noise [k, shape] (used in order by every noise draw),
mu, std (scalars: the data distribution N(mu, std^2), element-wise).

k-diffusion's package __init__ imports its training code (torchvision, wandb, ...); only
k_diffusion/sampling.py is needed, so it is loaded under a bare package object that provides the
one helper it imports (append_dims); the sampling code run is k-diffusion's own, unmodified.
"""
import argparse
import importlib
import importlib.util
import inspect
import os
import sys
import types

import torch
from safetensors.torch import load_file, save_file


def load_sampling():
    spec = importlib.util.find_spec("k_diffusion")
    package = types.ModuleType("k_diffusion")
    package.__path__ = [os.path.dirname(spec.origin)]
    utils = types.ModuleType("k_diffusion.utils")

    def append_dims(x, target_dims):
        return x[(...,) + (None,) * (target_dims - x.ndim)]

    utils.append_dims = append_dims
    package.utils = utils
    sys.modules["k_diffusion"] = package
    sys.modules["k_diffusion.utils"] = utils
    return importlib.import_module("k_diffusion.sampling")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--sampler", required=True)
    args = parser.parse_args()
    sampling = load_sampling()
    inputs = load_file(args.inputs)
    x, sigmas, noise = inputs["x"], inputs["sigmas"], inputs["noise"]
    mu, std = float(inputs["mu"]), float(inputs["std"])
    draws = iter(noise)

    def model(x, sigma):
        # E[x0 | x] for x0 ~ N(mu, std^2) and x = x0 + sigma * eps.
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return mu + (std ** 2 / (std ** 2 + s ** 2)) * (x - mu)

    def noise_sampler(sigma, sigma_next):
        return next(draws).clone()

    fn = getattr(sampling, "sample_" + args.sampler)
    kwargs = {"disable": True}
    # The samplers are wrapped by @torch.no_grad(): ask the signature, which follows __wrapped__.
    if "noise_sampler" in inspect.signature(fn).parameters:
        kwargs["noise_sampler"] = noise_sampler
    out = fn(model, x, sigmas, **kwargs)
    save_file({"out": out.contiguous()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
