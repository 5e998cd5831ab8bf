"""The datamodule: document-level split, encoding, dynamic padding, length-grouped batches."""

from __future__ import annotations

from causalmine.data.datamodule import CausalDataModule
from causalmine.data.formats import Example
from causalmine.data.splits import split_by_document


def _examples(n_docs: int, per_doc: int) -> list[Example]:
    return [
        Example(id=f"d{d}_{s}", text=f"sentence {d} {s}", doc_id=f"d{d}")
        for d in range(n_docs)
        for s in range(per_doc)
    ]


def test_split_keeps_documents_whole_and_is_seeded():
    examples = _examples(40, 3)
    train, val = split_by_document(examples, 0.2, seed=7)
    assert {e.doc_id for e in train}.isdisjoint({e.doc_id for e in val})
    assert len(train) + len(val) == len(examples)
    assert 0.2 * len(examples) <= len(val) < 0.2 * len(examples) + 3
    assert split_by_document(examples, 0.2, seed=7) == (train, val)
    assert split_by_document(examples, 0.2, seed=8)[1] != val


def test_cnc_datamodule_has_no_document_in_two_splits(data_root, bert_tokenizer):
    dm = CausalDataModule(bert_tokenizer, root=str(data_root), batch_size=8, max_length=128)
    dm.setup("fit")
    docs = {
        split: {(i.example.corpus, i.example.doc_id) for i in ds.items}
        for split, ds in dm.datasets.items()
    }
    assert docs["train"].isdisjoint(docs["val"])
    assert docs["train"].isdisjoint(docs["test"]) and docs["val"].isdisjoint(docs["test"])
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 3075
    assert len(dm.datasets["test"]) == 340
    assert dm.stats["train"]["relations_beyond_span_heads"] > 0  # CNC train has up to 5 relations
    assert "left out of training" in dm.summary()


def _padding(dm: CausalDataModule, batches: int) -> int:
    pad = 0
    for i, batch in enumerate(dm.train_dataloader()):
        if i == batches:
            break
        assert (
            batch["input_ids"].shape[1] == batch["attention_mask"].sum(1).max()
        )  # padded to its longest only
        pad += batch["attention_mask"].numel() - batch["attention_mask"].sum().item()
    return pad


def test_length_grouped_batches_need_less_padding(data_root, bert_tokenizer):
    grouped = CausalDataModule(
        bert_tokenizer, root=str(data_root), batch_size=16, group_by_length=True
    )
    shuffled = CausalDataModule(
        bert_tokenizer, root=str(data_root), batch_size=16, group_by_length=False
    )
    grouped.setup("fit")
    shuffled.setup("fit")
    assert _padding(grouped, 40) < 0.5 * _padding(shuffled, 40)
