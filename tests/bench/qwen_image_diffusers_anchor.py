"""The Qwen-Image anchor of flux_bench (--family qwen_image): diffusers' QwenImageTransformer2DModel
on the same checkpoint, inputs and GPU, bf16: its forward's median time, eager and (--compile)
with `compile_repeated_blocks`, and (for even patch counts, where diffusers centres the image's
RoPE positions as ComfyUI and we do) its prediction's relative L2 against ours.

    qwen_image_diffusers_anchor.py --make F         a random bf16 checkpoint of Qwen-Image's real
                                                    sizes in diffusers' names (20.4B parameters)
    qwen_image_diffusers_anchor.py --checkpoint F --inputs I --ours O --ours-ms MS --name PREFIX
                                   [--runs N] [--compile]

Prints JSON lines in the results schema.
"""

from __future__ import annotations

import torch
from anchor_rows import (
    anchor_parser,
    emit_rel_l2,
    emit_speed_rows,
    inference_forward,
    make_random_checkpoint,
)
from diffusers import QwenImagePipeline, QwenImageTransformer2DModel
from safetensors.torch import load_file


def make(path: str) -> None:
    with torch.device("meta"):
        model = QwenImageTransformer2DModel()
    make_random_checkpoint(model, path)


def main() -> int:
    args = anchor_parser().parse_args()
    if args.make:
        make(args.make)
        return 0

    with torch.device("meta"):
        model = QwenImageTransformer2DModel()
    model.load_state_dict(load_file(args.checkpoint, device="cuda"), strict=True, assign=True)
    # The rotary table is a buffer the state dict does not hold: made again off the meta device.
    rope_class = type(model.pos_embed)
    model.pos_embed = rope_class(
        theta=10000, axes_dim=list(model.config.axes_dims_rope), scale_rope=True
    )
    model = model.to("cuda", torch.bfloat16).eval()

    device, dtype = "cuda", torch.bfloat16
    inputs = load_file(args.inputs)
    x = inputs["x"].to(device, dtype)
    batch, channels, height, width = x.shape
    packed = QwenImagePipeline._pack_latents(x, batch, channels, height, width)
    kwargs = dict(
        hidden_states=packed,
        encoder_hidden_states=inputs["context"].to(device, dtype),
        timestep=inputs["t"].to(device, dtype),
        img_shapes=[[(1, height // 2, width // 2)]] * batch,
        return_dict=False,
    )

    forward = inference_forward(model, kwargs)

    out = QwenImagePipeline._unpack_latents(forward(), height * 8, width * 8, 8).float().cpu()
    if (height // 2) % 2 == 0 and (width // 2) % 2 == 0:
        ours = load_file(args.ours)["out"].float().reshape(out.shape)
        emit_rel_l2(args.name, ours, out)
    emit_speed_rows(args, model, forward)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
