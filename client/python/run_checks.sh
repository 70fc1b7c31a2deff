#!/usr/bin/env bash
# The Python client's checks (ctest `python_client`): installs the package from this tree into
# the project's venv (its gRPC stubs generated from proto/ on the way, as a user's pip install
# does), then ruff, mypy --strict, and pytest against a real local cluster.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:?PYTHON names the venv interpreter}
"$PYTHON" -m pip install -q --no-build-isolation --no-deps . 2>/dev/null
rm -rf build src/*.egg-info
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
"$PYTHON" -m mypy src tests
"$PYTHON" -m pytest -q -p no:cacheprovider tests
