"""A random LoRA for a Wan checkpoint and the checkpoint with it merged offline: the reference a
LoRA'd job must equal. The merge is LoRA's definition, written here independently of the
cluster: W' = W + strength * alpha / rank * up @ down in float32, stored in W's dtype.

    python lora_reference.py --base B.safetensors --lora L.safetensors \
        --merged M.safetensors --strength S --seed N
"""

import argparse

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

PREFIXES = ("model.diffusion_model.", "diffusion_model.")
MODULES = ("self_attn.q", "self_attn.o", "cross_attn.k", "ffn.0", "ffn.2")


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("--base", "--lora", "--merged"):
        parser.add_argument(name, required=True)
    parser.add_argument("--strength", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()
    base = load_file(args.base)
    g = torch.Generator().manual_seed(args.seed)
    rank, alpha = 4, 2.0
    lora: dict[str, torch.Tensor] = {}
    merged = dict(base)
    for key, weight in base.items():
        name = next((key[len(p) :] for p in PREFIXES if key.startswith(p)), key)
        if not name.startswith("blocks.") or not name.endswith(".weight"):
            continue
        module = name[: -len(".weight")]
        if module.split(".", 2)[2] not in MODULES:
            continue
        up = torch.randn(weight.shape[0], rank, generator=g) * 0.05
        down = torch.randn(rank, weight.shape[1], generator=g) * 0.05
        kohya = "lora_unet_" + module.replace(".", "_")
        lora[f"{kohya}.lora_up.weight"] = up
        lora[f"{kohya}.lora_down.weight"] = down
        lora[f"{kohya}.alpha"] = torch.tensor(alpha)
        update = (up @ down) * (args.strength * alpha / rank)
        merged[key] = (weight.to(torch.float32) + update).to(weight.dtype)
    save_file(lora, args.lora)
    with safe_open(args.base, "pt") as base_file:  # the config lives in the metadata too
        metadata = base_file.metadata()
    save_file(merged, args.merged, metadata=metadata)


if __name__ == "__main__":
    main()
