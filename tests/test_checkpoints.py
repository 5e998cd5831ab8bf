"""Checkpoint safety: corrupt files give a CheckpointError naming them; ``ckpt_path=last``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from causalmine.checkpoints import CheckpointError, load_module, resolve_ckpt_path
from causalmine.lit import CausalLitModule
from causalmine.recipes import evaluate, predict, train

from .conftest import REPO, compose_config

TINY = {"arch": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def weights_checkpoint(tmp_path_factory, bert_tokenizer):
    """A small checkpoint in Lightning's layout (weights and hyper-parameters)."""
    module = CausalLitModule(
        network={"name_or_path": "tiny-bert", "tiny": TINY, "vocab_size": len(bert_tokenizer)}
    )
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt"
    torch.save(
        {
            "pytorch-lightning_version": "2.6.0",
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
        },
        path,
    )
    return path


def _corrupt(source, kind: str, tmp_path):
    path = tmp_path / f"{kind}.ckpt"
    data = source.read_bytes()
    middle = len(data) // 2  # inside the tensors: only the zip CRCs can tell
    flipped = (
        data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]
    )
    path.write_bytes(
        {
            "truncated": data[:middle],
            "random": os.urandom(4096),
            "empty": b"",
            "flipped": flipped,
        }[kind]
    )
    return path


def test_intact_checkpoint_loads(weights_checkpoint):
    assert load_module(weights_checkpoint).hparams["network"]["tiny"] == TINY


@pytest.mark.parametrize("kind", ["truncated", "random", "empty", "flipped"])
def test_corrupt_checkpoint_is_a_clear_error_everywhere(
    kind, weights_checkpoint, train_config, tmp_path
):
    bad = _corrupt(weights_checkpoint, kind, tmp_path)
    text = tmp_path / "in.txt"
    text.write_text("Prices rose because supply fell .\n")
    runs = {
        "eval.py": lambda: evaluate(compose_config("eval", [f"ckpt_path={bad}"], tmp_path / "e")),
        "predict.py": lambda: predict(
            compose_config("predict", [f"ckpt_path={bad}", f"input={text}"], tmp_path / "p")
        ),
        "train.py (resume)": lambda: train(train_config(f"ckpt_path={bad}")),
    }
    for name, run in runs.items():
        with pytest.raises(CheckpointError, match="truncated or corrupt") as raised:
            run()
        assert str(bad) in str(raised.value), name


def test_resume_needs_a_training_state(weights_checkpoint, train_config):
    with pytest.raises(CheckpointError, match="no training state"):
        train(train_config(f"ckpt_path={weights_checkpoint}"))


def test_eval_entry_point_reports_a_truncated_checkpoint_without_torch_internals(
    weights_checkpoint, tmp_path
):
    bad = _corrupt(weights_checkpoint, "truncated", tmp_path)
    done = subprocess.run(
        [sys.executable, "eval.py", f"ckpt_path={bad}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "CheckpointError" in done.stderr and str(bad) in done.stderr
    assert "torch/serialization.py" not in done.stderr


def _touch(path, age: float = 0.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_last_prefers_this_run_directory_then_the_newest(tmp_path):
    run = tmp_path / "runs" / "r1"
    own = _touch(run / "checkpoints" / "last.ckpt", age=100)
    _touch(run / "checkpoints" / "best-epoch03-step9.ckpt")  # newer, but not a last
    _touch(tmp_path / "runs" / "r2" / "checkpoints" / "last.ckpt")  # newer, but a sibling
    assert resolve_ckpt_path("last", run) == str(own)
    newer = _touch(run / "checkpoints" / "last-v1.ckpt", age=50)
    assert resolve_ckpt_path("last", run) == str(newer)


def test_last_falls_back_to_sibling_runs_but_not_in_a_multirun(tmp_path):
    sibling = _touch(tmp_path / "runs" / "old" / "checkpoints" / "last.ckpt")
    fresh = tmp_path / "runs" / "new"
    fresh.mkdir(parents=True)
    assert resolve_ckpt_path("last", fresh) == str(sibling)
    with pytest.raises(CheckpointError, match=r"no last\.ckpt under") as raised:
        resolve_ckpt_path("last", fresh, search_siblings=False)
    assert "sibling" not in str(raised.value)
    with pytest.raises(CheckpointError, match="no such file"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), fresh)
    assert resolve_ckpt_path(None, fresh) is None
