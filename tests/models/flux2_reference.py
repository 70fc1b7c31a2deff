"""The outside reference for Raylight's FLUX.2 forward and jobs (flux2_model_test.cc,
image_family_jobs_test.cc): diffusers' Flux2Transformer2DModel (ComfyUI 0.3.64 predates FLUX.2).

    flux2_reference.py --config JSON --seed S --out-dir D [--inputs I.safetensors]

Random weights (every parameter drawn), saved in diffusers' names as D/diffusers.safetensors
and in Black Forest Labs' names under ComfyUI's prefix as D/bfl.safetensors (fused q, k, v;
(shift, scale) final modulation), checked to be what diffusers' own single-file converter
(convert_flux2_transformer_checkpoint_to_diffusers) turns back into the diffusers weights;
with inputs, the forward on I (x [B, 128, H, W], t [B] sigmas, context [B, L, C], guidance [B])
with the pipeline's position ids (image (0, h, w, 0), text (0, 0, 0, l)) goes to
D/expected.safetensors as `diffusers` [B, 128, H, W].

    flux2_reference.py --conditioning OUT --config JSON --seed S --tokens N [--guidance G]

writes a random conditioning file (text [1, N, context_dim], the guidance when given).

    flux2_reference.py --sample JSON --comfyui-tarball TGZ --workdir W

samples as newer ComfyUI runs FLUX.2, with ComfyUI 0.3.64's own sampling code around diffusers'
network: ModelSamplingFlux at shift 2.02 (its Flux2 model config) with CONST prediction, the
scheduler's sigmas, the seed's noise, the k-diffusion sampler, CFG as ComfyUI combines it, the
text padded in front with zero rows to 512 (its Flux2 model's extra_conds), the guidance (3.5
when the file has none) and the identity latent format (128 channels); the LATENT goes to "out".

JSON config: {"hidden", "heads", "depth", "depth_single", "context_dim", "axes_dim"}; the MLP
ratio is 3 (SwiGLU), RoPE theta 2000, guidance embedded.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import torch
from dit_reference import randomize
from safetensors.torch import load_file, save_file

TEXT_TOKENS = 512
DEFAULT_GUIDANCE = 3.5
SHIFT = 2.02


def make_model(cfg: dict[str, Any]) -> Any:
    from diffusers import Flux2Transformer2DModel

    return Flux2Transformer2DModel(
        patch_size=1,
        in_channels=128,
        num_layers=cfg["depth"],
        num_single_layers=cfg["depth_single"],
        attention_head_dim=cfg["hidden"] // cfg["heads"],
        num_attention_heads=cfg["heads"],
        joint_attention_dim=cfg["context_dim"],
        axes_dims_rope=tuple(cfg["axes_dim"]),
    ).eval()


def forward(
    model: Any, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, guidance: torch.Tensor
) -> torch.Tensor:
    """The network's flow velocity [B, 128, H, W] for a latent [B, 128, H, W]."""
    from diffusers import Flux2Pipeline

    batch, channels, height, width = x.shape
    with torch.no_grad():
        out = model(
            hidden_states=Flux2Pipeline._pack_latents(x),
            encoder_hidden_states=context,
            timestep=t,
            img_ids=Flux2Pipeline._prepare_latent_ids(x),
            txt_ids=Flux2Pipeline._prepare_text_ids(context),
            guidance=guidance,
            return_dict=False,
        )[0]
    # [B, H * W, C] in row-major token order -> [B, C, H, W].
    return out.reshape(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()


def sample(case: dict[str, Any], tarball: str, workdir: str) -> None:
    from comfyui_tree import unpack_comfyui

    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.k_diffusion.sampling
    import comfy.model_sampling
    import comfy.sample
    import comfy.samplers

    model = make_model(case["config"])
    model.load_state_dict(load_file(case["checkpoint"]), strict=True)

    class Sampling(comfy.model_sampling.ModelSamplingFlux, comfy.model_sampling.CONST):
        pass

    sampling = Sampling()
    sampling.set_parameters(shift=SHIFT)

    def conditioning(path: str) -> tuple[torch.Tensor, torch.Tensor]:
        tensors = load_file(path)
        text = tensors["text"].reshape(1, -1, tensors["text"].shape[-1]).float()
        if text.shape[1] < TEXT_TOKENS:
            text = torch.nn.functional.pad(text, (0, 0, TEXT_TOKENS - text.shape[1], 0))
        guidance = tensors.get("guidance", torch.tensor([DEFAULT_GUIDANCE])).reshape(1).float()
        return text, guidance

    cond = conditioning(case["positive"])
    uncond = conditioning(case["negative"])
    cfg = case["cfg"]

    def denoiser(x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
        t = sampling.timestep(sigma).float()

        def denoised(conditioning: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            velocity = forward(model, x, t, *conditioning)
            return sampling.calculate_denoised(sigma, velocity, x)

        positive = denoised(cond)
        if cfg == 1.0:
            return positive
        negative = denoised(uncond)
        return negative + (positive - negative) * cfg

    latent = torch.zeros(1, 128, case["height"] // 16, case["width"] // 16)
    noise = comfy.sample.prepare_noise(latent, case["seed"])
    sigmas = comfy.samplers.calculate_sigmas(sampling, case["scheduler"], case["steps"])
    x = sampling.noise_scaling(sigmas[0], noise, latent)
    sampler = getattr(comfy.k_diffusion.sampling, "sample_" + case["sampler"])
    samples = sampler(denoiser, x, sigmas, disable=True)
    samples = sampling.inverse_noise_scaling(sigmas[-1], samples)
    save_file({"latent_tensor": samples.float().contiguous()}, case["out"])


# diffusers' name -> BFL's, for the names that map one to one.
BFL_GLOBAL = {
    "x_embedder": "img_in",
    "context_embedder": "txt_in",
    "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
    "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
    "single_stream_modulation.linear": "single_stream_modulation.lin",
    "proj_out": "final_layer.linear",
}
BFL_DOUBLE = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
    "attn.to_out.0.weight": "img_attn.proj.weight",
    "attn.to_add_out.weight": "txt_attn.proj.weight",
    "ff.linear_in.weight": "img_mlp.0.weight",
    "ff.linear_out.weight": "img_mlp.2.weight",
    "ff_context.linear_in.weight": "txt_mlp.0.weight",
    "ff_context.linear_out.weight": "txt_mlp.2.weight",
}
BFL_SINGLE = {
    "attn.to_qkv_mlp_proj.weight": "linear1.weight",
    "attn.to_out.weight": "linear2.weight",
    "attn.norm_q.weight": "norm.query_norm.scale",
    "attn.norm_k.weight": "norm.key_norm.scale",
}


def to_bfl(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' FLUX.2 weights in Black Forest Labs' names; raises unless diffusers' own
    converter makes exactly `state` of them again."""
    from diffusers.loaders.single_file_utils import (
        convert_flux2_transformer_checkpoint_to_diffusers,
    )

    bfl: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if key.startswith("transformer_blocks."):
            _, index, rest = key.split(".", 2)
            block = f"double_blocks.{index}."
            for stream, names in (
                ("img", ("to_q", "to_k", "to_v")),
                ("txt", ("add_q_proj", "add_k_proj", "add_v_proj")),
            ):
                if rest == f"attn.{names[0]}.weight":
                    bfl[block + f"{stream}_attn.qkv.weight"] = torch.cat(
                        [state[f"transformer_blocks.{index}.attn.{n}.weight"] for n in names]
                    )
            if rest in BFL_DOUBLE:
                bfl[block + BFL_DOUBLE[rest]] = value
        elif key.startswith("single_transformer_blocks."):
            _, index, rest = key.split(".", 2)
            bfl[f"single_blocks.{index}.{BFL_SINGLE[rest]}"] = value
        elif module == "norm_out.linear":  # (scale, shift) -> (shift, scale)
            scale, shift = value.chunk(2, dim=0)
            bfl[f"final_layer.adaLN_modulation.1.{param}"] = torch.cat([shift, scale])
        else:
            bfl[f"{BFL_GLOBAL[module]}.{param}"] = value
    back = convert_flux2_transformer_checkpoint_to_diffusers(dict(bfl))
    if set(back) != set(state) or any(not torch.equal(back[k], state[k]) for k in state):
        raise SystemExit("the BFL names do not convert back to the diffusers weights")
    return bfl


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", help="a ComfyUI-style sampling run (JSON), instead")
    parser.add_argument("--conditioning", help="write a random conditioning file here instead")
    parser.add_argument("--tokens", type=int, default=7)
    parser.add_argument("--guidance", type=float)
    parser.add_argument("--references", default="", help="HxW,...: reference latents (refused)")
    parser.add_argument("--config")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--inputs")
    parser.add_argument("--out-dir")
    parser.add_argument("--comfyui-tarball")
    parser.add_argument("--workdir")
    parser.add_argument("--skip-diffusers", action="store_true", help="accepted, ignored")
    args = parser.parse_args()
    if args.sample:
        sample(json.loads(args.sample), args.comfyui_tarball, args.workdir)
        return 0
    cfg = json.loads(args.config)
    generator = torch.Generator().manual_seed(args.seed)
    if args.conditioning:
        tensors = {"text": torch.randn(1, args.tokens, cfg["context_dim"], generator=generator)}
        if args.guidance is not None:
            tensors["guidance"] = torch.tensor([args.guidance])
        for i, size in enumerate(filter(None, args.references.split(","))):
            h, w = (int(v) for v in size.split("x"))
            tensors[f"reference_latent_{i}"] = torch.randn(1, 128, h, w, generator=generator)
        save_file(tensors, args.conditioning)
        return 0
    model = make_model(cfg)
    randomize(model, generator)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out_dir, "diffusers.safetensors"))
    save_file(
        {"model.diffusion_model." + k: v.contiguous() for k, v in to_bfl(state).items()},
        os.path.join(args.out_dir, "bfl.safetensors"),
    )
    if args.inputs:
        inputs = load_file(args.inputs)
        expected = forward(model, inputs["x"], inputs["t"], inputs["context"], inputs["guidance"])
        save_file({"diffusers": expected}, os.path.join(args.out_dir, "expected.safetensors"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
