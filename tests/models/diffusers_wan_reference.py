"""The outside reference for Raylight's Wan forward: Hugging Face diffusers' WanTransformer3DModel.

Loads a checkpoint written in diffusers spelling (strictly: every key used, none missing), runs one
forward on the given inputs and writes the prediction. Called by tests/models/wan_diffusers_test.cc.

    python diffusers_wan_reference.py --config JSON --checkpoint F --inputs F --out F
                                      [--device cpu|cuda] [--dtype f32|bf16] [--time-runs N]

Inputs (safetensors): x [B, C, F, H, W] with every input channel, t [B] or [B, L], context
[B, Ltext, text_dim] (zero-padded here to 512 as the Wan pipelines do), clip_fea (I2V).
"""

import argparse
import json
import sys
import time
from typing import Any

import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import load_file, save_file


def load_wan_model(cfg: dict[str, Any], checkpoint: str, device: str, dtype: torch.dtype) -> Any:
    """diffusers' WanTransformer3DModel of `cfg` (the JSON below) with `checkpoint`'s weights
    (diffusers spelling, every key used), on `device` in `dtype` (its fp32 modules kept fp32);
    None (after saying why) when the names do not match."""
    i2v = cfg["family"] == "i2v"
    wan_model: Any = WanTransformer3DModel  # diffusers is untyped
    with torch.device("meta"):
        model = wan_model(
            patch_size=(1, 2, 2),
            num_attention_heads=cfg["num_heads"],
            attention_head_dim=cfg["dim"] // cfg["num_heads"],
            in_channels=cfg["in_channels"],
            out_channels=cfg["out_channels"],
            text_dim=cfg["text_dim"],
            freq_dim=cfg["freq_dim"],
            ffn_dim=cfg["ffn_dim"],
            num_layers=cfg["num_layers"],
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=cfg["eps"],
            image_dim=cfg["image_dim"] if i2v else None,
            added_kv_proj_dim=cfg["dim"] if i2v else None,
            pos_embed_seq_len=cfg.get("flf_pos_tokens") or None,
        )
    state = load_file(checkpoint)
    state = {k: v.to(dtype) for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    if missing or unexpected:
        print(
            f"checkpoint does not match diffusers: missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}",
            file=sys.stderr,
        )
        return None
    # The rotary table is a non-persistent buffer (not in checkpoints): rebuilt off the meta
    # device.
    rope = type(model.rope)(cfg["dim"] // cfg["num_heads"], (1, 2, 2), 1024)
    model.rope = rope
    model = model.to(device).eval()
    # diffusers keeps these modules in fp32 when loading in low precision.
    for name in model._keep_in_fp32_modules:
        for module_name, module in model.named_modules():
            if module_name.split(".")[-1] == name or module_name == name:
                module.float()
    for name, param in model.named_parameters():
        if name.endswith("scale_shift_table"):
            param.data = param.data.float()
    return model


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    parser.add_argument(
        "--time-runs",
        type=int,
        default=0,
        help="also time this many forwards after one warm-up; print ms as JSON",
    )
    args = parser.parse_args()
    cfg = json.loads(args.config)
    dtype = torch.float32 if args.dtype == "f32" else torch.bfloat16
    model = load_wan_model(cfg, args.checkpoint, args.device, dtype)
    if model is None:
        return 2

    inputs = load_file(args.inputs)
    x = inputs["x"].to(args.device, dtype)
    t = inputs["t"].to(args.device)
    context = inputs["context"]
    pad = 512 - context.shape[1]
    context = torch.nn.functional.pad(context, (0, 0, 0, pad)).to(args.device, dtype)
    clip = inputs["clip_fea"].to(args.device, dtype) if "clip_fea" in inputs else None
    if clip is not None and cfg.get("flf_pos_tokens"):
        # FLF2V: diffusers takes the two images as a batch of 2 per sample and joins them.
        clip = clip.reshape(-1, clip.shape[1] // 2, clip.shape[2])

    def forward() -> torch.Tensor:
        with torch.no_grad():
            out: torch.Tensor = model(
                x, t, context, encoder_hidden_states_image=clip, return_dict=False
            )[0]
            return out

    out = forward()
    if args.time_runs > 0:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(args.time_runs):
            forward()
        torch.cuda.synchronize()
        print(
            json.dumps(
                {"diffusers_forward_ms": (time.perf_counter() - start) * 1e3 / args.time_runs}
            )
        )
    save_file({"out": out.float().cpu().contiguous()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
