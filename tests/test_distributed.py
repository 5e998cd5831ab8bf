"""Distributed training (DDP, 2 CPU processes with gloo) runs the real entry point, and its
synced validation and test metrics equal a single process scoring the same checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from causalmine.recipes import evaluate

from .conftest import REPO, compose_config


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, data_root):
    run_dir = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable,
        "train.py",
        "trainer=ddp_cpu",
        "model=tiny_bert",
        f"data.root={data_root}",
        "data.limit_examples=60",  # 54 training sentences: 27 per rank, 4 steps of 8
        "data.eval_batch_size=16",
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
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
