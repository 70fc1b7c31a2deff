"""ComfyUI's own LoRA arithmetic as the reference for Raylight's merges (tests/models/lora_test.cc):
comfy.lora.load_lora reads the file (every adapter ComfyUI knows: LoRA, LoHa, LoKr, DoRA), and
comfy.lora.calculate_weight applies it to each weight in float32, as ComfyUI's model patcher does.

  lycoris_reference.py --comfyui-tarball TGZ --workdir DIR --base B.safetensors \\
      --lora L.safetensors --strength S --out O.safetensors

B holds the weights under their model names ("blocks.0.self_attn.q.weight"); L's keys name them
as ComfyUI's native LoRAs do ("diffusion_model.blocks.0.self_attn.q"). O holds every patched
weight (float32). A scaled-fp8 weight in B (with its `<module>.scale_weight`) is patched as
ComfyUI's scaled_fp8 ops patch it: dequantised, merged, then put back to fp8 over its scale by
comfy.float.stochastic_rounding seeded from its ComfyUI key; O holds it as fp8.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
from comfyui_tree import unpack_comfyui
from safetensors.torch import load_file, save_file


def comfy_modules(tarball: str, workdir: str) -> tuple[Any, Any, Any]:
    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.float
    import comfy.lora
    import comfy.model_patcher

    return comfy.lora, comfy.float, comfy.model_patcher


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--comfyui-tarball", "--workdir", "--base", "--lora", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--strength", type=float, required=True)
    args = parser.parse_args()
    lora_module, float_module, patcher = comfy_modules(args.comfyui_tarball, args.workdir)
    base = load_file(args.base)
    lora = load_file(args.lora)
    to_load = {
        "diffusion_model." + key[: -len(".weight")]: key for key in base if key.endswith(".weight")
    }
    patches = lora_module.load_lora(lora, to_load)
    out: dict[str, torch.Tensor] = {}
    for key, adapter in patches.items():
        stored = base[key]
        scale = base.get(key[: -len(".weight")] + ".scale_weight")
        weight = stored.to(torch.float32).clone()
        if scale is not None:  # scaled_fp8_ops.convert_weight
            weight *= scale.to(torch.float32)
        merged = lora_module.calculate_weight(
            [(args.strength, adapter, 1.0, None, None)], weight, key
        )
        if scale is not None:  # scaled_fp8_ops.set_weight, seeded as the model patcher seeds it
            merged = float_module.stochastic_rounding(
                merged / scale.to(torch.float32),
                stored.dtype,
                seed=patcher.string_to_seed("diffusion_model." + key),
            )
        out[key] = merged.contiguous()
    save_file(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
