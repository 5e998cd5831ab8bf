"""Prediction and export: one output line per input line, long and hostile input, CNC format."""

from __future__ import annotations

import copy
import csv
import json
import random

import pytest
import torch

import causalmine
from causalmine.data.accounting import DataError
from causalmine.data.tags import strip_tags
from causalmine.export import export
from causalmine.inference.predictor import Predictor, _stitch
from causalmine.model.backbone import BackboneSpec, load_tokenizer
from causalmine.model.network import CausalNetwork, NetworkConfig
from causalmine.prediction_files import read_texts
from causalmine.recipes import predict
from causalmine.schema import CE_LABELS
from causalmine.scoring.decode import decode_relations, decode_sentences
from causalmine.settings import PredictConfig

from .conftest import TINY_BERT, compose_config


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    tokenizer = load_tokenizer(BackboneSpec("tiny-bert", TINY_BERT))
    network = CausalNetwork(
        NetworkConfig(name_or_path="tiny-bert", tiny=TINY_BERT, vocab_size=len(tokenizer))
    )
    return Predictor(network, tokenizer, max_length=32, stride=8, batch_size=4, required_kinds=())


def test_hostile_lines_each_get_one_prediction(predictor):
    texts = [
        "",
        "   ",
        "Prices rose because supply fell .",
        " ".join(["word"] * 3000),
        "Émeute 暴动 😀 שלום <b>html</b> &amp;",
        "\t",
    ]
    predictions = list(predictor.predict(texts))
    assert len(predictions) == len(texts)
    assert [p.text for p in predictions] == texts
    assert (
        predictions[0].causal_probability is None
        and predictions[0].to_json()["note"] == "empty input"
    )
    long = predictions[3]
    assert long.windows > 1 and 0.0 <= long.causal_probability <= 1.0
    for p in predictions:
        for tagged in p.tagged_texts():
            assert strip_tags(tagged) == p.text


def test_stitching_takes_each_word_from_its_most_central_window():
    class W:
        def __init__(self, word_ids):
            self.word_ids = word_ids

    # window A covers words 0-5, window B words 3-8; word 4 is more central in A (margin 1 vs 1: A first),
    # word 5 is more central in B (margin 0 in A, 2 in B)
    a = W([None, 0, 1, 2, 3, 4, 5, None])
    b = W([None, 3, 4, 5, 6, 7, 8, None])
    ce_a = torch.full((1, 8), 1)
    ce_b = torch.full((1, 8), 2)
    ce, _, positions = _stitch([(a, (0.1, ce_a, ce_a)), (b, (0.9, ce_b, ce_b))], 10)
    assert ce[0].tolist()[:9] == [1, 1, 1, 1, 1, 2, 2, 2, 2]
    assert positions[9] == -1  # no window saw word 9


def test_viterbi_predictor_decodes_stitched_logits(predictor):
    viterbi = Predictor(
        predictor.network,
        predictor.tokenizer,
        max_length=32,
        stride=8,
        batch_size=4,
        required_kinds=(),
        decode_method="viterbi",
    )
    short = "Prices rose because supply fell sharply ."
    texts = [short, " ".join(["supply", "fell", "because", "prices", "rose"] * 30)]
    got, base = list(viterbi.predict(texts)), list(predictor.predict(texts))
    assert [p.causal_probability for p in got] == [p.causal_probability for p in base]
    assert got[1].windows > 1 and got[1].relations
    # a one-window sentence: the constrained decoding of its first subwords' logits
    words = short.split()
    encoding = predictor.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    with torch.inference_mode():
        out = predictor.network(encoding["input_ids"], encoding["attention_mask"])
    word_ids = encoding.word_ids(0)
    positions = [word_ids.index(w) for w in range(len(words))]
    expected = decode_relations(
        out.cause_effect_logits[0], out.signal_logits[0], positions, (), "viterbi"
    )
    assert got[0].relations == expected and expected != base[0].relations


def test_forced_relations_fill_only_causal_sentences(predictor):
    network = copy.deepcopy(predictor.network)
    with torch.no_grad():  # span heads that leave the effect out: no relation without forcing
        for head in network.span_heads.heads:
            head.ce.bias[CE_LABELS.index("B-E")] -= 20.0

    def make(force: bool, method: str = "viterbi", threshold: float = 0.0) -> Predictor:
        return Predictor(
            network,
            predictor.tokenizer,
            required_kinds=("C", "E"),
            decode_method=method,
            threshold=threshold,
            force_relation=force,
        )

    texts = ["Prices rose because supply fell sharply .", "Rain fell .", "It rained ."]
    plain, forced = list(make(False).predict(texts)), list(make(True).predict(texts))
    # threshold 0: every sentence is causal, and each gets a relation with a cause and an effect
    assert all(p.label == 1 and p.relations and p.relations[0].causes for p in forced)
    assert all(p.relations[0].effects for p in forced)
    assert not any(p.relations for p in plain)
    # threshold 1: no sentence is causal, nothing is forced
    assert [p.relations for p in make(True, threshold=1.0).predict(texts)] == [
        p.relations for p in plain
    ]
    with pytest.raises(ValueError, match=r"needs decode\.method=viterbi"):
        make(True, method="argmax")


