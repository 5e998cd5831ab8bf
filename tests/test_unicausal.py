"""UniCausal format, pair inputs, multi-corpus training, leakage guard, user CSV corpora."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from causalmine.data.collate import CausalCollator
from causalmine.data.corpora import load_unicausal
from causalmine.data.encoding import encode_example
from causalmine.data.formats import read_grouped_file, read_pair_file
from causalmine.data.leakage import leaked
from causalmine.data.samplers import TemperatureSampler, corpus_probabilities
from causalmine.data.tags import TagError, pair_input
from causalmine.model.losses import LossWeights, unified_loss
from causalmine.recipes import train
from causalmine.schema import IGNORE_INDEX, PAIR_MARKERS, Example

BOM = "\ufeff"
PAIR_HEADER = (
    "corpus,doc_id,sent_id,eg_id,index,text,text_w_pairs,seq_label,pair_label,context,num_sents\n"
)
GROUPED_HEADER = "corpus,doc_id,sent_id,eg_id,index,text,text_w_pairs,seq_label,pair_label,context,num_sents,causal_text_w_pairs,num_rs\n"


def test_because_reader_on_the_real_files(data_root):
    root = data_root / "unicausal"
    sentences, pairs, report = read_pair_file(
        root / "splits" / "because_train.csv", "because", "raise"
    )
    assert (len(sentences), len(pairs)) == (406, 580)  # one sequence example per sentence (eg_id 0)
    assert sum(p.pair_label == 0 for p in pairs) == 147  # BECAUSE has non-causal pairs
    assert report.rows_read == report.rows_used == 580
    spans, span_report = read_grouped_file(
        root / "grouped" / "splits" / "because_train.csv", "because", "skip"
    )
    # cause and effect overlap in 3 rows: unrepresentable in one BIO layer, skipped and counted
    assert span_report.rejected == {"overlapping spans": 3}
    assert span_report.rows_read == span_report.rows_used + 3 == 453
    # every causal row is used (as UniCausal's loader does): 49 sentences have several rows
    assert span_report.notes["several rows of one sentence (relations merged)"] == 49
    assert (len(spans), sum(len(e.relations) for e in spans)) == (401, 414)
    assert sum(not e.relations for e in spans) == 98  # empty cells: annotated, no relation
    assert all(p.task == "pair" and p.text.count("<ARG0>") >= 1 for p in pairs)


def test_because_test_split_keeps_all_14_gold_relations(data_root):
    spans, report = read_grouped_file(
        data_root / "unicausal" / "grouped" / "splits" / "because_test.csv", "because", "raise"
    )
    assert sum(len(e.relations) for e in spans) == 14 and len(spans) == 16
    # the sentence whose eg_id 0 row is a non-causal pair gets its eg_id 1 row's two relations
    (merged,) = [e for e in spans if e.id == "Article247_327.ann_3"]
    assert len(merged.relations) == 2
    assert report.rows_read == report.rows_used == 17


def test_grouped_rows_of_one_sentence_are_merged_and_repeats_kept_once(tmp_path):
    path = tmp_path / "x_train.csv"
    tagged = "<ARG0>a</ARG0> b <ARG1>c</ARG1> d"
    other = "a b <ARG0>c</ARG0> <ARG1>d</ARG1>"
    path.write_text(
        GROUPED_HEADER
        + f"x,d,1,0,i0,a b c d,,1,0,,1,,0\nx,d,1,1,i1,a b c d,,1,1,,1,\"['{tagged}']\",1\n"
        + f"x,d,1,2,i2,a b c d,,1,1,,1,\"['{tagged}', '{other}']\",2\n",
        encoding="utf-8",
    )
    (sentence,), report = read_grouped_file(path, "x", "raise")
    assert len(sentence.relations) == 2
    assert report.notes["relation repeated in another row of the sentence (kept once)"] == 1
    assert report.rows_used == 3


def test_sequence_examples_keep_the_eg_id_0_row(tmp_path):
    path = tmp_path / "x_train.csv"
    path.write_text(
        BOM + PAIR_HEADER + "x,d,1,1,x_d_1_1,a b c d,<ARG0>a</ARG0> b <ARG1>c</ARG1> d,1,0,,1\n"
        "x,d,1,0,x_d_1_0,a b c d,<ARG0>a</ARG0> <SIG0>b</SIG0> <ARG1>c d</ARG1>,1,1,,1\n",
        encoding="utf-8",
    )
    sentences, pairs, _ = read_pair_file(path, "x", "raise")
    assert [e.source.endswith("row 3") for e in sentences] == [True]
    assert [p.pair_label for p in pairs] == [0, 1]
    assert (
        pairs[1].text == "<ARG0> a </ARG0> b <ARG1> c d </ARG1>"
    )  # signal tags never reach the pair input


def test_pair_markers_must_be_balanced():
    assert pair_input("<ARG0>a</ARG0> and <ARG0>b</ARG0> so <ARG1>c</ARG1>").count("<ARG0>") == 2
    for bad in ("<ARG0>a</ARG0> b", "<ARG0>a <ARG1>b</ARG1>", "</ARG0>a<ARG0> <ARG1>b</ARG1>"):
        with pytest.raises(TagError):
            pair_input(bad)


def test_corpus_without_span_files_has_no_span_task(tmp_path):
    (tmp_path / "splits").mkdir()
    for split in ("train", "test"):
        (tmp_path / "splits" / f"ctb_{split}.csv").write_text(
            PAIR_HEADER + f"ctb,d{split},1,0,i,x y z,<ARG0>x</ARG0> y <ARG1>z</ARG1>,1,1,,1\n",
            encoding="utf-8",
        )
    corpus = load_unicausal(tmp_path, "ctb", download=False)
    sentences = [e for e in corpus.train if e.task == "sentence"]
    assert sentences and all(e.relations is None and e.seq_label == 1 for e in sentences)
    assert [e.pair_label for e in corpus.train if e.task == "pair"] == [1]


def test_markers_are_single_tokens(tokenizer):
    for marker in PAIR_MARKERS:
        ids = tokenizer(f"a {marker} b", add_special_tokens=False)["input_ids"]
        assert marker in tokenizer.convert_ids_to_tokens(ids)
    example = Example(
        id="p",
        text=pair_input("<ARG0>Rain</ARG0> fell so <ARG1>rivers rose</ARG1>"),
        doc_id="p",
        pair_label=1,
        task="pair",
    )
    tokens = tokenizer.convert_ids_to_tokens(encode_example(example, tokenizer, 64, 2).input_ids)
    assert [t for t in tokens if t in PAIR_MARKERS] == list(PAIR_MARKERS)


def test_mixed_task_batch_masks_each_task(bert_tokenizer):
    sentence = Example(id="s", text="rain fell", doc_id="s", seq_label=1, relations=[])
    pair = Example(
        id="p",
        text=pair_input("<ARG0>rain</ARG0> fell <ARG1>so</ARG1>"),
        doc_id="p",
        pair_label=0,
        task="pair",
    )
    batch = CausalCollator(bert_tokenizer)(
        [encode_example(e, bert_tokenizer, 32, 2) for e in (sentence, pair)]
    )
    assert batch["seq_labels"].tolist() == [1, IGNORE_INDEX] and batch["pair_labels"].tolist() == [
        IGNORE_INDEX,
        0,
    ]
    assert (batch["cause_effect_labels"][1] == IGNORE_INDEX).all() and (
        batch["cause_effect_labels"][0] != IGNORE_INDEX
    ).any()
    seq = torch.randn(2, 2, requires_grad=True)
    pair_logits = torch.randn(2, 2, requires_grad=True)
    length = batch["input_ids"].shape[1]
    ce = torch.randn(2, 2, length, 5, requires_grad=True)
    sig = torch.randn(2, 2, length, 3, requires_grad=True)
    unified_loss(seq, pair_logits, ce, sig, batch, LossWeights()).total.backward()
    assert (
        seq.grad[1].abs().sum() == 0
        and pair_logits.grad[0].abs().sum() == 0
        and ce.grad[1].abs().sum() == 0
    )
    assert (
        seq.grad[0].abs().sum() > 0
        and pair_logits.grad[1].abs().sum() > 0
        and ce.grad[0].abs().sum() > 0
    )


def test_leakage_is_detected_on_normalised_text():
    train = [
        Example(id="a", text="Prices  rose .", doc_id="a"),
        Example(id="b", text="Other text", doc_id="b"),
    ]
    test = [
        Example(
            id="t",
            text=pair_input("<ARG1>prices</ARG1> <ARG0>rose</ARG0> ."),
            doc_id="t",
            task="pair",
        )
    ]
    assert [e.id for e in leaked(train, test)] == ["a"]


def test_temperature_sampling_favours_small_corpora():
    corpus_of = ["big"] * 900 + ["small"] * 100
    assert corpus_probabilities(corpus_of, 1.0)["small"] == pytest.approx(0.1)
    assert corpus_probabilities(corpus_of, 2.0)["small"] == pytest.approx(10 / (30 + 10))
    sampler = TemperatureSampler(corpus_of, [5] * 1000, batch_size=10, temperature=2.0, seed=1)
    drawn = list(sampler)
    assert len(drawn) == 1000 and 0.18 < sum(i >= 900 for i in drawn) / 1000 < 0.32
    sampler.set_epoch(1)
    assert list(sampler) != drawn
    sampler.set_epoch(0)
    assert list(sampler) == drawn


def test_multi_corpus_training_reports_per_corpus_metrics(train_config, tmp_path, data_root):
    cfg = train_config(
        "data=unicausal",
        "data.corpora=[because,cnc]",
        f"data.root={data_root}/unicausal",
        f"data.cnc_root={data_root}",
    )
    metrics = train(cfg)
    for key in (
        "test/pair_f1",
        "test/seq_f1",
        "test/span_f1",
        "test/because/pair_f1",
        "test/because/seq_f1",
        "test/because/span_f1",
        "test/cnc/seq_f1",
    ):
        assert key in metrics, key
    assert "test/cnc/pair_f1" not in metrics  # CNC's pairs (all causal) only with data.pairs=true
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["test/because/pair_f1"] == metrics["test/because/pair_f1"]
    assert written["data"]["splits"]["train"]["by_corpus"].keys() == {"because", "cnc"}


def test_eval_on_other_data_scores_each_corpus_it_reads(train_config, tmp_path, data_root):
    """A CNC-only checkpoint scored on CNC and BECAUSE together (eval.py's data.* overrides)
    reports each corpus apart, and its CNC figures are those of CNC read alone."""
    from causalmine.recipes import evaluate

    from .conftest import compose_config

    train(train_config())
    last = tmp_path / "checkpoints" / "last.ckpt"
    base = [f"ckpt_path={last}", "split=val", "trainer.enable_progress_bar=false"]
    alone = evaluate(compose_config("eval", base, tmp_path / "alone"))
    joint = evaluate(
        compose_config(
            "eval",
            [
                *base,
                "+data.kind=unicausal",
                "+data.corpora=[cnc,because]",
                f"+data.root={data_root}/unicausal",
                f"+data.cnc_root={data_root}",
                "+data.on_error=skip",
            ],
            tmp_path / "joint",
        )
    )
    assert "val/because/span_f1" in joint
    for name in ("seq_f1", "seq_mcc", "span_f1", "span_f1_2023"):
        assert joint[f"val/cnc/{name}"] == alone[f"val/{name}"], name
    assert joint["val/span_f1"] != alone["val/span_f1"]  # the totals hold BECAUSE's too


def _write_user_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(
        "id,doc,sentence,causal,tagged,marked,pair\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return path


def test_user_csv_corpus_trains(train_config, tmp_path):
    rows = [
        f'{i},d{i % 7},Prices rose because supply fell .,1,"<ARG1>Prices rose</ARG1> <SIG0>because</SIG0> <ARG0>supply fell</ARG0> .",'
        f'"<ARG1>Prices rose</ARG1> because <ARG0>supply fell</ARG0> .",1'
        if i % 2
        else f"{i},d{i % 7},The sky is blue .,0,,,"
        for i in range(40)
    ]
    train_file = _write_user_csv(tmp_path / "mine.csv", rows)
    cfg = train_config(
        "data=csv",
        f"data.train_file={train_file}",
        f"data.test_file={train_file}",
        "data.name=mine",
        "data.columns.id=id",
        "data.columns.doc_id=doc",
        "data.columns.text=sentence",
        "data.columns.seq_label=causal",
        "data.columns.relations=tagged",
        "data.columns.pair_text=marked",
        "data.columns.pair_label=pair",
        "data.drop_leaked=false",  # the test file is the training file here
    )
    metrics = train(cfg)
    assert {"test/seq_f1", "test/span_f1", "test/pair_f1"} <= metrics.keys()
    report = json.loads((tmp_path / "metrics.json").read_text())["data"]["reports"][0]
    assert report["rows_read"] == 40 and report["rows_used"] == 40
