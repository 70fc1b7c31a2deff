#!/usr/bin/env bash
# `make demo`: the main job on this machine. A local cluster (raylightctl up: a head and a node
# with one worker per GPU, or two CPU workers without GPUs), a tiny random Wan 2.1 checkpoint and
# prompt embeddings in Wan's conditioning layout, one 2-rank Ulysses sampling job with a progress
# bar, its outputs written, the cluster taken down again (also on failure).
set -euo pipefail
BUILD=${BUILD:-build}
BIN=$(cd "$BUILD/bin" && pwd)
DEMO=$(mkdir -p "$BUILD/demo" && cd "$BUILD/demo" && pwd)
STATE="$DEMO/state"
MODELS="$DEMO/models"
OUT="$DEMO/out"
mkdir -p "$MODELS" "$OUT"
ctl() { "$BIN/raylightctl" --state-dir="$STATE" "$@"; }

ctl down >/dev/null 2>&1 || true
trap 'ctl down >/dev/null 2>&1 || true' EXIT

echo "== a tiny Wan 2.1 checkpoint and prompt embeddings (random values, real key names and layout)"
"$BIN/raylight-make-checkpoint" --preset=tiny-t2v --seed=1 --out="$MODELS/tiny-wan.safetensors"
"$BIN/raylight-make-conditioning" --preset=tiny-t2v --tokens=12 --seed=2 --out="$DEMO/prompt.safetensors"
"$BIN/raylight-make-conditioning" --preset=tiny-t2v --tokens=5 --seed=3 --out="$DEMO/negative.safetensors"

echo "== raylightctl up"
ctl up --port=6390 --model-root="$MODELS"
export RAYLIGHT_ADDRESS=127.0.0.1:6390

echo "== raylightctl sample (2 ranks, Ulysses 2)"
ctl sample --model=tiny-wan.safetensors --cond="$DEMO/prompt.safetensors" \
  --negative="$DEMO/negative.safetensors" --width=160 --height=96 --frames=17 --steps=20 \
  --cfg=4 --sampler=euler --scheduler=simple --seed=42 --ulysses=2 --preview-every=5 \
  --out="$OUT/tiny-wan-seed42"

echo "== raylightctl jobs list; raylightctl models list"
ctl jobs list
ctl models list
echo "== outputs in $OUT"
ls -l "$OUT"
