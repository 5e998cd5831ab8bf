"""Resumable, reproducible runs: RNG states in checkpoints, same seed = same metrics, and a
SIGKILLed run resumed with ``ckpt_path=last`` ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from causalmine.loggers import keep_csv_metrics
from causalmine.recipes import train
from causalmine.training.rng import capture_rng_states, restore_rng_states

from .conftest import REPO, run_to_end


def _draws() -> tuple:
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)])


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    np.random.randn()  # numpy keeps a cached gaussian: it must round-trip too
    torch.save({"rng_states": capture_rng_states()}, tmp_path / "rng.ckpt")
    expected = _draws()
    _draws()
    restore_rng_states(torch.load(tmp_path / "rng.ckpt", weights_only=True)["rng_states"])
    assert _draws() == expected


def _test_and_val(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "test/"))}


def test_same_seed_same_config_gives_identical_metrics(train_config, tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = train_config("trainer.deterministic=true", "logger=none")
        cfg.paths.output_dir = str(tmp_path / name)
        runs.append(_test_and_val(train(cfg)))
    assert runs[0] == runs[1] and len(runs[0]) > 20
    last = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3  # last.ckpt is the newest state, not a copy of the best
    assert set(last["rng_states"]) == {"torch", "cuda", "numpy", "python"}


def test_resume_keeps_the_interrupted_csv_log(tmp_path):
    logger = CSVLogger(save_dir=tmp_path, name="csv", version="")
    for attempt in (1, 2):
        (tmp_path / "csv").mkdir(exist_ok=True)
        (tmp_path / "csv" / "metrics.csv").write_text(f"step,train/loss\n{attempt},0.5\n")
        kept = keep_csv_metrics([logger])
        assert kept == tmp_path / "csv" / f"metrics-before-resume-{attempt}.csv"
        assert kept.read_text().endswith(f"{attempt},0.5\n")
    assert keep_csv_metrics([logger]) is None  # nothing to keep


def _train_command(run_dir: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "model=tiny_bert",
        f"data.root={data_root}",
        "data.limit_examples=64",  # 8 training batches of 8 per epoch
        "trainer.max_epochs=2",
        "loss.seq_start_epoch=0",  # no span warm-up in two epochs
        "trainer.deterministic=true",
        "trainer.enable_progress_bar=false",
        "callbacks.step_checkpoint.every_n_train_steps=3",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_root) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    run_to_end(_train_command(run_dir, data_root))
    return run_dir


def _kill_and_resume(uninterrupted: Path, tmp_path: Path, data_root, pause_step: int, *extra: str):
    """SIGKILL a run before step ``pause_step``, resume it with ``ckpt_path=last`` and check
    that it ends bit-identical to ``uninterrupted`` (the same command, never stopped)."""
    run_dir, marker = tmp_path / "run", tmp_path / "paused"
    pause = [
        "+callbacks.pause._target_=tests.interrupt.PauseAtStep",
        f"+callbacks.pause.step={pause_step}",
        f"+callbacks.pause.marker={marker}",
    ]
    with subprocess.Popen(
        _train_command(run_dir, data_root, *extra, *pause),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        deadline = time.monotonic() + 600
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), process.stderr.read()[-3000:] if process.poll() else "no pause"
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    last_saved_step = pause_step - pause_step % 3
    assert saved["global_step"] == last_saved_step
    assert saved["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": last_saved_step // 8, "batches": last_saved_step % 8}
    ]

    resumed = run_to_end(_train_command(run_dir, data_root, *extra, "ckpt_path=last"))
    resolved = f"ckpt_path=last resolved to {run_dir / 'checkpoints' / 'last.ckpt'}"
    assert resolved in resumed.stdout + resumed.stderr

    expected = json.loads((uninterrupted / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    # bit-identical: the final validation of epoch 1 and the test of the best checkpoint
    assert _test_and_val(got) == _test_and_val(expected) and len(_test_and_val(got)) > 40
    checkpoints = [
        torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)
        for d in (uninterrupted, run_dir)
    ]
    for key in ("state_dict", "current_model_state"):  # the latter with callbacks=ema only
        weights = [c.get(key, {}) for c in checkpoints]
        assert weights[0].keys() == weights[1].keys()
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert os.path.basename(got["best_checkpoint"]) == os.path.basename(expected["best_checkpoint"])


@pytest.mark.slow
@pytest.mark.parametrize("pause_step", [4, 10])  # kill in epoch 0 / epoch 1, both mid-epoch
def test_sigkilled_run_resumes_to_identical_results(uninterrupted, tmp_path, data_root, pause_step):
    _kill_and_resume(uninterrupted, tmp_path, data_root, pause_step)


@pytest.mark.slow
def test_sigkilled_run_with_weight_averaging_resumes_to_identical_results(
    tmp_path_factory, tmp_path, data_root
):
    """callbacks=ema: the average and the trained weights both come back from last.ckpt."""
    uninterrupted = tmp_path_factory.mktemp("uninterrupted_ema")
    run_to_end(_train_command(uninterrupted, data_root, "callbacks=ema"))
    assert "current_model_state" in torch.load(
        uninterrupted / "checkpoints" / "last.ckpt", weights_only=True
    )
    _kill_and_resume(uninterrupted, tmp_path, data_root, 10, "callbacks=ema")
