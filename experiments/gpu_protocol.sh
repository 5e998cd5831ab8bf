#!/usr/bin/env bash
# bench_protocol.py jobs on a lent one-GPU machine of this workplace (RESULTS §8s), where nothing
# can be installed and at most 64 MiB travel with the working tree:
#
#   # here: the packages the machine lacks and MiniLM with its weights stored in fp16 (45 MB; the
#   # 90 MB fp32 file does not travel), into an ignored folder that the call carries
#   PYTHON=.venv/bin/python bash experiments/gpu_protocol.sh pack .gpu   (.gitignore holds /.gpu/)
#   # there, call 1: restore the weights as fp32, start the jobs in the background (they outlive
#   # the call while the machine stays warm), wait up to SECONDS, copy what finished to OUT
#   bash experiments/gpu_protocol.sh start .gpu /tmp/gw PARALLEL CONFIG:SEED... -- OVERRIDE...
#   bash experiments/gpu_protocol.sh wait /tmp/gw SECONDS "$OUT"
#   # there, a later call while the machine is warm: wait for the rest, copy again
#   bash experiments/gpu_protocol.sh wait /tmp/gw SECONDS "$OUT"
#
# The restored backbone is MiniLM rounded to fp16 (a 10-bit mantissa, as TF32 matrix products
# round their inputs to; weights below fp16's normal range lose more, and are all under 6e-5 in
# size); every job of a comparison uses the same one.
# The jobs share the GPU through MPS where its daemon starts and answers, else by time-slicing.
# BENCH_COMMIT (required by start) names the commit in the records: the machine's copy of the tree
# has no git. A job started again (the same CONFIG:SEED, BENCH_COMMIT, overrides, code and library
# versions) while the machine is warm resumes from its run directory's last.ckpt (bench_protocol.py).
set -euo pipefail

mode=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd -P)
python=${PYTHON:-python3}

case $mode in
pack)
    dest=$1
    mkdir -p "$dest/pylib"
    "$python" - "$dest" <<'EOF'
import importlib.metadata
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from causalmine.model.hub import bundled_minilm_path

dest = Path(sys.argv[1])
source = Path(bundled_minilm_path())
model = dest / "minilm_fp16"
model.mkdir(exist_ok=True)
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "vocab.txt"):
    shutil.copy(source / name, model / name)
weights = load_file(source / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
          model / "model_fp16.safetensors", metadata={"format": "pt"})
floats = [v for v in weights.values() if v.is_floating_point()]
relative = max(((v.half().float() - v).norm() / v.norm()).item() for v in floats)
absolute = max((v.half().float() - v).abs().max().item() for v in floats)
print(f"fp16 copy of {source}: rounding error per tensor at most {relative:.1e} (relative L2), "
      f"{absolute:.1e} (largest change of one weight)")
# pure-Python packages the GPU image lacks, with their metadata
for dist in ("hydra-core", "omegaconf", "antlr4-python3-runtime", "seqeval", "syntok"):
    files = importlib.metadata.distribution(dist).files
    for top in {f.parts[0] for f in files if not f.parts[0].startswith("..")}:
        src = Path(importlib.metadata.distribution(dist).locate_file(top))
        if src.is_dir() and not (dest / "pylib" / top).exists():
            shutil.copytree(src, dest / "pylib" / top, ignore=shutil.ignore_patterns("__pycache__"))
print("pylib:", sorted(p.name for p in (dest / "pylib").iterdir()))
EOF
    ;;
