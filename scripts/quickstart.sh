#!/usr/bin/env bash
# The whole llavacot pipeline on the built-in synthetic demo, on one machine, with no downloads: install the
# dependencies, build, make the demo data, pretrain the demo model's vision encoder, train the demo model, evaluate it on the six demo benchmarks greedily,
# with SWIRES and with blank images, export it in Hugging Face format, and print the results table.
# Re-runnable: each step reuses what an earlier run finished (delete an output to redo its step).
#
# Usage (as root on Debian 12): scripts/quickstart.sh
# Knobs (environment), for a quicker look or the shortened run of the test suite:
#   QUICKSTART_VISION_STEPS  vision pretraining steps (default: configs/train/demo-vision.yaml's)
#   QUICKSTART_STEPS   training steps (default: configs/train/demo.yaml's schedule)
#   QUICKSTART_LIMIT   questions per benchmark in each evaluation (default 30)
#   QUICKSTART_TRAIN   training records to generate (default 16000)
#   QUICKSTART_BENCH   questions per demo benchmark to generate (default 200)
#   QUICKSTART_PRESET  model preset (default: the config's, `demo`)
#   QUICKSTART_MAX_NEW_TOKENS  cap on each answer's tokens (default 256; the demo's answers need about 150)
#   DEMO_DATA, DEMO_RUNS  where the data and the runs go (default data/demo, runs)
#   LLAVACOT_BIN       an already built llavacot: skips the dependency and build steps
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
LIMIT=${QUICKSTART_LIMIT:-30}
DATA=${DEMO_DATA:-data/demo}
RUNS=${DEMO_RUNS:-runs}
MAX_NEW=${QUICKSTART_MAX_NEW_TOKENS:-256}
start=$(date +%s)
step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if [ -n "${LLAVACOT_BIN:-}" ]; then
  bin=$LLAVACOT_BIN
  step "dependencies and build: skipped (LLAVACOT_BIN=$bin)"
else
  step "1/9 dependencies (scripts/bootstrap.sh)"
  scripts/bootstrap.sh
  step "2/9 build (${BUILD_DIR}, Release, ${JOBS} jobs; ccache makes a rebuild quick)"
  # A new build folder uses Ninja (it starts the CLI's sources before the library is done); an existing one keeps
  # the generator it was configured with.
  generator=()
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "${generator[@]}" >/dev/null
  cmake --build "$BUILD_DIR" -j "$JOBS" --target llavacot_cli
  bin="$BUILD_DIR/llavacot"
fi
"$bin" --version

common=(--set "data.train_file=$DATA/train.jsonl" --set "data.image_root=$DATA/images"
        --set "model.tokenizer=$DATA/tokenizer.json")
[ -n "${QUICKSTART_PRESET:-}" ] && common+=(--set "model.preset=$QUICKSTART_PRESET")
[ -n "${QUICKSTART_STEPS:-}" ] && common+=(--set "train.max_steps=$QUICKSTART_STEPS")

step "3/9 demo data ($DATA)"
if [ -f "$DATA/manifest.json" ] && [ ! -f "$DATA/vision.jsonl" ]; then
  echo "error: $DATA was made by an earlier llavacot (no masks for the vision pretraining); delete $DATA and $RUNS" >&2
  exit 1
elif [ -f "$DATA/manifest.json" ]; then
  echo "already generated (delete $DATA to regenerate)"
else
  # No verification turns: they teach the self_verify scorer, and the demo's SWIRES scores with log-probabilities.
  # Without them the records are shorter and a training step sees more questions.
  "$bin" make-demo-data --out "$DATA" --seed 0 --train "${QUICKSTART_TRAIN:-16000}" --bench "${QUICKSTART_BENCH:-200}" \
    --verify-fraction 0
fi

