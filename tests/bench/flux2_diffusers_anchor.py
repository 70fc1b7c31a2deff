"""The FLUX.2 anchor of flux_bench (--family flux2): diffusers' Flux2Transformer2DModel on the
same checkpoint, inputs and GPU, bf16: its forward's median time, eager and (--compile) with
`compile_repeated_blocks`, and its prediction's relative L2 against ours.

FLUX.2 [dev] has 32B parameters: its bf16 file (64 GB) does not fit the GPU machine's disk, so
the random checkpoint is fp8-scaled, as ComfyUI ships FLUX.2 (flux2_dev_fp8mixed): every matrix
e4m3 with one fp32 `<module>.weight_scale`, the norms bf16. Each scale is a power of two, so a
matrix's bf16 value (e4m3 x scale) is exact and both sides compute with the same bf16 weights:
flux_bench dequantises at load for its bf16 forward; this script dequantises tensor by tensor.

    flux2_diffusers_anchor.py --make F          a random fp8-scaled checkpoint of FLUX.2 [dev]'s
                                                real sizes in diffusers' names (32 GB)
    flux2_diffusers_anchor.py --checkpoint F --inputs I --ours O --ours-ms MS --name PREFIX
                              [--runs N] [--compile] [--device cuda]

Prints JSON lines in the results schema. On a CPU (--device cpu, a smoke run on a tiny file)
the times mean nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from anchor_rows import anchor_parser, emit_rel_l2, emit_speed_rows, inference_forward
from diffusers import Flux2Pipeline, Flux2Transformer2DModel
from safetensors import safe_open
from safetensors.torch import load_file, save_file

SCALE_SUFFIX = ".weight_scale"


def make_fp8_checkpoint(model: torch.nn.Module, path: str, device: str) -> None:
    """`model`'s state (meta: names and shapes) as random weights: matrices at 1/sqrt(fan-in)
    stored as e4m3 with a power-of-two scale (their absolute maximum at or under e4m3's 448),
    norm scales around 1 in bf16."""
    generator = torch.Generator(device).manual_seed(1234)
    tensors: dict[str, torch.Tensor] = {}
    for name, p in model.state_dict().items():
        values = torch.randn(p.shape, generator=generator, device=device)
        if p.dim() >= 2:
            values = values / (p.shape[-1] ** 0.5)
            scale = 2.0 ** torch.ceil(torch.log2(values.abs().max() / 448.0))
            tensors[name] = (values / scale).to(torch.float8_e4m3fn).cpu()
            tensors[name.removesuffix(".weight") + SCALE_SUFFIX] = scale.float().reshape(1).cpu()
        else:
            tensors[name] = (1 + 0.1 * values).to(torch.bfloat16).cpu()
    save_file(tensors, path)


def load_dequantised(path: str, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The checkpoint's weights in `dtype` on `device`, each e4m3 matrix times its scale (read
    one tensor at a time: the file's bf16 value never sits in host memory whole)."""
    state: dict[str, torch.Tensor] = {}
    with safe_open(path, framework="pt", device="cpu") as f:
        names = set(f.keys())
        for name in names:
            if name.endswith(SCALE_SUFFIX):
                continue
            value = f.get_tensor(name).to(device)
            scale_name = name.removesuffix(".weight") + SCALE_SUFFIX
            if scale_name in names:
                value = value.float() * f.get_tensor(scale_name).to(device)
            state[name] = value.to(dtype)
    return state


def model_from(state: dict[str, torch.Tensor]) -> Flux2Transformer2DModel:
    """The model whose sizes the checkpoint's shapes give (real FLUX.2 or a smoke run's tiny
    one): depths from the block counts, widths from the projections, four equal RoPE axes."""
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks."))
    single = 1 + max(
        int(k.split(".")[1]) for k in state if k.startswith("single_transformer_blocks.")
    )
    hidden = state["x_embedder.weight"].shape[0]
    head_dim = state["transformer_blocks.0.attn.norm_q.weight"].shape[0]
    return Flux2Transformer2DModel(
        in_channels=state["x_embedder.weight"].shape[1],
        num_layers=depth,
        num_single_layers=single,
        attention_head_dim=head_dim,
        num_attention_heads=hidden // head_dim,
        joint_attention_dim=state["context_embedder.weight"].shape[1],
        axes_dims_rope=(head_dim // 4,) * 4,
    )


def pipeline_inputs(
    inputs: dict[str, torch.Tensor], device: str, dtype: torch.dtype
) -> dict[str, Any]:
    """FLUX.2's keyword inputs from flux_bench's file as its pipeline makes them: the latent
    [B, 128, H, W] as H x W tokens with ids (0, h, w, 0), the text with ids (0, 0, 0, l)."""
    x = inputs["x"].to(device, dtype)
    context = inputs["context"].to(device, dtype)
    return dict(
        hidden_states=Flux2Pipeline._pack_latents(x),
        encoder_hidden_states=context,
        timestep=inputs["t"].to(device, dtype),
        guidance=inputs["guidance"].to(device, dtype),
        img_ids=Flux2Pipeline._prepare_latent_ids(x).to(device),
        txt_ids=Flux2Pipeline._prepare_text_ids(context).to(device),
        return_dict=False,
    )


def main() -> int:
    args = anchor_parser().parse_args()
    if args.make:
        with torch.device("meta"):
            model = Flux2Transformer2DModel()
        make_fp8_checkpoint(model, args.make, args.device)
        return 0

    device, dtype = args.device, torch.bfloat16
    state = load_dequantised(args.checkpoint, device, dtype)
    with torch.device("meta"):
        model = model_from(state)
    model.load_state_dict(state, strict=True, assign=True)
    model = model.eval()
    del state

    inputs = load_file(args.inputs)
    kwargs = pipeline_inputs(inputs, device, dtype)
    batch, channels, height, width = inputs["x"].shape

    forward = inference_forward(model, kwargs)

    # [B, H * W, C] in row-major token order -> [B, C, H, W].
    out = forward().float().cpu().reshape(batch, height, width, channels).permute(0, 3, 1, 2)
    ours = load_file(args.ours)["out"].float().reshape(out.shape)
    emit_rel_l2(args.name, ours, out)
    emit_speed_rows(args, model, forward)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
