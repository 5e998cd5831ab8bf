"""Validation split carved from training data: by document when the corpus allows it, else by
sentence (seeded), and never an empty side."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable

from causalmine.data.accounting import DataError
from causalmine.schema import Example

# Fewer documents than this and a split by document is too coarse to hit the fraction
MIN_DOCUMENTS = 20


def _sentence_of(example: Example) -> tuple[str, str]:
    # pair examples of a sentence ("<sentence id>#<eg_id>") go wherever the sentence goes
    return example.corpus, example.id.split("#", 1)[0]


def _document_of(example: Example) -> tuple[str, str]:
    return example.corpus, example.doc_id


def _carve(
    examples: list[Example], unit_of: Callable[[Example], Hashable], val_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Shuffle units (documents or sentences) with ``seed`` and move whole units to validation
    until it holds ``val_fraction`` of the examples; a unit that would overshoot the target by
    half is passed over (a corpus with a few large documents). Keeps the original order."""
    sizes = Counter(unit_of(e) for e in examples)
    units = sorted(sizes)
    random.Random(seed).shuffle(units)
    target = val_fraction * len(examples)
    val_units: set[Hashable] = set()
    taken = 0
    for unit in units:
        if taken >= target:
            break
        if taken + sizes[unit] > max(1.5 * target, 1):
            continue
        val_units.add(unit)
        taken += sizes[unit]
    train = [e for e in examples if unit_of(e) not in val_units]
    val = [e for e in examples if unit_of(e) in val_units]
    return train, val


def split_for_validation(
    examples: list[Example], val_fraction: float, seed: int, corpus: str = ""
) -> tuple[list[Example], list[Example], str]:
    """(train, validation, how) for one corpus; ``how`` says which split was made and why.

    By document, so no document is in two splits, unless the corpus has fewer than
    ``MIN_DOCUMENTS`` documents (some corpora give every row one ``doc_id``) or whole documents
    cannot fill half the validation target: then by sentence. Raises :class:`DataError` when
    either side would still be empty.
    """
    if val_fraction == 0.0:
        return list(examples), [], "none (data.val_fraction=0)"
    documents = len({_document_of(e) for e in examples})
    target = val_fraction * len(examples)
    if documents < MIN_DOCUMENTS:
        reason = f"only {documents} documents (< {MIN_DOCUMENTS})"
    else:
        train, val = _carve(examples, _document_of, val_fraction, seed)
        if train and len(val) >= 0.5 * target:
            return train, val, f"by document ({documents} documents)"
        reason = f"whole documents fill {len(val)} of the {target:.0f} validation examples wanted"
    train, val = _carve(examples, _sentence_of, val_fraction, seed)
    if not train or not val:
        name = f"corpus {corpus!r}" if corpus else "the corpus"
        raise DataError(
            f"{name}: cannot carve a validation split from {len(examples)} training examples "
            f"(train {len(train)}, validation {len(val)}); add data or give a validation file"
        )
    return train, val, f"by sentence, seeded: {reason}"
