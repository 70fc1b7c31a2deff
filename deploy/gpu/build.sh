#!/usr/bin/env bash
# Builds Raylight on a GPU host against the PyTorch installed there (torch.utils.cmake_prefix_path,
# as ComfyUI users have it), CUDA and NCCL, then runs the GPU tests (ctest label `gpu`).
#
#   deploy/gpu/build.sh [--no-test] [BUILD_DIR]
#
# TARGETS (space-separated) limits the build to those targets (a short device session need not
# build everything); PYTHON picks the interpreter whose torch is used and whose packages
# (diffusers) the tests call.
# gRPC/Abseil/protobuf come from the system when it has them, else from the prefix packed by
# deploy/gpu/pack_prefix.sh (RAYLIGHT_PREFIX, default deploy/gpu/prefix).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN_TESTS=1
if [ "${1:-}" = "--no-test" ]; then RUN_TESTS=0; shift; fi
BUILD=${1:-build-gpu}
PYTHON=${PYTHON:-python3}
PREFIX=${RAYLIGHT_PREFIX:-$PWD/deploy/gpu/prefix}

# Never let NCCL use NVLink multicast (NVLS) on shared machines.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

TORCH_PREFIX=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
PREFIX_PATH="$TORCH_PREFIX"
EXTRA=()
if [ -d "$PREFIX" ]; then
  PREFIX_PATH="$PREFIX;$TORCH_PREFIX"
  EXTRA+=(-DRAYLIGHT_PREFIX="$PREFIX")
  # protoc and the grpc plugin run during the build and need the prefix's libraries.
  export LD_LIBRARY_PATH="$PREFIX/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PATH="$PREFIX/bin:$PATH"
  export PKG_CONFIG_PATH="$PREFIX/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
fi

# FlashInfer's headers travel packed (pack_prefix.sh: the ~900 files the Hopper attention kernel
# includes, 24 MB, would not fit the carry unpacked); CMake finds them at share/flashinfer.
if [ -f "$PREFIX/share/flashinfer-headers.tar.gz" ] && [ ! -d "$PREFIX/share/flashinfer" ]; then
  mkdir -p "$PREFIX/share/flashinfer"
  tar xzf "$PREFIX/share/flashinfer-headers.tar.gz" -C "$PREFIX/share/flashinfer"
fi

# Video files (FFmpeg's and libwebp's libraries): on where the prefix carries them (its static
# minimal FFmpeg, pack_ffmpeg.sh); the GPU host has no packages for them.
MEDIA=OFF
if [ -f "$PREFIX/lib/x86_64-linux-gnu/pkgconfig/libavcodec.pc" ] &&
   [ -f "$PREFIX/lib/x86_64-linux-gnu/pkgconfig/libwebp.pc" ]; then
  MEDIA=ON
fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PREFIX_PATH" \
  -DPython3_EXECUTABLE="$(command -v "$PYTHON")" \
  -DRAYLIGHT_WITH_CUDA=ON -DRAYLIGHT_WITH_MEDIA="${RAYLIGHT_WITH_MEDIA:-$MEDIA}" "${EXTRA[@]}"
if [ -n "${TARGETS:-}" ]; then
  # shellcheck disable=SC2086
  cmake --build "$BUILD" -j "$(nproc)" --target $TARGETS
else
  cmake --build "$BUILD" -j "$(nproc)"
fi

if [ "$RUN_TESTS" = 1 ]; then
  (cd "$BUILD" && ctest -L gpu --output-on-failure)
fi
