"""GGUF files written by gguf-py (llama.cpp's own Python package) and their values as gguf-py
dequantises them: the outside reference for Raylight's GGUF reader and dequantisation
(tests/models/gguf_test.cc).

  gguf_reference.py types OUT_DIR SEED
      OUT_DIR/types.gguf: one tensor per type Raylight reads (F32, F16, BF16, Q4_0 ... Q6_K) of
      random blocks with valid scales, plus a 5-D tensor stored flattened with city96's
      `comfy.gguf.orig_shape` record; OUT_DIR/types_expected.safetensors: their float32 values.

  gguf_reference.py convert IN.safetensors OUT.gguf EXPECTED.safetensors SEED
      A checkpoint converted as city96's ComfyUI-GGUF converter lays it out (ComfyUI key names,
      5-D weights flattened with their shape recorded, 1-D tensors and rows that do not divide
      into blocks kept F32, the source's metadata as strings). Every 2-D weight gets the next
      quantisation type in turn, so that every type meets the model: quantised by gguf-py where
      it has a quantiser (Q4_0 ... Q8_0), else random blocks with small valid scales. EXPECTED
      holds the values gguf-py dequantises from the written blocks, under the same names.

  gguf_reference.py read IN.gguf OUT.safetensors
      Every tensor of a GGUF file as gguf-py's reader finds and dequantises it (float32, in
      `comfy.gguf.orig_shape` where recorded): the check on Raylight's writer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from gguf import GGMLQuantizationType as T
from safetensors import safe_open
from safetensors.torch import load_file, save_file

QUANTISED: list[T] = [
    T.Q4_0,
    T.Q4_1,
    T.Q5_0,
    T.Q5_1,
    T.Q8_0,
    T.Q2_K,
    T.Q3_K,
    T.Q4_K,
    T.Q5_K,
    T.Q6_K,
]
# The types gguf-py quantises (it has no quantisers for the K types).
QUANTISABLE: set[T] = {T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0}
# Byte offsets of each block's float16 scale fields (d, and dmin / m where the type has one).
SCALE_FIELDS: dict[T, list[int]] = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}


def random_blocks(
    rng: np.random.Generator, qtype: T, rows: int, columns: int, scale_std: float = 0.02
) -> np.ndarray:
    """Random quantisation blocks for a [rows, columns] tensor with finite scales."""
    block_values, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(
        0, 256, size=(rows * columns // block_values, block_bytes), dtype=np.uint8
    )
    for offset in SCALE_FIELDS[qtype]:
        scale = np.asarray(rng.standard_normal(blocks.shape[0]) * scale_std, dtype=np.float16)
        blocks[:, offset : offset + 2] = scale.view(np.uint8).reshape(-1, 2)
    return blocks.reshape(rows, -1)


def dequantised(blocks: np.ndarray, qtype: T, shape: tuple[int, ...]) -> torch.Tensor:
    values = gguf.quants.dequantize(blocks, qtype)
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).reshape(shape)


def add_plain(writer: gguf.GGUFWriter, name: str, values: np.ndarray, qtype: T) -> torch.Tensor:
    """Writes `values` as F32, F16 or BF16 and returns what the file holds, as float32."""
    if qtype == T.F32:
        stored = values.astype(np.float32)
        writer.add_tensor(name, stored)
        return torch.from_numpy(stored.copy())
    if qtype == T.F16:
        stored16 = values.astype(np.float16)
        writer.add_tensor(name, stored16)
        return torch.from_numpy(stored16.astype(np.float32))
    bf16 = torch.from_numpy(values.astype(np.float32)).to(torch.bfloat16)
    raw = bf16.view(torch.int16).numpy().view(np.uint8).reshape(*values.shape[:-1], -1)
    writer.add_tensor(name, raw, raw_dtype=T.BF16)
    return bf16.to(torch.float32)


def write_types(out_dir: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(out_dir / "types.gguf"), arch="wan")
    expected: dict[str, torch.Tensor] = {}
    for qtype in (T.F32, T.F16, T.BF16):
        values = rng.standard_normal((3, 64)).astype(np.float32)
        expected[qtype.name] = add_plain(writer, qtype.name, values, qtype)
    for qtype in QUANTISED:
        rows, columns = 3, 512
        blocks = random_blocks(rng, qtype, rows, columns)
        writer.add_tensor(qtype.name, blocks, raw_dtype=qtype)
        expected[qtype.name] = dequantised(blocks, qtype, (rows, columns))
    # A 5-D convolution as city96 stores it: flattened to 2-D, its shape in the metadata.
    conv_shape = (64, 16, 1, 2, 2)
    blocks = random_blocks(rng, T.Q8_0, 64, 64)
    writer.add_tensor("conv", blocks, raw_dtype=T.Q8_0)
    writer.add_array("comfy.gguf.orig_shape.conv", list(conv_shape))
    expected["conv"] = dequantised(blocks, T.Q8_0, conv_shape)
    finish(writer)
    save_file(expected, str(out_dir / "types_expected.safetensors"))


def finish(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def convert(source: Path, out: Path, expected_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tensors = load_file(str(source))
    writer = gguf.GGUFWriter(str(out), arch="wan")
    with safe_open(str(source), "pt") as handle:  # the test presets' num_heads, kept as text
        metadata = handle.metadata() or {}
    for key, value in metadata.items():
        writer.add_string(key, value)
    expected: dict[str, torch.Tensor] = {}
    turn = 0
    for name in sorted(tensors):
        values = tensors[name].to(torch.float32).numpy()
        shape = tuple(values.shape)
        if len(shape) > 4:  # GGUF holds at most 4 dimensions
            writer.add_array(f"comfy.gguf.orig_shape.{name}", list(shape))
            values = values.reshape(shape[0], -1)
        if values.ndim < 2:
            expected[name] = add_plain(writer, name, values, T.F32).reshape(shape)
            continue
        columns = values.shape[-1]
        rows = values.size // columns
        candidates = [q for q in QUANTISED if columns % gguf.GGML_QUANT_SIZES[q][0] == 0]
        if not candidates:
            expected[name] = add_plain(writer, name, values, T.F16).reshape(shape)
            continue
        qtype = candidates[turn % len(candidates)]
        turn += 1
        if qtype in QUANTISABLE:  # gguf-py's own quantiser, on the checkpoint's values
            blocks = gguf.quants.quantize(values.reshape(rows, columns), qtype)
        else:  # no quantiser in gguf-py: random blocks, scaled to stay near trained weights
            blocks = random_blocks(rng, qtype, rows, columns, scale_std=1e-4)
        writer.add_tensor(name, blocks.reshape(*values.shape[:-1], -1), raw_dtype=qtype)
        expected[name] = dequantised(blocks, qtype, shape)
    finish(writer)
    save_file(expected, str(expected_path), metadata=metadata)


def read(source: Path, out: Path) -> None:
    reader = gguf.GGUFReader(str(source))
    shapes: dict[str, list[int]] = {}
    for field in reader.fields.values():
        if field.name.startswith("comfy.gguf.orig_shape."):
            name = field.name[len("comfy.gguf.orig_shape.") :]
            shapes[name] = [int(field.parts[index][0]) for index in field.data]
    values: dict[str, torch.Tensor] = {}
    for tensor in reader.tensors:
        shape = shapes.get(tensor.name, [int(d) for d in reversed(tensor.shape)])
        data = np.asarray(tensor.data)
        if tensor.tensor_type == T.BF16:
            raw = torch.from_numpy(data.view(np.int16).copy()).view(torch.bfloat16)
            values[tensor.name] = raw.to(torch.float32).reshape(shape)
            continue
        dense = gguf.quants.dequantize(data, tensor.tensor_type)
        values[tensor.name] = torch.from_numpy(np.ascontiguousarray(dense, np.float32)).reshape(
            shape
        )
    save_file(values, str(out))


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "types":
        write_types(Path(argv[2]), int(argv[3]))
        return 0
    if len(argv) == 4 and argv[1] == "read":
        read(Path(argv[2]), Path(argv[3]))
        return 0
    if len(argv) == 6 and argv[1] == "convert":
        convert(Path(argv[2]), Path(argv[3]), Path(argv[4]), int(argv[5]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
