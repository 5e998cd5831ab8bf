"""Sweep machinery: launcher, sweeper and experiment configs compose and instantiate; the
objective is validated; an Optuna search runs end to end and shares its study via storage."""

from __future__ import annotations

import itertools
import json
import math
from datetime import datetime

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from causalmine.objective import objective, objective_keys, trial_value
from causalmine.recipes import train
from causalmine.settings import ConfigError, TrainConfig

from .conftest import CONF, REPO
from .test_train import _run


def _compose(*overrides: str) -> DictConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def _resolved(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def test_ray_launcher_reserves_the_configured_resources_per_job():
    cfg = _compose("hydra/launcher=ray_gpus")
    ray = _resolved(cfg.hydra.launcher.ray)
    assert ray["remote"] == {"num_gpus": int(torch.cuda.is_available()), "num_cpus": 1}
    assert ray["init"]["address"] is None
    cfg = _compose("hydra/launcher=ray_gpus", "launcher.gpus_per_job=1", "launcher.cpus_per_job=4")
    assert _resolved(cfg.hydra.launcher.ray)["remote"]["num_gpus"] == 1
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "RayLauncher"
    assert launcher.ray_cfg.remote.num_cpus == 4


def test_ray_launcher_rejects_a_bad_gpu_count():
    cfg = _compose("hydra/launcher=ray_gpus", "launcher.gpus_per_job=-1")
    with pytest.raises(Exception, match="gpus_per_job must be a number >= 0"):
        _resolved(cfg.hydra.launcher.ray)


def test_slurm_launcher_follows_lightnings_rules():
    cfg = _compose(
        "hydra/launcher=slurm",
        "trainer=gpu",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "launcher.partition=gpu",
        "launcher.timeout_min=30",
    )
    slurm = _resolved(cfg.hydra.launcher)
    assert slurm["tasks_per_node"] == 4 and slurm["gpus_per_node"] == 4  # one task per device
    assert slurm["nodes"] == 2 and slurm["partition"] == "gpu" and slurm["timeout_min"] == 30
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"


def test_optuna_search_space_and_objective_compose():
    cfg = _compose("hparams_search=optuna")
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "maximize"
    assert {"optim.lr", "alpha", "pooling"} <= set(cfg.hydra.sweeper.params)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"  # no -m needed
    assert list(cfg.objective) == ["val/seq_f1", "val/span_f1"]
    sweeper = instantiate(cfg.hydra.sweeper)
    assert type(sweeper).__name__ == "OptunaSweeper"


@pytest.mark.parametrize("search", sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml")))
def test_every_search_shares_the_projects_sweeper_settings(search):
    """conf/hydra/sweeper/optuna_tpe.yaml is the one place for what the searches share; each
    search file selects it and keeps only its own study, seed and axes."""
    cfg = _compose(f"hparams_search={search}")
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == "optuna_tpe"
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.max_failure_rate == 1.0
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.sampler.n_startup_trials == 8 and sweeper.n_jobs == 1


def test_levers_search_covers_only_valid_configs_and_never_tests():
    """The issue-12 search: validation only, at the protocol's budget, and every corner of its
    space passes the config checks (a warm-up as long as the budget would fail every trial)."""
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.distributions import CategoricalDistribution

    cfg = _compose("hparams_search=levers")
    assert cfg.test is False and list(cfg.objective) == ["val/joint_f1"]
    assert cfg.trainer.max_epochs == 10 and cfg.hydra.sweeper.study_name == "levers"
    # every trial of the study in one precision, whatever the machine (RESULTS §8n)
    assert cfg.trainer.precision == "bf16-mixed"
    space, fixed = create_params_from_overrides(
        [f"{key}={value}" for key, value in cfg.hydra.sweeper.params.items()]
    )
    assert not fixed and {name: type(d).__name__ for name, d in space.items()} == {
        "optim.lr": "LogUniformDistribution",
        "optim.head_lr": "LogUniformDistribution",
        "span_weight": "LogUniformDistribution",
        "loss.seq_start_epoch": "IntUniformDistribution",  # ordered, for TPE
        "loss.span_assignment": "CategoricalDistribution",
    }
    assert cfg.hydra.sweeper.max_failure_rate == 1.0  # one failed trial does not end the process

    def ends(distribution) -> tuple:
        if isinstance(distribution, CategoricalDistribution):
            return distribution.choices
        return (distribution.low, distribution.high)

    for corner in itertools.product(*(ends(d) for d in space.values())):
        point = [f"{key}={value}" for key, value in zip(space, corner, strict=True)]
        TrainConfig.from_config(_compose("hparams_search=levers", *point))


@pytest.mark.parametrize(
    ("name", "swept"),
    [("pooling_alpha", {"pooling", "alpha", "seed"}), ("freezing", {"freeze", "seed"})],
)
def test_experiments_compose_with_their_sweep_grids(name, swept):
    cfg = _compose(f"experiment={name}")
    assert set(cfg.hydra.sweeper.params) == swept
    assert cfg.task_name == name and cfg.model.name_or_path != "tiny-bert"
    # the command line still picks the model
    assert _compose(f"experiment={name}", "model=tiny_bert").model.name_or_path == "tiny-bert"


def test_experiment_takes_the_template_form_and_the_old_plus_form(tmp_path):
    """``experiment=NAME`` as in the lightning-hydra-template; ``+experiment=NAME`` (the older
    form, now a second value to Hydra) still works from the command line."""
    import subprocess
    import sys

    from causalmine.config import plain_experiment_override

    argv = ["train.py", "+experiment=cnc_minilm", "+trainer.profiler=simple"]
    assert plain_experiment_override(argv) == [
        "train.py",
        "experiment=cnc_minilm",
        "+trainer.profiler=simple",
    ]
    for form in ("experiment=pooling_alpha", "+experiment=pooling_alpha"):
        done = subprocess.run(
            [sys.executable, "train.py", form, "trainer.max_epochs=7", "--cfg", "job"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "task_name: pooling_alpha" in done.stdout and "max_epochs: 7" in done.stdout


@pytest.mark.parametrize(
    "objective", ["[val/seq_f1,test/seq_f1]", "[]", "val/seq_f1"], ids=["test", "empty", "str"]
)
def test_bad_objective_fails_early(train_config, objective):
    with pytest.raises(ConfigError, match="objective must be a non-empty list"):
        TrainConfig.from_config(train_config(f"objective={objective}"))


def test_objective_is_scored_when_training_stops_before_validation(train_config):
    cfg = train_config("trainer.max_steps=2")  # the epoch has 3 batches: no validation ran
    metrics = train(cfg)
    assert objective(metrics, objective_keys(cfg)) >= 0.0  # not NaN
    assert "val/span_f1" in metrics and "test/seq_f1" in metrics


def _one_batch_sweep(log_dir, *overrides: str) -> None:
    """``train.py`` on the tiny BERT, one batch per job, no logger; must succeed."""
    quick = ["model=tiny_bert", "trainer.fast_dev_run=true", "logger=none"]
    quick += ["trainer.enable_progress_bar=false", f"paths.log_dir={log_dir}"]
    done = _run(["train.py", *overrides, *quick], timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def _optuna_search(log_dir, storage: str, trials: int, seed: int) -> None:
    _one_batch_sweep(
        log_dir,
        "hparams_search=optuna",  # multirun without -m
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=shared",
        f"hydra.sweeper.n_trials={trials}",
        f"hydra.sweeper.sampler.seed={seed}",
    )


def _completed_trials(storage: str) -> list[float]:
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    return [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]


def test_optuna_search_runs_and_records_its_trials(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    _optuna_search(tmp_path, storage, trials=2, seed=1)
    values = _completed_trials(storage)
    (sweep,) = tmp_path.glob("train/multiruns/*/optimization_results.yaml")
    jobs = [json.loads(p.read_text()) for p in sorted(sweep.parent.glob("*/metrics.json"))]
    # each trial's value is its job's objective, val/seq_f1 + val/span_f1
    expected = [m["val/seq_f1"] + m["val/span_f1"] for m in jobs]
    assert sorted(values) == pytest.approx(sorted(expected))


def test_a_trial_without_its_objective_fails_and_the_search_goes_on(tmp_path):
    """No validation, so no objective: each trial is recorded as FAIL, naming the metric, and
    the process runs its next trial (a NaN would crash the sweeper at the first). With no trial
    completed, the sweeper then has no best trial to report and the process ends in error."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    done = _run(
        [
            "train.py",
            "hparams_search=optuna",
            f"hydra.sweeper.storage={storage}",
            "hydra.sweeper.study_name=shared",
            "hydra.sweeper.n_trials=2",
            "model=tiny_bert",
            "logger=none",
            "test=false",
            "trainer.max_steps=1",
            "loss.seq_start_epoch=0",  # one step: no span warm-up
            "+trainer.limit_val_batches=0",
            "trainer.enable_progress_bar=false",
            f"paths.log_dir={tmp_path}",
        ],
        timeout=900,
    )
    study = optuna.load_study(study_name="shared", storage=storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2, done.stderr[
        -3000:
    ]
    assert "objective metric val/seq_f1, val/span_f1 is not among" in done.stdout + done.stderr


def test_trial_value_is_the_objective_or_a_named_failure_under_optuna():
    metrics = {"val/seq_f1": 0.75, "val/span_f1": 0.5}
    sweeper = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert trial_value(metrics, ["val/seq_f1", "val/span_f1"], sweeper) == 1.25
    # a grid or a single run keeps its NaN (nothing to store it in, and a grid goes on)
    assert math.isnan(trial_value(metrics, ["val/pair_f1"], None))
    with pytest.raises(ValueError, match="val/pair_f1 is not among the run's metrics"):
        trial_value(metrics, ["val/pair_f1"], sweeper)


@pytest.mark.slow
def test_optuna_processes_share_one_study_through_storage(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    _optuna_search(tmp_path, storage, trials=1, seed=1)
    _optuna_search(tmp_path, storage, trials=1, seed=2)
    assert len(_completed_trials(storage)) == 2
    assert len(list(tmp_path.glob("train/multiruns/*/optimization_results.yaml"))) == 2


def _log_span(train_log) -> tuple[datetime, datetime]:
    """First and last time stamp of a job's train.log."""
    stamps = [
        datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f")
        for line in train_log.read_text().splitlines()
        if line.startswith("[20")
    ]
    return stamps[0], stamps[-1]


@pytest.mark.slow
def test_ray_launcher_runs_jobs_side_by_side(tmp_path):
    _one_batch_sweep(
        tmp_path,
        "-m",
        "hydra/launcher=ray_gpus",
        "+hydra.launcher.ray.init.num_cpus=2",  # two one-core slots on any machine
        "launcher.cpus_per_job=1",
        "alpha=1,3",
    )
    logs = sorted(tmp_path.glob("train/multiruns/*/*/train.log"))
    assert len(logs) == 2 and all((log.parent / "metrics.json").is_file() for log in logs)
    (start_a, end_a), (start_b, end_b) = (_log_span(log) for log in logs)
    assert max(start_a, start_b) < min(end_a, end_b)  # both jobs were running at once
