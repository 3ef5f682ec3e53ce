#!/bin/bash
# Train on this host: launch/local.sh [NPROC] key=value ... (Hydra overrides, passed through).
#   launch/local.sh 8 model=llama3_8b data.path=DATA parallel.tp=2 run.dir=runs/x
# NPROC defaults to the number of GPUs (1 without any). Re-running the same command resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    nproc=$1
    shift
else
    nproc=$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# The config, layout and data checks first, in one process: a bad command is one line, exit 2.
WORLD_SIZE=$nproc python -m pretrain.train --check "$@"
exec torchrun --standalone --nproc-per-node "$nproc" -m pretrain.train "$@"
