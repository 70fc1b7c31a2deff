#!/usr/bin/env bash
# `make demo`: the main job on this machine. A local cluster (raylightctl up: a head and a node
# with one worker per GPU, or two CPU workers without GPUs), a tiny random Wan 2.1 checkpoint, a
# tiny random umT5 text encoder (real key names and layout; its SentencePiece tokenizer trained
# here) and a narrow random Wan 2.1 VAE, one 2-rank Ulysses sampling job from a typed prompt to an
# MP4 (encoded, sampled and decoded on the workers) with a progress bar, its outputs written, the
# cluster taken down again (also on failure). Random weights: the point is the path, not the
# picture.
set -euo pipefail
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-.venv/bin/python}
BIN=$(cd "$BUILD/bin" && pwd)
DEMO=$(mkdir -p "$BUILD/demo" && cd "$BUILD/demo" && pwd)
STATE="$DEMO/state"
MODELS="$DEMO/models"
OUT="$DEMO/out"
mkdir -p "$MODELS" "$OUT"
ctl() { "$BIN/raylightctl" --state-dir="$STATE" "$@"; }

ctl down >/dev/null 2>&1 || true
trap 'ctl down >/dev/null 2>&1 || true' EXIT

echo "== a tiny Wan 2.1 checkpoint, umT5 text encoder and VAE (random values, real names and layout)"
"$BIN/raylight-make-checkpoint" --preset=tiny-t2v --seed=1 --out="$MODELS/tiny-wan.safetensors"
mkdir -p "$MODELS/text_encoders"
echo '["a red fox runs in the snow"]' >"$DEMO/texts.json"
echo '{"vocab": 300, "dim": 48, "heads": 4, "head_dim": 12, "ffn": 64, "layers": 2}' >"$DEMO/umt5.json"
"$PYTHON" tests/models/umt5_reference.py tokenizer --out-dir="$DEMO" --texts="$DEMO/texts.json"
"$PYTHON" tests/models/umt5_reference.py model --config="$DEMO/umt5.json" --seed=3 --spelling=hf \
  --spiece="$DEMO/spiece.model" --out="$MODELS/text_encoders/tiny-umt5.safetensors" \
  --expected="$DEMO/umt5-check.safetensors"
mkdir -p "$MODELS/vae"
"$BIN/raylight-vae" make-random --preset=wan2.1 --width=16 --seed=5 \
  --out="$MODELS/vae/wan_2.1_vae.safetensors"

echo "== raylightctl up"
ctl up --port=6390 --model-root="$MODELS"
export RAYLIGHT_ADDRESS=127.0.0.1:6390

echo "== raylightctl sample --prompt ... --out x.mp4 (encoded, sampled, decoded on 2 ranks, Ulysses 2)"
ctl sample --model=tiny-wan.safetensors --prompt="a red fox runs in the (snow:1.2)" \
  --width=160 --height=96 --frames=17 --steps=20 \
  --cfg=4 --sampler=euler --scheduler=simple --seed=42 --ulysses=2 --preview-every=5 \
  --out="$OUT/tiny-wan-seed42.mp4"

echo "== raylightctl jobs list; raylightctl models list"
ctl jobs list
ctl models list
echo "== outputs in $OUT"
ls -l "$OUT"
