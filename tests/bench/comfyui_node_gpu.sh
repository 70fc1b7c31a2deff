#!/usr/bin/env bash
# The ComfyUI node's overhead on the GPU machine (tests/bench/comfyui_node_bench.py): installs what
# ComfyUI 0.3.64 needs beyond the machine's image from carried wheels (av, torchsde, trampoline;
# grpcio, protobuf and grpcio-tools at the client's versions), the Python client from this tree,
# unpacks ComfyUI's source, and runs the bench.
#
#   tests/bench/comfyui_node_gpu.sh BUILD_DIR OUT_DIR     (wheels and the tarball in $WHEELS,
#                                                          default .gpu-comfy, made by
#                                                          `tests/bench/comfyui_node_gpu.sh --fetch`)
set -euo pipefail
WHEELS=${WHEELS:-.gpu-comfy}
if [ "${1:-}" = --fetch ]; then  # on a machine with PyPI: what the GPU machine lacks
  mkdir -p "$WHEELS"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$WHEELS" "av==18.1.0" "torchsde==0.2.6" \
    "trampoline==0.1.2" "grpcio==1.76.0" "grpcio-tools==1.76.0" "protobuf==6.33.1"
  cp "${COMFYUI_TARBALL:-../shared/third_party/ComfyUI-0.3.64.tar.gz}" "$WHEELS/"
  exit 0
fi
BUILD=$1
OUT=$2
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "$WHEELS"/*.whl
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
(cd client/python && python3 -m pip install -q --no-build-isolation --no-deps --target /tmp/site . \
  && rm -rf build src/*.egg-info)
tar -xzf "$WHEELS"/ComfyUI-0.3.64.tar.gz -C /tmp
PYTHON=python3 RAYLIGHT_BIN_DIR=$BUILD/bin COMFYUI_DIR=/tmp/ComfyUI-0.3.64 \
  python3 tests/bench/comfyui_node_bench.py --out "$OUT" ${STEPS:+--steps "$STEPS"} \
  ${RUNS:+--runs "$RUNS"}