start)
    : "${BENCH_COMMIT:?set BENCH_COMMIT to the commit of the tree the jobs run (git rev-parse --short HEAD here)}"
    carry=$(cd "$1" && pwd -P) parallel=$3
    work=$(realpath -m "$2")
    shift 3
    case $work/ in "$root"/*)
        echo "the work folder $work must lie outside the tree, which it copies" >&2
        exit 2
        ;;
    esac
    mkdir -p "$work"
    if [[ -f $work/runner.pid ]] && kill -0 "$(cat "$work/runner.pid")" 2>/dev/null; then
        echo "jobs started earlier still run in $work: wait for them, or use another folder" >&2
        exit 2
    fi
    jobs=()
    while [[ $# -gt 0 && $1 != -- ]]; do jobs+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    mkdir -p "$work"
    export PYTHONPATH="$carry/pylib${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
    "$python" - "$carry/minilm_fp16" "$work/minilm_fp16_rounded" <<'EOF'
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

source, target = map(Path, sys.argv[1:])
target.mkdir(parents=True, exist_ok=True)
for f in source.iterdir():
    if f.name != "model_fp16.safetensors":
        shutil.copy(f, target / f.name)
weights = load_file(source / "model_fp16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in weights.items()},
          target / "model.safetensors", metadata={"format": "pt"})
EOF
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$work/gpu.txt" || true
    if [[ ${MPS:-1} == 1 ]] && command -v nvidia-cuda-mps-control >/dev/null; then
        export CUDA_MPS_PIPE_DIRECTORY=$work/mps_pipe CUDA_MPS_LOG_DIRECTORY=$work/mps_log
        mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
        if echo get_server_list | timeout 10 nvidia-cuda-mps-control >/dev/null 2>&1; then
            echo "jobs share the GPU through the MPS daemon an earlier call started" | tee -a "$work/gpu.txt"
        elif ! nvidia-cuda-mps-control -d; then
            unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
            echo "MPS did not start: jobs time-slice the GPU" | tee -a "$work/gpu.txt"
        elif timeout 90 "$python" -c \
            "import torch; print('MPS client ok', torch.ones(2, device='cuda').sum().item())"; then
            echo "jobs share the GPU through MPS" | tee -a "$work/gpu.txt"
        else
            echo quit | nvidia-cuda-mps-control || true # the daemon this call started
            unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
            echo "MPS did not answer: jobs time-slice the GPU" | tee -a "$work/gpu.txt"
        fi
    else
        echo "no MPS: jobs time-slice the GPU" | tee -a "$work/gpu.txt"
    fi
    # the jobs run from a copy of the tree: a later call re-sends the working tree, and jobs
    # that start then must not read files being rewritten
    rm -rf "$work/repo" && mkdir -p "$work/repo"
    (cd "$root" && tar cf - --exclude="./${carry#"$root"/}" --exclude=./.git --exclude=./.venv --exclude=./logs \
        --exclude=./outputs --exclude=./multirun --exclude=./wandb .) | tar xf - -C "$work/repo"
    setsid nohup "$python" "$work/repo/experiments/bench_protocol.py" --jobs "${jobs[@]}" \
        --parallel "$parallel" --threads 1 --out "$work/runs.jsonl" --work-dir "$work/runs" \
        "$@" "model.name_or_path=$work/minilm_fp16_rounded" >"$work/runner.log" 2>&1 &
    echo $! >"$work/runner.pid"
    echo "started $((${#jobs[@]})) jobs, $parallel at a time: pid $(cat "$work/runner.pid")"
    ;;
wait)
    work=$1 seconds=$2 out=$3
    if [[ ! -f $work/runner.pid ]]; then
        echo "no jobs were started in $work" >&2
        exit 1
    fi
    deadline=$((SECONDS + seconds))
    while kill -0 "$(cat "$work/runner.pid")" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 5
    done
    if kill -0 "$(cat "$work/runner.pid")" 2>/dev/null; then echo "still running"; else echo "all done"; fi
    mkdir -p "$out"
    cp "$work/gpu.txt" "$work/runner.log" "$out/" 2>/dev/null || true
    [[ -f $work/runs.jsonl ]] && cp "$work/runs.jsonl" "$out/" && wc -l "$out/runs.jsonl"
    # each finished job's own log and CSV curve, for the record
    (cd "$work" && tar czf "$out/run_logs.tgz" runs/*/bench_protocol.log runs/*/csv/metrics*.csv \
        runs/*/metrics.json runs/*/bench_protocol_job.json 2>/dev/null) || true
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >"$out/nvidia_smi.txt" || true
    ;;
*)
    echo "usage: $0 pack DEST | start CARRY WORK PARALLEL JOB... -- OVERRIDE... | wait WORK SECONDS OUT" >&2
    exit 2
    ;;
esac
