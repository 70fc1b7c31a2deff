"""The anchor of flux_bench: diffusers' FluxTransformer2DModel on the same checkpoint (BFL's
spelling, converted by diffusers' own convert_flux_transformer_checkpoint_to_diffusers), the same
inputs and the same GPU, bf16: its forward's median time, eager and (--compile) with
`compile_repeated_blocks` as diffusers recommends, and its prediction's relative L2 against ours.

    flux_diffusers_anchor.py --checkpoint F --inputs I --ours O --name PREFIX [--runs N]
                             [--compile] [--guidance-embed 0|1]

Prints JSON lines in the results schema.
"""

from __future__ import annotations

import torch
from anchor_rows import (
    anchor_parser,
    emit,
    emit_compiled_ratio,
    emit_eager_ratio,
    emit_rel_l2,
    flux_pipeline_inputs,
)
from diffusers import FluxPipeline, FluxTransformer2DModel
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers
from safetensors.torch import load_file


def main() -> int:
    args = anchor_parser().parse_args()

    state = convert_flux_transformer_checkpoint_to_diffusers(load_file(args.checkpoint))
    guidance_embed = any(k.startswith("time_text_embed.guidance_embedder.") for k in state)
    with torch.device("meta"):
        model = FluxTransformer2DModel(guidance_embeds=guidance_embed)
    model.load_state_dict(state, strict=True, assign=True)
    model = model.to("cuda", torch.bfloat16).eval()
    del state

    device, dtype = "cuda", torch.bfloat16
    inputs = load_file(args.inputs)
    kwargs, height, width = flux_pipeline_inputs(inputs, device, dtype)
    kwargs["pooled_projections"] = inputs["pooled"].to(device, dtype)
    kwargs["guidance"] = inputs["guidance"].to(device, dtype) if guidance_embed else None

    def forward() -> torch.Tensor:
        with torch.inference_mode():
            return model(**kwargs)[0]

    out = FluxPipeline._unpack_latents(forward(), height * 8, width * 8, 8).float().cpu()
    ours = load_file(args.ours)["out"].float()
    emit_rel_l2(args.name, ours, out)
    emit_eager_ratio(args.name, forward, args.ours_ms, args.runs)
    # The fp32 forward of the same weights (upcast from bf16: the same values) as the truth both
    # bf16 forwards are measured against.
    model = model.float()
    kwargs.update(
        {k: v.float() for k, v in kwargs.items() if isinstance(v, torch.Tensor) and k != "img_ids"}
    )
    truth = FluxPipeline._unpack_latents(forward(), height * 8, width * 8, 8).float().cpu()
    ours_error = float((ours - truth).norm() / truth.norm())
    theirs_error = float((out - truth).norm() / truth.norm())
    emit(
        f"{args.name}_rel_l2_vs_fp32",
        ours_error,
        "ratio",
        "diffusers' bf16 prediction's relative L2 from the fp32 one",
        theirs_error,
    )
    model = model.to(torch.bfloat16)
    kwargs.update(
        {k: v.to(torch.bfloat16) for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
    )
    if args.compile:
        emit_compiled_ratio(args.name, model, forward, args.ours_ms, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
