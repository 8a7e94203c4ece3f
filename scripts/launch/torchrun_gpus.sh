#!/usr/bin/env bash
# Data-parallel training on the GPUs of one machine with PyTorch's torchrun as the launcher: torchrun sets
# RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (and hosts the rendezvous store,
# TORCHELASTIC_USE_AGENT_STORE=True), and each rank reaches the others through NCCL.
#   scripts/launch/torchrun_gpus.sh [NPROC] [CONFIG] [extra llavacot train arguments...]
set -euo pipefail
NPROC=${1:-8}
CONFIG=${2:-configs/train/llava-cot-100k.yaml}
shift $(( $# > 2 ? 2 : $# ))
exec torchrun --standalone --nproc-per-node "$NPROC" --no-python \
  build/llavacot train --config "$CONFIG" --set run.device=cuda "$@"
