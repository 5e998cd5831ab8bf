"""Decoding thresholds read on validation from trained checkpoints (no training).

    python experiments/bench_decoding.py --checkpoints unified_2=/runs/u2/checkpoints/last.ckpt \\
        span_only_1=/runs/s1/checkpoints/last.ckpt --out experiments/results/decoding.json

For each checkpoint, on its validation split and on its test split:

- span F1 (official CNC 2022 rules, Viterbi decoding) when ``bias`` is added to the logits of
  every B/I label of the Cause/Effect heads (> 0 trades precision for recall: the 10-epoch
  default's errors are mostly missed relations, RESULTS §8);
- sequence F1 when the sequence head calls a sentence causal above ``threshold`` instead of 0.5;
- sequence F1, precision and recall when the span heads have a say in the sequence decision
  (RESULTS §8v): ``or``, causal when the sequence head says so or a complete relation is decoded
  (Viterbi, bias 0); ``and``, when both do; ``head``, the sequence head alone (the default);
- span F1 (bias 0) when each sentence's relations are ordered most confident first
  (``decode.relation_order=confidence``) instead of by head: the CNC scorers keep the first
  predicted relations of a sentence that gets more than its gold ones, and under
  ``loss.span_assignment=matched`` head order means nothing (RESULTS §8g).

Spans are always decoded by Viterbi without ``force_relation`` (the defaults), whatever decoding
a checkpoint was trained with.

The summary gives, per setting (bias, threshold, relation order, sequence rule), the mean paired
difference against the default (bias 0, threshold 0.5, ``head``, ``head``) over the checkpoints,
with the one-sided paired t-test, on validation (what a choice may read) and on test (reported
only).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

from paired_test import paired_statistics

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

BIASES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
ORDERS = ("head", "confidence")
SEQUENCE_RULES = ("head", "or", "and")


def network_outputs(module, loader) -> list[tuple]:
    """Per batch: examples, word positions, P(causal), sequence labels and span-head logits,
    computed as the checkpoint's run computed (bf16 for a bf16 run that recorded it)."""
    import torch

    from causalmine.precision import computing_as

    rows = []
    with torch.no_grad(), computing_as(module.trained_numerics):
        for batch in loader:
            out = module(batch)
            rows.append(
                (
                    batch["meta"].examples,
                    batch["meta"].word_positions,
                    out.seq_logits.float().softmax(-1)[:, 1],
                    batch["seq_labels"],
                    out.cause_effect_logits.float(),
                    out.signal_logits.float(),
                )
            )
    return rows


def decode_rows(
    rows: list[tuple],
    bias: float,
    required_kinds: tuple[str, ...],
    transitions=None,
    relation_order: str = "head",
) -> list[list[list]]:
    """Per batch, each sentence's relations (Viterbi) with ``bias`` added to the Cause/Effect
    heads' B/I logits (decoded under the CRFs' ``transitions`` for a model with
    ``model.span_crf``), in ``relation_order``."""
    from causalmine.scoring.decode import decode_batch

    decoded = []
    for _, positions, _, _, ce, sig in rows:
        biased = ce.clone()
        biased[..., 1:] += bias  # label 0 is O (schema.CE_LABELS)
        decoded.append(
            decode_batch(
                biased,
                sig,
                positions,
                required_kinds,
                "viterbi",
                transitions=transitions,
                relation_order=relation_order,
            )
        )
    return decoded


def span_f1(rows: list[tuple], decoded: list[list[list]]) -> float:
    """Official span F1 of the relations ``decoded`` for ``rows`` (:func:`decode_rows`)."""
    from causalmine.scoring.span_metric import SpanF1

    metric = SpanF1()
    for (examples, *_), predicted in zip(rows, decoded, strict=True):
        metric.update([e.words for e in examples], [e.relations for e in examples], predicted)
    return float(metric.compute()["span_f1"])


def labelled(rows: list[tuple], values: list) -> tuple:
    """``values`` (one per-sentence tensor per batch of ``rows``) and the sequence labels, over
    the sentences with a sequence label, concatenated across batches."""
    import torch

    keep = [row[3] >= 0 for row in rows]
    return (
        torch.cat([v[k] for v, k in zip(values, keep, strict=True)]),
        torch.cat([row[3][k] for row, k in zip(rows, keep, strict=True)]),
    )


def seq_f1(rows: list[tuple], threshold: float) -> float:
    from torchmetrics.functional.classification import binary_f1_score

    probabilities, labels = labelled(rows, [row[2] for row in rows])
    return float(binary_f1_score(probabilities, labels, threshold=threshold))


