"""Distributed training (DDP, 2 CPU processes with gloo) runs the real entry point, and its
synced validation and test metrics equal a single process scoring the same checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from causalmine.recipes import evaluate

from .conftest import REPO, compose_config, run_to_end


def ddp_command(run_dir: Path, data_root: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "trainer=ddp_cpu",
        "model=tiny_bert",
        f"data.root={data_root}",
        "data.limit_examples=60",  # 54 training sentences: 27 per rank, 4 steps of 8
        "data.eval_batch_size=16",
        "trainer.max_epochs=2",
        "loss.seq_start_epoch=0",  # no span warm-up in two epochs
        "trainer.enable_progress_bar=false",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, data_root):
    run_dir = tmp_path_factory.mktemp("ddp")
    run_to_end(ddp_command(run_dir, data_root))
    return run_dir


def test_ddp_trains_on_two_processes(ddp_run):
    metrics = json.loads((ddp_run / "metrics.json").read_text())
    assert (ddp_run / "train_ddp_process_1.log").is_file()  # the second rank ran
    last = torch.load(ddp_run / "checkpoints" / "last.ckpt", weights_only=True)
    # 54 training sentences shared by 2 ranks in batches of 8: 4 steps per epoch, not 7
    assert last["global_step"] == 8
    assert metrics["test/seq_f1"] >= 0 and "val/span_f1" in metrics


@pytest.mark.parametrize("stage", ["val", "test"])
def test_ddp_metrics_equal_one_process_on_the_same_checkpoint(ddp_run, stage, tmp_path):
    """Each evaluation example is scored once, on one rank, and the ranks' counts are summed:
    the result is what one process finds. (The loss differs: it is a mean of per-batch means,
    and the batches differ between two shards and one process.)"""
    ddp = json.loads((ddp_run / "metrics.json").read_text())
    # test: the best checkpoint; val: the run's last validation, which scored the final weights
    best = ddp["best_checkpoint"] if stage == "test" else str(ddp_run / "checkpoints/last.ckpt")
    cfg = compose_config(
        "eval",
        [f"ckpt_path={best}", f"split={stage}", "trainer.enable_progress_bar=false"],
        tmp_path,
    )
    single = evaluate(cfg)
    keys = [k for k in single if not k.endswith("/loss")]
    assert len(keys) > 30
    assert {k: ddp[k] for k in keys} == pytest.approx({k: single[k] for k in keys}, abs=1e-6)


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_to_the_uninterrupted_results(tmp_path, data_root):
    """Both ranks SIGKILLed mid-epoch after a step checkpoint; ``ckpt_path=last`` on two
    processes again ends with the validation and test metrics of a run never interrupted."""
    every_3 = "callbacks.step_checkpoint.every_n_train_steps=3"
    uninterrupted, run_dir, marker = tmp_path / "whole", tmp_path / "run", tmp_path / "paused"
    run_to_end(ddp_command(uninterrupted, data_root, every_3))
    pause = [
        "+callbacks.pause._target_=tests.interrupt.PauseAtStep",
        "+callbacks.pause.step=6",  # epoch 1, after its second step (4 steps per epoch)
        f"+callbacks.pause.marker={marker}",
    ]
    with subprocess.Popen(
        ddp_command(run_dir, data_root, every_3, *pause),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # one process group: both ranks die together
    ) as process:
        deadline = time.monotonic() + 600
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), process.stderr.read()[-3000:] if process.poll() else "no pause"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 6 and not (run_dir / "metrics.json").exists()
    # the ranks' batches differ in length, so their dropout generators have moved apart: each
    # rank's states are saved (restoring the first rank's on both ranks changed the losses)
    first, second = saved["rng_states_per_rank"]
    assert not torch.equal(first["torch"], second["torch"])

    run_to_end(ddp_command(run_dir, data_root, every_3, "ckpt_path=last"))
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    keys = [k for k in expected if k.startswith(("val/", "test/"))]
    assert len(keys) > 40
    assert {k: got[k] for k in keys} == {k: expected[k] for k in keys}
