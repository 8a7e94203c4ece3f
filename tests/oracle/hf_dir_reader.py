#!/usr/bin/env python3
"""A Hugging Face model directory checked with the Python standard library alone (no safetensors, no torch):
the index (model.safetensors.index.json) and every shard's header, as a runtime that parses the format itself
would read them.

Usage: hf_dir_reader.py DIR
Prints one JSON object: {"ok": bool, "problems": [...], "tensors": N, "shards": [...], "total_size": BYTES}.
Exit status 0 when ok, 1 otherwise.
"""
import json
import os
import struct
import sys

SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def read_header(path, problems):
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            problems.append(f"{path}: shorter than the 8-byte header length")
            return {}
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            problems.append(f"{path}: header length {n} runs past the end of the file")
            return {}
        header = json.loads(f.read(n).decode("utf-8"))
    if (8 + n) % 8:
        problems.append(f"{path}: data does not start on an 8-byte boundary")
    data = size - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        count = 1
        for d in shape:
            count *= d
        if dtype not in SIZES:
            problems.append(f"{path}: {name}: unknown dtype {dtype}")
        elif end - begin != count * SIZES[dtype]:
            problems.append(f"{path}: {name}: {end - begin} bytes for {count} x {dtype}")
        spans.append((begin, end, name))
    spans.sort()
    at = 0
    for begin, end, name in spans:
        if begin != at:
            problems.append(f"{path}: {name} starts at {begin}, expected {at}")
        at = end
    if at != data:
        problems.append(f"{path}: tensors cover {at} of {data} data bytes")
    return {k: v for k, v in header.items() if k != "__metadata__"}


def main():
    directory = sys.argv[1]
    problems = []
    index_path = os.path.join(directory, "model.safetensors.index.json")
    tensors = {}
    total = 0
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
        weight_map = index["weight_map"]
        shards = sorted(set(weight_map.values()))
        for shard in shards:
            header = read_header(os.path.join(directory, shard), problems)
            for name, info in header.items():
                tensors[name] = info
                total += info["data_offsets"][1] - info["data_offsets"][0]
                if weight_map.get(name) != shard:
                    problems.append(f"{shard}: {name} is not listed for this shard in the index")
        for name, shard in weight_map.items():
            if name not in tensors:
                problems.append(f"index lists {name} in {shard}, which does not hold it")
        if index.get("metadata", {}).get("total_size") != total:
            problems.append(f"index total_size {index.get('metadata', {}).get('total_size')} != {total}")
    else:
        shards = ["model.safetensors"]
        for name, info in read_header(os.path.join(directory, "model.safetensors"), problems).items():
            tensors[name] = info
            total += info["data_offsets"][1] - info["data_offsets"][0]
    print(json.dumps({"ok": not problems, "problems": problems, "tensors": len(tensors), "shards": shards,
                      "total_size": total}))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
