"""A non-finite loss stops training with a clear message, after saving what replays it."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from causalmine.data.collate import CausalCollator
from causalmine.data.corpora import load_cnc
from causalmine.data.datamodule import EncodedDataset
from causalmine.data.encoding import encode_example
from causalmine.lit import CausalLitModule
from causalmine.training import NonFiniteLossError, training_callbacks
from causalmine.training.nonfinite import replay_nonfinite


class PoisonSequenceHead(L.Callback):
    """Before step ``step``, put a NaN into the sequence head (the span heads stay finite)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            with torch.no_grad():
                next(pl_module.network.seq_head.parameters()).view(-1)[0] = math.nan


def _poisoned_run(
    tmp_path,
    data_root,
    tokenizer,
    step: int,
    epochs: int = 1,
    loss: dict | None = None,
    precision: str = "32-true",
):
    """A tiny model on 8 causal CNC sentences (2 steps per epoch), its sequence head poisoned
    before ``step``: the examples, their encodings, the loader, the module and the trainer."""
    L.seed_everything(3)
    examples = [e for e in load_cnc(data_root, download=False).train if e.relations][:8]
    items = [encode_example(e, tokenizer, 64, 2) for e in examples]
    loader = DataLoader(EncodedDataset(items), batch_size=4, collate_fn=CausalCollator(tokenizer))
    tiny = {"arch": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    module = CausalLitModule(
        network={
            "name_or_path": "tiny-bert",
            "tiny": tiny,
            "span_heads": 2,
            "dropout": 0.3,  # the replay must draw the same dropout masks
            "vocab_size": len(tokenizer),
        },
        loss=loss,
    )
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        precision=precision,
        callbacks=[PoisonSequenceHead(step=step), *training_callbacks()],
    )
    return examples, items, loader, module, trainer


def test_nonfinite_loss_is_saved_then_stops_the_run(tmp_path, data_root, bert_tokenizer):
    examples, items, loader, module, trainer = _poisoned_run(
        tmp_path, data_root, bert_tokenizer, step=1
    )
    with pytest.raises(NonFiniteLossError) as raised:
        trainer.fit(module, train_dataloaders=loader)

    saved_dir = tmp_path / "nonfinite" / "step1"
    message = str(raised.value)
    assert "at global step 1" in message and str(saved_dir) in message
    ids = [e.id for e in examples[4:8]]  # the second batch
    assert all(i in message for i in ids)

    saved = torch.load(saved_dir / "batch.pt", weights_only=True)
    assert saved["example_ids"] == ids and saved["texts"] == [e.text for e in examples[4:8]]
    assert saved["global_step"] == 1 and not math.isfinite(saved["losses"]["total"])
    assert math.isfinite(saved["losses"]["span"])
    assert torch.equal(
        saved["tensors"]["input_ids"][0, : len(items[4].input_ids)],
        torch.tensor(items[4].input_ids),
    )
    state = torch.load(saved_dir / "state.ckpt", weights_only=True)
    assert len(state["optimizer_states"]) == 1 and state["optimizer_states"][0]["state"]

    replayed = replay_nonfinite(saved_dir)
    assert not torch.isfinite(replayed.total)
    # bit-identical span loss: same weights, same batch, same dropout masks
    assert replayed.span.item() == saved["losses"]["span"]


def test_a_step_after_the_span_warm_up_replays_with_the_sequence_loss(
    tmp_path, data_root, bert_tokenizer
):
    """The replay weighs the losses as the failing step's epoch did, not as epoch 0 would."""
    *_, loader, module, trainer = _poisoned_run(
        tmp_path, data_root, bert_tokenizer, step=2, epochs=2, loss={"seq_start_epoch": 1}
    )
    with pytest.raises(NonFiniteLossError):
        trainer.fit(module, train_dataloaders=loader)
    saved_dir = tmp_path / "nonfinite" / "step2"
    saved = torch.load(saved_dir / "batch.pt", weights_only=True)
    assert saved["epoch"] == 1  # the first step after the warm-up
    replayed = replay_nonfinite(saved_dir)
    assert replayed.trains["seq"].item() == 1.0  # epoch 0 would leave it out
    assert replayed.span.item() == saved["losses"]["span"]


def test_a_bf16_step_replays_in_bf16(tmp_path, data_root, bert_tokenizer):
    """A bf16-mixed run's failing step replays under bf16 autocast, as it ran: the span loss
    comes back bit for bit (in fp32 it would not)."""
    *_, loader, module, trainer = _poisoned_run(
        tmp_path, data_root, bert_tokenizer, step=1, precision="bf16-mixed"
    )
    with pytest.raises(NonFiniteLossError):
        trainer.fit(module, train_dataloaders=loader)
    saved_dir = tmp_path / "nonfinite" / "step1"
    state = torch.load(saved_dir / "state.ckpt", weights_only=True)
    assert state["numerics"]["precision"] == "bf16-mixed"
    saved = torch.load(saved_dir / "batch.pt", weights_only=True)
    assert replay_nonfinite(saved_dir).span.item() == saved["losses"]["span"]
    state["numerics"]["precision"] = "32-true"  # the same step replayed in fp32 differs
    torch.save(state, saved_dir / "state.ckpt")
    assert replay_nonfinite(saved_dir).span.item() != saved["losses"]["span"]
