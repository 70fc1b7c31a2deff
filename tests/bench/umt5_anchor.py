#!/usr/bin/env python3
"""umT5-XXL on one GPU (issue #24's row): writes a random umT5-XXL checkpoint with ComfyUI's names
(bf16, the tests' small SentencePiece model stored inside as `spiece_model`), then times
transformers' UMT5EncoderModel (bf16, sdpa) on the prompt as ComfyUI hands it to the encoder
(its tokens, EOS, padding to 512, the mask), and checks Raylight's conditioning file against it.

    python3 tests/bench/umt5_anchor.py make --out DIR
    python3 tests/bench/umt5_anchor.py time --dir DIR --prompt P --ours COND.safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import sentencepiece as spm
import torch
from safetensors.torch import load_file, save_file
from transformers import UMT5EncoderModel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models"))
from umt5_reference import hf_config, train_spiece  # noqa: E402

# umT5-XXL's sizes, in the tests' config form (umt5_reference.hf_config).
XXL = {"vocab": 256384, "dim": 4096, "heads": 64, "head_dim": 64, "ffn": 10240, "layers": 24}


def make(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    with torch.device("cuda"):
        torch.manual_seed(0)
        model = UMT5EncoderModel(hf_config(XXL)).to(torch.bfloat16)  # type: ignore[arg-type]
    state = {
        k: v.contiguous().cpu()
        for k, v in model.state_dict().items()
        if k != "encoder.embed_tokens.weight"
    }
    tokenizer = train_spiece()  # the tests' tokenizer (tests/models/umt5_reference.py)
    state["spiece_model"] = torch.frombuffer(bytearray(tokenizer), dtype=torch.uint8)
    save_file(state, os.path.join(out, "umt5-xxl.safetensors"))
    with open(os.path.join(out, "spiece.model"), "wb") as f:
        f.write(tokenizer)


def time_forward(directory: str, prompt: str, ours: str) -> None:
    state = load_file(os.path.join(directory, "umt5-xxl.safetensors"))
    state.pop("spiece_model")
    state["encoder.embed_tokens.weight"] = state["shared.weight"]
    with torch.device("meta"):
        model = UMT5EncoderModel(hf_config(XXL))
    model.load_state_dict(state, assign=True)
    model = model.to("cuda").eval()  # type: ignore[arg-type]
    processor = spm.SentencePieceProcessor(model_file=os.path.join(directory, "spiece.model"))
    ids = processor.encode(prompt) + [1]
    attended = len(ids)
    ids += [0] * (512 - len(ids))
    input_ids = torch.tensor([ids], device="cuda")
    mask = torch.zeros_like(input_ids)
    mask[0, :attended] = 1
    times = []
    with torch.no_grad():
        for _ in range(23):
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            start.record()
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    bf16 = (hidden.float() * mask.unsqueeze(-1)).cpu()
    # The same weights in float32 (TF32 off): the truth both bf16 forms are measured against.
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        exact = model.float()(input_ids=input_ids, attention_mask=mask).last_hidden_state
    exact = (exact * mask.unsqueeze(-1)).cpu()
    mine = load_file(ours)["text"].reshape(bf16.shape)

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm() / b.norm())

    print(
        json.dumps(
            {
                "transformers_ms_median": statistics.median(times[3:]),
                "relative_l2_vs_transformers": rel(mine, bf16),
                "relative_l2_vs_fp32": rel(mine, exact),
                "transformers_bf16_relative_l2_vs_fp32": rel(bf16, exact),
                "attended_tokens": attended,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("make", "time"))
    parser.add_argument("--out")
    parser.add_argument("--dir")
    parser.add_argument("--prompt")
    parser.add_argument("--ours")
    args = parser.parse_args()
    if args.mode == "make":
        make(args.out)
    else:
        time_forward(args.dir, args.prompt, args.ours)


if __name__ == "__main__":
    main()
