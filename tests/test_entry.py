"""User errors end a command with one line and status 1; bugs keep their traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from hydra.errors import InstantiationException
from lightning.fabric.utilities.exceptions import MisconfigurationException

from causalmine.data.accounting import DataError
from causalmine.entry import friendly_errors, user_error

from .conftest import REPO


def _raising(error: BaseException):
    @friendly_errors
    def task() -> None:
        raise error

    return task


def test_a_user_error_exits_with_its_message(capsys):
    with pytest.raises(SystemExit) as stopped:
        _raising(DataError("corpus.csv, row 3: no text"))()
    assert stopped.value.code == 1
    assert capsys.readouterr().err.startswith("error: DataError: corpus.csv, row 3: no text\n")


def test_a_wrapped_user_error_is_found_and_a_bug_keeps_its_traceback():
    device = MisconfigurationException("No supported gpu backend found!")
    try:
        try:
            raise device
        except MisconfigurationException as err:
            raise InstantiationException("Error in call to target Trainer") from err
    except InstantiationException as wrapped:
        assert user_error(wrapped) is device
    with pytest.raises(KeyError):
        _raising(KeyError("a bug"))()


def test_a_run_stopped_by_sigterm_exits_143_not_0(capsys):
    """Lightning ends a fit on SIGTERM with a SystemExit of status 0: a killed run would pass
    for a finished one (a queue would then look for metrics it never wrote)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    assert SIGTERMException().code is None  # what Lightning leaves: status 0
    with pytest.raises(SystemExit) as stopped:
        _raising(SIGTERMException())()
    assert stopped.value.code == 143
    assert "stopped by SIGTERM" in capsys.readouterr().err
    with pytest.raises(SystemExit) as plain:  # any other exit keeps its status
        _raising(SystemExit(3))()
    assert plain.value.code == 3


@pytest.mark.slow
def test_train_killed_by_sigterm_exits_143_without_metrics(tmp_path, data_root):
    run = subprocess.Popen(
        [sys.executable, "train.py", "model=tiny_bert", f"data.root={data_root}",
         "data.limit_examples=48", "trainer.max_epochs=500", "loss.seq_start_epoch=0",
         "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
         f"hydra.run.dir={tmp_path}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log = tmp_path / "csv" / "metrics.csv"
    deadline = time.monotonic() + 300
    while not log.is_file() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)  # training has begun once the first epoch is logged
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and not (tmp_path / "metrics.json").exists()


def test_full_error_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(DataError):
        _raising(DataError("bad row"))()


@pytest.mark.parametrize("full", [False, True])
def test_the_entry_point_prints_one_line(full, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if full:
        env["HYDRA_FULL_ERROR"] = "1"
    done = subprocess.run(
        [sys.executable, "predict.py", f"input={tmp_path}/missing.txt", "ckpt_path=x.ckpt"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 1
    assert f"{tmp_path}/missing.txt: input file not found" in done.stderr
    assert ("Traceback" in done.stderr) == full


def test_unknown_keys_are_named_with_the_closest_valid_ones():
    from causalmine.entry import unknown_keys

    conf = REPO / "conf"
    valid = [
        "model=roberta",
        "model.lstm.hidden=128",
        "data=unicausal",
        "data.corpora=[because]",
        "optim.lr=3e-5",
        "alpha=1,3",
        "logger=wandb",
        "logger.wandb.project=x",
        "+trainer.profiler=simple",
        "hydra/launcher=ray_gpus",
        "-m",
    ]
    assert unknown_keys(valid, conf, "train") == {}
    found = unknown_keys(["optim.lrr=1e-4", "alpah=3", "model=roberta"], conf, "train")
    assert found["optim.lrr"][0] == "optim.lr" and found["alpah"][0] == "alpha"
    assert unknown_keys(["input=a.txt", "precision=int8"], conf, "predict") == {}


def test_a_misspelt_key_stops_the_command_with_a_suggestion():
    done = subprocess.run(
        [sys.executable, "train.py", "data.batchsize=4"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "unknown config key data.batchsize; did you mean data.batch_size" in done.stderr


def test_the_key_check_leaves_other_primary_configs_to_hydra(monkeypatch):
    from causalmine.entry import check_override_keys

    # "input" is no key of train.yaml, but the command names another config
    check_override_keys(["--config-name=predict", "input=x.txt"], REPO / "conf", "train")
    with pytest.raises(SystemExit):
        check_override_keys(["input=x.txt"], REPO / "conf", "train")


def test_help_has_one_line_per_key_with_its_comment(tmp_path, monkeypatch):
    from causalmine.config import key_help

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.yaml").write_text(
        "defaults:\n  - _self_\n  - data: cnc\n"
        "# the loss weight of the sequence task\nalpha: 1.0\n"
        "optim:\n  lr: 1e-4   # backbone\n  # a comment alone\n  fused: null\n"
    )
    monkeypatch.setenv("PROJECT_ROOT", str(tmp_path))
    assert key_help("app").splitlines() == [
        "  alpha=1.0    # the loss weight of the sequence task",
        "  optim.lr=1e-4    # backbone",
        "  optim.fused=null    # a comment alone",
    ]


def test_entry_points_print_their_keys_on_help():
    done = subprocess.run(
        [sys.executable, "mine.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "min_probability=null    # keep only sentences" in done.stdout
    assert "ray.workers=2    # actors, one model each" in done.stdout
    assert "collection: cnc_test_texts" in done.stdout
    # train.yaml's interpolations (the short forms alpha=, pooling=) survive Hydra's template
    done = subprocess.run(
        [sys.executable, "train.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loss.alpha=${alpha}" in done.stdout and "model.pooling=${pooling}" in done.stdout
