#!/usr/bin/env python3
"""Cross-checks llavacot's safetensors code against the reference `safetensors` package.

  describe FILE         load FILE with safetensors.torch and print {name: {dtype, shape, hex}} as JSON
  make FILE             write a file of every dtype with safetensors.torch.save_file, print its description
  header FILE           print the raw header bytes of FILE (what the reference writer produced) as hex
  resave IN OUT         load IN with the reference and save it again to OUT (reference writer)
"""
import json
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
NAMES = {v: k for k, v in DTYPES.items()}


def raw_hex(t: torch.Tensor) -> str:
    t = t.contiguous()
    if t.numel() == 0:
        return ""
    return t.view(-1).view(torch.uint8).numpy().tobytes().hex() if t.dtype != torch.bool else \
        t.view(-1).to(torch.uint8).numpy().tobytes().hex()


def describe(path):
    out = {"tensors": {}, "metadata": None}
    with safe_open(path, framework="pt") as f:
        out["metadata"] = f.metadata()
        for name in f.keys():
            t = f.get_tensor(name)
            out["tensors"][name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "hex": raw_hex(t)}
    return out


def make(path):
    g = torch.Generator().manual_seed(1234)
    tensors = {}
    for i, (name, dt) in enumerate(DTYPES.items()):
        n = 2 * 3 * 5
        raw = torch.randint(0, 256, (n * torch.empty(0, dtype=dt).element_size(),), generator=g, dtype=torch.uint8)
        if dt == torch.bool:
            t = (raw[:n] % 2 == 1)
        else:
            t = raw.view(dt)
        tensors[f"w.{name.lower()}"] = t.reshape(2, 3, 5).clone()
    tensors["scalar"] = torch.tensor(3.5, dtype=torch.float32)
    tensors["empty"] = torch.zeros(0, 3, dtype=torch.bfloat16)
    save_file(tensors, path, metadata={"format": "pt", "source": "reference"})
    return describe(path)


def main():
    cmd = sys.argv[1]
    if cmd == "describe":
        print(json.dumps(describe(sys.argv[2])))
    elif cmd == "make":
        print(json.dumps(make(sys.argv[2])))
    elif cmd == "resave":
        with safe_open(sys.argv[2], framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
            meta = f.metadata()
        save_file(tensors, sys.argv[3], metadata=meta)
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
