"""Mining throughput end to end (read, split, predict, write): sentences per second.

    python experiments/bench_mining.py --model-dir DIR                      # the systems below
    python experiments/bench_mining.py --model-dir DIR --systems fp32=local:fp32 ray2=ray:fp32:2

Each system is ``NAME=LAUNCHER:PRECISION[:WORKERS]``, run as ``python mine.py`` in its own
process on a fresh output directory. The corpus is CNC V2's texts (train + dev sequence units,
3,415 sentences of news) joined into documents of ``--units`` consecutive units, written once
as ``.jsonl``, times ``--copies``. Systems run interleaved, ``--repeats`` rounds; the figure is
the median of the whole command's wall time (model loading, Ray start-up and the summary
included), and the peak RSS of the driver process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_SYSTEMS = [
    "fp32=local:fp32",
    "int8=local:int8",
    "ray2_fp32=ray:fp32:2",
    "ray2_int8=ray:int8:2",
]
_PEAK = "import resource, runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def write_corpus(data_dir: Path, out: Path, units_per_document: int, copies: int) -> int:
    units = []
    for split in ("train", "dev"):
        with open(data_dir / f"{split}_subtask1.csv", encoding="utf-8-sig", newline="") as f:
            units += [row["text"].strip() for row in csv.DictReader(f)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for copy in range(copies):
            for i in range(0, len(units), units_per_document):
                text = " ".join(units[i : i + units_per_document])
                f.write(
                    json.dumps({"id": f"c{copy}-d{i // units_per_document}", "text": text}) + "\n"
                )
    return len(units) * copies


def run(system: str, corpus: Path, work: Path, args: argparse.Namespace) -> dict:
    name, spec = system.split("=", 1)
    launcher, precision, *rest = spec.split(":")
    workers = int(rest[0]) if rest else 2
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    command = [
        str(ROOT / "mine.py"),
        f"model_dir={args.model_dir}",
        f"input={corpus}",
        f"output={out}",
        "id_column=id",
        f"precision={precision}",
        f"launcher={launcher}",
        f"ray.workers={workers}",
        f"ray.cpus_per_worker={max(1, args.threads // workers)}",
        f"batch_size={args.batch_size}",
        f"shard_size={args.shard_size}",
        "progress_bar=false",
        f"hydra.run.dir={work / ('hydra_' + name)}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads if launcher == "local" else 1)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *command], env=env, capture_output=True, text=True, cwd=ROOT
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "_summary.json").read_text())
    peak_kb = int(done.stdout.split("PEAK_KB")[-1])
    return {**summary, "system": name, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads in all (local) / per pool (Ray)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument(
        "--shard-size", type=int, default=50, help="documents per shard (Ray spreads shards)"
    )
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--data", default=str(ROOT / "data" / "cnc_v2"))
    parser.add_argument("--work-dir", default="/tmp/causalmine-bench-mining")
    parser.add_argument("--out", default=str(HERE / "results" / "mining.json"))
    args = parser.parse_args()

    work = Path(args.work_dir)
    corpus = work / "cnc_documents.jsonl"
    write_corpus(Path(args.data), corpus, args.units, args.copies)
    runs = []
    for round_ in range(args.repeats):
        for system in args.systems:
            result = run(system, corpus, work, args)
            runs.append({"round": round_, **result})
            print(json.dumps(runs[-1]), flush=True)
            Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=1))
    print("| system | sentences | median s | sentences/s | documents/s | peak RSS MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for system in args.systems:
        name = system.split("=", 1)[0]
        mine = [r for r in runs if r["system"] == name]
        seconds = statistics.median(r["seconds"] for r in mine)
        print(
            f"| {name} ({system.split('=', 1)[1]}) | {mine[0]['sentences']:,} | {seconds:.1f} "
            f"| {mine[0]['sentences'] / seconds:,.1f} | {mine[0]['records'] / seconds:,.1f} "
            f"| {max(r['peak_rss_mb'] for r in mine):,.0f} |"
        )


if __name__ == "__main__":
    main()
