"""Prediction speed end to end (tokenize, forward, decode) and what each precision costs in F1.

    python experiments/bench_predict.py --ckpt RUN/checkpoints/best-….ckpt \
        --system base=/path/to/old/src:fp32 --system new=src:fp32 --system new=src:int8

A system is ``NAME=SRC:PRECISION``: the causalmine sources to import (a ``git worktree`` of
another commit gives the "before" figures side by side with "after") and the predictor's
precision (fp32, bf16, int8; older sources know only fp32). Each (system, repetition) runs in a
fresh process, systems interleaved; each predicts ``--sentences`` CNC training sentences with
``Predictor.predict`` (what ``predict.py`` does, minus file I/O), timed after a warm-up, then
the CNC dev sentences, scored here: sequence F1 against subtask 1, span F1 (official CNC 2022
scorer) against subtask 2. Medians of ``--repeats`` go to ``--out`` with every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _measure(args: argparse.Namespace) -> dict:
    """One repetition of one system, in this process (its sources are on ``PYTHONPATH``)."""
    import torch

    import causalmine
    from causalmine.data.accounting import ReadReport
    from causalmine.data.formats import iter_csv
    from causalmine.inference import Predictor
    from causalmine.lit import CausalLitModule
    from causalmine.model.backbone import BackboneSpec, load_tokenizer
    from causalmine.prediction_files import write_predictions

    torch.set_num_threads(args.threads)
    # the network alone, so that older sources read newer checkpoints (whose optimizer settings
    # they may not know)
    checkpoint = torch.load(args.ckpt, map_location="cpu", weights_only=True)
    hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if k != "optim"}
    module = CausalLitModule(**hparams)
    module.load_state_dict(checkpoint["state_dict"])
    network = module.hparams["network"]
    tokenizer = load_tokenizer(BackboneSpec(network["name_or_path"], network.get("tiny")))
    options = {"batch_size": args.batch_size, "decode_method": "viterbi"}
    if args.precision != "fp32":
        options["precision"] = args.precision
    predictor = Predictor(
        module.network, tokenizer, required_kinds=module.required_kinds, **options
    )
    cnc = Path(args.data_root) / "cnc_v2"

    def texts(name: str, column: str = "text") -> list[tuple[str, dict]]:
        path = cnc / name
        return [
            (r.values[column], r.values) for r in iter_csv(path, [column], ReadReport(str(path)))
        ]

    train = [t for t, _ in texts("train_subtask1.csv")][: args.sentences]
    list(predictor.predict(train[:64]))  # warm-up
    start = time.perf_counter()
    count = sum(1 for _ in predictor.predict(train))
    seconds = time.perf_counter() - start

    dev = texts("dev_subtask1.csv")
    labels = [p.label for p in predictor.predict([t for t, _ in dev])]
    gold = [int(row["label"]) for _, row in dev]
    tp = sum(p == g == 1 for p, g in zip(labels, gold, strict=True))
    seq_f1 = 2 * tp / (sum(labels) + sum(gold))
    grouped = [t for t, _ in texts("dev_subtask2_grouped.csv")]
    with tempfile.TemporaryDirectory() as tmp:
        submission = Path(tmp) / "submission.jsonl"
        write_predictions(submission, predictor.predict(grouped), "cnc")
        from causalmine.score import score_files

        spans = score_files(cnc / "dev_subtask2_grouped.csv", submission)
    return {
        "source": str(Path(causalmine.__file__).parent.parent),
        "samples_per_s": count / seconds,
        "sentences": count,
        "seconds": seconds,
        "dev_seq_f1": seq_f1,
        "dev_span_f1": spans["span_f1"],
        "dev_span_f1_2023": spans["span_f1_2023"],
    }


def commit_of(src: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=src, capture_output=True, text=True
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--system", action="append", required=True, metavar="NAME=SRC:PRECISION")
    parser.add_argument("--sentences", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--data-root", default=os.environ.get("CAUSALMINE_DATA", str(ROOT / "data"))
    )
    parser.add_argument("--out", default=str(HERE / "results" / "speed_predict.json"))
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(args)))
        return

    systems = []
    for spec in args.system:
        name, rest = spec.split("=", 1)
        src, precision = rest.rsplit(":", 1)
        systems.append((name, Path(src).resolve(), precision))
    runs = []
    for repeat in range(args.repeats):
        for name, src, precision in systems:  # interleaved: a, b, c, a, b, c …
            command = [
                sys.executable,
                __file__,
                "--one",
                "--ckpt",
                args.ckpt,
                "--system",
                "-",
                "--precision",
                precision,
                "--sentences",
                str(args.sentences),
                "--batch-size",
                str(args.batch_size),
                "--threads",
                str(args.threads),
                "--data-root",
                args.data_root,
            ]
            env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(args.threads)}
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result |= {"system": name, "precision": precision, "commit": commit_of(src)}
            result["repeat"] = repeat
            runs.append(result)
            print(json.dumps(result), flush=True)
    base = statistics.median(r["samples_per_s"] for r in runs if r["system"] == systems[0][0])
    summary = []
    for name, _, precision in systems:
        mine = [r for r in runs if r["system"] == name]
        speed = statistics.median(r["samples_per_s"] for r in mine)
        summary.append(
            {
                "system": name,
                "precision": precision,
                "commit": mine[0]["commit"],
                "samples_per_s": round(speed, 1),
                "speedup": round(speed / base, 2),
                **{
                    k: round(mine[0][k], 4)
                    for k in ("dev_seq_f1", "dev_span_f1", "dev_span_f1_2023")
                },
            }
        )
    print(
        "| system | precision | commit | sentences/s | × first | dev seq F1 | dev span F1 | span F1 2023 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in summary:
        print(
            f"| {s['system']} | {s['precision']} | {s['commit']} | {s['samples_per_s']} | "
            f"{s['speedup']} | {s['dev_seq_f1']} | {s['dev_span_f1']} | {s['dev_span_f1_2023']} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    payload = {"args": {k: v for k, v in vars(args).items() if k not in ("one", "precision")}}
    Path(args.out).write_text(json.dumps(payload | {"runs": runs, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
