#!/usr/bin/env bash
# The node pack against a real ComfyUI (ctest `comfyui_node_pack`): unpacks ComfyUI 0.3.64's
# source into the build tree (once), installs the Python client from this tree into the venv
# (ComfyUI's requirements are tools/install_deps.sh's), lints and type-checks the node pack, then
# runs tests/comfyui/test_comfyui.py: ComfyUI and a local cluster as processes, driven over HTTP.
set -euo pipefail
PYTHON=${PYTHON:?PYTHON names the venv interpreter}
TARBALL=${COMFYUI_TARBALL:?COMFYUI_TARBALL names ComfyUI 0.3.64s source}
WORK=${COMFYUI_WORKDIR:?COMFYUI_WORKDIR names where to unpack it}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)

if [ ! -f "$WORK/ComfyUI-0.3.64/main.py" ]; then
  rm -rf "$WORK" && mkdir -p "$WORK"
  tar -xzf "$TARBALL" -C "$WORK"
fi
(cd "$REPO/client/python" && "$PYTHON" -m pip install -q --no-build-isolation --no-deps . \
  && rm -rf build src/*.egg-info)
cd "$REPO/client/comfyui"
# The test's Python follows the node pack's settings.
BENCH="$REPO/tests/bench/comfyui_node_bench.py"  # the node's GPU benchmark, on the same harness
"$PYTHON" -m ruff check --config pyproject.toml . "$HERE" "$BENCH"
"$PYTHON" -m ruff format --check --config pyproject.toml . "$HERE" "$BENCH"
MYPYPATH="$HERE" "$PYTHON" -m mypy --config-file pyproject.toml nodes.py "$HERE"/*.py "$BENCH"
cd "$HERE"
COMFYUI_DIR="$WORK/ComfyUI-0.3.64" exec "$PYTHON" -m pytest -q -p no:cacheprovider -s \
  test_comfyui.py
