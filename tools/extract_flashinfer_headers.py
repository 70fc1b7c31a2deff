"""Extracts the headers FlashInfer's Hopper attention kernel compiles from, out of a
flashinfer-python wheel: FlashInfer's include/, CUTLASS's include/ and tools/util/include/, and
the CCCL it ships (models/core/flash_attention_sm90.cu; tools/install_deps.sh runs this)."""

import sys
import zipfile
from pathlib import Path

# Under the wheel's flashinfer/data/: the folders the kernel's build names (cmake/RaylightDeps.cmake).
FOLDERS = ("include/", "cutlass/include/", "cutlass/tools/util/include/", "cccl/")
DATA = "flashinfer/data/"


def extract(wheel: Path, out: Path) -> int:
    """Writes the wanted files under `out` with their paths below flashinfer/data/; returns how
    many."""
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not name.startswith(DATA) or name.endswith("/"):
                continue
            relative = name[len(DATA) :]
            if not relative.startswith(FOLDERS):
                continue
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
            count += 1
    return count


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: extract_flashinfer_headers.py WHEEL OUT_DIR", file=sys.stderr)
        return 2
    count = extract(Path(sys.argv[1]), Path(sys.argv[2]))
    if count == 0:
        print(f"no headers under {DATA} in {sys.argv[1]}", file=sys.stderr)
        return 1
    print(f"extract_flashinfer_headers: {count} files into {sys.argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
