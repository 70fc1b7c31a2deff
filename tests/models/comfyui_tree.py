"""ComfyUI's source unpacked for the Python references that run its code (lycoris_reference.py,
umt5_reference.py): once per work directory, atomically, and put on sys.path."""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile


def unpack_comfyui(tarball: str, workdir: str) -> str:
    """Unpacks `tarball` under `workdir` unless already there; returns the tree's root, which is
    first on sys.path afterwards."""
    with tarfile.open(tarball) as tar:
        top = tar.getnames()[0].split("/")[0]
        if not os.path.isdir(os.path.join(workdir, top)):
            # Unpacked beside, then renamed into place: tests running at once never see a
            # half-unpacked tree (the loser of the race drops its copy).
            os.makedirs(workdir, exist_ok=True)
            staging = tempfile.mkdtemp(dir=workdir)
            tar.extractall(staging, filter="data")
            try:
                os.rename(os.path.join(staging, top), os.path.join(workdir, top))
            except OSError:
                pass
            shutil.rmtree(staging, ignore_errors=True)
    root = os.path.join(workdir, top)
    sys.path.insert(0, root)
    return root
