"""CRF span heads (``model.span_crf``): the loss is each layer's CRF negative log-likelihood over
a sentence's words (subwords after the first skipped), and decoding finds the best valid BIO
path under the emissions plus the learned transitions. Both checked against brute force, and
the likelihood against pytorch-crf."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchcrf import CRF

from causalmine.model.heads import ChainedSpanHeads
from causalmine.model.losses import LossWeights, crf_negative_log_likelihood, unified_loss
from causalmine.schema import CE_LABELS, IGNORE_INDEX, SIG_LABELS, TagTransitions
from causalmine.scoring.decode import (
    decode_sentences,
    forced_ce_tags,
    head_tags,
    sentence_head_tags,
)
from causalmine.settings import ConfigError, TrainConfig

from .conftest import compose_config
from .test_decode import is_valid_bio


def _random_crf(labels: int, seed: int) -> CRF:
    crf = CRF(labels, batch_first=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return crf


def _scores(crfs: list[CRF]) -> TagTransitions:
    """The scores of pytorch-crf modules, one per head, in our layout."""
    return TagTransitions(
        *(
            torch.stack([getattr(c, name) for c in crfs])
            for name in ("start_transitions", "transitions", "end_transitions")
        )
    )


@torch.no_grad()
def _chain_score(crf: CRF, emissions: torch.Tensor, tags: tuple[int, ...]) -> float:
    """Score of one tag sequence over ``emissions [words, labels]``, from the CRF's definition."""
    score = crf.start_transitions[tags[0]] + crf.end_transitions[tags[-1]]
    score = score + sum(emissions[w, t] for w, t in enumerate(tags))
    score = score + sum(crf.transitions[a, b] for a, b in itertools.pairwise(tags))
    return float(score)


def _brute_force_nll(crf: CRF, emissions: torch.Tensor, tags: tuple[int, ...]) -> float:
    every = itertools.product(range(emissions.shape[1]), repeat=emissions.shape[0])
    log_partition = torch.logsumexp(
        torch.tensor([_chain_score(crf, emissions, t) for t in every]), 0
    )
    return float(log_partition) - _chain_score(crf, emissions, tags)


