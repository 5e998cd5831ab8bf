"""Prediction on new text: causal probability and relations with their spans, for any length.

A sentence longer than the backbone's window is cut into overlapping windows (the tokenizer's
own overflow with a stride); every word takes its tags from the window where it sits furthest
from an edge, and the sentence is causal if any window finds it so (the maximum probability).
Nothing is truncated and every input line gives one prediction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from causalmine.data.collate import CausalCollator
from causalmine.data.encoding import first_subword_positions
from causalmine.data.tags import TagError, has_pair_markers, pair_input, render_tagged, strip_tags
from causalmine.model.network import CausalNetwork
from causalmine.precision import autocast, predict_precision, quantized_int8
from causalmine.schema import Relation, split_words
from causalmine.scoring.decode import decode_sentences, head_outputs
from causalmine.settings import (
    DEFAULT_DECODE_METHOD,
    DEFAULT_RELATION_ORDER,
    DEFAULT_REQUIRED_KINDS,
    DecodeConfig,
    require_viterbi_for_crf,
)

CHUNK_BATCHES = 32  # texts are read in chunks of this many batches, sorted by length within a chunk


@dataclass
class SentencePrediction:
    """What the model says about one input line."""

    text: str
    words: list[str]
    causal_probability: float | None  # None for an empty line
    label: int | None
    relations: list[Relation] = field(default_factory=list)
    windows: int = 0
    pair_probability: float | None = None  # only for a line with a marked pair <ARG0>…</ARG1>

    def tagged_texts(self) -> list[str]:
        return [render_tagged(self.words, r) for r in self.relations]

    def to_json(self) -> dict[str, Any]:
        """One JSONL record: probability, label, and each relation's spans as text and word offsets."""

        def spans(relation: Relation, kind: str) -> list[dict[str, Any]]:
            return [
                {"text": s.words(self.words), "start": s.start, "end": s.end}
                for s in relation.of_kind(kind)
            ]

        return {
            "text": self.text,
            "causal_probability": self.causal_probability,
            "label": self.label,
            "relations": [
                {
                    "cause": spans(r, "C"),
                    "effect": spans(r, "E"),
                    "signal": spans(r, "S"),
                    "tagged": render_tagged(self.words, r),
                }
                for r in self.relations
            ],
            **(
                {"pair_probability": self.pair_probability}
                if self.pair_probability is not None
                else {}
            ),
            **({"note": "empty input"} if self.causal_probability is None else {}),
        }


@dataclass
class _Window:
    sentence: int
    input_ids: list[int]
    word_ids: list[int | None]
    pair: bool = False  # the marked-pair input of a line, read by the pair head only


