"""The datamodule: validation split, leakage guard, encoding, dynamic padding, batches."""

from __future__ import annotations

import pytest

from causalmine.data.accounting import DataError
from causalmine.data.datamodule import CausalDataModule
from causalmine.data.splits import split_for_validation
from causalmine.schema import Example


def _examples(n_docs: int, per_doc: int) -> list[Example]:
    return [
        Example(id=f"d{d}_{s}", text=f"sentence {d} {s}", doc_id=f"d{d}")
        for d in range(n_docs)
        for s in range(per_doc)
    ]


def test_split_keeps_documents_whole_and_is_seeded():
    examples = _examples(40, 3)
    train, val, how = split_for_validation(examples, 0.2, seed=7)
    assert how == "by document (40 documents)"
    assert {e.doc_id for e in train}.isdisjoint({e.doc_id for e in val})
    assert len(train) + len(val) == len(examples)
    assert 0.2 * len(examples) <= len(val) < 0.2 * len(examples) + 3
    assert split_for_validation(examples, 0.2, seed=7)[:2] == (train, val)
    assert split_for_validation(examples, 0.2, seed=8)[1] != val


def test_one_document_corpus_is_split_by_sentence():
    """Some UniCausal corpora give every row one doc_id: splitting by document would put
    everything in validation and train on nothing."""
    examples = _examples(1, 50)
    train, val, how = split_for_validation(examples, 0.1, seed=1)
    assert how == "by sentence, seeded: only 1 documents (< 20)"
    assert (len(train), len(val)) == (45, 5)
    assert split_for_validation(examples, 0.1, seed=1)[1] == val


def test_a_document_too_large_for_validation_falls_back_to_sentences():
    # 30 small documents and one that holds most of the corpus: whole documents cannot
    # reach half the validation target without it, and it would overshoot
    examples = _examples(30, 1) + [
        Example(id=f"big_{s}", text=f"big {s}", doc_id="big") for s in range(300)
    ]
    train, val, how = split_for_validation(examples, 0.2, seed=3)
    assert how.startswith("by sentence, seeded: whole documents fill 30 of the 66")
    assert len(val) == 66 and len(train) == 264


def test_pair_examples_follow_their_sentence():
    examples = _examples(1, 30) + [
        Example(
            id=f"d0_{s}#1", text=f"<ARG0> a </ARG0> <ARG1> {s} </ARG1>", doc_id="d0", task="pair"
        )
        for s in range(30)
    ]
    train, val, _ = split_for_validation(examples, 0.2, seed=5)
    sentences = {e.id.split("#")[0] for e in val}
    assert sentences.isdisjoint({e.id.split("#")[0] for e in train}) and len(val) == 12


def test_too_small_a_corpus_is_an_error_not_an_empty_split():
    with pytest.raises(DataError, match="cannot carve a validation split from 1 training"):
        split_for_validation(_examples(1, 1), 0.1, seed=1, corpus="tiny")


def _csv_datamodule(tmp_path, tokenizer, **kwargs) -> CausalDataModule:
    """30 sentences without doc_id, the same file as training and test data."""
    path = tmp_path / "c.csv"
    path.write_text("text,label\n" + "".join(f"sentence number {i} .,{i % 2}\n" for i in range(30)))
    columns = {"text": "text", "seq_label": "label"}
    return CausalDataModule(
        tokenizer, kind="csv", train_file=str(path), test_file=str(path), columns=columns, **kwargs
    )


def test_csv_corpus_without_doc_id_has_one_document_per_row(tmp_path, bert_tokenizer):
    dm = _csv_datamodule(tmp_path, bert_tokenizer, drop_leaked=False)
    dm.setup("fit")
    assert dm.stats["validation_split"]["csv"] == "by document (30 documents)"  # one per row
    assert (len(dm.datasets["train"]), len(dm.datasets["val"])) == (27, 3)


def test_training_split_emptied_by_the_leakage_guard_stops_before_training(
    tmp_path, bert_tokenizer
):
    dm = _csv_datamodule(tmp_path, bert_tokenizer)  # every training sentence is a test sentence
    with pytest.raises(DataError, match="the training split is empty"):
        dm.setup("fit")