# Two stages, as Llama-3.2-Vision was built: a vision encoder that knows shapes first (a from-scratch encoder
# learns only colours from the text loss), then the whole model on the four-stage answers.
step "4/9 pretrain the vision encoder on the segmentation masks ($RUNS/demo-vision; configs/train/demo-vision.yaml)"
vision="$RUNS/demo-vision/final"
if [ -f "$vision/model.safetensors" ]; then
  echo "already pretrained (delete $RUNS/demo-vision to pretrain again)"
else
  rm -rf "$RUNS/demo-vision"  # an interrupted pretraining starts over (it takes minutes)
  vargs=(--set "vision_pretrain.file=$DATA/vision.jsonl" --set "model.tokenizer=$DATA/tokenizer.json"
         --set "run.output_dir=$RUNS/demo-vision")
  [ -n "${QUICKSTART_PRESET:-}" ] && vargs+=(--set "model.preset=$QUICKSTART_PRESET")
  [ -n "${QUICKSTART_VISION_STEPS:-}" ] && vargs+=(--set "train.max_steps=$QUICKSTART_VISION_STEPS")
  "$bin" pretrain-vision --config configs/train/demo-vision.yaml "${vargs[@]}"
fi
common+=(--set "model.weights=$vision")  # configs/train/demo.yaml's default, under DEMO_RUNS

# Two data-parallel ranks of half the cores each, 8 records a rank: the config's 16 records a step, in the same
# batches. On 2 cores this is 11% faster than one process of two threads (docs/benchmarks.md): a model this
# small leaves a second intra-op thread idle for part of every operation.
step "5/9 train the demo model ($RUNS/demo; configs/train/demo.yaml, two data-parallel ranks)"
if [ -f "$RUNS/demo/final/model.safetensors" ]; then
  echo "already trained (delete $RUNS/demo to train again)"
else
  rank_threads=$(( $(nproc) / 2 > 1 ? $(nproc) / 2 : 1 ))
  "$bin" launch --nproc 2 -- train --config configs/train/demo.yaml "${common[@]}" --set "run.output_dir=$RUNS/demo" \
    --set train.batch_size=8 --set "run.threads=$rank_threads" --resume auto
fi
model="$RUNS/demo/final"

# Data parallel: a short run of two CPU ranks with ZeRO-1 (the same trainer, started by llavacot launch).
step "6/9 two data-parallel ranks, ZeRO-1 ($RUNS/demo-2ranks, 10 steps)"
if [ -f "$RUNS/demo-2ranks/final/model.safetensors" ]; then
  echo "already done"
else
  "$bin" launch --nproc 2 -- train --config configs/train/demo.yaml "${common[@]}" \
    --set "run.output_dir=$RUNS/demo-2ranks" --set train.max_steps=10 --set train.batch_size=4 \
    --set dist.zero1=true --set run.threads=1 --resume auto
fi

step "7/9 one question, greedy and SWIRES"
image=$(find "$DATA/images/shapes" -name '*.png' | sort | sed -n 1p)  # a shapes scene, for the shapes question; sed reads all: no SIGPIPE under pipefail
echo "question about $image: How many shapes are there?"
"$bin" generate --model "$model" --image "$image" --prompt "How many shapes are there?" --set decode.max_new_tokens="$MAX_NEW"
"$bin" generate --config configs/decode/swires.yaml --model "$model" --image "$image" \
  --prompt "How many shapes are there?" --set decode.max_new_tokens="$MAX_NEW"

# Evaluation on the six demo benchmarks: greedy, SWIRES, and greedy with every image blanked (the ablation that
# shows the model reads the image), and the greedy predictions scored with a local judge.
step "8/9 evaluate ($LIMIT questions per benchmark): greedy, SWIRES, blank images"
files=(--config configs/eval/demo.yaml --model "$model" --set eval.limit="$LIMIT" --set decode.max_new_tokens="$MAX_NEW")
for b in MMStar:mmstar MMBench_DEV_EN_V11:mmbench MMVet:mmvet MathVista_MINI:mathvista AI2D_TEST:ai2d HallusionBench:hallusionbench; do
  files+=(--set "eval.files.${b#*:}=$DATA/bench/${b%%:*}.tsv")
