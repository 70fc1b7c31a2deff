"""A random LoRA for a checkpoint and the checkpoint with it merged offline: the reference a
LoRA'd job must equal. The merge is LoRA's definition, written here independently of the
cluster: W' = W + strength * alpha / rank * up @ down in float32, stored in W's dtype.

    python lora_reference.py --base B.safetensors --lora L.safetensors \
        --merged M.safetensors --strength S --seed N [--family wan|qwen_image|flux2]

Wan's LoRA is kohya-named (lora_unet_blocks_0_self_attn_q.lora_up.weight, with an alpha);
Qwen-Image's is named as diffusers / PEFT save one (transformer.transformer_blocks.0.attn.to_q
.lora_B.weight, no alpha: a scale of 1), or with --kohya as kohya / musubi-tuner name it
(lora_unet_transformer_blocks_0_attn_to_q...). FLUX.2's is diffusers-named like Qwen-Image's.
"""

import argparse

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

PREFIXES = ("model.diffusion_model.", "diffusion_model.")
# Per family: the blocks' prefixes, the modules a LoRA updates, whether it is kohya-named.
FAMILIES = {
    "wan": (("blocks.",), ("self_attn.q", "self_attn.o", "cross_attn.k", "ffn.0", "ffn.2"), True),
    "qwen_image": (
        ("transformer_blocks.",),
        ("attn.to_q", "attn.to_out.0", "attn.add_k_proj", "img_mlp.net.0.proj", "txt_mlp.net.2"),
        False,
    ),
    # FLUX.2 in diffusers' names: a single block's fused projection is one module there too.
    "flux2": (
        ("transformer_blocks.", "single_transformer_blocks."),
        (
            "attn.to_q",
            "attn.add_k_proj",
            "ff.linear_in",
            "ff_context.linear_out",
            "attn.to_qkv_mlp_proj",
            "attn.to_out",
        ),
        False,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--base", "--lora", "--merged"):
        parser.add_argument(name, required=True)
    parser.add_argument("--strength", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--family", default="wan", choices=sorted(FAMILIES))
    parser.add_argument("--kohya", action="store_true", help="kohya's names whatever the family")
    args = parser.parse_args()
    blocks, modules, kohya_names = FAMILIES[args.family]
    kohya_names = kohya_names or args.kohya
    base = load_file(args.base)
    g = torch.Generator().manual_seed(args.seed)
    rank, alpha = 4, 2.0
    lora: dict[str, torch.Tensor] = {}
    merged = dict(base)
    for key, weight in base.items():
        name = next((key[len(p) :] for p in PREFIXES if key.startswith(p)), key)
        prefix = next((b for b in blocks if name.startswith(b)), None)
        if prefix is None or not name.endswith(".weight"):
            continue
        module = name[: -len(".weight")]
        if module[len(prefix) :].split(".", 1)[1] not in modules:
            continue
        up = torch.randn(weight.shape[0], rank, generator=g) * 0.05
        down = torch.randn(rank, weight.shape[1], generator=g) * 0.05
        if kohya_names:
            kohya = "lora_unet_" + module.replace(".", "_")
            lora[f"{kohya}.lora_up.weight"] = up
            lora[f"{kohya}.lora_down.weight"] = down
            lora[f"{kohya}.alpha"] = torch.tensor(alpha)
            scale = alpha / rank
        else:
            lora[f"transformer.{module}.lora_B.weight"] = up
            lora[f"transformer.{module}.lora_A.weight"] = down
            scale = 1.0
        update = (up @ down) * (args.strength * scale)
        merged[key] = (weight.to(torch.float32) + update).to(weight.dtype)
    save_file(lora, args.lora)
    with safe_open(args.base, "pt") as base_file:  # the config lives in the metadata too
        metadata = base_file.metadata()
    save_file(merged, args.merged, metadata=metadata)


if __name__ == "__main__":
    main()