class Predictor:
    """Batched prediction with a trained :class:`CausalNetwork` and its tokenizer."""

    def __init__(
        self,
        network: CausalNetwork,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int = 256,
        stride: int = 64,
        batch_size: int = 32,
        threshold: float = 0.5,
        required_kinds: tuple[str, ...] = DEFAULT_REQUIRED_KINDS,
        device: str | torch.device = "cpu",
        decode_method: str = DEFAULT_DECODE_METHOD,
        precision: str = "fp32",
        force_relation: bool = False,
        relation_order: str = DEFAULT_RELATION_ORDER,
    ) -> None:
        """``force_relation``: a sentence found causal with no relation from the span heads gets
        the first head's best relation; ``relation_order``: a sentence's relations by head or
        most confident first (see :func:`causalmine.scoring.decode.decode_sentences`).
        ``precision``: ``fp32``, ``bf16`` (autocast), ``int8`` (a dynamically quantized copy
        of the network, CPU only) or ``auto`` (bf16 where the device runs it natively)."""
        if not 0 <= stride < max_length // 2:
            raise ValueError(
                f"stride must be in [0, max_length/2), got {stride} for max_length {max_length}"
            )
        self.device = torch.device(device)
        self.precision = predict_precision(precision, self.device)
        network = network.to(self.device).eval()
        self.network = quantized_int8(network) if self.precision == "int8" else network
        # a model with CRFs (model.span_crf) decodes under their learned transitions
        self.transitions = network.span_heads.transitions()
        require_viterbi_for_crf(self.transitions is not None, decode_method)
        self.tokenizer = tokenizer
        self.collator = CausalCollator(tokenizer)  # pads as training batches are padded
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size
        self.threshold = threshold
        self.required_kinds = required_kinds
        DecodeConfig(list(required_kinds), decode_method, force_relation, relation_order)
        self.decode_method = decode_method
        self.force_relation = force_relation
        self.relation_order = relation_order

    def _windows(self, index: int, words: list[str]) -> list[_Window]:
        encoding = self.tokenizer(
            words,
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
        )
        return [
            _Window(index, encoding["input_ids"][i], encoding.word_ids(i))
            for i in range(len(encoding["input_ids"]))
        ]

    def _pair_window(self, index: int, text: str) -> _Window | None:
        try:
            marked = pair_input(text)
        except TagError:
            return None
        encoding = self.tokenizer(marked, truncation=True, max_length=self.max_length)
        return _Window(index, encoding["input_ids"], [], pair=True)

    @torch.inference_mode()
    def _run(self, windows: list[_Window]) -> list[tuple[float, float, torch.Tensor, torch.Tensor]]:
        """Causal and pair probabilities and, for each window, per-head label ids ``[K, tokens]``
        (``argmax``) or logits ``[K, tokens, labels]`` (``viterbi``).

        Windows are batched in order of length (little padding) and returned in input order.
        """
        results: list = [None] * len(windows)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].input_ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self.collator.pad_inputs([windows[i].input_ids for i in chunk])
            with autocast(self.precision, self.device):
                out = self.network(
                    batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
                )
            probs = out.seq_logits.float().softmax(-1)[:, 1].cpu()
            pair_probs = out.pair_logits.float().softmax(-1)[:, 1].cpu()
            ce, sig = head_outputs(out.cause_effect_logits, out.signal_logits, self.decode_method)
            for row, i in enumerate(chunk):
                results[i] = (float(probs[row]), float(pair_probs[row]), ce[row], sig[row])
        return results

    def predict(self, texts: Iterable[str]) -> Iterator[SentencePrediction]:
        """Predict every text (in order, one result each), batching windows across texts."""
        buffer: list[str] = []
        for text in texts:
            buffer.append(text)
            if len(buffer) == self.batch_size * CHUNK_BATCHES:
                yield from self._predict_batch(buffer)
                buffer = []
        if buffer:
            yield from self._predict_batch(buffer)

    def _predict_batch(self, texts: list[str]) -> list[SentencePrediction]:
        # a line with a marked pair is also read plain (tags removed) for the other tasks
        words_of = [split_words(strip_tags(t) if has_pair_markers(t) else t) for t in texts]
        windows = [
            w
            for i, words in enumerate(words_of)
            if texts[i].strip()
            for w in self._windows(i, words)
        ]
        windows += [
            w for i, t in enumerate(texts) if has_pair_markers(t) and (w := self._pair_window(i, t))
        ]
        per_sentence: dict[int, list] = {}
        for window, output in zip(windows, self._run(windows) if windows else [], strict=True):
            per_sentence.setdefault(window.sentence, []).append((window, output))
        stitched: dict[int, tuple[float, torch.Tensor, torch.Tensor, list[int]]] = {}
        for i, words in enumerate(words_of):
            parts = [
                (w, (p, ce, sig)) for w, (p, _, ce, sig) in per_sentence.get(i, []) if not w.pair
            ]
            if parts:
                stitched[i] = (max(p for _, (p, _, _) in parts), *_stitch(parts, len(words)))
        decoded = dict(
            zip(
                stitched,
                decode_sentences(
                    [ce for _, ce, _, _ in stitched.values()],
                    [sig for _, _, sig, _ in stitched.values()],
                    [positions for _, _, _, positions in stitched.values()],
                    self.required_kinds,
                    self.decode_method,
                    [p >= self.threshold for p, _, _, _ in stitched.values()]
                    if self.force_relation
                    else None,
                    self.transitions,
                    self.relation_order,
                ),
                strict=True,
            )
        )
        predictions = []
        for i, (text, words) in enumerate(zip(texts, words_of, strict=True)):
            pair = next((pp for w, (_, pp, _, _) in per_sentence.get(i, []) if w.pair), None)
            if i not in stitched:
                predictions.append(
                    SentencePrediction(text, words, None, None, pair_probability=pair)
                )
                continue
            probability = stitched[i][0]
            count = sum(not w.pair for w, _ in per_sentence[i])
            label = int(probability >= self.threshold)
            predictions.append(
                SentencePrediction(text, words, probability, label, decoded[i], count, pair)
            )
        return predictions


def _stitch(parts: list, num_words: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Word-level label ids (or logits) from overlapping windows, laid out as one pseudo-window.

    Returns ``[K, num_words]`` id matrices (``[K, num_words, labels]`` logits) whose column w
    holds word w's labels, with word w's "position" being w itself, so the usual decoder applies.
    """
    ce_first, sig_first = parts[0][1][1], parts[0][1][2]
    ce = ce_first.new_zeros((ce_first.shape[0], num_words, *ce_first.shape[2:]))
    sig = sig_first.new_zeros((sig_first.shape[0], num_words, *sig_first.shape[2:]))
    best_margin = [-1] * num_words
    found = [False] * num_words
    for window, (_, ce_ids, sig_ids) in parts:
        positions = {
            w: t
            for w, t in enumerate(first_subword_positions(window.word_ids, num_words))
            if t >= 0
        }
        if not positions:
            continue
        first, last = min(positions), max(positions)
        for w, t in positions.items():
            margin = min(w - first, last - w)
            if margin > best_margin[w]:
                best_margin[w] = margin
                ce[:, w] = ce_ids[:, t]
                sig[:, w] = sig_ids[:, t]
                found[w] = True
    return ce, sig, [w if found[w] else -1 for w in range(num_words)]
