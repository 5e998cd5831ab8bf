"""Error analysis of a training run, without W&B: curves, confusion matrix, PR curve, span errors.

    python -m causalmine.analyze RUN_DIR [--split test|val] [--checkpoint best|last] [--worst 10]

Writes ``RUN_DIR/analysis/``:

- ``learning_curves.png``: training loss per step and validation F1 per epoch (``csv/metrics.csv``);
- ``seq_confusion_matrix.png``, ``seq_pr_curve.png``: the sequence head on the split
  (torchmetrics' own plots);
- ``span_errors.md`` and ``span_errors.json``: every predicted and gold span of the split, per
  corpus and kind, as **exact** (a gold span of its kind has its boundaries), **boundary** (it
  overlaps a gold span of its kind, other boundaries), **wrong kind** (it overlaps only gold
  spans of other kinds), **spurious** (it overlaps no gold span) and **missed** (a gold span no
  predicted span of its kind overlaps); then the sentences with the most errors, gold and
  predicted relations side by side.

The model predicts with the checkpoint's own decoding (``decode.method``,
``decode.force_relation``, ``decode.relation_order``), as ``eval.py`` and ``predict.py`` do.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from causalmine.data.tags import render_tagged
from causalmine.schema import Relation, Span

KIND_NAMES = {"C": "cause", "E": "effect", "S": "signal"}
PREDICTED_CATEGORIES = ("exact", "boundary", "wrong_kind", "spurious")
CATEGORIES = (*PREDICTED_CATEGORIES, "missed")


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def span_errors(
    gold: Sequence[Relation], predicted: Sequence[Relation]
) -> Counter[tuple[str, str]]:
    """Counts of ``(kind, category)`` for one sentence; spans are compared as sets per kind over
    all relations (the same span in two relations counts once)."""

    def spans(relations: Sequence[Relation]) -> set[Span]:
        return {Span(s.start, s.end, s.kind) for r in relations for s in r.spans}

    gold_spans, predicted_spans = spans(gold), spans(predicted)
    counts: Counter[tuple[str, str]] = Counter()
    for p in predicted_spans:
        same_kind = [g for g in gold_spans if g.kind == p.kind and _overlaps(g, p)]
        if p in gold_spans:
            category = "exact"
        elif same_kind:
            category = "boundary"
        elif any(_overlaps(g, p) for g in gold_spans):
            category = "wrong_kind"
        else:
            category = "spurious"
        counts[p.kind, category] += 1
    for g in gold_spans:
        if not any(p.kind == g.kind and _overlaps(g, p) for p in predicted_spans):
            counts[g.kind, "missed"] += 1
    return counts


def learning_curves(metrics_csv: Path, out: Path) -> None:
    """Training loss per step and validation F1 per epoch from a CSV log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    with metrics_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    loss = [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if loss:
        left.plot(*zip(*loss, strict=True), linewidth=0.8)
    left.set(xlabel="step", ylabel="training loss", title="training loss")
    for key in ("val/seq_f1", "val/span_f1", "val/span_f1_2023", "val/joint_f1"):
        points = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key)]
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=key.removeprefix("val/"))
    right.set(xlabel="epoch", ylabel="F1", title="validation", ylim=(0, 1))
    right.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    right.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def _sequence_plots(probabilities: list[float], labels: list[int], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from torchmetrics.classification import BinaryConfusionMatrix, BinaryPrecisionRecallCurve

    preds, target = torch.tensor(probabilities), torch.tensor(labels)
    for name, metric in (
        ("seq_confusion_matrix.png", BinaryConfusionMatrix()),
        ("seq_pr_curve.png", BinaryPrecisionRecallCurve()),
    ):
        metric.update(preds, target)
        figure, _ = (
            metric.plot(labels=["not causal", "causal"]) if "matrix" in name else metric.plot()
        )
        figure.savefig(out_dir / name, dpi=120)
        plt.close(figure)


def _table(counts: dict[str, Counter[tuple[str, str]]]) -> list[dict[str, Any]]:
    rows = []
    for corpus in sorted(counts):
        for kind in ("C", "E", "S"):
            row = {c: counts[corpus][kind, c] for c in CATEGORIES}
            predicted = sum(row[c] for c in PREDICTED_CATEGORIES)
            if predicted + row["missed"] == 0 and not counts[corpus][kind, "gold"]:
                continue
            rows.append(
                {"corpus": corpus, "kind": KIND_NAMES[kind], "predicted": predicted}
                | {"gold": counts[corpus][kind, "gold"]}
                | row
            )
    return rows


def analyze(
    run_dir: Path,
    split: str = "test",
    checkpoint: str = "best",
    worst: int = 10,
    data_dir: str | None = None,
) -> Path:
    """Write the analysis of ``run_dir`` into ``run_dir/analysis``; returns that directory."""
    from causalmine.checkpoints import load_module
    from causalmine.inference.bundle import bundle_of_module
    from causalmine.recipes import checkpoint_datamodule

    out_dir = run_dir / "analysis"
    out_dir.mkdir(exist_ok=True)
    if (run_dir / "csv" / "metrics.csv").is_file():
        learning_curves(run_dir / "csv" / "metrics.csv", out_dir / "learning_curves.png")
    ckpt = (
        json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"]
        if checkpoint == "best"
        else str(run_dir / "checkpoints" / "last.ckpt")
    )
    module = load_module(ckpt)
    data_dir = data_dir or os.environ.get("CAUSALMINE_DATA", str(Path.cwd() / "data"))
    datamodule = checkpoint_datamodule(module, {}, data_dir)
    datamodule.setup("test" if split == "test" else "validate")
    examples = [i.example for i in datamodule.datasets[split].items if i.example.task == "sentence"]
    predictor = bundle_of_module(module, ckpt).predictor()
    predictions = list(predictor.predict([e.text for e in examples]))

    labelled = [
        (p, e) for p, e in zip(predictions, examples, strict=True) if e.seq_label is not None
    ]
    if labelled:
        _sequence_plots(
            [p.causal_probability or 0.0 for p, _ in labelled],
            [int(e.seq_label) for _, e in labelled],
            out_dir,
        )

    counts: dict[str, Counter[tuple[str, str]]] = {}
    several_corpora = len({e.corpus for e in examples}) > 1
    sentences = []
    for p, e in zip(predictions, examples, strict=True):
        if e.relations is None:
            continue
        errors = span_errors(e.relations, p.relations)
        gold = Counter(
            s.kind
            for s in {(s.start, s.end, s.kind): s for r in e.relations for s in r.spans}.values()
        )
        for scope in ("all", e.corpus) if several_corpora else ("all",):
            total = counts.setdefault(scope, Counter())
            total.update(errors)
            total.update({(k, "gold"): n for k, n in gold.items()})
        wrong = sum(n for (_, c), n in errors.items() if c != "exact")
        sentences.append((wrong, e, p))
    rows = _table(counts)
    sentences.sort(key=lambda t: -t[0])
    (out_dir / "span_errors.json").write_text(
        json.dumps({"checkpoint": ckpt, "split": split, "rows": rows}, indent=2) + "\n"
    )
    columns = ["corpus", "kind", "gold", "predicted", *CATEGORIES]
    lines = [
        f"# Span errors: {split} split, {Path(ckpt).name} ({module.decode_method} decoding)",
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
        *("| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows),
        "",
        f"## The {worst} sentences with the most span errors",
    ]
    for wrong, e, p in sentences[:worst]:
        lines += [
            "",
            f"**{e.id}** ({e.corpus}, {wrong} errors, causal probability "
            f"{p.causal_probability:.2f})",
            "",
        ]
        lines += [f"- gold: {render_tagged(e.words, r)}" for r in e.relations or []] or [
            "- gold: none"
        ]
        lines += [f"- predicted: {t}" for t in p.tagged_texts()] or ["- predicted: none"]
    (out_dir / "span_errors.md").write_text("\n".join(lines) + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m causalmine.analyze", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path, help="a training run's directory (has metrics.json)")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best")
    parser.add_argument("--worst", type=int, default=10, help="sentences to print")
    parser.add_argument("--data-root", help="where the corpora are, if not the checkpoint's")
    args = parser.parse_args(argv)
    if not (args.run_dir / "metrics.json").is_file():
        print(
            f"error: {args.run_dir}: no metrics.json; is this a training run's directory?",
            file=sys.stderr,
        )
        return 2
    out = analyze(args.run_dir, args.split, args.checkpoint, args.worst, args.data_root)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
