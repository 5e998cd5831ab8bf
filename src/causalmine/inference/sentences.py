"""Documents into sentences and sentences into words, with character offsets into the document.

The splitter is syntok's segmenter, chosen by measurement (``experiments/bench_splitters.py``,
RESULTS.md §9): the best sentence-boundary F1 on CNC news text of the splitters the package
registry has, at ~5,000 sentences/s on one core, more than ten times the model's speed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import syntok.segmenter

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Sentence:
    """One sentence of a document: its text, character span and its words' character spans.

    ``text`` is the words joined by single spaces (how the model was trained to read them);
    ``word_spans[i]`` is where word ``i`` sits in the document.
    """

    start: int
    end: int
    text: str
    word_spans: tuple[tuple[int, int], ...]

    def char_span(self, first_word: int, end_word: int) -> tuple[int, int]:
        """Document character offsets ``[start, end)`` of words ``[first_word, end_word)``."""
        return self.word_spans[first_word][0], self.word_spans[end_word - 1][1]


def sentence_spans(document: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of ``document``, in order."""
    spans = []
    for paragraph in syntok.segmenter.analyze(document):
        for tokens in paragraph:
            if tokens:
                spans.append((tokens[0].offset, tokens[-1].offset + len(tokens[-1].value)))
    return spans


def split_sentences(document: str) -> list[Sentence]:
    """The sentences of ``document`` with word-level character offsets (words: runs of non-space)."""
    sentences = []
    for start, end in sentence_spans(document):
        words = [m.span() for m in _WORD.finditer(document, start, end)]
        if words:
            text = " ".join(document[s:e] for s, e in words)
            sentences.append(Sentence(words[0][0], words[-1][1], text, tuple(words)))
    return sentences
