"""Tagged text ↔ words, relations and BIO layers.

Corpus format: a sentence with ``<ARG0>…</ARG0>`` (cause), ``<ARG1>…</ARG1>`` (effect) and
``<SIG0>…</SIG0>``, ``<SIG1>…</SIG1>``… (signals) glued to its words. Words are the untagged
text split on single spaces, exactly as the CNC scorer splits it. Spans are word-level: a tag
that sits inside a word (``p.m</ARG0>.``) covers the whole word, and such rows are flagged so
the caller can count them.

Two BIO layers per relation, because a signal may overlap a cause or an effect:
Cause/Effect ``O B-C I-C B-E I-E`` and Signal ``O B-S I-S``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

from seqeval.metrics.sequence_labeling import get_entities

from causalmine.schema import PAIR_MARKERS, Relation, Span, split_words

# Anything shaped like a tag; known tags are checked against it so that `<ARG2>` or
# `<ARG0 >` are reported instead of being left in the words.
_TAG_LIKE = re.compile(r"</?\s*[A-Za-z]+\d*\s*>")
_KNOWN_TAG = re.compile(r"<(/?)(ARG0|ARG1|SIG\d+)>")
_KIND_OF = {"ARG0": "C", "ARG1": "E"}
_SIGNAL_TAG = re.compile(r"</?SIG\d+>")


class TagError(ValueError):
    """A tagged text that cannot be turned into a relation; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ParsedText:
    """The result of parsing one tagged text."""

    words: list[str]
    relation: Relation
    tags_inside_words: bool  # True when some tag is glued inside a word, not at its edge


def strip_tags(tagged: str) -> str:
    return _KNOWN_TAG.sub("", tagged)


def parse_tagged(tagged: str, text: str | None = None) -> ParsedText:
    """Parse a tagged text into its words and one relation.

    ``text`` is the sentence the tags were put on; when given, the untagged words must equal
    it exactly. Raises :class:`TagError` naming what is wrong.
    """
    for m in _TAG_LIKE.finditer(tagged):
        if not _KNOWN_TAG.fullmatch(m.group(0)):
            raise TagError("unknown tag", f"unknown tag {m.group(0)!r} at character {m.start()}")

    plain_parts: list[str] = []
    plain_len = 0
    last = 0
    open_at: dict[str, tuple[int, int]] = {}
    char_spans: list[tuple[int, int, str, int, int]] = []  # begin, end, tag, open rank, close rank
    for rank, m in enumerate(_KNOWN_TAG.finditer(tagged)):
        plain_parts.append(tagged[last : m.start()])
        plain_len += m.start() - last
        last = m.end()
        closing, name = m.group(1) == "/", m.group(2)
        if not closing:
            if name in open_at:
                raise TagError(
                    "nested tag", f"<{name}> opened again before </{name}> (nested same-kind tags)"
                )
            open_at[name] = (plain_len, rank)
        else:
            if name not in open_at:
                raise TagError("unopened tag", f"</{name}> closes a span that was never opened")
            start, open_rank = open_at.pop(name)
            if start == plain_len:
                raise TagError("empty span", f"<{name}></{name}> encloses no text")
            char_spans.append((start, plain_len, name, open_rank, rank))
    plain_parts.append(tagged[last:])
    if open_at:
        raise TagError("unclosed tag", f"<{next(iter(open_at))}> is never closed")
    plain = "".join(plain_parts)
    if text is not None and plain != text:
        raise TagError("words differ from text", "the untagged words differ from the sentence text")

    words = split_words(plain)
    starts = []
    pos = 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    inside = False
    spans = []
    shares: dict[tuple[Span, int], float] = {}  # fraction of a word's characters a span covers
    for begin, end, name, open_rank, close_rank in char_spans:
        covered = [
            i
            for i, (s, w) in enumerate(zip(starts, words, strict=True))
            if w and min(end, s + len(w)) > max(begin, s)
        ]
        if not covered:
            raise TagError("empty span", f"<{name}> encloses only spaces")
        first, last_word = covered[0], covered[-1]
        inside = (
            inside or begin != starts[first] or end != starts[last_word] + len(words[last_word])
        )
        span = Span(first, last_word + 1, _KIND_OF.get(name, "S"), name, open_rank, close_rank)
        for i in (first, last_word):
            shares[(span, i)] = (min(end, starts[i] + len(words[i])) - max(begin, starts[i])) / len(
                words[i]
            )
        spans.append(span)
    spans = _resolve_shared_words(spans, shares)
    return ParsedText(words=words, relation=Relation.from_spans(spans), tags_inside_words=inside)


