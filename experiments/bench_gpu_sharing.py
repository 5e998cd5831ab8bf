"""Fractional-GPU sweeps: N training jobs sharing one GPU against the same jobs one after another.

    python experiments/bench_gpu_sharing.py --jobs 4 --repeats 2 -- trainer=gpu trainer.max_epochs=2 loss.seq_start_epoch=0

On a machine with one GPU, ``hydra/launcher=ray_gpus launcher.gpus_per_job=0.25`` runs four
``train.py`` jobs on that GPU at once, each a fresh process with ``launcher.cpus_per_job`` cores
(Ray sets ``OMP_NUM_THREADS`` to it); ``gpus_per_job=1`` runs them one after another. This
benchmark runs those processes without Ray (so it needs neither Ray nor a cluster): the jobs of
a sweep over seeds 1..N, once one after another and once all at once, each with
``--cpus-per-job`` threads. The two modes are interleaved over ``--repeats``; the table gives the
median sweep wall time of each and the speed-up. Everything after ``--`` is passed to every job
as Hydra overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MODES = ("one_after_another", "all_at_once")


def job_command(seed: int, run_dir: Path, overrides: list[str]) -> list[str]:
    """The ``train.py`` command of one sweep job, writing into its own run directory."""
    return [
        sys.executable,
        str(ROOT / "train.py"),
        f"seed={seed}",
        f"hydra.run.dir={run_dir}",
        "print_config=false",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]


def run_sweep(mode: str, args: argparse.Namespace, work: Path) -> dict:
    """Run the N jobs in ``mode``; return the sweep's wall time and each job's."""
    threads = args.cpus_per_job
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    started: dict[int, float] = {}
    ended: dict[int, float] = {}
    processes: dict[int, subprocess.Popen] = {}
    logs = {}

    def launch(seed: int) -> None:
        run_dir = work / f"{mode}_seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        logs[seed] = (run_dir / "job.log").open("w")
        started[seed] = time.perf_counter()
        processes[seed] = subprocess.Popen(
            job_command(seed, run_dir, args.overrides),
            cwd=ROOT,
            env=env,
            stdout=logs[seed],
            stderr=subprocess.STDOUT,
        )

    def finish(seed: int) -> None:
        code = processes[seed].wait()
        ended[seed] = time.perf_counter()
        logs[seed].close()
        if code != 0:
            for other in processes.values():  # the sweep failed: stop the jobs beside it
                if other.poll() is None:
                    other.kill()
            tail = (work / f"{mode}_seed{seed}" / "job.log").read_text()[-3000:]
            raise RuntimeError(f"{mode} job seed={seed} failed with exit code {code}:\n{tail}")

    seeds = range(1, args.jobs + 1)
    sweep_start = time.perf_counter()
    if mode == "one_after_another":
        for seed in seeds:
            launch(seed)
            finish(seed)
    else:
        for seed in seeds:
            launch(seed)
        for seed in seeds:
            finish(seed)
    return {
        "mode": mode,
        "threads_per_job": threads,
        "wall_s": time.perf_counter() - sweep_start,
        "job_wall_s": [ended[s] - started[s] for s in seeds],
    }


def summarize(runs: list[dict]) -> dict:
    """Median sweep wall time per mode and the speed-up of sharing the GPU."""
    medians = {
        mode: statistics.median(r["wall_s"] for r in runs if r["mode"] == mode)
        for mode in MODES
        if any(r["mode"] == mode for r in runs)
    }
    summary = {f"{mode}_wall_s": seconds for mode, seconds in medians.items()}
    if len(medians) == len(MODES):
        summary["speedup"] = medians["one_after_another"] / medians["all_at_once"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=4, help="jobs per sweep (seeds 1..N)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--cpus-per-job", type=int, default=1, help="threads per job (launcher.cpus_per_job)"
    )
    parser.add_argument("--work-dir", default="outputs/bench_gpu_sharing")
    parser.add_argument("--out", default=str(HERE / "results" / "gpu_sharing.json"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job (after --)")
    args = parser.parse_args()
    if min(args.jobs, args.repeats, args.cpus_per_job) < 1:
        parser.error("--jobs, --repeats and --cpus-per-job must be at least 1")

    runs = []
    for repeat in range(args.repeats):
        # alternate which mode goes first, so drift (clocks, caches) does not favour one
        modes = MODES if repeat % 2 == 0 else MODES[::-1]
        for mode in modes:
            result = run_sweep(mode, args, Path(args.work_dir) / f"repeat{repeat}")
            result["repeat"] = repeat
            runs.append(result)
            print(json.dumps(result), flush=True)
            # partial results survive an interrupted benchmark
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(
                json.dumps({"args": vars(args), "runs": runs, "summary": summarize(runs)}, indent=2)
            )
    summary = summarize(runs)
    print(
        f"| jobs | one after another, s | all at once, s | speed-up |\n| --- | --- | --- | --- |\n"
        f"| {args.jobs} | {summary['one_after_another_wall_s']:.1f} "
        f"| {summary['all_at_once_wall_s']:.1f} | {summary['speedup']:.2f}× |"
    )


if __name__ == "__main__":
    main()
