"""Runs a libFuzzer target for a bounded time from a seed corpus of valid files of its format.

    python run_fuzz.py safetensors|gguf FUZZER SECONDS

Exit status is the fuzzer's: non-zero when it found a crash (the reproducer is printed).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile


def safetensors(tensors, metadata=None):
    header, data, offset = {}, b"", 0
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(payload)]}
        data += payload
        offset += len(payload)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def gguf_string(text):
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def gguf(tensors, metadata=(), alignment=32):
    """A GGUF v3 file: tensors are (name, ggml dims innermost first, type id, payload)."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata) + 1)
    out += gguf_string("general.alignment") + struct.pack("<II", 4, alignment)
    for key, value in metadata:
        if isinstance(value, str):
            out += gguf_string(key) + struct.pack("<I", 8) + gguf_string(value)
        else:  # an i32 array, as city96's orig_shape records
            out += gguf_string(key) + struct.pack("<IIQ", 9, 5, len(value))
            out += struct.pack(f"<{len(value)}i", *value)
    data, offset = b"", 0
    for name, dims, type_id, payload in tensors:
        out += gguf_string(name) + struct.pack("<I", len(dims))
        out += struct.pack(f"<{len(dims)}Q", *dims) + struct.pack("<IQ", type_id, offset)
        padded = payload + bytes(-len(payload) % alignment)
        data += padded
        offset += len(padded)
    return out + bytes(-len(out) % alignment) + data


def seeds_for(kind):
    if kind == "gguf":
        return [
            gguf([("w", [32, 2], 8, bytes(68))], [("general.architecture", "wan")]),
            gguf([("a", [4], 0, bytes(16)), ("k", [256], 12, bytes(144)),
                  ("h", [2], 1, bytes(4))]),
            gguf([("c", [32, 2], 2, bytes(36))],
                 [("comfy.gguf.orig_shape.c", [2, 2, 1, 4, 4])], 64),
        ]
    return [
        safetensors({"w": ("F32", [2, 2], bytes(16))}),
        safetensors({"a": ("BF16", [3], bytes(6)), "b": ("F8_E4M3", [4], bytes(4))}, {"k": "v"}),
        safetensors({"e": ("I64", [0], b""), "u": ("U8", [5], bytes(5))}),
    ]


def main():
    kind, fuzzer, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with tempfile.TemporaryDirectory() as corpus:
        seeds = seeds_for(kind)
        for i, seed in enumerate(seeds):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(seed)
        return subprocess.call([fuzzer, f"-max_total_time={seconds}", "-max_len=4096",
                                "-print_final_stats=1", corpus])


if __name__ == "__main__":
    sys.exit(main())
