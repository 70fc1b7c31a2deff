"""ComfyUI's own Wan image-input nodes as the reference for Raylight's (wan_image_inputs_test.cc).

wan_image_reference.py make --vae V.safetensors --clip C.safetensors --clip-config J.json
    --images I.safetensors --width W --height H --length L --out E.safetensors
    --comfyui-tarball TGZ --workdir DIR

loads the VAE with ComfyUI's VAE wrapper (comfy.sd.VAE, which detects Wan's from the keys) and
the CLIP vision tower with its ClipVisionModel (config J, ComfyUI's own json format), encodes
I's `start_image` (and `end_image`, if there) with ComfyUI's CLIPVisionEncode path
(encode_image, centre crop), runs WanImageToVideo (start only) or WanFirstLastFrameToVideo
(both) at W x H x L, and writes what the nodes put in the positive conditioning:
`concat_latent_image`, `concat_mask` and `clip_fea` (the penultimate states).

wan_image_reference.py wan22 --vae V.safetensors --images I.safetensors --width W --height H
    --length L --out E.safetensors --comfyui-tarball TGZ --workdir DIR

runs Wan22ImageToVideoLatent (TI2V-5B's start image) and writes its LATENT: `samples` and
`noise_mask`.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from comfyui_tree import unpack_comfyui
from safetensors.torch import load_file, save_file


def make(args: argparse.Namespace) -> None:
    unpack_comfyui(args.comfyui_tarball, args.workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    # ComfyUI stores image-encoder weights in fp16 by default, on CPUs too (a storage choice that
    # rounds every weight); fp32 storage makes its computation the exact one compared against.
    comfy.cli_args.args.fp32_text_enc = True
    import comfy.clip_vision
    import comfy.sd
    from comfy_extras.nodes_wan import WanFirstLastFrameToVideo, WanImageToVideo

    vae = comfy.sd.VAE(sd=load_file(args.vae))
    clip = comfy.clip_vision.ClipVisionModel(args.clip_config)
    clip.load_sd(load_file(args.clip))
    images = load_file(args.images)
    start = images["start_image"]
    end = images.get("end_image")
    text: list[Any] = [[torch.zeros(1, 4, 8), {}]]
    with torch.no_grad():
        start_clip = clip.encode_image(start[:1], crop=True)
        if end is None:
            out = WanImageToVideo.execute(
                text,
                text,
                vae,
                args.width,
                args.height,
                args.length,
                1,
                start_image=start,
                clip_vision_output=start_clip,
            )
            clip_fea = start_clip.penultimate_hidden_states
        else:
            end_clip = clip.encode_image(end[-1:], crop=True)
            out = WanFirstLastFrameToVideo.execute(
                text,
                text,
                vae,
                args.width,
                args.height,
                args.length,
                1,
                start_image=start,
                end_image=end,
                clip_vision_start_image=start_clip,
                clip_vision_end_image=end_clip,
            )
            clip_fea = torch.cat(
                [start_clip.penultimate_hidden_states, end_clip.penultimate_hidden_states], dim=-2
            )
    values = out.result[0][0][1]
    save_file(
        {
            "concat_latent_image": values["concat_latent_image"].float().contiguous(),
            "concat_mask": values["concat_mask"].float().contiguous(),
            "clip_fea": clip_fea.float().contiguous(),
        },
        args.out,
    )


def wan22(args: argparse.Namespace) -> None:
    unpack_comfyui(args.comfyui_tarball, args.workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.sd
    from comfy_extras.nodes_wan import Wan22ImageToVideoLatent

    vae = comfy.sd.VAE(sd=load_file(args.vae))
    start = load_file(args.images)["start_image"]
    with torch.no_grad():
        out = Wan22ImageToVideoLatent.execute(
            vae, args.width, args.height, args.length, 1, start_image=start
        )
    latent = out.result[0]
    save_file(
        {
            "samples": latent["samples"].float().contiguous(),
            "noise_mask": latent["noise_mask"].float().contiguous(),
        },
        args.out,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make")
    for name in (
        "--vae",
        "--clip",
        "--clip-config",
        "--images",
        "--out",
        "--comfyui-tarball",
        "--workdir",
    ):
        mk.add_argument(name, required=True)
    for name in ("--width", "--height", "--length"):
        mk.add_argument(name, type=int, required=True)
    w22 = sub.add_parser("wan22")
    for name in ("--vae", "--images", "--out", "--comfyui-tarball", "--workdir"):
        w22.add_argument(name, required=True)
    for name in ("--width", "--height", "--length"):
        w22.add_argument(name, type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.command == "make":
        make(args)
    else:
        wan22(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
