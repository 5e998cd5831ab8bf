"""Leakage guard: sentences that appear in both training and test data."""

from __future__ import annotations

import re

from causalmine.data.tags import strip_tags
from causalmine.schema import Example

_SPACE = re.compile(r"\s+")


def normalised(text: str) -> str:
    """Lower-cased, tag-free, whitespace-collapsed text: the key that detects a repeated sentence."""
    return _SPACE.sub(" ", strip_tags(text)).strip().lower()


def leaked(train: list[Example], test: list[Example]) -> list[Example]:
    """Training examples whose sentence (normalised) also occurs in the test data."""
    test_texts = {normalised(e.text) for e in test}
    return [e for e in train if normalised(e.text) in test_texts]
