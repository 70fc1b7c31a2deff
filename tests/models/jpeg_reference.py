"""Pillow as the reference for Raylight's JPEG decoding (image_file_test.cc): ComfyUI's LoadImage
opens images with Pillow, so its pixels are the ones a job must see.

    python jpeg_reference.py OUT_DIR SEED

writes, from a random smooth colour image: colour.jpg (4:2:0, quality 90) and colour.rgb (what
Pillow decodes, raw RGB bytes), grey.jpg / grey.rgb (one channel, decoded to RGB as LoadImage's
convert("RGB") does), cmyk.jpg (which a job refuses), and huge.jpg (a 1x1 JPEG whose header
claims 60000x60000 pixels).
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np
from PIL import Image


def main() -> int:
    out, seed = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(seed)
    # Smooth gradients plus noise: chroma that 4:2:0 subsampling and fancy upsampling act on.
    height, width = 37, 53
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    colour = Image.fromarray(pixels, "RGB")
    colour.save(os.path.join(out, "colour.jpg"), quality=90, subsampling=2)
    grey = colour.convert("L")
    grey.save(os.path.join(out, "grey.jpg"), quality=85)
    colour.convert("CMYK").save(os.path.join(out, "cmyk.jpg"))
    for name in ("colour", "grey"):
        with Image.open(os.path.join(out, f"{name}.jpg")) as image:
            decoded = np.asarray(image.convert("RGB"))
        with open(os.path.join(out, f"{name}.rgb"), "wb") as f:
            f.write(decoded.tobytes())
    one = io.BytesIO()
    Image.new("RGB", (1, 1)).save(one, format="JPEG")
    data = bytearray(one.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    with open(os.path.join(out, "huge.jpg"), "wb") as f:
        f.write(bytes(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