@given(st.integers(0, 2**31), st.lists(st.integers(0, 4), min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_crf_loss_is_the_chains_negative_log_likelihood_over_labelled_words(seed, words):
    """Rows of words with 0–2 unlabelled subwords after each and padding at the end; the loss
    is the summed exact NLL of each row's word chain over the number of labelled words."""
    generator = torch.Generator().manual_seed(seed)
    crf = _random_crf(3, seed)
    tokens = 12
    logits = torch.randn(len(words), tokens, 3, generator=generator) * 2
    labels = torch.full((len(words), tokens), IGNORE_INDEX)
    expected, labelled = 0.0, 0
    for row, n in enumerate(words):
        position, chain, gold = 1, [], []  # token 0 is [CLS]
        for _ in range(n):
            tag = int(torch.randint(3, (1,), generator=generator))
            labels[row, position] = tag
            chain.append(position)
            gold.append(tag)
            position += 1 + int(torch.randint(3, (1,), generator=generator))
        if chain:
            expected += _brute_force_nll(crf, logits[row, chain], tuple(gold))
            labelled += len(chain)
    (loss,) = crf_negative_log_likelihood(logits[:, None], labels[:, None], _scores([crf]))
    assert float(loss.detach()) == pytest.approx(expected / max(labelled, 1), rel=1e-4, abs=1e-5)


def test_crf_loss_equals_pytorch_crf_on_long_sentences_of_every_head():
    """Realistic lengths (a sort that is not stable scrambles chains past ~24 tokens): 3 heads,
    each its own CRF, rows of 0-40 words spread over 96 subword positions."""
    generator = torch.Generator().manual_seed(7)
    crfs = [_random_crf(5, seed) for seed in range(3)]
    batch, heads, tokens = 6, 3, 96
    logits = torch.randn(batch, heads, tokens, 5, generator=generator)
    labels = torch.full((batch, heads, tokens), IGNORE_INDEX)
    for b in range(1, batch):  # row 0 has no labels at all
        words = torch.randperm(tokens - 1, generator=generator)[: 8 * b].sort().values + 1
        labels[b, :, words] = torch.randint(5, (heads, len(words)), generator=generator)
    ours = crf_negative_log_likelihood(logits, labels, _scores(crfs))
    for k, crf in enumerate(crfs):
        total, count = 0.0, 0
        for b in range(batch):
            chain = (labels[b, k] != IGNORE_INDEX).nonzero().squeeze(-1)
            if len(chain):
                emissions, tags = logits[b, k, chain][None], labels[b, k, chain][None]
                mask = torch.ones_like(tags, dtype=torch.bool)
                total -= float(crf(emissions, tags, mask, reduction="sum").detach())
                count += len(chain)
        assert float(ours[k].detach()) == pytest.approx(total / count, rel=1e-5)


def test_a_batch_without_span_labels_costs_nothing_and_keeps_the_crf_in_the_graph():
    crf = _random_crf(5, 0)
    logits = torch.randn(2, 1, 6, 5, requires_grad=True)
    (loss,) = crf_negative_log_likelihood(
        logits, torch.full((2, 1, 6), IGNORE_INDEX), _scores([crf])
    )
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert all(p.grad is not None and not p.grad.any() for p in crf.parameters())


def test_unified_loss_with_crfs_sums_each_heads_two_layers():
    torch.manual_seed(0)
    heads = ChainedSpanHeads(8, 2, len(CE_LABELS), len(SIG_LABELS), 0.0, crf=True)
    ce_logits, sig_logits = heads(torch.randn(2, 5, 8))
    ce = torch.tensor([[[-100, 1, 2, 0, 3], [-100, 0, 0, 0, 0]]] * 2)
    sig = torch.tensor([[[-100, 0, 1, 0, 0], [-100, 0, 0, 0, 0]]] * 2)
    batch = {
        "seq_labels": torch.tensor([1, 1]),
        "pair_labels": torch.tensor([IGNORE_INDEX, IGNORE_INDEX]),
        "cause_effect_labels": ce,
        "signal_labels": sig,
    }
    logits = (torch.zeros(2, 2), torch.zeros(2, 2))
    scores = heads.crf_scores()
    losses = unified_loss(*logits, ce_logits, sig_logits, batch, LossWeights(), crf_scores=scores)
    for k in range(2):
        one = [TagTransitions(*(t[k : k + 1] for t in layer)) for layer in scores]
        expected = crf_negative_log_likelihood(
            ce_logits[:, k : k + 1], ce[:, k : k + 1], one[0]
        ) + crf_negative_log_likelihood(sig_logits[:, k : k + 1], sig[:, k : k + 1], one[1])
        assert torch.allclose(losses.span_per_head[k], expected[0])
    plain = unified_loss(*logits, ce_logits, sig_logits, batch, LossWeights())
    assert not torch.allclose(plain.span, losses.span)  # the CRF's likelihood, not the tags' CE
    with pytest.raises(ValueError, match="span_assignment=ordered"):
        unified_loss(
            *logits,
            ce_logits,
            sig_logits,
            batch,
            LossWeights(span_assignment="matched"),
            crf_scores=scores,
        )


def _transitions(heads: int, labels: int, seed: int) -> TagTransitions:
    generator = torch.Generator().manual_seed(seed)
    return TagTransitions(
        torch.randn(heads, labels, generator=generator) * 2,
        torch.randn(heads, labels, labels, generator=generator) * 2,
        torch.randn(heads, labels, generator=generator) * 2,
    )


def _learned_score(log_probs, tags, labels, transitions: TagTransitions, head: int) -> float:
    ids = [labels.index(t) for t in tags]
    start, step, end = (t[head] for t in transitions)
    score = start[ids[0]] + end[ids[-1]] + sum(step[a, b] for a, b in itertools.pairwise(ids))
    return float(score) + sum(float(log_probs[w, i]) for w, i in enumerate(ids))


@given(st.integers(1, 5), st.integers(0, 2**31), st.sampled_from([CE_LABELS, SIG_LABELS]))
@settings(max_examples=100, deadline=None)
def test_viterbi_under_learned_transitions_is_the_best_valid_path(words, seed, labels):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(2, words, len(labels), generator=generator) * 3
    transitions = _transitions(2, len(labels), seed)
    decoded = head_tags(scores, list(range(words)), labels, "viterbi", transitions)
    valid = [list(t) for t in itertools.product(labels, repeat=words) if is_valid_bio(list(t))]
    for head, tags in enumerate(decoded):
        log_probs = scores[head].log_softmax(-1)
        best = max(_learned_score(log_probs, t, labels, transitions, head) for t in valid)
        assert is_valid_bio(tags)
        assert _learned_score(log_probs, tags, labels, transitions, head) == pytest.approx(
            best, abs=1e-4
        )


def test_learned_transitions_change_the_path_and_zero_ones_change_nothing():
    scores = torch.tensor([[[0.0, 2.0, 1.9, 0.0, 0.0], [0.0, 1.0, 1.2, 0.0, 0.0]]])
    positions = [0, 1]
    assert head_tags(scores, positions, CE_LABELS, "viterbi") == [["B-C", "I-C"]]
    zero = TagTransitions(torch.zeros(1, 5), torch.zeros(1, 5, 5), torch.zeros(1, 5))
    assert head_tags(scores, positions, CE_LABELS, "viterbi", zero) == [["B-C", "I-C"]]
    # a CRF that learned "B-C then I-C" is unlikely (and "B-C B-C" likely) decodes two causes
    step = torch.zeros(1, 5, 5)
    step[0, 1, 2], step[0, 1, 1] = -5.0, 1.0
    learned = TagTransitions(torch.zeros(1, 5), step, torch.zeros(1, 5))
    assert head_tags(scores, positions, CE_LABELS, "viterbi", learned) == [["B-C", "B-C"]]


@given(st.lists(st.integers(0, 6), min_size=1, max_size=5), st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_many_sentences_at_once_use_each_heads_own_transitions(lengths, seed):
    generator = torch.Generator().manual_seed(seed)
    transitions = _transitions(3, len(CE_LABELS), seed)
    scores = [torch.randn(3, n + 1, len(CE_LABELS), generator=generator) * 3 for n in lengths]
    positions = [[w + 1 if w != n // 2 else -1 for w in range(n)] for n in lengths]
    batched = sentence_head_tags(scores, positions, CE_LABELS, "viterbi", transitions)
    for sentence, s, p in zip(batched, scores, positions, strict=True):
        assert sentence == head_tags(s, p, CE_LABELS, "viterbi", transitions)
        for head, tags in enumerate(sentence):
            alone = TagTransitions(*(t[head : head + 1] for t in transitions))
            assert [tags] == head_tags(s[head : head + 1], p, CE_LABELS, "viterbi", alone)


@given(st.integers(2, 5), st.integers(0, 2**31))
@settings(max_examples=60, deadline=None)
def test_forced_tags_under_learned_transitions_are_the_best_path_holding_both_kinds(words, seed):
    scores = torch.randn(2, words, len(CE_LABELS), generator=torch.Generator().manual_seed(seed))
    transitions = _transitions(2, len(CE_LABELS), seed)
    (tags,) = forced_ce_tags([scores * 3], [list(range(words))], ("C", "E"), transitions)
    log_probs = (scores[0] * 3).log_softmax(-1)
    holding = [
        list(t)
        for t in itertools.product(CE_LABELS, repeat=words)
        if is_valid_bio(list(t)) and "B-C" in t and "B-E" in t
    ]
    best = max(_learned_score(log_probs, t, CE_LABELS, transitions, 0) for t in holding)
    assert tags is not None and "B-C" in tags and "B-E" in tags
    assert _learned_score(log_probs, tags, CE_LABELS, transitions, 0) == pytest.approx(
        best, abs=1e-4
    )


def test_argmax_decoding_refuses_a_crf_models_transitions():
    transitions = (_transitions(1, 5, 0), _transitions(1, 3, 0))
    with pytest.raises(ValueError, match=r"decode\.method=viterbi"):
        decode_sentences(
            [torch.zeros(1, 2, 5)],
            [torch.zeros(1, 2, 3)],
            [[0, 1]],
            ("C", "E"),
            "argmax",
            None,
            transitions,
        )


def test_crf_heads_expose_their_transitions_per_head_and_layer():
    heads = ChainedSpanHeads(8, 3, len(CE_LABELS), len(SIG_LABELS), 0.0, crf=True)
    ce, sig = heads.transitions()
    assert ce.start.shape == (3, 5) and ce.step.shape == (3, 5, 5) and ce.end.shape == (3, 5)
    assert sig.step.shape == (3, 3, 3) and not sig.step.requires_grad
    assert torch.equal(ce.step[1], heads.heads[1].ce_crf.step.detach())
    assert heads.crf_scores()[0].step.requires_grad  # what the loss trains
    plain = ChainedSpanHeads(8, 3, len(CE_LABELS), len(SIG_LABELS), 0.0)
    assert plain.crf_scores() is None and plain.transitions() is None
    assert not any("crf" in name for name in plain.state_dict())  # old checkpoints still load


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.span_crf=true", "decode.method=argmax"], "needs decode.method=viterbi"),
        (
            ["model.span_crf=true", "loss.span_assignment=matched"],
            "needs loss.span_assignment=ordered",
        ),
    ],
)
def test_a_crf_model_refuses_settings_that_would_ignore_it(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_config(compose_config("train", ["model=tiny_bert", *overrides], tmp_path))


def test_chained_heads_with_crfs_add_two_small_parameter_sets_per_head():
    plain = ChainedSpanHeads(8, 3, 5, 3, 0.0)
    crf = ChainedSpanHeads(8, 3, 5, 3, 0.0, crf=True)
    extra = sum(p.numel() for p in crf.parameters()) - sum(p.numel() for p in plain.parameters())
    assert extra == 3 * ((5 * 5 + 2 * 5) + (3 * 3 + 2 * 3))
