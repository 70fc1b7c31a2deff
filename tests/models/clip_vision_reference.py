"""Outside references for Raylight's CLIP vision encoder (tests/models/clip_vision_test.cc).

  clip_vision_reference.py make --config C.json --seed S --images I.safetensors
      --out-model M.safetensors --out-expected E.safetensors --comfyui-tarball TGZ --workdir DIR

  a random CLIPVisionModelWithProjection (transformers) written with its own names (those of
  ComfyUI's clip_vision_h.safetensors); for every `image_<i>` [1, H, W, 3] in I (ComfyUI's IMAGE):
  ComfyUI's own clip_preprocess with and without the crop (E's `pixels_<i>_crop`,
  `pixels_<i>_resize`), and on the cropped pixels transformers' penultimate hidden states
  (`penultimate_<i>`, what ComfyUI's CLIPVisionEncode hands Wan as clip_fea), last hidden state
  and image embeds, and ComfyUI's own CLIPVisionModelProjection's penultimate on the same weights
  (`comfy_penultimate_<i>`).

  clip_vision_reference.py random --config C.json --image-size S --seed S --out M.safetensors
      a random tower of that config for S-pixel images (tests of jobs with start images).

C.json: {"width": D, "heads": H, "layers": N, "mlp": F, "activation": "gelu" | "quick_gelu"}.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
from comfyui_tree import unpack_comfyui
from safetensors.torch import load_file, save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection


def comfy_modules(tarball: str, workdir: str) -> tuple[Any, Any, Any]:
    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.clip_model
    import comfy.clip_vision
    import comfy.ops

    return comfy.clip_vision, comfy.clip_model, comfy.ops


def tower_config(c: dict[str, Any], image_size: int, projection: int) -> CLIPVisionConfig:
    """transformers' config for C.json's tower (patches of 14)."""
    return CLIPVisionConfig(
        hidden_size=c["width"],
        intermediate_size=c["mlp"],
        num_attention_heads=c["heads"],
        num_hidden_layers=c["layers"],
        patch_size=14,
        image_size=image_size,
        hidden_act=c["activation"],
        projection_dim=projection,
    )


def random_tower(args: argparse.Namespace) -> None:
    with open(args.config) as f:
        c = json.load(f)
    torch.manual_seed(args.seed)
    model = CLIPVisionModelWithProjection(tower_config(c, args.image_size, c["width"]))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)


def make(args: argparse.Namespace) -> None:
    with open(args.config) as f:
        c = json.load(f)
    torch.manual_seed(args.seed)
    model = CLIPVisionModelWithProjection(tower_config(c, 224, 1024))
    model.eval()  # type: ignore[no-untyped-call]
    with torch.no_grad():  # LayerNorms away from their identity start, so their names matter
        for name, param in model.named_parameters():
            if "layer_norm" in name or "layrnorm" in name:
                param.add_(0.1 * torch.randn(param.shape))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, args.out_model)
    clip_vision, clip_model, ops = comfy_modules(args.comfyui_tarball, args.workdir)
    comfy_config = {
        "hidden_size": c["width"],
        "intermediate_size": c["mlp"],
        "num_attention_heads": c["heads"],
        "num_hidden_layers": c["layers"],
        "patch_size": 14,
        "image_size": 224,
        "hidden_act": c["activation"],
        "projection_dim": 1024,
        "num_channels": 3,
        "model_type": "clip_vision_model",
        "layer_norm_eps": 1e-5,
    }
    comfy_model = clip_model.CLIPVisionModelProjection(
        comfy_config, torch.float32, "cpu", ops.manual_cast
    )
    comfy_model.load_state_dict(state, strict=False)
    expected: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, image in load_file(args.images).items():
            index = name.split("_")[1]
            crop = clip_vision.clip_preprocess(image, size=224, crop=True).float()
            resize = clip_vision.clip_preprocess(image, size=224, crop=False).float()
            expected[f"pixels_{index}_crop"] = crop.contiguous()
            expected[f"pixels_{index}_resize"] = resize.contiguous()
            out = model(pixel_values=crop, output_hidden_states=True)
            expected[f"penultimate_{index}"] = out.hidden_states[-2].contiguous()
            expected[f"last_{index}"] = out.last_hidden_state.contiguous()
            expected[f"embeds_{index}"] = out.image_embeds.contiguous()
            comfy_out = comfy_model(pixel_values=crop, intermediate_output=-2)
            expected[f"comfy_penultimate_{index}"] = comfy_out[1].contiguous()
    save_file(expected, args.out_expected)


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--seed", type=int, required=True)
    for name in (
        "--config",
        "--images",
        "--out-model",
        "--out-expected",
        "--comfyui-tarball",
        "--workdir",
    ):
        mk.add_argument(name, required=True)
    rnd = sub.add_parser("random")
    rnd.add_argument("--config", required=True)
    rnd.add_argument("--image-size", type=int, required=True)
    rnd.add_argument("--seed", type=int, required=True)
    rnd.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.command == "random":
        random_tower(args)
    else:
        make(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
