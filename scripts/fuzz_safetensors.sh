#!/usr/bin/env bash
# Fuzzes the safetensors header parser with libFuzzer + AddressSanitizer + UBSan for a bounded time.
# Usage: scripts/fuzz_safetensors.sh [SECONDS=60]
# Needs clang and libclang-rt-14-dev (scripts/bootstrap.sh installs them). The parser is LibTorch-free,
# so the fuzzer builds from two source files in seconds. Findings land in fuzz-out/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${FUZZ_OUT:-fuzz-out}
mkdir -p "$out/corpus"
CXX=${FUZZ_CXX:-clang++}
nlohmann_inc=$(dirname "$(dirname "$(find /usr/include -name json.hpp -path '*nlohmann*' | head -n 1)")")
echo "[fuzz] building with $CXX"
"$CXX" -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -Iinclude -I"$nlohmann_inc" \
  tests/fuzz/fuzz_safetensors_header.cpp src/io/safetensors_format.cpp src/util/error.cpp \
  -o "$out/fuzz_safetensors_header"
# Seeds: the malformed corpus plus small valid files written by the reference package.
cp tests/data/safetensors/malformed/*.safetensors "$out/corpus/" 2>/dev/null || true
python3 - "$out/corpus" <<'PY' || echo "[fuzz] (no valid seeds: python safetensors missing)"
import sys, torch
from safetensors.torch import save_file
d = sys.argv[1]
save_file({"a": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.bfloat16)}, f"{d}/valid1.safetensors",
          metadata={"format": "pt"})
save_file({"x": torch.zeros(1, dtype=torch.bool), "y": torch.zeros(0, 5, dtype=torch.int64)}, f"{d}/valid2.safetensors")
PY
echo "[fuzz] running for ${seconds}s"
"$out/fuzz_safetensors_header" "$out/corpus" -max_total_time="$seconds" -max_len=4096 -timeout=10 \
  -artifact_prefix="$out/" -print_final_stats=1 2>&1 | tail -n 25
echo "[fuzz] done: no crash in ${seconds}s (corpus: $out/corpus)"
