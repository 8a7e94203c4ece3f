#!/usr/bin/env bash
# Data-parallel training of CPU processes (the MPI engine) across the machines of a host file, with Open MPI's
# mpirun (on one machine, `llavacot launch --nproc N -- train ...` does the same).
#   scripts/launch/mpirun_cpus.sh HOSTFILE NPROC [CONFIG] [extra llavacot train arguments...]
# The default CONFIG starts from runs/demo-vision/final (llavacot pretrain-vision, which the quickstart runs).
set -euo pipefail
HOSTFILE=$1
NPROC=$2
CONFIG=${3:-configs/train/demo.yaml}
shift $(( $# > 3 ? 3 : $# ))
exec mpirun --hostfile "$HOSTFILE" -np "$NPROC" --bind-to none -x OMP_NUM_THREADS \
  build/llavacot train --config "$CONFIG" --set run.device=cpu "$@"
