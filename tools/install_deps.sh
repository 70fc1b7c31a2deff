#!/usr/bin/env bash
# Installs what the build needs on a Debian 12 machine: Debian packages (apt-get) and, in the
# project's venv, PyTorch 2.11 from PyPI (its libtorch is what the C++ code links). Idempotent:
# does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
TORCH_VERSION=2.11.0
# The outside reference the Wan tests compare against (tests/models/diffusers_wan_reference.py).
DIFFUSERS_VERSION=0.42.1
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config python3-venv
  libabsl-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libboost-dev libboost-system-dev libsqlite3-dev libgtest-dev libgmock-dev
  libcli11-dev nlohmann-json3-dev libgloo-dev libpng-dev libjpeg62-turbo-dev
  libsentencepiece-dev  # the umT5 tokenizer (models/text/sentencepiece_shim.cc)
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libwebp-dev  # video files
  libssl-dev  # a cluster's TLS certificates (runtime/rpc/certificates.cc)
  iproute2  # the multi-machine test puts head and nodes in network namespaces
  clang libclang-rt-14-dev  # libFuzzer for the safetensors parser (tests/fuzz)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_deps: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  echo "install_deps: pip install torch==$TORCH_VERSION into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION" numpy
fi
if ! "$VENV/bin/python" -c "import diffusers, sys; sys.exit(0 if diffusers.__version__ == '$DIFFUSERS_VERSION' else 1)" 2>/dev/null; then
  echo "install_deps: pip install diffusers==$DIFFUSERS_VERSION into $VENV"
  "$VENV/bin/pip" install -q "diffusers==$DIFFUSERS_VERSION" safetensors
fi
# k-diffusion, the samplers' outside reference. Only its sampling module is used
# (tests/samplers/kdiffusion_reference.py); its package pulls training dependencies
# (torchvision, wandb, ...) that the tests never import, so it goes in without them.
if ! "$VENV/bin/python" -c "import importlib.util as u, scipy, torchsde, torchdiffeq; assert u.find_spec('k_diffusion')" 2>/dev/null; then
  echo "install_deps: pip install k-diffusion (no deps) scipy torchsde torchdiffeq into $VENV"
  "$VENV/bin/pip" install -q --no-deps "k-diffusion==0.1.1.post1"
  "$VENV/bin/pip" install -q "scipy==1.17.1" "torchsde==0.2.6" "torchdiffeq==0.2.5" tqdm
fi
# ComfyUI's sampling modules (tests/samplers/comfyui_reference.py imports comfy.samplers from the
# unpacked ../shared/third_party source) need these beside torch; torchvision without its deps so
# that pip keeps the venv's torch.
if ! "$VENV/bin/python" -c "import einops, psutil, PIL, torchvision" 2>/dev/null; then
  echo "install_deps: pip install einops psutil pillow torchvision (ComfyUI reference) into $VENV"
  "$VENV/bin/pip" install -q "einops==0.8.2" "psutil==7.2.2" "pillow==13.0.0"
  "$VENV/bin/pip" install -q --no-deps "torchvision==0.26.0"
fi
# cuDNN's C++ graph API (header-only; the wheel's include/), for fp8 attention
# (models/core/fp8_attention.cc): the venv's libcudnn, which libtorch loads, runs it.
if ! "$VENV/bin/pip" show nvidia-cudnn-frontend >/dev/null 2>&1; then
  echo "install_deps: pip install nvidia-cudnn-frontend (fp8 attention's headers) into $VENV"
  "$VENV/bin/pip" install -q --no-deps "nvidia-cudnn-frontend==1.32.0"
fi
# FlashInfer's Hopper attention kernel (models/core/flash_attention_sm90.cu) is header-only CUDA:
# its headers, and the CUTLASS and CCCL it was written against, come out of the flashinfer-python
# wheel into the venv (raylight_flashinfer/); the rest of the 100 MB wheel is not installed.
FLASHINFER_VERSION=0.7.4
FLASHINFER_DIR=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/raylight_flashinfer
if [ "$(cat "$FLASHINFER_DIR/VERSION" 2>/dev/null)" != "$FLASHINFER_VERSION" ]; then
  echo "install_deps: FlashInfer $FLASHINFER_VERSION's headers (Hopper attention) into $FLASHINFER_DIR"
  wheel_dir=$(mktemp -d)
  "$VENV/bin/pip" download -q --no-deps --only-binary=:all: -d "$wheel_dir" \
    "flashinfer-python==$FLASHINFER_VERSION"
  rm -rf "$FLASHINFER_DIR"
  "$VENV/bin/python" tools/extract_flashinfer_headers.py "$wheel_dir"/flashinfer_python-*.whl \
    "$FLASHINFER_DIR"
  echo "$FLASHINFER_VERSION" > "$FLASHINFER_DIR/VERSION"
  rm -rf "$wheel_dir"
fi
# gguf-py (llama.cpp's own package): writes the GGUF files the reader's tests check against and
# dequantises them as the reference (tests/models/gguf_reference.py).
if ! "$VENV/bin/python" -c "import gguf" 2>/dev/null; then
  echo "install_deps: pip install gguf (GGUF reference) into $VENV"
  "$VENV/bin/pip" install -q "gguf==0.19.0"
fi
# The Python client's build (grpcio-tools generates its stubs from proto/), runtime and checks.
if ! "$VENV/bin/python" -c "import grpc_tools, pytest, mypy, ruff, wheel; import setuptools as s; assert int(s.__version__.split('.')[0]) >= 70" 2>/dev/null; then
  echo "install_deps: pip install grpcio-tools pytest mypy ruff (Python client) into $VENV"
  "$VENV/bin/pip" install -q "grpcio==1.76.0" "grpcio-tools==1.76.0" "setuptools==80.9.0" \
    "wheel==0.45.1" "pytest==9.2.0" "mypy==2.4.1" "ruff==0.17.6"
fi
# A real ComfyUI for the node pack's test (tests/comfyui): what ComfyUI 0.3.64's requirements.txt
# asks for beside torch, torchvision and torchsde (already here, kept: nothing reinstalls
# torch), pinned to the versions the test was written against. torchaudio is left out: only
# ComfyUI's audio nodes import it, and they are skipped without it.
if ! "$VENV/bin/python" -c "import comfyui_frontend_package, comfyui_workflow_templates, comfyui_embedded_docs, transformers, aiohttp, alembic, av, kornia, spandrel, pydantic_settings" 2>/dev/null; then
  echo "install_deps: pip install ComfyUI 0.3.64's requirements (the node pack's test) into $VENV"
  "$VENV/bin/pip" install -q "comfyui-frontend-package==1.27.10" \
    "comfyui-workflow-templates==0.1.95" "comfyui-embedded-docs==0.2.6" \
    "transformers==5.24.0" "tokenizers==0.23.3" "sentencepiece==0.2.3" "aiohttp==3.14.5" \
    "yarl==1.25.1" "PyYAML==6.0.4" "alembic==1.20.1" "SQLAlchemy==2.1.9" "av==18.1.0" \
    "kornia==0.9.0" "spandrel==0.4.2" "pydantic==2.14.4" "pydantic-settings==2.16.3"
fi
