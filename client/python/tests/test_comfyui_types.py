"""raylight.comfyui: ComfyUI's CONDITIONING and LATENT as the cluster takes them, and what it
refuses (naming the node input) rather than dropping."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from raylight import comfyui


def _cond(tokens: int = 512, **extras: Any) -> list[list[Any]]:
    return [[torch.randn(1, tokens, 4096), {"pooled_output": None, **extras}]]


def test_a_prompt_is_taken_as_comfyui_hands_it_over() -> None:
    for tokens in (512, 600, 1500):  # umT5 pads to 512 and never truncates
        cond = _cond(tokens)
        tensors = comfyui.conditioning_to_tensors(cond, "positive")
        assert list(tensors) == ["text"]
        assert torch.equal(tensors["text"], cond[0][0][0])
    neutral = _cond(strength=1.0, start_percent=0.0, end_percent=1.0, control=None)
    assert list(comfyui.conditioning_to_tensors(neutral, "negative")) == ["text"]


@pytest.mark.parametrize(
    ("conditioning", "expected"),
    [
        (_cond() + _cond(), "2 conditionings"),
        ([[torch.randn(2, 512, 4096), {}]], "a batch of 2"),
        ([[torch.randn(512, 4096), {}]], "must be [1, tokens, width]"),
        (_cond(concat_latent_image=torch.zeros(2, 16, 3, 4, 4)), "must be one sample"),
        (_cond(clip_vision_output=object()), "no penultimate states"),
        (_cond(control=object()), "ControlNet"),
        (_cond(area=(8, 8, 0, 0)), "area"),
        (_cond(mask=torch.ones(1)), "mask"),
        (_cond(hooks=object()), "hooks"),
        (_cond(strength=0.5), "'strength' 0.5"),
        (_cond(start_percent=0.2), "'start_percent'"),
        (_cond(something_new=1), "'something_new' is not supported"),
        ("text", "not a CONDITIONING"),
    ],
)
def test_what_the_cluster_cannot_honour_is_refused_naming_the_input(
    conditioning: Any, expected: str
) -> None:
    with pytest.raises(comfyui.NodeInputError) as refused:
        comfyui.conditioning_to_tensors(conditioning, "positive")
    assert refused.value.input_name == "positive"
    assert str(refused.value).startswith("input 'positive': ")
    assert expected in str(refused.value)


def test_image_to_video_inputs_are_carried() -> None:
    class VisionOutput:
        penultimate_hidden_states = torch.randn(1, 257, 1280)

    image, mask = torch.randn(1, 16, 3, 4, 4), torch.ones(1, 1, 3, 4, 4)
    cond = _cond(concat_latent_image=image, concat_mask=mask, clip_vision_output=VisionOutput())
    tensors = comfyui.conditioning_to_tensors(cond, "positive")
    assert sorted(tensors) == ["clip_fea", "concat_latent_image", "concat_mask", "text"]
    assert torch.equal(tensors["concat_latent_image"], image[0])
    assert torch.equal(tensors["concat_mask"], mask[0])
    assert torch.equal(tensors["clip_fea"], VisionOutput.penultimate_hidden_states[0])


def test_a_conditioning_file_round_trips() -> None:
    tensors = {"text": torch.randn(7, 4096), "clip_fea": torch.randn(257, 1280)}
    cond = comfyui.conditioning_from_tensors(tensors)
    assert cond[0][0].shape == (1, 7, 4096)
    back = comfyui.conditioning_to_tensors(cond, "positive")
    assert torch.equal(back["text"], tensors["text"])
    assert torch.equal(back["clip_fea"], tensors["clip_fea"])
    with pytest.raises(ValueError, match="unknown tensors extra"):
        comfyui.conditioning_from_tensors({"text": torch.randn(3, 8), "extra": torch.randn(8)})
    with pytest.raises(ValueError, match="no 'text'"):
        comfyui.conditioning_from_tensors({"y": torch.randn(3, 8)})


def test_latents() -> None:
    samples = torch.randn(1, 16, 3, 6, 10)
    assert comfyui.latent_to_tensor({"samples": samples}, "latent_image") is samples
    assert comfyui.latent_from_tensor(samples)["samples"] is samples
    mask = torch.ones(1, 1, 3, 6, 10)
    given = {"samples": torch.zeros(1), "noise_mask": mask}
    assert comfyui.noise_mask_of(given, "latent_image") is mask
    assert comfyui.noise_mask_of({"samples": samples}, "latent_image") is None
    assert comfyui.latent_from_tensor(samples, given) == {"samples": samples, "noise_mask": mask}
    with pytest.raises(comfyui.NodeInputError, match="noise_mask"):
        comfyui.noise_mask_of({"samples": samples, "noise_mask": [1]}, "latent_image")
    for latent, expected in [
        ({"samples": torch.randn(2, 16, 3, 6, 10)}, "a batch of 2"),
        ({"samples": torch.randn(1, 64, 64)}, "must be a LATENT"),
        ({"samples": samples, "batch_index": [3]}, "batch_index"),
        ({"latent": samples}, "not a LATENT"),
    ]:
        with pytest.raises(comfyui.NodeInputError, match=expected):
            comfyui.latent_to_tensor(latent, "latent_image")


def test_flux_conditioning_and_image_latents_are_carried() -> None:
    pooled, references = torch.randn(1, 768), [torch.randn(1, 16, 6, 8), torch.randn(1, 16, 4, 4)]
    cond = _cond(256, pooled_output=pooled, guidance=3.5, reference_latents=references)
    tensors = comfyui.conditioning_to_tensors(cond, "positive")
    assert sorted(tensors) == [
        "guidance",
        "pooled",
        "reference_latent_0",
        "reference_latent_1",
        "text",
    ]
    assert torch.equal(tensors["pooled"], pooled[0])
    assert float(tensors["guidance"][0]) == 3.5
    assert torch.equal(tensors["reference_latent_1"], references[1][0])
    back = comfyui.conditioning_from_tensors(tensors)[0][1]
    assert torch.equal(back["pooled_output"], pooled)
    assert back["guidance"] == 3.5
    assert [r.shape for r in back["reference_latents"]] == [r.shape for r in references]
    with pytest.raises(comfyui.NodeInputError, match="'guidance' must be a number"):
        comfyui.conditioning_to_tensors(_cond(guidance="high"), "positive")
    image = torch.randn(1, 16, 128, 128)  # EmptySD3LatentImage's, as Flux takes it
    assert comfyui.latent_to_tensor({"samples": image}, "latent_image") is image


def test_comfyui_default_shift_by_family() -> None:
    assert comfyui.comfyui_default_shift("wan") == 8.0
    assert comfyui.comfyui_default_shift("") == 8.0
    assert comfyui.comfyui_default_shift("flux") == 0.0  # the cluster applies ComfyUI's Flux own


def test_cluster_fields_map_to_node_inputs() -> None:
    assert comfyui.input_for_field("sampler") == "sampler_name"
    assert comfyui.input_for_field("start_step") == "start_at_step"
    assert comfyui.input_for_field("latent") == "latent_image"
    assert comfyui.input_for_field("mesh.ulysses") == "model"
    assert comfyui.input_for_field("loras[1].name") == "model"
    assert comfyui.input_for_field("spec.payload") is None
    assert comfyui.input_for_field(None) is None
