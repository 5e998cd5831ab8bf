"""One model bundle from a checkpoint, an export directory or a Hub id; the model card; pushing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

import causalmine
from causalmine.export import export, main, push_to_hub
from causalmine.inference.bundle import ModelBundle, load_bundle, read_export_config

SENTENCES = ["Prices rose because supply fell .", "The sky is blue .", ""]


@pytest.fixture(scope="module")
def model_dir(trained_checkpoint, tmp_path_factory) -> Path:
    return export(trained_checkpoint, tmp_path_factory.mktemp("export") / "model")


def _predictions(source) -> list[dict]:
    return [p.to_json() for p in causalmine.load(str(source)).predict(SENTENCES)]


def test_checkpoint_directory_and_hub_id_give_the_same_model(
    trained_checkpoint, model_dir, tmp_path, monkeypatch
):
    hub_copy = shutil.copytree(model_dir, tmp_path / "hub-cache" / "snapshot")
    downloads = []

    def snapshot_download(repo_id: str, **kwargs) -> str:
        downloads.append(repo_id)
        return str(hub_copy)

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    from_checkpoint = _predictions(trained_checkpoint)
    assert _predictions(model_dir) == from_checkpoint
    assert _predictions("someone/causal-minilm") == from_checkpoint
    assert downloads == ["someone/causal-minilm"]
    bundles = [load_bundle(s) for s in (trained_checkpoint, model_dir)]
    assert {
        (b.max_length, b.decode_method, b.required_kinds, b.force_relation, b.relation_order)
        for b in bundles
    } == {
        (bundles[0].max_length, bundles[0].decode_method, bundles[0].required_kinds, False, "head")
    }


def test_an_unreachable_hub_id_or_missing_path_says_what_was_tried(monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(repo_id: str, **kwargs):
        raise LocalEntryNotFoundError("offline")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match=r"someone/model: not a local path.*offline"):
        load_bundle("someone/model")
    with pytest.raises(FileNotFoundError, match="no such checkpoint file or model directory"):
        load_bundle("no/such/dir/here")


def test_the_model_card_describes_the_export(model_dir, trained_checkpoint):
    card = (model_dir / "README.md").read_text()
    front, body = card.split("---\n", 2)[1:]
    metadata = yaml.safe_load(front)
    assert metadata["library_name"] == "causalmine" and metadata["base_model"] == "tiny-bert"
    assert "causalmine.load(" in body and "mine.py" in body
    assert trained_checkpoint.name in body


def test_export_then_push_uploads_the_directory(trained_checkpoint, tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs.get("exist_ok")))

        def upload_folder(self, repo_id, folder_path, **kwargs):
            calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
            return "https://huggingface.co/someone/model/commit/abc"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    main([f"ckpt_path={trained_checkpoint}", f"out={tmp_path / 'm'}", "push_to_hub=someone/model"])
    assert calls == [
        ("create", "someone/model", True),
        ("upload", "someone/model", ["README.md", "config.json", "model.safetensors", "tokenizer"]),
    ]
    (tmp_path / "not_export").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        push_to_hub(tmp_path / "not_export", "someone/model")


def test_save_pretrained_round_trip_keeps_model_and_card(model_dir, tmp_path, monkeypatch):
    bundle = ModelBundle.from_pretrained(model_dir)
    again = bundle.save_pretrained(tmp_path / "again")
    assert _predictions(again) == _predictions(model_dir)
    assert (again / "README.md").read_text() == (model_dir / "README.md").read_text()
    assert read_export_config(again) == read_export_config(model_dir)
    uploads = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            pass

        def upload_folder(self, repo_id, folder_path, **kwargs):
            uploads.append(sorted(p.name for p in Path(folder_path).iterdir()))
            return "url"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert bundle.push_to_hub("someone/model") == "url"
    assert uploads == [["README.md", "config.json", "model.safetensors", "tokenizer"]]


def test_a_modules_decoding_options_travel_with_its_export(trained_checkpoint, tmp_path):
    """What eval.py may change on a loaded module (``decode.relation_order``, ...) is what its
    export decodes with, and what a predictor from the export uses."""
    from causalmine.checkpoints import load_module
    from causalmine.inference.bundle import bundle_of_module

    module = load_module(trained_checkpoint)
    module.decode_method, module.relation_order, module.force_relation = (
        "viterbi",
        "confidence",
        True,
    )
    out = bundle_of_module(module).save_pretrained(tmp_path / "confident")
    bundle = load_bundle(out)
    assert (bundle.decode_method, bundle.relation_order, bundle.force_relation) == (
        "viterbi",
        "confidence",
        True,
    )
    predictor = bundle.predictor()
    assert (predictor.relation_order, predictor.force_relation) == ("confidence", True)
