"""Runs a libFuzzer target for a bounded time from a seed corpus of valid safetensors files.

    python run_fuzz.py FUZZER SECONDS

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


def main():
    fuzzer, seconds = sys.argv[1], int(sys.argv[2])
    with tempfile.TemporaryDirectory() as corpus:
        seeds = [
            safetensors({"w": ("F32", [2, 2], bytes(16))}),
            safetensors({"a": ("BF16", [3], bytes(6)), "b": ("F8_E4M3", [4], bytes(4))}, {"k": "v"}),
            safetensors({"e": ("I64", [0], b""), "u": ("U8", [5], bytes(5))}),
        ]
        for i, seed in enumerate(seeds):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(seed)
        return subprocess.call([fuzzer, f"-max_total_time={seconds}", "-max_len=4096",
                                "-print_final_stats=1", corpus])


if __name__ == "__main__":
    sys.exit(main())
