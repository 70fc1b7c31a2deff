"""Builds the package with its gRPC stubs generated from the repository's proto/ (grpcio-tools).

Nothing generated is committed: the stubs are written into the build (and, for an editable
install, into src/raylight/_proto, which git ignores) from ../../proto at build time.
"""

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto"
PROTOS = [
    "raylight/v1/common.proto",
    "raylight/v1/jobs.proto",
    "raylight/v1/diffusion.proto",
    "raylight/v1/head.proto",
    "raylight/v1/kv_store.proto",
    "raylight/v1/worker.proto",
]


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc  # a build requirement (pyproject.toml)

    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    ]
    args += [str(PROTO_ROOT / p) for p in PROTOS]
    if protoc.main(args) != 0:
        sys.exit(f"raylight: protoc failed on {PROTO_ROOT}")
    # The generated modules import `raylight.v1...`; they live under raylight._proto, so the
    # imports are made relative to that package.
    for path in (out_dir / "raylight" / "v1").glob("*.py"):
        text = path.read_text()
        text = text.replace("from raylight.v1 import", "from raylight._proto.raylight.v1 import")
        path.write_text(text)
    for package in (out_dir, out_dir / "raylight", out_dir / "raylight" / "v1"):
        (package / "__init__.py").touch()


class BuildWithStubs(build_py):
    def run(self) -> None:
        generate(Path(self.build_lib) / "raylight" / "_proto")
        if os.environ.get("RAYLIGHT_STUBS_IN_SOURCE") or self.editable_mode:
            generate(HERE / "src" / "raylight" / "_proto")
        super().run()


setup(cmdclass={"build_py": BuildWithStubs})
