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


def test_nonfinite_loss_is_saved_then_stops_the_run(tmp_path, data_root, bert_tokenizer):
    L.seed_everything(3)
    examples = [e for e in load_cnc(data_root, download=False).train if e.relations][:8]
    items = [encode_example(e, bert_tokenizer, 64, 2) for e in examples]
    loader = DataLoader(
        EncodedDataset(items), batch_size=4, collate_fn=CausalCollator(bert_tokenizer)
    )
    tiny = {"arch": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    module = CausalLitModule(
        network={
            "name_or_path": "tiny-bert",
            "tiny": tiny,
            "span_heads": 2,
            "dropout": 0.3,  # the replay must draw the same dropout masks
            "vocab_size": len(bert_tokenizer),
        }
    )
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[PoisonSequenceHead(step=1), *training_callbacks()],
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
