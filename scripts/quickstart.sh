#!/usr/bin/env bash
# The whole llavacot pipeline on the built-in synthetic demo, on one machine, with no downloads:
# bootstrap, build, make demo data, train, evaluate (greedy and SWIRES), export, print the results.
# Re-runnable: it reuses what is already built. Usage (as root on Debian 12): scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
step() { printf '\n==> %s\n' "$*"; }

step "1/3 dependencies (scripts/bootstrap.sh)"
scripts/bootstrap.sh

step "2/3 build (${BUILD_DIR}, Release, ${JOBS} jobs)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
bin="$BUILD_DIR/llavacot"

step "3/3 what this build can do"
"$bin" --version
"$bin" train --config configs/train/demo.yaml --dump-config >/dev/null && echo "configs: configs/train/demo.yaml resolves and validates"

if [ -f data/demo/manifest.json ]; then
  echo "demo data: data/demo (already generated; delete it to regenerate)"
else
  "$bin" make-demo-data --out data/demo --seed 0
fi

if [ -f runs/demo/final/model.safetensors ]; then
  echo "demo model: runs/demo/final (already trained; delete runs/demo to train again)"
else
  "$bin" train --config configs/train/demo.yaml --resume auto
  echo "training curves: python3 scripts/plot_metrics.py runs/demo/metrics.jsonl"
fi

# Data parallel: a short run of two CPU ranks with ZeRO-1 (the same trainer, started by llavacot launch).
if [ ! -f runs/demo-2ranks/final/model.safetensors ]; then
  "$bin" launch --nproc 2 -- train --config configs/train/demo.yaml --set run.output_dir=runs/demo-2ranks \
    --set train.max_steps=20 --set train.batch_size=4 --set dist.zero1=true --resume auto
fi

# Decoding: one demo benchmark image answered greedily and with SWIRES (the compute used is printed last).
image=$(find data/demo/images -name '*.png' | sort | sed -n 1p)  # sed reads all: no SIGPIPE under pipefail
echo "question about $image:"
"$bin" generate --model runs/demo/final --image "$image" --prompt "How many shapes are there?" \
  --set decode.max_new_tokens=256
"$bin" generate --config configs/decode/swires.yaml --model runs/demo/final --image "$image" \
  --prompt "How many shapes are there?" --set decode.max_new_tokens=128

# Evaluation of the demo model on the six demo benchmarks (20 questions each, no judge model), then scored
# again with the demo model as a local judge (nothing is decoded twice: the predictions are reused), which also
# gives MM-Vet a score. A real run would use configs/eval/judge-openai.yaml or a stronger local judge.
"$bin" eval --config configs/eval/demo.yaml --config configs/decode/greedy.yaml --set eval.limit=20 \
  --set decode.max_new_tokens=256
"$bin" eval --config configs/eval/demo.yaml --config configs/decode/greedy.yaml --set eval.limit=20 \
  --set decode.max_new_tokens=256 --config configs/eval/judge-local.yaml --set eval.judge_max_tokens=16
echo "evaluation report: runs/demo-eval/results.md"

# Export: the demo model as a Hugging Face directory (transformers' MllamaForConditionalGeneration and
# AutoProcessor load it), with the evaluation in its model card; inspect checks it from the headers alone.
"$bin" export --checkpoint runs/demo/final --out runs/demo-hf --dtype bf16 --overwrite \
  --eval-results runs/demo-eval/results.json
"$bin" inspect runs/demo-hf
echo "exported model: runs/demo-hf (README.md is its model card)"
