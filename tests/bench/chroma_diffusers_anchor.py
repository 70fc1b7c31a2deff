"""The Chroma anchor of flux_bench (--family chroma): diffusers' ChromaTransformer2DModel on the
same checkpoint, inputs and GPU, bf16: its forward's median time, eager and (--compile) with
`compile_repeated_blocks`, and its prediction's relative L2 against ours. diffusers' Chroma takes
no guidance (ComfyUI's input, 0 there), so flux_bench runs ours at guidance 0; every text token
is valid (no padding mask on either side).

    chroma_diffusers_anchor.py --make F         a random bf16 checkpoint of Chroma's real sizes
                                                in diffusers' names (8.9B parameters)
    chroma_diffusers_anchor.py --checkpoint F --inputs I --ours O --ours-ms MS --name PREFIX
                               [--runs N] [--compile] [--device cuda]

Prints JSON lines in the results schema. On a CPU (--device cpu, a smoke run on a tiny file)
the times mean nothing.
"""

from __future__ import annotations

import torch
from anchor_rows import (
    anchor_parser,
    emit_rel_l2,
    emit_speed_rows,
    flux_pipeline_inputs,
    inference_forward,
    make_random_checkpoint,
)
from diffusers import ChromaTransformer2DModel, FluxPipeline
from safetensors.torch import load_file


def model_from(state: dict[str, torch.Tensor]) -> ChromaTransformer2DModel:
    """The model whose sizes the checkpoint's shapes give (real Chroma or a smoke run's tiny
    one): depths from the block counts, widths from the projections."""
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    single = 1 + max(
        int(k.split(".")[1]) for k in state if k.startswith("single_transformer_blocks.")
    )
    hidden = state["x_embedder.weight"].shape[0]
    head_dim = state["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    approximator = [k for k in state if k.startswith("distilled_guidance_layer.layers.")]
    # RoPE's axes as Flux splits a head (16, 56, 56 of 128; 4, 14, 14 of the tiny presets' 32).
    side = head_dim * 7 // 16
    return ChromaTransformer2DModel(
        in_channels=state["x_embedder.weight"].shape[1],
        num_layers=depth,
        num_single_layers=single,
        attention_head_dim=head_dim,
        num_attention_heads=hidden // head_dim,
        joint_attention_dim=state["context_embedder.weight"].shape[1],
        axes_dims_rope=(head_dim - 2 * side, side, side),
        approximator_hidden_dim=state["distilled_guidance_layer.in_proj.weight"].shape[0],
        approximator_layers=1 + max(int(k.split(".")[2]) for k in approximator),
    )


def main() -> int:
    args = anchor_parser().parse_args()
    if args.make:
        with torch.device("meta"):
            model = ChromaTransformer2DModel()
        make_random_checkpoint(model, args.make)
        return 0

    device, dtype = args.device, torch.bfloat16
    state = load_file(args.checkpoint, device=device)
    with torch.device("meta"):
        model = model_from(state)
    model.load_state_dict(state, strict=True, assign=True)
    # The modulation index table is a buffer the state dict does not hold (it stayed on the meta
    # device): its module, which has no weights, made again at the same sizes.
    embed = model.time_text_embed
    out_dim, width = embed.mod_proj.shape
    model.time_text_embed = type(embed)(num_channels=width // 2, out_dim=out_dim)
    model = model.to(device, dtype).eval()
    del state

    kwargs, height, width = flux_pipeline_inputs(load_file(args.inputs), device, dtype)

    forward = inference_forward(model, kwargs)

    out = FluxPipeline._unpack_latents(forward(), height * 8, width * 8, 8).float().cpu()
    ours = load_file(args.ours)["out"].float().reshape(out.shape)
    emit_rel_l2(args.name, ours, out)
    emit_speed_rows(args, model, forward)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
