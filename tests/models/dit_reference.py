"""What the transformer references share (flux_reference.py, chroma_reference.py,
qwen_image_reference.py): random weights every path of a model uses, and a sampling run as
ComfyUI's KSampler makes it (comfy.sample.sample on ComfyUI's own model of the family)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter drawn afresh: matrices at 1/sqrt(fan-in), norm scales around 1, other
    vectors (biases) small, so that no path of the model is left at an initialiser's zero."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            values = torch.randn(p.shape, generator=generator, dtype=torch.float32)
            if p.dim() >= 2:
                values = values / (p.shape[-1] ** 0.5)
            elif "norm" in name or name.endswith("scale"):
                values = 1 + 0.1 * values
            else:
                values = 0.1 * values
            p.copy_(values.to(p.dtype))


def comfyui_sample(
    case: dict[str, Any],
    model_config: Any,
    conditioning: Callable[[str], list[Any]],
) -> None:
    """ComfyUI's KSampler on the case's checkpoint (ComfyUI's names under
    `model.diffusion_model.`) with `model_config` (a comfy.supported_models class instance; the
    ComfyUI tree already on sys.path): an empty LATENT of the case's size made as ComfyUI's
    sampler makes it for the model's latent format, its seed's noise, the case's steps, cfg,
    sampler and scheduler, `conditioning(path)` of the positive and negative files, and
    case["loras"] ([{"path", "strength"}]) applied as ComfyUI's LoraLoader applies them (every
    key of each must load); the LATENT goes to case["out"]."""
    import comfy.model_patcher
    import comfy.sample

    model_config.set_inference_dtype(torch.float32, None)
    prefix = "model.diffusion_model."
    state = {k[len(prefix) :]: v for k, v in load_file(case["checkpoint"]).items()}
    model = model_config.get_model(state, device=torch.device("cpu"))
    model.diffusion_model.load_state_dict(state, strict=True)
    patcher = comfy.model_patcher.ModelPatcher(
        model, load_device=torch.device("cpu"), offload_device=torch.device("cpu")
    )
    for lora in case.get("loras", []):
        patcher = with_lora(patcher, lora["path"], lora["strength"])
    if "easycache" in case:
        easy = case["easycache"]
        patcher = with_easycache(patcher, easy["threshold"], easy["start"], easy["end"])
    tea_counts: dict[str, Any] = {}
    if "teacache" in case:
        tea = case["teacache"]
        patcher = with_flux_teacache(
            patcher, tea["threshold"], tea["coefficients"], case["steps"], tea_counts
        )
    latent = torch.zeros(1, 16, case["height"] // 8, case["width"] // 8)
    latent = comfy.sample.fix_empty_latent_channels(patcher, latent)
    noise = comfy.sample.prepare_noise(latent, case["seed"])
    samples = comfy.sample.sample(
        patcher,
        noise,
        case["steps"],
        case["cfg"],
        case["sampler"],
        case["scheduler"],
        conditioning(case["positive"]),
        conditioning(case["negative"]),
        latent,
        denoise=1.0,
        seed=case["seed"],
        disable_pbar=True,
    )
    save_file({"latent_tensor": samples.float().contiguous()}, case["out"])
    if tea_counts:  # the model calls TeaCache answered, beside the LATENT
        counts = {"calls": tea_counts["calls"], "reused": tea_counts["reused"]}
        with open(case["out"] + ".json", "w") as f:
            json.dump(counts, f)


def with_easycache(patcher: Any, threshold: float, start: float, end: float) -> Any:
    """`patcher` with ComfyUI's EasyCache node's wrappers (comfy_extras/nodes_easycache.py, as its
    EasyCache node adds them), its holder answering each branch of a batch with that branch's own
    cached difference in a new tensor. 0.3.64's adds every branch's difference to the whole batch
    when cond and uncond run as one (fixed in later ComfyUI), and adds it in place to the model's
    input, which with a float32 model (the CPU's here) is the very tensor the sampler then takes
    the denoised estimate from (x itself for flow models) and the one returned; with bf16 or fp16
    models that input is a copy. Nothing else differs from the node."""
    import comfy.patcher_extension
    from comfy_extras import nodes_easycache

    class PerBranchHolder(nodes_easycache.EasyCacheHolder):  # type: ignore[misc]
        def apply_cache_diff(self, x: torch.Tensor, uuids: list[Any]) -> torch.Tensor:
            if self.first_cond_uuid in uuids:
                self.total_steps_skipped += 1
            rows = x.shape[0] // len(uuids)
            out = x.clone()
            for i, uuid in enumerate(uuids):
                out[i * rows : (i + 1) * rows] += self.uuid_cache_diffs[uuid].to(x.device)
            return out

        def clone(self) -> PerBranchHolder:
            return PerBranchHolder(
                self.reuse_threshold,
                self.start_percent,
                self.end_percent,
                self.subsample_factor,
                self.offload_cache_diff,
                self.verbose,
            )

    patched = patcher.clone()
    patched.model_options["transformer_options"]["easycache"] = PerBranchHolder(
        threshold, start, end, subsample_factor=8, offload_cache_diff=False
    )
    wrappers = comfy.patcher_extension.WrappersMP
    for kind, wrapper in [
        (wrappers.OUTER_SAMPLE, nodes_easycache.easycache_sample_wrapper),
        (wrappers.CALC_COND_BATCH, nodes_easycache.easycache_calc_cond_batch_wrapper),
        (wrappers.DIFFUSION_MODEL, nodes_easycache.easycache_forward_wrapper),
    ]:
        patched.add_wrapper_with_key(kind, "easycache", wrapper)
    return patched


def with_flux_teacache(
    patcher: Any,
    threshold: float,
    coefficients: list[float],
    num_steps: int,
    state: dict[str, Any],
) -> Any:
    """`patcher` (ComfyUI's Flux) with TeaCache4FLUX's rule (teacache_flux.py, transcribed onto
    ComfyUI's block-replacement patches rather than diffusers' forward): each model call measures
    the first double block's modulated image input, (1 + scale) * img_norm1(img) + shift over
    the call's whole batch, accumulates the rescaled relative L1 change from the previous call's,
    and while the sum stays under the threshold skips every block and adds the image rows'
    residual of the last computed call; the counter's first and last call (cnt 0, num_steps - 1)
    always compute. `state` keeps the rule's state; its "calls" and "reused" count the calls."""
    import numpy as np

    patched = patcher.clone()
    model = patched.model.diffusion_model
    first = model.double_blocks[0]
    rescale = np.poly1d(coefficients)
    state.update({"cnt": 0, "acc": 0.0, "previous": None, "compute": True})
    state.update({"ori": None, "residual": None, "calls": 0, "reused": 0})

    def decide(img: torch.Tensor, vec: torch.Tensor) -> None:
        mod1, _ = first.img_mod(vec)
        modulated = torch.addcmul(mod1.shift, first.img_norm1(img), 1 + mod1.scale)
        if state["cnt"] == 0 or state["cnt"] == num_steps - 1:
            state["compute"], state["acc"] = True, 0.0
        else:
            prev = state["previous"]
            state["acc"] += rescale(((modulated - prev).abs().mean() / prev.abs().mean()).item())
            state["compute"] = bool(state["acc"] >= threshold)
            if state["compute"]:
                state["acc"] = 0.0
        state["previous"] = modulated
        state["cnt"] = (state["cnt"] + 1) % num_steps
        state["calls"] += 1
        state["reused"] += not state["compute"]

    def double(index: int) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
        def block(args: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
            if index == 0:
                decide(args["img"], args["vec"])
                if state["compute"]:
                    state["ori"] = args["img"].clone()
            if not state["compute"]:
                return {"img": args["img"], "txt": args["txt"]}
            out: dict[str, Any] = extra["original_block"](args)
            return out

        return block

    last = len(model.single_blocks) - 1

    def single(index: int) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
        def block(args: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
            img = extra["original_block"](args)["img"] if state["compute"] else args["img"]
            if index == last:
                image_rows = state["ori"].shape[1]
                text, image = img[:, :-image_rows], img[:, -image_rows:]
                if state["compute"]:
                    state["residual"] = image - state["ori"]
                else:
                    img = torch.cat([text, image + state["residual"]], 1)
            return {"img": img}

        return block

    for i in range(len(model.double_blocks)):
        patched.set_model_patch_replace(double(i), "dit", "double_block", i)
    for i in range(len(model.single_blocks)):
        patched.set_model_patch_replace(single(i), "dit", "single_block", i)
    return patched


def with_lora(patcher: Any, path: str, strength: float) -> Any:
    """`patcher` with the LoRA file's patches added as comfy.sd.load_lora_for_models adds them
    (ComfyUI's key map of the model, its converter, its loader); a key ComfyUI does not load is an
    error here, so that the reference applies all of what the cluster is compared on."""
    import logging

    import comfy.lora
    import comfy.lora_convert

    not_loaded: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "not loaded" in record.getMessage():
                not_loaded.append(record.getMessage())

    handler = Collect()
    logging.getLogger().addHandler(handler)
    try:
        key_map = comfy.lora.model_lora_keys_unet(patcher.model, {})
        loaded = comfy.lora.load_lora(comfy.lora_convert.convert_lora(load_file(path)), key_map)
    finally:
        logging.getLogger().removeHandler(handler)
    if not_loaded:
        raise SystemExit(f"{path}: ComfyUI did not load {not_loaded}")
    patched = patcher.clone()
    added = patched.add_patches(loaded, strength)
    if len(added) != len(loaded):
        raise SystemExit(f"{path}: ComfyUI patched {len(added)} of {len(loaded)} weights")
    return patched