def test_cnc_datamodule_has_no_document_in_two_splits(data_root, bert_tokenizer):
    dm = CausalDataModule(bert_tokenizer, root=str(data_root), batch_size=8, max_length=128)
    dm.setup("fit")
    docs = {
        split: {(i.example.corpus, i.example.doc_id) for i in ds.items}
        for split, ds in dm.datasets.items()
    }
    assert docs["train"].isdisjoint(docs["val"])
    assert docs["train"].isdisjoint(docs["test"]) and docs["val"].isdisjoint(docs["test"])
    # 6 CNC training sentences occur verbatim in dev (the test split): dropped by default
    assert dm.stats["leakage"] == {"train": 5, "val": 1, "dropped": True}
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 3075 - 6
    assert dm.stats["validation_split"]["cnc"] == "by document (2925 documents)"
    assert len(dm.datasets["test"]) == 340
    assert dm.stats["train"]["relations_beyond_span_heads"] > 0  # CNC train has up to 5 relations
    assert "left out of training" in dm.summary()


@pytest.mark.parametrize("corpora", [["because", "cnc"], ["cnc", "because"]])
def test_cnc_beside_because_keeps_the_splits_it_has_alone(corpora, data_root, bert_tokenizer):
    """CNC read among UniCausal's corpora is split exactly as ``data=cnc`` splits it, so its
    per-corpus figures (``val/cnc/seq_f1``) compare with a CNC-only run's (``val/seq_f1``)."""
    alone = CausalDataModule(bert_tokenizer, root=str(data_root), max_length=128)
    joint = CausalDataModule(
        bert_tokenizer,
        kind="unicausal",
        root=str(data_root / "unicausal"),
        cnc_root=str(data_root),
        corpora=corpora,
        max_length=128,
        on_error="skip",
    )
    alone.setup("fit")
    joint.setup("fit")
    for split in ("train", "val", "test"):
        cnc = [i.example for i in joint.datasets[split].items if i.example.corpus == "cnc"]
        assert [(e.text, e.seq_label, e.relations) for e in cnc] == [
            (i.example.text, i.example.seq_label, i.example.relations)
            for i in alone.datasets[split].items
        ], split
    assert {i.example.task for i in joint.datasets["train"].items if i.example.corpus == "cnc"} == {
        "sentence"
    }  # no CNC pairs unless data.pairs=true


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


def test_data_config_names_its_sources_in_order():
    from causalmine.data.corpora import CNCSource, CSVSource, UniCausalSource, sources_of
    from causalmine.settings import DataConfig

    sources = sources_of(
        DataConfig(kind="unicausal", root="u", cnc_root="c", corpora=["because", "cnc"])
    )
    assert sources == [
        UniCausalSource("u", "because"),
        CNCSource("c"),  # CNC among UniCausal's corpora: its own layout, no pairs unless asked
    ]
    asked = DataConfig(kind="unicausal", root="u", cnc_root="c", corpora=["cnc"], pairs=True)
    assert sources_of(asked) == [CNCSource("c", pairs=True)]
    assert sources_of(DataConfig(root="r")) == [CNCSource("r")]
    csv = sources_of(DataConfig(kind="csv", name="mine", train_file="t.csv", columns={"text": "s"}))
    assert csv == [CSVSource("mine", "t.csv", columns={"text": "s"})]


def test_the_datamodule_reads_a_list_of_sources(tmp_path, bert_tokenizer):
    """Sources are objects: two CSV corpora side by side, each split and reported under its name."""
    from causalmine.data.corpora import CSVSource

    columns = {"text": "text", "seq_label": "label"}
    sources = []
    for name, count in (("news", 30), ("blogs", 20)):
        path = tmp_path / f"{name}.csv"
        path.write_text(
            "text,label\n" + "".join(f"{name} sentence {i} .,{i % 2}\n" for i in range(count))
        )
        sources.append(CSVSource(name, str(path), test_file=str(path), columns=columns))
    dm = CausalDataModule(bert_tokenizer, sources=sources, drop_leaked=False)
    dm.setup("fit")
    assert dm.corpus_names == ["news", "blogs"]
    assert set(dm.stats["validation_split"]) == {"news", "blogs"}
    corpora = [i.example.corpus for i in dm.datasets["test"].items]
    assert (corpora.count("news"), corpora.count("blogs")) == (30, 20)
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 50
