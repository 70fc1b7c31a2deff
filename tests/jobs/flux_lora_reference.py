"""Random LoRAs for a Flux-shaped checkpoint stored in Black Forest Labs' names (ComfyUI's Flux
and Chroma files), in the two forms trainers write them, and that checkpoint in diffusers'
spelling: the inputs of the Flux-family LoRA job tests, whose reference is ComfyUI applying the
LoRA to its own (fused) weights.

    flux_lora_reference.py --base B.safetensors --lora L.safetensors --form diffusers|kohya \\
        --seed N [--blocks-only]

diffusers: PEFT's names under "transformer." (to_q, to_k, add_v_proj, to_out.0, ff.net.0.proj,
norm1.linear; a single block's to_q, to_v, proj_mlp, proj_out; norm_out.linear), no alpha: the
parts ComfyUI places by row offsets into BFL's fused qkv / linear1 (and norm_out's (scale, shift)
swapped). kohya: BFL's fused names (lora_unet_double_blocks_0_img_attn_qkv, ..._linear1,
final_layer.adaLN_modulation.1) with an alpha, and one `linear1_qkv` (the attention's rows of a
single block's linear1, a name ComfyUI maps).

    flux_lora_reference.py --base B.safetensors --diffusers-copy D.safetensors \\
        --comfyui-tarball T --workdir W

writes B's weights in diffusers' names, split and reordered by ComfyUI's own map
(comfy/utils.py flux_to_diffusers).
"""

from __future__ import annotations

import argparse
import sys

import torch
from safetensors.torch import load_file, save_file

PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def bfl_weights(path: str) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in load_file(path).items():
        out[next((key[len(p) :] for p in PREFIXES if key.startswith(p)), key)] = value
    return out


def count_blocks(weights: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".")[0]) for k in weights if k.startswith(prefix)}
    return max(indices) + 1 if indices else 0


def diffusers_modules(w: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """diffusers module -> (out, in) of the modules the diffusers-form LoRA updates."""
    h = w["img_in.weight"].shape[0]
    mlp = w["single_blocks.0.linear1.weight"].shape[0] - 3 * h
    modules: dict[str, tuple[int, int]] = {"context_embedder": tuple(w["txt_in.weight"].shape)}
    for i in range(count_blocks(w, "double_blocks.")):
        b = f"transformer_blocks.{i}."
        for name in ("attn.to_q", "attn.to_k", "attn.add_v_proj", "attn.to_out.0"):
            modules[b + name] = (h, h)
        modules[b + "ff.net.0.proj"] = tuple(w[f"double_blocks.{i}.img_mlp.0.weight"].shape)
        if f"double_blocks.{i}.img_mod.lin.weight" in w:  # not Chroma's
            modules[b + "norm1.linear"] = (6 * h, h)
    for i in range(count_blocks(w, "single_blocks.")):
        b = f"single_transformer_blocks.{i}."
        modules[b + "attn.to_q"] = (h, h)
        modules[b + "attn.to_v"] = (h, h)
        modules[b + "proj_mlp"] = (mlp, h)
        modules[b + "proj_out"] = tuple(w[f"single_blocks.{i}.linear2.weight"].shape)
    if "final_layer.adaLN_modulation.1.weight" in w:
        modules["norm_out.linear"] = (2 * h, h)
    return modules


def kohya_modules(w: dict[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """BFL module -> (out, in) of the modules the kohya-form LoRA updates."""
    h = w["img_in.weight"].shape[0]
    modules: dict[str, tuple[int, int]] = {}
    for i in range(count_blocks(w, "double_blocks.")):
        for name in ("img_attn.qkv", "txt_attn.qkv", "img_attn.proj", "txt_mlp.0"):
            modules[f"double_blocks.{i}.{name}"] = tuple(
                w[f"double_blocks.{i}.{name}.weight"].shape
            )
    for i in range(count_blocks(w, "single_blocks.")):
        for name in ("linear1", "linear2"):
            modules[f"single_blocks.{i}.{name}"] = tuple(
                w[f"single_blocks.{i}.{name}.weight"].shape
            )
    modules["single_blocks.0.linear1_qkv"] = (3 * h, h)
    if "final_layer.adaLN_modulation.1.weight" in w:
        modules["final_layer.adaLN_modulation.1"] = (2 * h, h)
    return modules


def write_lora(base: str, out: str, form: str, seed: int, blocks_only: bool) -> None:
    w = bfl_weights(base)
    g = torch.Generator().manual_seed(seed)
    rank, alpha = 4, 3.0
    lora: dict[str, torch.Tensor] = {}
    modules = diffusers_modules(w) if form == "diffusers" else kohya_modules(w)
    for module, (rows, cols) in modules.items():
        if blocks_only and "blocks." not in module:
            continue
        up = torch.randn(rows, rank, generator=g) * 0.05
        down = torch.randn(rank, cols, generator=g) * 0.05
        if form == "diffusers":
            lora[f"transformer.{module}.lora_B.weight"] = up
            lora[f"transformer.{module}.lora_A.weight"] = down
        elif module.endswith("linear1_qkv"):  # ComfyUI's own spelling of it
            lora[f"diffusion_model.{module}.lora_up.weight"] = up
            lora[f"diffusion_model.{module}.lora_down.weight"] = down
            lora[f"diffusion_model.{module}.alpha"] = torch.tensor(alpha)
        else:
            kohya = "lora_unet_" + module.replace(".", "_")
            lora[f"{kohya}.lora_up.weight"] = up
            lora[f"{kohya}.lora_down.weight"] = down
            lora[f"{kohya}.alpha"] = torch.tensor(alpha)
    save_file(lora, out)


def write_diffusers_copy(base: str, out: str, tarball: str, workdir: str) -> None:
    sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/models")
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.utils

    w = bfl_weights(base)
    config = {
        "depth": count_blocks(w, "double_blocks."),
        "depth_single_blocks": count_blocks(w, "single_blocks."),
        "hidden_size": w["img_in.weight"].shape[0],
    }
    copy: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, target in comfy.utils.flux_to_diffusers(config, output_prefix="").items():
        if isinstance(target, str):
            source, offset, function = target, None, None
        elif len(target) == 2:
            (source, offset), function = target, None
        else:
            source, offset, function = target
        if source not in w:
            continue
        value = w[source]
        if offset is not None:
            value = value.narrow(*offset)
        if function is not None:
            value = function(value)
        copy[name] = value.contiguous()
        used.add(source)
    if used != set(w):
        raise SystemExit(f"ComfyUI's map leaves {sorted(set(w) - used)} unplaced")
    save_file(copy, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--lora")
    parser.add_argument("--form", choices=["diffusers", "kohya"])
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--blocks-only", action="store_true", help="no LoRA on the weights outside the blocks"
    )
    parser.add_argument("--diffusers-copy")
    parser.add_argument("--comfyui-tarball")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    if args.lora:
        write_lora(args.base, args.lora, args.form, args.seed, args.blocks_only)
    if args.diffusers_copy:
        write_diffusers_copy(args.base, args.diffusers_copy, args.comfyui_tarball, args.workdir)


if __name__ == "__main__":
    main()
