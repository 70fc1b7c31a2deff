"""ComfyUI's own LoRA arithmetic as the reference for Raylight's merges (tests/models/lora_test.cc):
comfy.lora.load_lora reads the file (every adapter ComfyUI knows: LoRA, LoHa, LoKr, DoRA), and
comfy.lora.calculate_weight applies it to each weight in float32, as ComfyUI's model patcher does.

  lycoris_reference.py --comfyui-tarball TGZ --workdir DIR --base B.safetensors \\
      --lora L.safetensors --strength S --out O.safetensors

B holds the weights under their model names ("blocks.0.self_attn.q.weight"); L's keys name them
as ComfyUI's native LoRAs do ("diffusion_model.blocks.0.self_attn.q"). O holds every patched
weight (float32).

--pieces JSON ({"<L's module>": [["<B's module>", from, into, count], ...]}) names modules whose
updates go to rows of other weights: one piece from row 0 covering the whole update is ComfyUI's
offset (its key map's (key, (0, into, count)), calculate_weight narrowing the weight); several
pieces split a fused update over its parts, which here is the fused weight (the parts stacked in
`from` order) patched by ComfyUI and cut back into the parts.

A scaled-fp8 weight in B (with its `<module>.scale_weight`) is patched as
ComfyUI's scaled_fp8 ops patch it: dequantised, merged, then put back to fp8 over its scale by
comfy.float.stochastic_rounding seeded from its ComfyUI key; O holds it as fp8.
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--pieces", default="{}")
    args = parser.parse_args()
    lora_module, float_module, patcher = comfy_modules(args.comfyui_tarball, args.workdir)
    base = load_file(args.base)
    lora = load_file(args.lora)
    to_load: dict[str, Any] = {
        "diffusion_model." + key[: -len(".weight")]: key for key in base if key.endswith(".weight")
    }
    fused: dict[str, list[tuple[str, int, int, int]]] = {}
    for module, pieces in json.loads(args.pieces).items():
        if len(pieces) == 1 and pieces[0][1] == 0:
            target, _, into, count = pieces[0]
            to_load[module] = (target + ".weight", (0, into, count))
        else:
            to_load[module] = "fused:" + module
            fused["fused:" + module] = [(t + ".weight", f, i, c) for t, f, i, c in pieces]
            base["fused:" + module] = torch.cat(
                [
                    base[t].narrow(0, i, c)
                    for t, _, i, c in sorted(fused["fused:" + module], key=lambda p: p[1])
                ]
            )
    # Every weight's patches in the file's order, with their offsets (ComfyUI's add_patches).
    per_weight: dict[str, list[tuple[float, Any, float, Any, None]]] = {}
    for key, adapter in lora_module.load_lora(lora, to_load).items():
        name, offset = key if isinstance(key, tuple) else (key, None)
        per_weight.setdefault(name, []).append((args.strength, adapter, 1.0, offset, None))
    out: dict[str, torch.Tensor] = {}
    for key, patch_list in per_weight.items():
        stored = base[key]
        scale = base.get(key[: -len(".weight")] + ".scale_weight")
        weight = stored.to(torch.float32).clone()
        if scale is not None:  # scaled_fp8_ops.convert_weight
            weight *= scale.to(torch.float32)
        merged = lora_module.calculate_weight(patch_list, weight, key)
        if scale is not None:  # scaled_fp8_ops.set_weight, seeded as the model patcher seeds it
            merged = float_module.stochastic_rounding(
                merged / scale.to(torch.float32),
                stored.dtype,
                seed=patcher.string_to_seed("diffusion_model." + key),
            )
        if key in fused:  # cut back into its parts
            for target, start, into, count in fused[key]:
                part = out.get(target, base[target].to(torch.float32).clone())
                part[into : into + count] = merged[start : start + count]
                out[target] = part.contiguous()
            continue
        out[key] = merged.contiguous()
    save_file(out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
