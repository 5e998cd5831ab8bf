"""Each network part: pooling modes, chained heads, the BiLSTM reader, the output dataclass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from causalmine.model.heads import ChainedSpanHeads
from causalmine.model.network import CausalNetwork, NetworkConfig
from causalmine.model.pooling import Pooling
from causalmine.schema import CE_LABELS, SIG_LABELS

from .conftest import TINY_BERT


def _network(**overrides) -> CausalNetwork:
    settings = {"name_or_path": "tiny-bert", "tiny": TINY_BERT, "vocab_size": 120, **overrides}
    return CausalNetwork(NetworkConfig(**settings))


def test_cls_pooling_takes_the_first_token():
    states = torch.randn(2, 5, 4)
    assert torch.equal(Pooling("cls", 4)(states, torch.ones(2, 5)), states[:, 0])


def test_mean_pooling_ignores_padding():
    states = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    pooled = Pooling("mean", 4)(states, mask)
    assert torch.allclose(pooled[0], states[0, :2].mean(0))
    assert torch.allclose(pooled[1], states[1].mean(0))
    states[0, 2:] = 1e6  # padding content must not matter
    assert torch.allclose(Pooling("mean", 4)(states, mask)[0], pooled[0])


def test_pooler_copies_pretrained_weights():
    dense = nn.Linear(4, 4)
    pooling = Pooling("pooler", 4, pretrained_dense=dense)
    states = torch.randn(3, 2, 4)
    assert torch.allclose(pooling(states, torch.ones(3, 2)), torch.tanh(dense(states[:, 0])))


def test_pooler_without_pretrained_weights_is_fresh_and_says_so(caplog):
    with caplog.at_level("WARNING"):
        pooling = Pooling("pooler", 4)
    assert "no pretrained pooler" in caplog.text
    assert pooling.dense is not None


def test_unknown_pooling_is_rejected_by_the_network_config():
    with pytest.raises(ValueError, match=r"model\.pooling must be one of cls, mean, pooler"):
        NetworkConfig(name_or_path="tiny-bert", pooling="max")


def test_chained_heads_see_earlier_logits():
    heads = ChainedSpanHeads(dim=10, num_heads=3, num_ce=5, num_sig=3, dropout=0.0)
    assert [h.ce.in_features for h in heads.heads] == [10, 18, 26]
    ce, sig = heads(torch.randn(2, 7, 10))
    assert ce.shape == (2, 3, 7, 5) and sig.shape == (2, 3, 7, 3)


def test_later_heads_depend_on_earlier_heads():
    heads = ChainedSpanHeads(dim=6, num_heads=2, num_ce=5, num_sig=3, dropout=0.0)
    states = torch.randn(1, 4, 6)
    _, sig_before = heads(states)
    with torch.no_grad():
        heads.heads[0].ce.bias += 1.0
    _, sig_after = heads(states)
    assert not torch.allclose(sig_before[:, 1], sig_after[:, 1])


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
@pytest.mark.parametrize("lstm", [False, True])
def test_network_output_shapes(pooling, lstm):
    net = _network(pooling=pooling, span_heads=2, lstm={"enabled": lstm, "hidden": 8, "layers": 1})
    ids = torch.randint(5, 100, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[0, 6:] = 0
    out = net(ids, mask)
    assert out.seq_logits.shape == (3, 2) and out.pair_logits.shape == (3, 2)
    assert out.cause_effect_logits.shape == (3, 2, 9, len(CE_LABELS))
    assert out.signal_logits.shape == (3, 2, 9, len(SIG_LABELS))
    dim = 32 if pooling == "pooler" or not lstm else 16
    assert out.pooled.shape == (3, dim)
    assert net.backbone.pooler is None  # owned by the pooling layer, never an unused parameter


def test_every_parameter_gets_a_gradient():
    net = _network(pooling="mean", lstm={"enabled": True, "hidden": 8})
    out = net(torch.randint(5, 100, (2, 6)), torch.ones(2, 6, dtype=torch.long))
    (
        out.seq_logits.sum()
        + out.pair_logits.sum()
        + out.cause_effect_logits.sum()
        + out.signal_logits.sum()
    ).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert not missing


def test_vocab_is_resized_for_added_tokens():
    net = _network(vocab_size=130)
    assert net.backbone.get_input_embeddings().num_embeddings == 130


def test_gradient_checkpointing_gives_the_same_gradients():
    """``model.gradient_checkpointing`` trades memory for recomputation, nothing else."""
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        network = CausalNetwork(
            NetworkConfig(
                name_or_path="tiny-bert",
                tiny={**TINY_BERT, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
                dropout=0.0,
                head_dropout=0.0,
                gradient_checkpointing=checkpointing,
                vocab_size=128,
            )
        ).train()
        assert network.backbone.is_gradient_checkpointing == checkpointing
        ids = torch.randint(5, 100, (2, 9), generator=torch.Generator().manual_seed(1))
        out = network(ids, torch.ones_like(ids))
        (out.seq_logits.sum() + out.cause_effect_logits.sum()).backward()
        grads.append(
            torch.cat([p.grad.flatten() for p in network.parameters() if p.grad is not None])
        )
    torch.testing.assert_close(grads[0], grads[1])


def test_bilstm_reads_in_fp32_under_bf16_autocast():
    """With the LSTM under bf16 autocast the network trained 3-5x slower on an H200 (RESULTS
    §11): the reader runs fp32 while the rest of the network keeps autocast."""
    net = _network(lstm={"enabled": True, "hidden": 8, "layers": 1}).eval()
    ids = torch.randint(5, 120, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    states = torch.randn(2, 7, net.backbone.config.hidden_size).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        read = net._read(states, mask)
        out = net(ids, mask)
        assert net.lstm(states)[0].dtype == torch.bfloat16  # what autocast alone would do
    assert read.dtype == torch.float32
    assert out.cause_effect_logits.dtype == torch.bfloat16  # the heads still run under autocast
    with torch.no_grad():
        reference = net._read(states.float(), mask)
    torch.testing.assert_close(read, reference)


def test_a_bf16_network_reads_in_bf16_without_autocast():
    net = _network(lstm={"enabled": True, "hidden": 8, "layers": 1}).to(torch.bfloat16).eval()
    ids = torch.randint(5, 120, (2, 7))
    with torch.no_grad():
        out = net(ids, torch.ones_like(ids))
    assert out.cause_effect_logits.dtype == torch.bfloat16
