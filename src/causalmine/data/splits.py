"""Validation split carved from training data by document, so no document is in two splits."""

from __future__ import annotations

import random

from causalmine.data.formats import Example


def split_by_document(examples: list[Example], val_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Shuffle documents with ``seed`` and move whole documents to validation until it holds
    ``val_fraction`` of the examples; a document that would overshoot the target by half is
    passed over (corpora with a few large documents). Keeps the original order in each split."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0 or not examples:
        return list(examples), []
    docs = sorted({(e.corpus, e.doc_id) for e in examples})
    random.Random(seed).shuffle(docs)
    sizes: dict[tuple[str, str], int] = {}
    for e in examples:
        sizes[(e.corpus, e.doc_id)] = sizes.get((e.corpus, e.doc_id), 0) + 1
    target = val_fraction * len(examples)
    val_docs: set[tuple[str, str]] = set()
    taken = 0
    for doc in docs:
        if taken >= target:
            break
        if taken and taken + sizes[doc] > 1.5 * target:
            continue
        val_docs.add(doc)
        taken += sizes[doc]
    train = [e for e in examples if (e.corpus, e.doc_id) not in val_docs]
    val = [e for e in examples if (e.corpus, e.doc_id) in val_docs]
    return train, val
