"""Which span heads give the relations, on validation, from trained checkpoints (no training).

    python experiments/head_usage.py NAME=PATH/checkpoints/last.ckpt ...

Per checkpoint, over the validation sentences with a gold relation (the ones the span scorers
score): how many relations each head decodes on its own (Viterbi, the required kinds of the
checkpoint), in how many sentences the heads together predict more relations than there are
gold ones (the CNC scorers then keep the first ones, in head order), and in how many the first
head gives nothing while a later head gives a relation. It shows what ``loss.span_assignment``
does to the heads' roles.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

from bench_decoding import network_outputs  # noqa: E402  (experiments/ is on sys.path)


def head_transitions(transitions, k: int):
    """Head ``k``'s share of a CRF model's transitions (cause/effect, signal); ``None`` without."""
    if transitions is None:
        return None
    return tuple(type(t)(*(part[k : k + 1] for part in t)) for t in transitions)


def head_usage(path: Path, data_dir: str) -> dict[str, object]:
    from causalmine.checkpoints import load_module
    from causalmine.recipes import checkpoint_datamodule
    from causalmine.scoring.decode import decode_batch

    module = load_module(path).eval()
    transitions = module.network.span_heads.transitions()  # with model.span_crf
    kinds = tuple(module.required_kinds)
    datamodule = checkpoint_datamodule(module, {}, data_dir)
    datamodule.setup("fit")
    per_head: list[int] = []
    scored = more_than_gold = first_head_empty = 0
    for examples, positions, _, _, ce, sig in network_outputs(module, datamodule.val_dataloader()):
        heads = ce.shape[1]
        per_head = per_head or [0] * heads
        alone = [
            decode_batch(
                ce[:, k : k + 1],
                sig[:, k : k + 1],
                positions,
                kinds,
                "viterbi",
                transitions=head_transitions(transitions, k),
            )
            for k in range(heads)
        ]
        together = decode_batch(ce, sig, positions, kinds, "viterbi", transitions=transitions)
        for i, example in enumerate(examples):
            if not example.relations:
                continue
            scored += 1
            for k in range(heads):
                per_head[k] += len(alone[k][i])
            more_than_gold += len(together[i]) > len(example.relations)
            first_head_empty += not alone[0][i] and any(alone[k][i] for k in range(1, heads))
    return {
        "span_assignment": module.loss_weights.span_assignment,
        "sentences_scored": scored,
        "relations_per_head": per_head,
        "more_predicted_than_gold": more_than_gold,
        "first_head_empty_later_head_not": first_head_empty,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+", metavar="NAME=PATH")
    parser.add_argument("--data-dir", default=os.environ.get("CAUSALMINE_DATA", str(ROOT / "data")))
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()
    results = {}
    for item in args.checkpoints:
        name, path = item.split("=", 1)
        results[name] = {"path": path, **head_usage(Path(path), args.data_dir)}
        print(name, json.dumps(results[name]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