def sequence_rule_scores(
    rows: list[tuple], decoded: list[list[list]]
) -> dict[str, dict[str, float]]:
    """Sequence F1, precision and recall per rule of :data:`SEQUENCE_RULES`: the sequence head
    (probability above 0.5) combined with "a complete relation is decoded" in ``decoded``
    (:func:`decode_rows`; RESULTS §8v used Viterbi at bias 0)."""
    import torch
    from torchmetrics.functional.classification import (
        binary_f1_score,
        binary_precision,
        binary_recall,
    )

    head_says, labels = labelled(rows, [row[2] > 0.5 for row in rows])
    found = [torch.tensor([len(r) > 0 for r in d], dtype=torch.bool) for d in decoded]
    spans_say, _ = labelled(rows, found)
    decisions = {"head": head_says, "or": head_says | spans_say, "and": head_says & spans_say}
    return {
        metric: {rule: float(fn(decisions[rule].float(), labels)) for rule in SEQUENCE_RULES}
        for metric, fn in (
            ("seq_f1_by_rule", binary_f1_score),
            ("seq_precision_by_rule", binary_precision),
            ("seq_recall_by_rule", binary_recall),
        )
    }


def measure(path: Path, data_dir: str) -> dict[str, dict]:
    from causalmine.checkpoints import load_module
    from causalmine.recipes import checkpoint_datamodule

    module = load_module(path).eval()
    kinds = tuple(module.required_kinds)
    # a head whose task had loss weight 0 (span_only, seq_only) was never trained: not measured
    trained = {"span": module.loss_weights.span_weight > 0, "seq": module.loss_weights.alpha > 0}
    datamodule = checkpoint_datamodule(module, {}, data_dir)
    datamodule.setup("fit")
    datamodule.setup("test")
    result = {}
    for split, loader in (
        ("val", datamodule.val_dataloader()),
        ("test", datamodule.test_dataloader()),
    ):
        rows = network_outputs(module, loader)
        result[split] = {}
        if trained["span"]:
            transitions = module.network.span_heads.transitions()

            # bias 0 in head order serves the bias table, the order table and the sequence rules
            @functools.cache
            def decoded(bias: float, order: str, rows=rows, transitions=transitions):
                return decode_rows(rows, bias, kinds, transitions, order)

            result[split]["span_f1_by_bias"] = {
                str(b): span_f1(rows, decoded(b, "head")) for b in BIASES
            }
            result[split]["span_f1_by_order"] = {
                order: span_f1(rows, decoded(0.0, order)) for order in ORDERS
            }
        if trained["seq"]:
            result[split]["seq_f1_by_threshold"] = {str(t): seq_f1(rows, t) for t in THRESHOLDS}
        if trained["seq"] and trained["span"]:
            result[split] |= sequence_rule_scores(rows, decoded(0.0, "head"))
        print(path, split, json.dumps(result[split]), flush=True)
    return result


def summarize(measured: dict[str, dict]) -> dict[str, dict]:
    """Mean ± std over checkpoints of each setting's difference from the default, per split
    (over the checkpoints whose head for that task was trained)."""
    summary: dict[str, dict] = {}
    for split in ("val", "test"):
        for table, default in (
            ("span_f1_by_bias", "0.0"),
            ("seq_f1_by_threshold", "0.5"),
            ("span_f1_by_order", "head"),
            ("seq_f1_by_rule", "head"),
            ("seq_precision_by_rule", "head"),
            ("seq_recall_by_rule", "head"),
        ):
            tables = [m[split][table] for m in measured.values() if table in m[split]]
            if not tables:
                continue
            rows = summary.setdefault(f"{split}/{table}", {})
            for setting in tables[0]:
                deltas = [t[setting] - t[default] for t in tables]
                rows[setting] = paired_statistics(deltas) | {"of": len(deltas)}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoints", nargs="+", metavar="NAME=PATH", required=True)
    parser.add_argument("--data-dir", default=os.environ.get("CAUSALMINE_DATA", str(ROOT / "data")))
    parser.add_argument("--out", default=str(HERE / "results" / "decoding.json"))
    args = parser.parse_args()
    named = dict(item.split("=", 1) for item in args.checkpoints)
    out = Path(args.out)
    # partial results survive an interruption; a rerun measures only what is missing
    measured = json.loads(out.read_text())["checkpoints"] if out.is_file() else {}
    for name, path in named.items():
        if measured.get(name, {}).get("path") != path:  # new, or the name now means another file
            measured[name] = {"path": path, **measure(Path(path), args.data_dir)}
            out.write_text(json.dumps({"checkpoints": measured}, indent=1))
    summary = summarize({k: v for k, v in measured.items() if k in named})
    out.write_text(json.dumps({"checkpoints": measured, "summary": summary}, indent=1))
    for key, rows in summary.items():
        print(f"\n{key} (difference from the default; checkpoints ahead / measured)")
        for setting, r in rows.items():
            test = (
                f", t {r['t']:.2f}, one-sided p {r['p_one_sided']:.3f}"
                if r["t"] is not None
                else ""
            )
            print(
                f"  {setting:>10}: {r['mean']:+.4f} ± {r['std']:.4f} ({r['ahead']}/{r['of']}){test}"
            )


if __name__ == "__main__":
    main()
