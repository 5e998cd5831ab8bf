"""Decoding: first-subword tags → well-formed spans → relations → tagged text."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from causalmine.data.tags import parse_tagged, render_tagged, strip_tags
from causalmine.schema import CE_LABEL_TO_ID as CE
from causalmine.schema import CE_LABELS, SIG_LABELS, Span
from causalmine.schema import SIG_LABEL_TO_ID as SIG
from causalmine.scoring.decode import (
    bio_viterbi,
    decode_batch,
    decode_relations,
    decode_sentences,
    forced_ce_tags,
    head_tags,
    sentence_head_tags,
    word_tags,
)

from .conftest import compose_config

LABELS = ("O", "B-C", "I-C", "B-E", "I-E")


def test_word_tags_read_first_subwords_and_fill_gaps():
    token_ids = [0, CE["B-C"], CE["I-C"], CE["I-C"], 0, CE["B-E"]]
    # word 1 has no subword (empty word) between two cause words; word 4 is cut off
    assert word_tags(token_ids, [1, -1, 3, 5, -1], LABELS) == ["B-C", "I-C", "I-C", "B-E", "O"]
    assert word_tags(token_ids, [1, -1, 5], LABELS) == ["B-C", "O", "B-E"]


def _ids(rows, labels):
    return torch.tensor([[labels[t] for t in row] for row in rows])


def test_decode_requires_cause_and_effect_and_drops_duplicates():
    positions = list(range(5))
    ce = _ids(
        [
            ["B-C", "I-C", "O", "B-E", "I-E"],
            ["B-C", "I-C", "O", "B-E", "I-E"],  # duplicate of head 1
            ["B-C", "O", "O", "O", "O"],  # no effect: not a relation
        ],
        CE,
    )
    sig = _ids([["O", "O", "B-S", "O", "O"], ["O"] * 5, ["O"] * 5], SIG)
    relations = decode_relations(ce, sig, positions)
    assert len(relations) == 1
    assert relations[0].signals == (Span(2, 3, "S"),)
    assert len(decode_relations(ce, sig, positions, required_kinds=("C",))) == 2


def test_i_after_o_starts_a_span():
    ce = _ids([["O", "I-C", "I-C", "O", "I-E"]], CE)
    (relation,) = decode_relations(ce, _ids([["O"] * 5], SIG), list(range(5)))
    assert relation.causes == (Span(1, 3, "C"),) and relation.effects == (Span(4, 5, "E"),)


def test_rendered_prediction_keeps_the_words():
    words = ["Prices", "rose", "because", "supply", "fell", "sharply", "."]
    ce = _ids([["B-E", "I-E", "O", "B-C", "I-C", "I-C", "O"]], CE)
    sig = _ids([["O", "O", "B-S", "O", "O", "O", "O"]], SIG)
    (relation,) = decode_relations(ce, sig, list(range(7)))
    tagged = render_tagged(words, relation)
    assert (
        tagged == "<ARG1>Prices rose</ARG1> <SIG0>because</SIG0> <ARG0>supply fell sharply</ARG0> ."
    )
    assert strip_tags(tagged) == " ".join(words)
    assert parse_tagged(tagged).relation == relation


# --- constrained (BIO-valid) Viterbi decoding --------------------------------------------------


def is_valid_bio(tags: list[str]) -> bool:
    """An ``I-X`` only after ``B-X`` or ``I-X``."""
    before = "O"
    for tag in tags:
        if tag.startswith("I-") and before[2:] != tag[2:]:
            return False
        before = tag
    return True


def path_score(log_probs: torch.Tensor, tags: list[str], labels) -> float:
    return sum(float(log_probs[w, labels.index(t)]) for w, t in enumerate(tags))


@st.composite
def score_matrices(draw, max_words: int = 8):
    """A label set (Cause/Effect or Signal) and a ``[words, labels]`` matrix of scores."""
    labels = draw(st.sampled_from([CE_LABELS, SIG_LABELS]))
    words = draw(st.integers(1, max_words))
    values = draw(
        st.lists(
            st.floats(-30, 5, allow_nan=False, width=32),
            min_size=words * len(labels),
            max_size=words * len(labels),
        )
    )
    return labels, torch.tensor(values).reshape(words, len(labels))


@given(score_matrices())
@settings(max_examples=300, deadline=None)
def test_viterbi_output_is_always_valid_bio(case):
    labels, scores = case
    tags = bio_viterbi(scores, labels)
    assert len(tags) == scores.shape[0] and is_valid_bio(tags)
    # gap filling of words without a subword keeps it valid
    positions = [-1, *range(scores.shape[0]), -1]
    positions.insert(len(positions) // 2, -1)
    (filled,) = head_tags(scores[None], positions, labels, "viterbi")
    scored = [t for p, t in zip(positions, filled, strict=True) if p >= 0]
    assert is_valid_bio(filled) and scored == bio_viterbi(scores.log_softmax(-1), labels)


@given(st.lists(st.integers(0, 9), min_size=1, max_size=6), st.integers(0, 2**31))
@settings(max_examples=150, deadline=None)
def test_viterbi_of_many_sentences_at_once_equals_one_at_a_time(lengths, seed):
    """Padding shorter sentences to the longest changes no path (the batched pass is only faster)."""
    generator = torch.Generator().manual_seed(seed)
    scores = [torch.randn(3, n + 1, len(LABELS), generator=generator) * 3 for n in lengths]
    # token 0 is [CLS]-like; word w sits at token w + 1, and one word (if any) has no subword
    positions = [[w + 1 if w != n // 2 else -1 for w in range(n)] for n in lengths]
    batched = sentence_head_tags(scores, positions, LABELS, "viterbi")
    for sentence, s, p in zip(batched, scores, positions, strict=True):
        scored = [q for q in p if q >= 0]
        alone = [bio_viterbi(row[scored].log_softmax(-1), LABELS) for row in s]
        assert [[t for q, t in zip(p, tags, strict=True) if q >= 0] for tags in sentence] == alone
        assert sentence == head_tags(s, p, LABELS, "viterbi")


@given(score_matrices(max_words=5))
@settings(max_examples=150, deadline=None)
def test_viterbi_is_exactly_optimal(case):
    labels, scores = case
    log_probs = scores.log_softmax(-1)
    valid = (
        list(tags)
        for tags in itertools.product(labels, repeat=scores.shape[0])
        if is_valid_bio(list(tags))
    )
    best = max(path_score(log_probs, tags, labels) for tags in valid)
    tags = bio_viterbi(log_probs, labels)
    assert path_score(log_probs, tags, labels) == pytest.approx(best, abs=1e-4)
    # logits and log-probabilities give the same path (a per-word shift changes no ranking)
    assert path_score(log_probs, bio_viterbi(scores, labels), labels) == pytest.approx(
        best, abs=1e-4
    )


@given(st.integers(1, 5), st.integers(0, 2**31), st.sampled_from([("C", "E"), ("C",), ("E",)]))
@settings(max_examples=150, deadline=None)
def test_forced_tags_are_the_best_valid_path_holding_every_kind(words, seed, kinds):
    scores = torch.randn(2, words, len(LABELS), generator=torch.Generator().manual_seed(seed)) * 3
    (tags,) = forced_ce_tags([scores], [list(range(words))], kinds)
    log_probs = scores[0].log_softmax(-1)  # the first head only
    holding = [
        list(t)
        for t in itertools.product(LABELS, repeat=words)
        if is_valid_bio(list(t)) and all(f"B-{k}" in t for k in kinds)
    ]
    if not holding:  # one word cannot hold a cause and an effect
        assert tags is None
        return
    best = max(path_score(log_probs, t, LABELS) for t in holding)
    assert tags in holding and path_score(log_probs, tags, LABELS) == pytest.approx(best, abs=1e-4)


def test_a_causal_sentence_without_a_relation_gets_its_best_one():
    # head 0 puts the effect at words 3-4 only weakly (O is likelier), so plain decoding finds
    # a cause and no effect: no relation. Forced, it takes the best path with both (word 4 stays O).
    o, bc, ic, be, ie = (torch.eye(5)[i] for i in range(5))
    ce = torch.stack([o * 3, bc * 3, ic * 3, o * 2 + be, o * 2 + ie]) * 2
    ce = torch.stack([ce, (o * 5).expand(5, 5)])  # head 1: nothing
    sig = (torch.eye(3)[0] * 5).expand(2, 5, 3)
    positions = [list(range(5))]
    assert decode_sentences([ce], [sig], positions, method="viterbi") == [[]]
    assert decode_sentences([ce], [sig], positions, method="viterbi", causal=[False]) == [[]]
    ((relation,),) = decode_sentences([ce], [sig], positions, method="viterbi", causal=[True])
    assert relation.causes == (Span(1, 3, "C"),) and relation.effects == (Span(3, 4, "E"),)


_SIG_ON_1 = ["O", "B-S", "O", "O", "O"]
_SIG_ON_3 = ["O", "O", "O", "B-S", "O"]


def test_a_forced_relation_keeps_head_1s_signal_whatever_the_order():
    # head 1 has a cause and only a weak effect (no relation unless forced); head 2 a sure lone
    # cause (no relation either), more confident than head 1: forcing takes head 1's path and
    # its own signal (word 1), not the most confident head's (word 3)
    o, bc, ic, be, ie = (torch.eye(5)[i] for i in range(5))
    head_1 = torch.stack([o * 3, bc * 3, ic * 3, o * 2 + be, o * 2 + ie]) * 2
    head_2 = torch.stack([bc * 9, ic * 9, ic * 9, o * 3, o * 3])
    sig = torch.stack([torch.eye(3)[[SIG[t] for t in tags]] * 5 for tags in (_SIG_ON_1, _SIG_ON_3)])
    positions = [list(range(5))]
    for order in ("head", "confidence"):
        ((relation,),) = decode_sentences(
            [torch.stack([head_1, head_2])],
            [sig],
            positions,
            method="viterbi",
            causal=[True],
            relation_order=order,
        )
        assert relation.causes == (Span(1, 3, "C"),) and relation.effects == (Span(3, 4, "E"),)
        assert relation.signals == (Span(1, 2, "S"),)


def test_confidence_order_puts_the_likelier_relation_first():
    # head 0 finds a relation the network barely prefers to nothing; head 1 a sure one. The CNC
    # scorers keep the first relation of a sentence with one gold relation: confidence keeps head 1's
    o, bc, ic, be = (torch.eye(5)[i] for i in range(4))
    weak = torch.stack([bc * 2 + o, o * 3, o * 3, be * 2 + o, o * 3])
    sure = torch.stack([o * 3, bc * 6, ic * 6, o * 3, be * 6])
    ce = torch.stack([weak, sure])
    signal_at = [torch.eye(3)[[SIG[t] for t in tags]] * 5 for tags in (_SIG_ON_1, _SIG_ON_3)]
    sig = torch.stack(signal_at)  # each head its own signal word: 1, then 3
    positions = [list(range(5))]
    by_head = decode_sentences([ce], [sig], positions, method="viterbi")[0]
    confident = decode_sentences(
        [ce], [sig], positions, method="viterbi", relation_order="confidence"
    )[0]
    assert [r.causes for r in by_head] == [(Span(0, 1, "C"),), (Span(1, 3, "C"),)]
    assert [r.signals for r in by_head] == [(Span(1, 2, "S"),), (Span(3, 4, "S"),)]
    assert confident == by_head[::-1]  # each relation keeps its own head's signal
    with pytest.raises(ValueError, match=r"relation_order=confidence needs decode\.method=viterbi"):
        decode_sentences([ce.argmax(-1)], [sig.argmax(-1)], positions, relation_order="confidence")
    with pytest.raises(ValueError, match="relation order must be one of"):
        decode_sentences([ce], [sig], positions, method="viterbi", relation_order="score")


@given(st.lists(st.integers(0, 6), min_size=1, max_size=4), st.integers(0, 2**31), st.booleans())
@settings(max_examples=100, deadline=None)
def test_confidence_is_the_best_paths_lead_over_tagging_nothing(lengths, seed, crf):
    # per head: Viterbi's path score minus the all-O path's, under the same (learned) transitions
    from causalmine.schema import TagTransitions
    from causalmine.scoring.decode import _viterbi_head_tags

    generator = torch.Generator().manual_seed(seed)
    outputs = [torch.randn(2, n, len(LABELS), generator=generator) * 3 for n in lengths]
    positions = [list(range(n)) for n in lengths]
    learned = None
    if crf:
        learned = TagTransitions(
            *(torch.randn(2, *shape, generator=generator) for shape in ((5,), (5, 5), (5,)))
        )
    tags, confidences = _viterbi_head_tags(
        outputs, positions, LABELS, learned, with_confidences=True
    )
    for o, n, sentence_tags, sentence_confidence in zip(
        outputs, lengths, tags, confidences, strict=True
    ):
        for k in range(2):
            log_probs = o[k].log_softmax(-1)

            def score(path, k=k, log_probs=log_probs):
                total = path_score(log_probs, path, LABELS)
                if learned is not None and path:
                    ids = [LABELS.index(t) for t in path]
                    total += float(learned.start[k, ids[0]] + learned.end[k, ids[-1]])
                    total += sum(float(learned.step[k, a, b]) for a, b in itertools.pairwise(ids))
                return total

            lead = score(sentence_tags[k]) - score(["O"] * n)
            assert sentence_confidence[k] == pytest.approx(lead, abs=1e-3)
            assert sentence_confidence[k] >= -1e-4


@given(
    st.sampled_from([CE_LABELS, SIG_LABELS]).flatmap(
        lambda labels: st.tuples(
            st.just(labels),
            st.lists(st.sampled_from(labels), min_size=1, max_size=8),
            st.integers(0, 2**31),
        )
    )
)
@settings(max_examples=200, deadline=None)
def test_viterbi_keeps_a_valid_argmax(case):
    labels, drawn, seed = case
    tags: list[str] = []
    for tag in drawn:  # repair into valid BIO: an orphan I-X becomes B-X
        before = tags[-1] if tags else "O"
        tags.append(f"B-{tag[2:]}" if tag.startswith("I-") and before[2:] != tag[2:] else tag)
    assert is_valid_bio(tags)
    scores = torch.rand(len(tags), len(labels), generator=torch.Generator().manual_seed(seed))
    for w, t in enumerate(tags):  # the (unique) argmax of each word is its tag
        scores[w, labels.index(t)] = scores[w].max() + 0.5
    log_probs = scores.log_softmax(-1)
    assert [labels[i] for i in log_probs.argmax(-1).tolist()] == tags
    assert bio_viterbi(log_probs, labels) == tags


@pytest.mark.parametrize(
    ("first_word", "expected", "cause"),
    [
        # B-C at word 0 is nearly as likely as O: the whole span wins (-2.07 vs -3.73 for O B-C I-C)
        ([0.40, 0.35, 0.05, 0.10, 0.10], ["B-C", "I-C", "I-C"], Span(0, 3, "C")),
        # O is far likelier at word 0: the span starts at word 1 (-2.92 vs -4.93 for B-C I-C I-C)
        ([0.90, 0.02, 0.02, 0.03, 0.03], ["O", "B-C", "I-C"], Span(1, 3, "C")),
    ],
)
def test_viterbi_repairs_an_invalid_argmax(first_word, expected, cause):
    later = [0.20, 0.10, 0.60, 0.05, 0.05]  # O B-C I-C B-E I-E
    log_probs = torch.tensor([first_word, later, later]).log()
    assert [LABELS[i] for i in log_probs.argmax(-1).tolist()] == ["O", "I-C", "I-C"]
    assert bio_viterbi(log_probs, LABELS) == expected
    # through the decoder, from logits [batch, K, tokens, labels] with a [CLS]-like token 0
    ce = torch.cat([torch.zeros(1, 5), log_probs + 7.0])[None, None]
    sig = torch.tensor([[9.0, 0.0, 0.0]]).expand(4, 3)[None, None]
    (argmax,), (viterbi,) = (
        decode_batch(ce, sig, [[1, 2, 3]], required_kinds=("C",), method=m)
        for m in ("argmax", "viterbi")
    )
    assert argmax[0].causes == (Span(1, 3, "C"),)  # the lenient reading of O I-C I-C
    assert viterbi[0].causes == (cause,)


def test_argmax_decoding_of_a_batch_is_unchanged():
    """``method="argmax"`` (the default) decodes as before ``decode.method`` existed."""

    def logits(rows, labels):  # the tag scores 2.0, the other labels 0.0, 0.1, 0.2…
        out = torch.arange(len(labels)).mul(0.1).expand(len(rows), len(rows[0]), -1).clone()
        for k, row in enumerate(rows):
            for t, tag in enumerate(row):
                out[k, t, labels.index(tag)] = 2.0
        return out

    ce = torch.stack(
        [
            logits(
                [
                    ["O", "I-C", "I-C", "O", "I-E", "I-E", "O"],  # I after O starts a span
                    ["O", "B-C", "I-C", "I-C", "O", "B-E", "I-E"],
                ],
                LABELS,
            ),
            logits([["O", "B-E", "I-E", "B-C", "I-C", "O", "O"], ["O"] * 7], LABELS),
        ]
    )
    sig = torch.stack(
        [
            logits([["O", "O", "O", "B-S", "O", "O", "O"], ["O"] * 7], SIG_LABELS),
            logits([["O", "I-S", "O", "O", "O", "O", "O"], ["O"] * 7], SIG_LABELS),
        ]
    )
    # sentence 0: word 2 has no subword (empty); sentence 1: its last word was cut off
    positions = [[1, 2, -1, 3, 4, 5, 6], [1, 2, 3, 4, -1]]
    default = decode_batch(ce, sig, positions)
    assert default == decode_batch(ce, sig, positions, method="argmax")
    assert [[(r.causes, r.effects, r.signals) for r in rs] for rs in default] == [
        [
            ((Span(0, 2, "C"),), (Span(4, 6, "E"),), (Span(3, 4, "S"),)),
            ((Span(0, 4, "C"),), (Span(5, 7, "E"),), ()),  # the gap is inside the cause
        ],
        [((Span(2, 4, "C"),), (Span(0, 2, "E"),), (Span(0, 1, "S"),))],
    ]
    # viterbi agrees where the argmax tags are valid BIO
    viterbi = decode_batch(ce, sig, positions, method="viterbi")
    assert default[0][1] in viterbi[0] and viterbi[1] == default[1]


def test_unknown_decode_method_fails_clearly():
    with pytest.raises(ValueError, match="decode method must be one of"):
        decode_batch(torch.zeros(1, 1, 2, 5), torch.zeros(1, 1, 2, 3), [[0, 1]], method="beam")
    with pytest.raises(ValueError, match="viterbi decoding needs scores"):
        decode_relations(
            torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2), [0, 1], (), "viterbi"
        )


def test_bad_decode_method_fails_config_validation(train_config, tmp_path):
    from causalmine.config import ConfigError
    from causalmine.recipes import evaluate, train

    with pytest.raises(
        ConfigError, match=r"decode\.method must be one of argmax, viterbi, got 'beam'"
    ):
        train(train_config("decode.method=beam"))
    eval_cfg = compose_config(
        "eval", ["ckpt_path=missing.ckpt", "decode.method=Viterbi"], tmp_path / "eval"
    )
    with pytest.raises(ConfigError, match=r"decode\.method must be one of"):
        evaluate(eval_cfg)
    with pytest.raises(ConfigError, match=r"force_relation=true needs decode\.method=viterbi"):
        train(train_config("decode.method=argmax", "decode.force_relation=true"))
    with pytest.raises(
        ConfigError, match=r"relation_order=confidence needs decode\.method=viterbi"
    ):
        train(train_config("decode.method=argmax", "decode.relation_order=confidence"))
    with pytest.raises(
        ConfigError, match=r"decode\.relation_order must be one of head, confidence"
    ):
        evaluate(
            compose_config(
                "eval", ["ckpt_path=missing.ckpt", "decode.relation_order=score"], tmp_path / "e2"
            )
        )


def test_decode_method_reaches_training_and_eval(train_config, tmp_path, monkeypatch):
    """Validation decodes with ``decode.method``; eval.py re-decodes the validation split of the
    checkpoint with its own method by default, or with ``decode.method=…``."""
    from causalmine import lit
    from causalmine.recipes import evaluate, train

    used, forced, orders = [], [], []

    def recording_decode_batch(*args, **kwargs):
        used.append(args[4])
        forced.append(args[5] is not None)
        orders.append(args[7])
        return decode_batch(*args, **kwargs)

    monkeypatch.setattr(lit, "decode_batch", recording_decode_batch)
    metrics = train(
        train_config("decode.method=viterbi", "test=false", "trainer.limit_train_batches=1")
    )
    assert used and set(used) == {"viterbi"}
    best = json.loads((tmp_path / "metrics.json").read_text())["best_checkpoint"]
    for override, method in ((None, "viterbi"), ("argmax", "argmax")):
        used.clear()
        out = tmp_path / f"eval-{method}"
        options = [f"ckpt_path={best}", "split=val", "trainer.enable_progress_bar=false"]
        evaluated = evaluate(
            compose_config("eval", options + [f"decode.method={override}"] * bool(override), out)
        )
        assert used and set(used) == {method}
        written = json.loads((out / "metrics.json").read_text())
        assert written["split"] == "val" and written["decode_method"] == method
        if override is None:  # the checkpoint's own method reproduces training's validation
            assert evaluated == pytest.approx(
                {k: v for k, v in metrics.items() if k.startswith("val/")}
            )
    # decode.force_relation=true reaches the decoder, with the sequence head's verdicts
    forced.clear()
    options = [f"ckpt_path={best}", "split=val", "decode.force_relation=true"]
    evaluate(compose_config("eval", options, tmp_path / "eval-forced"))
    assert forced and all(forced)
    assert json.loads((tmp_path / "eval-forced" / "metrics.json").read_text())["force_relation"]
    # so does decode.relation_order; training's validation decoded in head order
    assert set(orders) == {"head"}
    orders.clear()
    options = [f"ckpt_path={best}", "split=val", "decode.relation_order=confidence"]
    evaluate(compose_config("eval", options, tmp_path / "eval-confidence"))
    assert orders and set(orders) == {"confidence"}
    written = json.loads((tmp_path / "eval-confidence" / "metrics.json").read_text())
    assert written["relation_order"] == "confidence"
