"""ComfyUI's fp8 stochastic rounding, the reference for Raylight's (tests/models/lora_gpu_test.cc):
comfy/float.py, read straight out of ComfyUI's source tarball (it needs only torch, so the GPU
machine runs it without ComfyUI's other requirements), rounds a float32 tensor on the device it
names with the seed given, as ComfyUI's model patcher rounds a LoRA'd scaled-fp8 weight.

  fp8_rounding_reference.py --comfyui-tarball TGZ --input I.safetensors --seed S \\
      --device cuda --out O.safetensors

I holds `value` (float32); O holds `e4m3fn` and `e5m2`, the value rounded to each format.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
import types

import torch
from safetensors.torch import load_file, save_file


def comfy_float(tarball: str) -> types.ModuleType:
    with tarfile.open(tarball) as tar:
        member = next(name for name in tar.getnames() if name.endswith("/comfy/float.py"))
        extracted = tar.extractfile(member)
        if extracted is None:
            raise FileNotFoundError(f"{tarball}: {member} is not a file")
        source = extracted.read().decode()
    module = types.ModuleType("comfy_float")
    exec(compile(source, member, "exec"), module.__dict__)
    return module


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--comfyui-tarball", "--input", "--device", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    rounding = comfy_float(args.comfyui_tarball)
    value = load_file(args.input)["value"].to(args.device)
    out = {
        name: rounding.stochastic_rounding(value, dtype, seed=args.seed).cpu()
        for name, dtype in (("e4m3fn", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2))
    }
    save_file(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
