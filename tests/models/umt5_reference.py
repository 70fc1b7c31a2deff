"""Outside references for Raylight's umT5 text encoder (tests/models/umt5_test.cc).

  umt5_reference.py tokenizer --out-dir DIR --texts T.json
      trains a small SentencePiece model (T5's id layout: pad 0, EOS 1, unk 2, no BOS) with
      Python's `sentencepiece` on a corpus with CJK and full-width punctuation, writes
      DIR/spiece.model and DIR/ids.json: each text's ids as `sentencepiece` encodes them.
  umt5_reference.py model --config C.json --seed S --spelling hf|wan [--fp8] [--store fp32|fp16]
      [--t5] --spiece DIR/spiece.model --out M.safetensors --expected E.safetensors
      a random UMT5EncoderModel (transformers; --t5: a T5EncoderModel, T5 v1.1 as Flux's and
      Chroma's T5-XXL, whose one position-bias table in block 0 serves every layer, in Hugging
      Face names only) written with Hugging Face / ComfyUI names (the
      tokenizer inside as ComfyUI's `spiece_model` bytes) or the official Wan names; fp8: every
      linear as float8_e4m3fn with a `scale_weight` (ComfyUI's scaled-fp8 layout). E holds
      `ids` and `mask` (two rows of unequal lengths) and `hidden`, the model's last hidden
      states on them (from the stored values: fp16 or fp8 rounding included).
  umt5_reference.py comfy --comfyui-tarball TGZ --workdir DIR --config C.json
      --model M.safetensors --prompts P.json --out O.safetensors
      ComfyUI's own Wan text path on M (its UMT5XXlTokenizer on the file's spiece_model, its
      SDClipModel with the T5 class and umT5's options, encode_token_weights): O holds, per
      prompt i, `cond_i` [1, L, dim] and `ids_i`.

C.json: {"vocab": V, "dim": D, "heads": H, "head_dim": K, "ffn": F, "layers": N}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from typing import Any

import sentencepiece as spm
import torch
from comfyui_tree import unpack_comfyui
from safetensors.torch import load_file, save_file

WORDS = (
    "a red fox runs in the snow under a pale winter sky while small birds sing in the old "
    "forest and a river of light crosses the mountain at dawn cinematic slow motion close up "
    "wide shot camera pans left dramatic lighting vivid colours bright overexposed static blurry"
).split()
CJK = "一只红色的狐狸在雪中奔跑，天空很蓝。色调艳丽，过曝，静态，细节模糊不清！（慢动作）"


def train_spiece() -> bytes:
    """A small SentencePiece model with T5's id layout (pad 0, EOS 1, unk 2, no BOS), trained on a
    corpus of English words, CJK and full-width punctuation; its serialized bytes."""
    generator = torch.Generator().manual_seed(0)
    sentences = []
    for _ in range(400):
        picks = torch.randint(len(WORDS), (12,), generator=generator).tolist()
        sentences.append(" ".join(WORDS[i] for i in picks))
        start = int(torch.randint(len(CJK) - 8, (1,), generator=generator))
        sentences.append(CJK[start : start + 8])
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=128,
        hard_vocab_limit=False,
        model_type="unigram",
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    return model.getvalue()


def train_tokenizer(out_dir: str, texts_path: str) -> None:
    path = os.path.join(out_dir, "spiece.model")
    with open(path, "wb") as f:
        f.write(train_spiece())
    processor = spm.SentencePieceProcessor(model_file=path)
    with open(texts_path) as f:
        texts = json.load(f)
    with open(os.path.join(out_dir, "ids.json"), "w") as f:
        json.dump([processor.encode(text) for text in texts], f)


def hf_config(config: dict[str, int], t5: bool = False) -> Any:
    from transformers import T5Config, UMT5Config

    return (T5Config if t5 else UMT5Config)(
        vocab_size=config["vocab"],
        d_model=config["dim"],
        d_kv=config["head_dim"],
        d_ff=config["ffn"],
        num_layers=config["layers"],
        num_heads=config["heads"],
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu",
        dropout_rate=0.0,
    )


OFFICIAL = {
    "layer.0.SelfAttention.q.weight": "attn.q.weight",
    "layer.0.SelfAttention.k.weight": "attn.k.weight",
    "layer.0.SelfAttention.v.weight": "attn.v.weight",
    "layer.0.SelfAttention.o.weight": "attn.o.weight",
    "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
    "layer.0.layer_norm.weight": "norm1.weight",
    "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
    "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight",
    "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight",
    "layer.1.layer_norm.weight": "norm2.weight",
}


def official_name(key: str) -> str:
    if key == "shared.weight":
        return "token_embedding.weight"
    if key == "encoder.final_layer_norm.weight":
        return "norm.weight"
    _, _, index, rest = key.split(".", 3)
    return f"blocks.{index}.{OFFICIAL[rest]}"


def is_linear(key: str) -> bool:
    return key.endswith(
        ("q.weight", "k.weight", "v.weight", "o.weight", "wi_0.weight", "wi_1.weight", "wo.weight")
    )


def make_model(args: argparse.Namespace) -> None:
    from transformers import T5EncoderModel, UMT5EncoderModel

    with open(args.config) as f:
        config = json.load(f)
    torch.manual_seed(args.seed)
    model = (T5EncoderModel if args.t5 else UMT5EncoderModel)(hf_config(config, args.t5))
    model.eval()  # type: ignore[no-untyped-call]
    state = {k: v for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    for key, value in state.items():  # norms away from 1, so that a missing norm shows
        if key.endswith("layer_norm.weight"):
            value.copy_(1 + 0.2 * torch.randn_like(value))
    stored: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if args.fp8 and is_linear(key):
            scale = value.abs().amax().float() / 448.0
            stored[key] = (value / scale).to(torch.float8_e4m3fn)
            stored[key[: -len(".weight")] + ".scale_weight"] = scale.reshape(())
            state[key] = stored[key].float() * scale  # what the encoder computes with
        else:
            stored[key] = value.to(torch.float16 if args.store == "fp16" else torch.float32)
            state[key] = stored[key].float()
    if args.fp8:
        stored["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    if args.spelling == "wan":
        stored = {official_name(k): v for k, v in stored.items()}
    else:
        with open(args.spiece, "rb") as f:
            stored["spiece_model"] = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    save_file(stored, args.out)
    state["encoder.embed_tokens.weight"] = state["shared.weight"]
    model.load_state_dict(state)
    # Two rows of unequal lengths: the shorter one's tail masked.
    lengths = (37, 21)
    ids = torch.randint(3, config["vocab"], (2, max(lengths)))
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        ids[row, length:] = 0
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    save_file({"ids": ids, "mask": mask, "hidden": hidden.contiguous()}, args.expected)


def comfy_modules(tarball: str, workdir: str) -> tuple[Any, Any, Any]:
    unpack_comfyui(tarball, workdir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.sd1_clip
    import comfy.text_encoders.t5
    import comfy.text_encoders.wan

    return comfy.sd1_clip, comfy.text_encoders.t5, comfy.text_encoders.wan


def comfy_encode(args: argparse.Namespace) -> None:
    sd1_clip, t5, wan = comfy_modules(args.comfyui_tarball, args.workdir)
    with open(args.config) as f:
        config = json.load(f)
    with open(args.prompts) as f:
        prompts = json.load(f)
    state = load_file(args.model)
    tokenizer = wan.UMT5XXlTokenizer(tokenizer_data={"spiece_model": state.pop("spiece_model")})
    # UMT5XXlModel's own arguments, with the test's sizes in place of umt5_config_xxl.json.
    model = sd1_clip.SDClipModel(
        device="cpu",
        layer="last",
        textmodel_json_config={
            "d_ff": config["ffn"],
            "d_kv": config["head_dim"],
            "d_model": config["dim"],
            "num_heads": config["heads"],
            "num_layers": config["layers"],
            "vocab_size": config["vocab"],
            "dense_act_fn": "gelu_pytorch_tanh",
            "is_gated_act": True,
            "model_type": "umt5",
        },
        dtype=torch.float32,
        special_tokens={"end": 1, "pad": 0},
        model_class=t5.T5,
        enable_attention_masks=True,
        zero_out_masked=True,
    )
    model.load_sd(state)
    out: dict[str, torch.Tensor] = {}
    for i, prompt in enumerate(prompts):
        tokens = tokenizer.tokenize_with_weights(prompt)
        with torch.no_grad():
            cond, _ = model.encode_token_weights(tokens)
        out[f"cond_{i}"] = cond.float().contiguous()
        out[f"ids_{i}"] = torch.tensor([t for batch in tokens for t, _ in batch])
        out[f"weights_{i}"] = torch.tensor([w for batch in tokens for _, w in batch])
    save_file(out, args.out)


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    tok = sub.add_parser("tokenizer")
    tok.add_argument("--out-dir", required=True)
    tok.add_argument("--texts", required=True)
    mk = sub.add_parser("model")
    for name in ("--config", "--spiece", "--out", "--expected"):
        mk.add_argument(name, required=True)
    mk.add_argument("--seed", type=int, required=True)
    mk.add_argument("--spelling", choices=("hf", "wan"), required=True)
    mk.add_argument("--store", choices=("fp32", "fp16"), default="fp32")
    mk.add_argument("--fp8", action="store_true")
    mk.add_argument("--t5", action="store_true", help="T5 v1.1 (one shared position bias)")
    cf = sub.add_parser("comfy")
    for name in ("--comfyui-tarball", "--workdir", "--config", "--model", "--prompts", "--out"):
        cf.add_argument(name, required=True)
    args = parser.parse_args()
    if args.mode == "tokenizer":
        train_tokenizer(args.out_dir, args.texts)
    elif args.mode == "model":
        make_model(args)
    else:
        comfy_encode(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
