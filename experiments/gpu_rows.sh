#!/usr/bin/env bash
# The GPU rows of issue 13 (RESULTS §11) on a machine with one CUDA GPU:
#   1. training and prediction throughput, backbone TFLOP/s and MFU, fp32 and bf16 autocast, at
#      batch 8, 16 and 32 (bench_speed.py; MFU against a bf16 matrix product measured there);
#   2. a fractional-GPU sweep: JOBS train.py jobs sharing the GPU against one after another
#      (bench_gpu_sharing.py).
#
#   bash experiments/gpu_rows.sh BACKBONE_CONFIG_DIR OUT_DIR
#
# BACKBONE_CONFIG_DIR holds a MiniLM's config.json and tokenizer files (the bundled package's
# model folder will do). The benchmarks build a random-weight backbone of that shape: speed does
# not depend on the weights, and a GPU machine without the hub or the 90 MB weights can run it.
# Knobs (environment): DEVICE=cuda TRAINER=gpu JOBS=4 CPUS_PER_JOB=4 EPOCHS=2 SHARING_REPEATS=2 SPEED_REPEATS=3
# SPEED_BATCHES=40 BATCH_SIZES="8 16 32". The short jobs train without the span warm-up
# (loss.seq_start_epoch=0), which would otherwise cover their epochs.
set -euo pipefail

config_dir=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
model_dir=$(mktemp -d)/minilm_random
mkdir -p "$out"

"$python" - "$config_dir" "$model_dir" <<'EOF'
import sys

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer

source, target = sys.argv[1:]
torch.manual_seed(0)
AutoModel.from_config(AutoConfig.from_pretrained(source)).save_pretrained(target)
AutoTokenizer.from_pretrained(source).save_pretrained(target)
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true

# each benchmark runs even when the other fails; the exit status says whether both passed
status=0
"$python" "$root/experiments/bench_speed.py" --device "${DEVICE:-cuda}" --bf16 \
    --systems dynamic --batch-size ${BATCH_SIZES:-8 16 32} --repeats "${SPEED_REPEATS:-3}" \
    --batches "${SPEED_BATCHES:-40}" --model "$model_dir" --out "$out/speed_gpu.json" || status=1

"$python" "$root/experiments/bench_gpu_sharing.py" --jobs "${JOBS:-4}" --cpus-per-job "${CPUS_PER_JOB:-4}" \
    --repeats "${SHARING_REPEATS:-2}" --work-dir "$(mktemp -d)" --out "$out/gpu_sharing.json" \
    -- trainer="${TRAINER:-gpu}" model.name_or_path="$model_dir" \
    trainer.max_epochs="${EPOCHS:-2}" loss.seq_start_epoch=0 ${SHARING_OVERRIDES:-} || status=1
exit $status