def _resolve_shared_words(spans: list[Span], shares: dict[tuple[Span, int], float]) -> list[Span]:
    """Spans of one layer may share a word only when tags sit inside it (``Bijapur—</ARG0><ARG1>killing``):
    the word goes to the span covering more of its characters. Any other overlap is an error,
    since a layer is one BIO sequence."""
    result = list(spans)
    for layer in ("CE", "S"):
        ordered = sorted((s for s in result if s.kind in layer), key=lambda s: (s.start, s.end))
        for a, b in itertools.pairwise(ordered):
            if b.start >= a.end:
                continue
            word = b.start
            share_a, share_b = shares.get((a, word), 1.0), shares.get((b, word), 1.0)
            if (
                a.end - 1 != word
                or (share_a == 1.0 and share_b == 1.0)
                or (b.end - b.start == 1 and share_b < share_a)
            ):
                raise TagError(
                    "overlapping spans",
                    f"{a.tag} and {b.tag} overlap on words {b.start}-{min(a.end, b.end)} (one BIO layer cannot hold both)",
                )
            if share_a >= share_b and b.end - b.start > 1:
                replaced = (b, replace(b, start=b.start + 1))
            elif a.end - a.start > 1:
                replaced = (a, replace(a, end=a.end - 1))
            else:
                raise TagError(
                    "overlapping spans", f"{a.tag} and {b.tag} share their only word {word}"
                )
            result = [replaced[1] if s is replaced[0] else s for s in result]
    return result


def bio_to_spans(tags: list[str]) -> list[Span]:
    """Spans of a BIO sequence with seqeval's (lenient) semantics: an ``I-`` after ``O`` starts a span."""
    if all(tag == "O" for tag in tags):  # most heads of most sentences: skip seqeval's parse
        return []
    return [Span(start, end + 1, kind) for kind, start, end in get_entities(list(tags))]


def relation_from_bio(ce_tags: list[str], sig_tags: list[str]) -> Relation:
    return Relation.from_spans(bio_to_spans(ce_tags) + bio_to_spans(sig_tags))


_OPEN_NAME = {"C": "ARG0", "E": "ARG1"}


def render_tagged(words: list[str], relation: Relation) -> str:
    """Write a relation back in the corpus format; the untagged words equal ``words``.

    Parsed relations are written exactly as they were read (tag names, tag order where several
    meet at one word). New ones number signals by position, and where tags meet the outer
    span opens first and closes last (``<ARG0><SIG0>to</SIG0> hold …</ARG0>``).
    """
    signal_number = {s: i for i, s in enumerate(sorted(relation.signals))}

    def name(span: Span) -> str:
        return span.tag or _OPEN_NAME.get(span.kind) or f"SIG{signal_number[span]}"

    def open_key(span: Span) -> tuple:
        return (span.open_rank,) if span.open_rank is not None else (-span.end, span.kind == "S")

    def close_key(span: Span) -> tuple:
        return (
            (span.close_rank,) if span.close_rank is not None else (-span.start, span.kind != "S")
        )

    opens: dict[int, list[Span]] = {}
    closes: dict[int, list[Span]] = {}
    for s in relation.spans:
        opens.setdefault(s.start, []).append(s)
        closes.setdefault(s.end - 1, []).append(s)
    out = []
    for i, word in enumerate(words):
        prefix = "".join(f"<{name(s)}>" for s in sorted(opens.get(i, []), key=open_key))
        suffix = "".join(f"</{name(s)}>" for s in sorted(closes.get(i, []), key=close_key))
        out.append(prefix + word + suffix)
    return " ".join(out)


def pair_input(text_w_pairs: str) -> str:
    """The model input of the pair task: the sentence with its candidate pair marked.

    Signal tags are removed (corpora annotate signals on causal pairs only, so they would give
    the label away), and each marker is set off by single spaces so that it tokenizes the same
    way wherever it sits. An argument may be discontiguous (several ``<ARG0>…</ARG0>``).
    Raises :class:`TagError` unless both arguments are marked, with balanced markers.
    """
    text = _SIGNAL_TAG.sub("", text_w_pairs)
    for name in ("ARG0", "ARG1"):
        sequence = re.findall(rf"</?{name}>", text)
        expected = [f"<{name}>", f"</{name}>"] * (len(sequence) // 2)
        if not sequence or sequence != expected:
            raise TagError(
                "bad pair markers", f"<{name}>…</{name}> missing, unbalanced or out of order"
            )
    for marker in PAIR_MARKERS:
        text = text.replace(marker, f" {marker} ")
    return " ".join(text.split())


def has_pair_markers(text: str) -> bool:
    return all(marker in text for marker in PAIR_MARKERS)