done
# Decoding a model this small is bound by per-operation overhead, not arithmetic: one thread decodes faster than
# two (docs/benchmarks.md), so the evaluations run in two streams side by side, one thread each, their lines
# tagged. Each evaluation decodes 32 questions together (configs/eval/demo.yaml; SWIRES's searches too), so one
# stream does greedy, blank images and the judged re-scoring while the other does SWIRES, which generates about
# 3.7 times the tokens of a greedy answer.
tagged() {  # tagged TAG CMD...: runs CMD with its output lines prefixed by [TAG]
  local tag=$1; shift
  "$@" 2>&1 | sed -u "s/^/[$tag] /"
}
greedy_stream() {
  tagged greedy "$bin" eval "${files[@]}" --config configs/decode/greedy.yaml --set run.threads=1 \
    --set "run.output_dir=$RUNS/demo-eval"
  tagged blank "$bin" eval "${files[@]}" --config configs/decode/greedy.yaml --set run.threads=1 \
    --set "run.output_dir=$RUNS/demo-eval-blank" --set eval.image_ablation=blank
  # The greedy predictions scored again with the demo model as a local judge (nothing is decoded twice), which
  # also gives MM-Vet a score; a real run would use judge-openai.yaml.
  mkdir -p "$RUNS/demo-eval-judged"  # the greedy predictions, resumed there: only scoring is left to do
  cp "$RUNS/demo-eval/predictions.jsonl" "$RUNS/demo-eval-judged/predictions.jsonl"
  tagged judged "$bin" eval "${files[@]}" --config configs/decode/greedy.yaml --set run.threads=1 \
    --set "run.output_dir=$RUNS/demo-eval-judged" --config configs/eval/judge-local.yaml --set eval.judge_max_tokens=16
}
greedy_stream &  # a subshell: errexit and pipefail hold in it, and its status comes back through wait
greedy_pid=$!
tagged swires "$bin" eval "${files[@]}" --config configs/decode/swires.yaml --set run.threads=1 \
  --set "run.output_dir=$RUNS/demo-eval-swires" || { wait "$greedy_pid" || true; exit 1; }
wait "$greedy_pid"

# Export: the demo model as a Hugging Face directory (transformers' MllamaForConditionalGeneration and
# AutoProcessor load it), with the evaluation in its model card; inspect checks it from the headers alone.
step "9/9 export to Hugging Face format ($RUNS/demo-hf)"
"$bin" export --checkpoint "$model" --out "$RUNS/demo-hf" --dtype bf16 --overwrite \
  --eval-results "$RUNS/demo-eval/results.json"
"$bin" inspect "$RUNS/demo-hf"

step "results"
python3 scripts/demo_table.py "$RUNS/demo-results.md" "greedy=$RUNS/demo-eval" "SWIRES=$RUNS/demo-eval-swires" \
  "greedy, blank image=$RUNS/demo-eval-blank"
cat <<EOF

Where everything is:
  demo data            $DATA (train.jsonl, images/, masks/, vision.jsonl, bench/*.tsv, tokenizer.json, manifest.json)
  pretrained encoder   $vision (vision pretraining run: $RUNS/demo-vision, metrics.jsonl)
  trained model        $model (model.safetensors, config.json, tokenizer.json)
  training run         $RUNS/demo (metrics.jsonl: python3 scripts/plot_metrics.py $RUNS/demo/metrics.jsonl)
  two-rank ZeRO-1 run  $RUNS/demo-2ranks
  evaluations          $RUNS/demo-eval (greedy), $RUNS/demo-eval-swires, $RUNS/demo-eval-blank,
                       $RUNS/demo-eval-judged (greedy, scored with the local judge):
                       results.md, results.json, predictions.jsonl, <benchmark>.csv each
  Hugging Face export  $RUNS/demo-hf (README.md is its model card)
  this table           $RUNS/demo-results.md
Total time: $(( $(date +%s) - start )) s
EOF