def test_confidence_order_permutes_each_sentences_relations(predictor, monkeypatch):
    def make(order: str, method: str = "viterbi") -> Predictor:
        return Predictor(
            predictor.network,
            predictor.tokenizer,
            required_kinds=(),
            decode_method=method,
            relation_order=order,
        )

    texts = ["Prices rose because supply fell sharply .", "Rain fell , so the river rose ."]
    orders = []

    def recording(*args, **kwargs):
        orders.append(args[7])
        return decode_sentences(*args, **kwargs)

    monkeypatch.setattr("causalmine.inference.predictor.decode_sentences", recording)
    by_head = list(make("head").predict(texts))
    confident = list(make("confidence").predict(texts))
    # the random network gives several relations per sentence: the same ones, maybe reordered
    assert sum(len(p.relations) for p in by_head) > len(texts)
    for h, c in zip(by_head, confident, strict=True):
        assert sorted(map(repr, h.relations)) == sorted(map(repr, c.relations))
        assert (h.label, h.causal_probability) == (c.label, c.causal_probability)
    assert orders == ["head", "confidence"]  # the predictor's order reaches the decoder
    with pytest.raises(ValueError, match=r"relation_order=confidence needs decode\.method=viterbi"):
        make("confidence", method="argmax")


def test_read_texts_keeps_empty_lines(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("first\n\n  \nlast\n", encoding="utf-8")
    assert read_texts(path) == ["first", "", "  ", "last"]


def test_read_texts_reads_every_format_mine_reads(tmp_path):
    """predict.py and mine.py share one set of readers: the same texts from any format."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = ["Prices rose because supply fell .", "", 'A "quoted", comma line .']
    (tmp_path / "a.jsonl.gz").write_bytes(
        gzip.compress("".join(json.dumps({"body": t}) + "\n" for t in texts).encode())
    )
    with (tmp_path / "a.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "body"])
        writer.writerows([[i, t] for i, t in enumerate(texts)])
    pq.write_table(pa.table({"body": texts}), tmp_path / "a.parquet")
    for name in ("a.jsonl.gz", "a.csv", "a.parquet"):
        assert read_texts(tmp_path / name, text_column="body") == texts, name
    with pytest.raises(DataError, match=r"a\.csv: no column 'text'"):
        read_texts(tmp_path / "a.csv")
    (tmp_path / "sentences").write_text("one\n\ntwo\n")  # any other name: one text per line
    assert read_texts(tmp_path / "sentences") == ["one", "", "two"]


def test_read_texts_names_the_row_that_holds_no_text(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"fine\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"in\.txt, row 2: not valid UTF-8"):
        read_texts(path)
    (tmp_path / "in.jsonl").write_text('{"text": "fine"}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"in\.jsonl, row 2: 'text' is not text"):
        read_texts(tmp_path / "in.jsonl")


def test_predict_cnc_test_file_in_submission_format(trained_checkpoint, data_root, tmp_path):
    cfg = compose_config(
        "predict",
        [
            f"ckpt_path={trained_checkpoint}",
            f"input={data_root}/cnc_v2/test_subtask2_text.csv",
            "output_format=cnc",
            "progress_bar=false",
        ],
        tmp_path,
    )
    out = predict(cfg)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 352
    first = json.loads(lines[0])
    assert first["index"] == 0 and isinstance(first["prediction"], list) and first["prediction"]


def test_exported_directory_predicts_like_its_checkpoint(trained_checkpoint, tmp_path, data_root):
    model_dir = export(trained_checkpoint, tmp_path / "export")
    assert {p.name for p in model_dir.iterdir()} >= {
        "model.safetensors",
        "config.json",
        "tokenizer",
    }
    texts = read_texts(data_root / "cnc_v2" / "test_subtask1_text.csv")[:40]
    outputs = []
    for source in ({"ckpt_path": str(trained_checkpoint)}, {"model_dir": str(model_dir)}):
        cfg = compose_config(
            "predict",
            # fp32 as causalmine.load's default: precision=auto is bf16 on a CPU with native bf16
            # (AMX or AVX512-BF16), and the comparison is of the export, not of the precision
            [f"{k}={v}" for k, v in source.items()]
            + ["input=unused", "progress_bar=false", "precision=fp32"],
            tmp_path,
        )
        from causalmine.recipes import load_predictor

        predictor = load_predictor(PredictConfig.from_config(cfg))
        outputs.append([p.to_json() for p in predictor.predict(texts)])
    assert outputs[0] == outputs[1]
    loaded = causalmine.load(str(model_dir), precision="fp32")
    assert [p.to_json() for p in loaded.predict(texts)] == outputs[0]


def test_decode_method_of_checkpoints_and_exports(trained_checkpoint, tmp_path):
    """The model's own method (viterbi, the training default), ``decode.method=…`` over it, and
    exports from before ``decode.method`` existed (no ``method`` key) loading as argmax."""
    from causalmine.recipes import load_predictor

    model_dir = export(trained_checkpoint, tmp_path / "export")
    config_path = model_dir / "config.json"
    assert json.loads(config_path.read_text())["decode"]["method"] == "viterbi"
    for source in (f"ckpt_path={trained_checkpoint}", f"model_dir={model_dir}"):
        for override, method in (([], "viterbi"), (["decode.method=argmax"], "argmax")):
            cfg = compose_config("predict", [source, "input=unused", *override], tmp_path)
            assert load_predictor(PredictConfig.from_config(cfg)).decode_method == method
    assert causalmine.load(str(model_dir), decode_method="argmax").decode_method == "argmax"
    config = json.loads(config_path.read_text())
    del config["decode"]["method"]
    config_path.write_text(json.dumps(config))
    assert causalmine.load(str(model_dir)).decode_method == "argmax"


def hostile_lines(count: int = 1000) -> list[str]:
    """``count`` lines of what real input files contain besides sentences (no ``\\n`` inside)."""
    rng = random.Random(0)
    words = ["Prices", "rose", "because", "supply", "fell", "暴动", "שלום", "😀", "<b>x</b>"]
    kinds = [
        lambda: "",
        lambda: rng.choice([" ", "\t", "   \t ", "\u00a0", "\u3000", "\u2028", "\x85"]),
        lambda: "Prices rose because supply fell .",
        lambda: "😀 Prices 🚀 rose 👍🏽 because 🧑‍🚀 supply fell 🇩🇪 .",
        lambda: "המחירים עלו כי ההיצע ירד . ارتفعت الأسعار لأن العرض انخفض",
        lambda: (
            "<p>Prices <b>rose</b></p> <script>alert('x')</script> &amp; <ARG0>not a tag</ARG0>"
        ),
        lambda: "Prices\x00 rose\x01 because\x1b[31m supply\x7f fell\x0b\x0c\x1c .",
        lambda: "\x00\x01\x02\x03",
        lambda: "Prices rose\x85because supply\u2028fell\u2029 sharply\rtoday .",
        lambda: "Prices  rose   because    supply fell",
        lambda: "\u200b\u200c\u200d\ufeff zero width",
        lambda: "e\u0301" * 40 + " " + "a" * 3000,
        lambda: " ".join(rng.choice(words) for _ in range(rng.randint(1, 60))),
    ]
    lines = [rng.choice(kinds)() for _ in range(count)]
    for i in range(3, count, count // 4):  # a few 10,000-word lines
        lines[i] = " ".join(rng.choice(words) for _ in range(10_000))
    lines[0] = "A plain first line ."  # a leading BOM would be read as a byte-order mark
    return lines


def test_predict_writes_one_line_per_hostile_input_line(trained_checkpoint, tmp_path):
    lines = hostile_lines()
    path = tmp_path / "hostile.txt"
    path.write_bytes("\n".join(lines).encode("utf-8") + b"\n")
    assert read_texts(path) == lines
    cfg = compose_config(
        "predict",
        [f"ckpt_path={trained_checkpoint}", f"input={path}", "progress_bar=false"],
        tmp_path,
    )
    out = predict(cfg)
    # splitlines() breaks at \x85, \u2028, \x1c … too: the output must survive any line reader
    written = out.read_text(encoding="utf-8").splitlines()
    assert len(written) == len(lines) == 1000
    records = [json.loads(line) for line in written]
    assert [r["index"] for r in records] == list(range(1000))
    assert [r["text"] for r in records] == lines
    assert [r["causal_probability"] is None for r in records] == [not t.strip() for t in lines]
